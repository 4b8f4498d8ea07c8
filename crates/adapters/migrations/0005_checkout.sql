-- Checkout (a hold, payment through Stripe, expiry and cancel).
--
-- A checkout sale has its terms (all three or none). Its settled orders are HELD until paid
-- (CONFIRMED), or the hold ends (EXPIRED, CANCELLED: the units go back); a payment that arrives
-- after the hold ended is refunded (REFUNDED). `held` counts the quantity of HELD orders, and
-- the constraint makes Postgres itself refuse to hold or confirm more than the stock.
ALTER TABLE sales
    ADD COLUMN hold_seconds integer CHECK (hold_seconds BETWEEN 60 AND 3600),
    ADD COLUMN price        bigint  CHECK (price > 0),
    ADD COLUMN currency     text    CHECK (currency ~ '^[a-z]{3}$'),
    ADD COLUMN held         integer NOT NULL DEFAULT 0 CHECK (held >= 0),
    ADD CONSTRAINT sales_checkout_terms_together
        CHECK ((hold_seconds IS NULL) = (price IS NULL) AND (price IS NULL) = (currency IS NULL)),
    ADD CONSTRAINT sales_held_and_confirmed_within_stock CHECK (confirmed + held <= stock);

ALTER TABLE orders DROP CONSTRAINT orders_status_check;
ALTER TABLE orders ADD CONSTRAINT orders_status_check
    CHECK (status IN ('CONFIRMED', 'REJECTED', 'DUPLICATE', 'HELD', 'EXPIRED', 'CANCELLED',
                      'REFUNDED'));
-- pay_by: when the hold ends (reserved_at + hold_seconds, Redis' clock).
-- payment_intent: the one Stripe PaymentIntent of the order, once the buyer asked to pay.
-- stock_returned: an EXPIRED or CANCELLED order's units are back in Redis too (the Postgres
-- half is the status change itself); until then the expiry job finishes the return.
-- status_written: the read model (DynamoDB) shows the order's last change; until then the expiry
-- job writes it.
ALTER TABLE orders
    ADD COLUMN pay_by         timestamptz,
    ADD COLUMN payment_intent text UNIQUE,
    ADD COLUMN stock_returned boolean NOT NULL DEFAULT true,
    ADD COLUMN status_written boolean NOT NULL DEFAULT true,
    ADD CONSTRAINT orders_held_has_pay_by CHECK (status <> 'HELD' OR pay_by IS NOT NULL);

-- What the expiry job reads: holds past pay_by, and changes not yet carried everywhere.
CREATE INDEX orders_held_pay_by ON orders (pay_by) WHERE status = 'HELD';
CREATE INDEX orders_follow_up ON orders (sale_id) WHERE NOT stock_returned OR NOT status_written;

ALTER TABLE orders_archive ADD COLUMN pay_by timestamptz, ADD COLUMN payment_intent text;
