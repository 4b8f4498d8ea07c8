-- Postgres is the authority for stock. `confirmed` counts the quantity of CONFIRMED orders and the
-- CHECK makes the database itself refuse to confirm more than the stock, whatever Redis did.
CREATE TABLE sales (
    id             text PRIMARY KEY,
    name           text        NOT NULL,
    stock          integer     NOT NULL CHECK (stock >= 0),
    per_user_limit integer     NOT NULL CHECK (per_user_limit > 0),
    opens_at       timestamptz,
    closes_at      timestamptz,
    confirmed      integer     NOT NULL DEFAULT 0 CHECK (confirmed >= 0),
    created_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT sales_confirmed_within_stock CHECK (confirmed <= stock),
    CONSTRAINT sales_window_ordered CHECK (opens_at IS NULL OR closes_at IS NULL OR opens_at < closes_at)
);

CREATE TABLE orders (
    order_id        uuid PRIMARY KEY,
    sale_id         text        NOT NULL REFERENCES sales (id) ON DELETE CASCADE,
    buyer           text        NOT NULL,
    quantity        integer     NOT NULL CHECK (quantity > 0),
    status          text        NOT NULL CHECK (status IN ('CONFIRMED', 'REJECTED')),
    idempotency_key text,
    reserved_at     timestamptz NOT NULL,
    settled_at      timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX orders_sale_status ON orders (sale_id, status);
