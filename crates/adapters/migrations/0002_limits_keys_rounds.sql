-- Postgres backs every promise Redis makes (see domain/settlement.rs):
-- * each (sale, buyer, idempotency key) names one order: a retry Redis did not recognise is
--   recorded as a DUPLICATE pointing at the original, and the unique index refuses a second one;
-- * the per-buyer limit is checked against the buyer's confirmed orders (orders_by_buyer);
-- * a reset starts a new round: the sale's orders move to orders_archive (history is kept, and
--   an order id is recorded once across both tables), and messages of an earlier round are
--   recorded there as REJECTED instead of taking the new round's stock.
ALTER TABLE sales ADD COLUMN round integer NOT NULL DEFAULT 1 CHECK (round > 0);

ALTER TABLE orders ADD COLUMN duplicate_of uuid;
ALTER TABLE orders DROP CONSTRAINT orders_status_check;
ALTER TABLE orders ADD CONSTRAINT orders_status_check
    CHECK (status IN ('CONFIRMED', 'REJECTED', 'DUPLICATE'));
ALTER TABLE orders ADD CONSTRAINT orders_duplicate_names_original
    CHECK ((status = 'DUPLICATE') = (duplicate_of IS NOT NULL));

CREATE UNIQUE INDEX orders_one_per_key ON orders (sale_id, buyer, idempotency_key)
    WHERE idempotency_key IS NOT NULL AND status <> 'DUPLICATE';
CREATE INDEX orders_by_buyer ON orders (sale_id, buyer) WHERE status = 'CONFIRMED';

CREATE TABLE orders_archive (
    order_id        uuid PRIMARY KEY,
    sale_id         text        NOT NULL REFERENCES sales (id) ON DELETE CASCADE,
    round           integer     NOT NULL,
    buyer           text        NOT NULL,
    quantity        integer     NOT NULL,
    status          text        NOT NULL,
    idempotency_key text,
    duplicate_of    uuid,
    reserved_at     timestamptz NOT NULL,
    settled_at      timestamptz NOT NULL,
    archived_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orders_archive_sale ON orders_archive (sale_id, round);
