-- Expiry that stuck holds cannot block (issue 25).
--
-- retry_at: the expiry job looks at this order again no sooner than this. Set when a hold past
-- pay_by could not be ended (the payment provider is unreachable, a payment is processing) or
-- when its follow-up (units back in Redis, the status in the read model) failed; the job's reads
-- take due work in order and skip what waits, so a few stuck orders never stop the others.
ALTER TABLE orders ADD COLUMN retry_at timestamptz;

CREATE INDEX orders_held_due ON orders (pay_by, retry_at) WHERE status = 'HELD';
