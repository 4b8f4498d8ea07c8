//! Settling a batch: one transaction, a handful of statements whatever the batch size, in the
//! order they run: lock and read, decide (the pure [`allocate`]), insert, then count.
//!
//! The sale rows are locked (in id order) for the transaction, so concurrent batches of one sale
//! serialize and the buyers' totals and keys read here cannot change before the commit.
//! `sales.confirmed` and its `CHECK (confirmed <= stock)` make Postgres the second guard against
//! overselling, the unique index on (sale, buyer, key) the second guard against recording a
//! request twice.

use super::rows::{order_status, recorded_orders, ArchiveRows, OrderRows, RECORDED_IN_ANY_ROUND};
use super::Db;
use super::OrDbError;
use flashflow::domain::settlement::{allocate, distinct_ids, SaleBook};
use flashflow::domain::{
    BuyerId, IdempotencyKey, OrderMessage, OrderState, OrderStatus, SaleId, Settled, Settlement,
};
use flashflow::ports::{DbError, Ledger};
use std::collections::HashMap;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Statement, Transaction};
use tracing::{info_span, Instrument};
use uuid::Uuid;

/// A statement parameter.
type Param<'a> = dyn ToSql + Sync + 'a;

/// The batch's sale rows, locked in id order.
const LOCK_SALES: &str = "SELECT id, stock, confirmed, held, per_user_limit, round, hold_seconds
                            FROM sales WHERE id = ANY($1) ORDER BY id FOR UPDATE";
/// Each buyer's confirmed or held quantity in this round of the sale.
const BOUGHT: &str = "SELECT o.sale_id, o.buyer, sum(o.quantity)::bigint AS bought FROM orders o
                        JOIN (SELECT DISTINCT * FROM unnest($1::text[], $2::text[])) AS b(sale_id, buyer)
                          ON o.sale_id = b.sale_id AND o.buyer = b.buyer
                       WHERE o.status IN ('CONFIRMED', 'HELD')
                       GROUP BY o.sale_id, o.buyer";
/// The order each (buyer, idempotency key) belongs to in this round of the sale.
const KEY_HOLDERS: &str =
    "SELECT o.order_id, o.sale_id, o.buyer, o.quantity, o.status, o.duplicate_of, o.pay_by,
            o.idempotency_key FROM orders o
       JOIN (SELECT DISTINCT * FROM unnest($1::text[], $2::text[], $3::text[]))
            AS k(sale_id, buyer, key)
         ON o.sale_id = k.sale_id AND o.buyer = k.buyer AND o.idempotency_key = k.key
      WHERE o.status <> 'DUPLICATE'";
const INSERT_ORDERS: &str =
    "INSERT INTO orders (order_id, sale_id, buyer, quantity, status, idempotency_key, reserved_at,
                         duplicate_of, pay_by)
     SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int[], $5::text[], $6::text[],
                          $7::timestamptz[], $8::uuid[], $9::timestamptz[])
     ON CONFLICT (order_id) DO NOTHING
     RETURNING order_id, sale_id, buyer, quantity, status, duplicate_of, pay_by";
/// Add what a batch confirmed and held to its sales (checked against their stock).
const ADD_CONFIRMED: &str = "UPDATE sales s SET confirmed = s.confirmed + d.c, held = s.held + d.h
       FROM unnest($1::text[], $2::int[], $3::int[]) AS d(id, c, h) WHERE s.id = d.id";

/// The spans of a settlement transaction's steps, in the order they run, with what each does
/// (`tracing`: whoever listens measures them, as `flashflow-bench settle` does).
pub const STEPS: &[(&str, &str)] = &[
    ("ledger.begin", "connect + begin"),
    ("ledger.lock_read", "lock + read (one round trip)"),
    ("ledger.decide", "decide (in memory)"),
    ("ledger.insert", "insert orders"),
    ("ledger.count", "count (sales row)"),
    ("ledger.commit", "commit"),
];

impl Ledger for Db {
    /// A connection that broke (e.g. while a Lambda instance was frozen) is replaced and the batch
    /// tried once more before the failure is reported; settling is idempotent, so a retry after a
    /// commit whose answer was lost records nothing twice.
    async fn settle_orders(
        &self,
        orders: &[OrderMessage],
    ) -> Result<HashMap<Uuid, Settled>, DbError> {
        match self.settle_once(orders).await {
            Err(DbError::Unavailable(e)) => {
                tracing::warn!(error = %e, "postgres connection lost, reconnecting once");
                self.forget_connection().await;
                self.settle_once(orders).await
            }
            other => other,
        }
    }
}

impl Db {
    async fn settle_once(
        &self,
        orders: &[OrderMessage],
    ) -> Result<HashMap<Uuid, Settled>, DbError> {
        if orders.is_empty() {
            return Ok(HashMap::new());
        }
        let begin = info_span!("ledger.begin");
        let mut conn = self.client().instrument(begin.clone()).await?;
        // Read while holding the connection: it cannot be replaced meanwhile.
        let generation = self.generation();
        let tx = conn.transaction().instrument(begin.clone()).await.or_db()?;
        let statements = Statements::prepare(self, &tx, generation)
            .instrument(begin)
            .await?;
        let read = lock_and_read(&tx, &statements, orders)
            .instrument(info_span!("ledger.lock_read"))
            .await?;
        let decided =
            info_span!("ledger.decide").in_scope(|| decide(read.books, orders, &read.recorded));
        let (inserted, archived, raced) = async {
            let inserted = insert_orders(&tx, &statements, &decided.orders).await?;
            let archived = decided.stale.insert(&tx).await?;
            let raced = read_raced(&tx, &decided, &inserted, &archived).await?;
            Ok::<_, DbError>((inserted, archived, raced))
        }
        .instrument(info_span!("ledger.insert"))
        .await?;
        add_confirmed(&tx, &statements, &inserted)
            .instrument(info_span!("ledger.count"))
            .await?;
        tx.commit()
            .instrument(info_span!("ledger.commit"))
            .await
            .or_db()?;
        Ok(outcome(
            read.recorded,
            read.originals,
            decided.unknown,
            [inserted, archived, raced],
        ))
    }
}

/// Settlement's statements, prepared once per connection (see [`Db::prepared`]).
struct Statements {
    lock: Statement,
    recorded: Statement,
    bought: Statement,
    key_holders: Statement,
    insert: Statement,
    add_confirmed: Statement,
}

impl Statements {
    async fn prepare(db: &Db, tx: &Transaction<'_>, generation: u64) -> Result<Self, DbError> {
        Ok(Self {
            lock: db.prepared(tx, generation, LOCK_SALES).await?,
            recorded: db.prepared(tx, generation, RECORDED_IN_ANY_ROUND).await?,
            bought: db.prepared(tx, generation, BOUGHT).await?,
            key_holders: db.prepared(tx, generation, KEY_HOLDERS).await?,
            insert: db.prepared(tx, generation, INSERT_ORDERS).await?,
            add_confirmed: db.prepared(tx, generation, ADD_CONFIRMED).await?,
        })
    }
}

/// What the locked ledger holds for a batch.
struct Read {
    /// The batch's sales, with each buyer's confirmed total and each key's order.
    books: HashMap<SaleId, SaleBook>,
    /// Orders of the batch recorded before (an earlier delivery), in any round.
    recorded: Vec<OrderStatus>,
    /// The orders the batch's idempotency keys already belong to.
    originals: Vec<OrderStatus>,
}

/// Lock the batch's sales, then read what is recorded, the buyers' totals and the keys' orders:
/// pipelined on the one connection in one round trip, executed in this order, so nothing read
/// changes before the commit. The buyers and keys of every order are read, recorded or not:
/// a few more totals cost nothing and let all the reads go at once.
async fn lock_and_read(
    tx: &Transaction<'_>,
    st: &Statements,
    orders: &[OrderMessage],
) -> Result<Read, DbError> {
    let mut sale_ids: Vec<&str> = orders.iter().map(|o| o.sale_id.as_str()).collect();
    sale_ids.sort_unstable();
    sale_ids.dedup();
    let order_ids = distinct_ids(orders);
    let sales: Vec<&str> = orders.iter().map(|o| o.sale_id.as_str()).collect();
    let buyers: Vec<&str> = orders.iter().map(|o| o.buyer.as_str()).collect();
    let keyed: Vec<&OrderMessage> = orders
        .iter()
        .filter(|o| o.idempotency_key.is_some())
        .collect();
    let keyed_sales: Vec<&str> = keyed.iter().map(|o| o.sale_id.as_str()).collect();
    let keyed_buyers: Vec<&str> = keyed.iter().map(|o| o.buyer.as_str()).collect();
    let keys: Vec<&str> = keyed
        .iter()
        .filter_map(|o| o.idempotency_key.as_ref().map(|k| k.as_str()))
        .collect();
    let lock_params: [&Param<'_>; 1] = [&sale_ids];
    let recorded_params: [&Param<'_>; 1] = [&order_ids];
    let bought_params: [&Param<'_>; 2] = [&sales, &buyers];
    let key_params: [&Param<'_>; 3] = [&keyed_sales, &keyed_buyers, &keys];
    let (sale_rows, recorded_rows, bought_rows, key_rows) = tokio::join!(
        tx.query(&st.lock, &lock_params),
        tx.query(&st.recorded, &recorded_params),
        tx.query(&st.bought, &bought_params),
        async {
            if keys.is_empty() {
                Ok(Vec::new())
            } else {
                tx.query(&st.key_holders, &key_params).await
            }
        },
    );
    // In statement order: when the lock fails (lock_timeout), the others only report the
    // aborted transaction, and it is the lock's error that says what happened.
    let (sale_rows, recorded_rows, bought_rows, key_rows) = (
        sale_rows.or_db()?,
        recorded_rows.or_db()?,
        bought_rows.or_db()?,
        key_rows.or_db()?,
    );

    let mut books: HashMap<SaleId, SaleBook> = HashMap::new();
    for r in &sale_rows {
        if let Ok(id) = SaleId::parse(r.try_get("id").or_db()?) {
            let stock: i32 = r.try_get("stock").or_db()?;
            let taken =
                r.try_get::<_, i32>("confirmed").or_db()? + r.try_get::<_, i32>("held").or_db()?;
            let book = SaleBook {
                available: i64::from(stock - taken),
                hold_ms: r
                    .try_get::<_, Option<i32>>("hold_seconds")
                    .or_db()?
                    .map(|s| i64::from(s) * 1000),
                per_user_limit: i64::from(r.try_get::<_, i32>("per_user_limit").or_db()?),
                round: r.try_get::<_, i32>("round").or_db()? as u32,
                ..SaleBook::default()
            };
            books.insert(id, book);
        }
    }
    for r in &bought_rows {
        if let (Ok(sale), Ok(buyer)) = (
            SaleId::parse(r.try_get("sale_id").or_db()?),
            BuyerId::parse(r.try_get("buyer").or_db()?),
        ) {
            if let Some(book) = books.get_mut(&sale) {
                book.bought.insert(buyer, r.try_get("bought").or_db()?);
            }
        }
    }
    let mut originals = Vec::with_capacity(key_rows.len());
    for r in &key_rows {
        let original = order_status(r)?;
        if let (Some(book), Ok(key)) = (
            books.get_mut(&original.sale_id),
            IdempotencyKey::parse(r.try_get("idempotency_key").or_db()?),
        ) {
            book.keys
                .insert((original.buyer.clone(), key), original.order_id);
        }
        originals.push(original);
    }
    let recorded = recorded_rows
        .iter()
        .map(order_status)
        .collect::<Result<_, _>>()?;
    Ok(Read {
        books,
        recorded,
        originals,
    })
}

/// What [`allocate`] decided for the orders not recorded yet.
struct Decided {
    /// This round's orders to record.
    orders: OrderRows,
    /// Earlier rounds' orders, recorded as rejected in their round's history.
    stale: ArchiveRows,
    /// Orders of sales the ledger does not have: nothing recorded.
    unknown: Vec<Uuid>,
}

fn decide(
    mut books: HashMap<SaleId, SaleBook>,
    orders: &[OrderMessage],
    recorded: &[OrderStatus],
) -> Decided {
    let mut decided = Decided {
        orders: OrderRows::default(),
        stale: ArchiveRows::default(),
        unknown: Vec::new(),
    };
    let known: std::collections::HashSet<Uuid> = recorded.iter().map(|o| o.order_id).collect();
    let fresh = orders.iter().filter(|o| !known.contains(&o.order_id));
    let holds: HashMap<SaleId, Option<i64>> = books
        .iter()
        .map(|(id, b)| (id.clone(), b.hold_ms))
        .collect();
    for (o, settled) in allocate(&mut books, fresh) {
        match settled {
            Settlement::UnknownSale => decided.unknown.push(o.order_id),
            Settlement::Stale => decided.stale.push(o),
            _ => decided
                .orders
                .push(o, settled, holds.get(&o.sale_id).copied().flatten()),
        }
    }
    decided
}

async fn insert_orders(
    tx: &Transaction<'_>,
    st: &Statements,
    rows: &OrderRows,
) -> Result<Vec<OrderStatus>, DbError> {
    if rows.ids.is_empty() {
        return Ok(Vec::new());
    }
    tx.query(
        &st.insert,
        &[
            &rows.ids,
            &rows.sales,
            &rows.buyers,
            &rows.quantities,
            &rows.statuses,
            &rows.keys,
            &rows.reserved_at,
            &rows.duplicate_of,
            &rows.pay_by,
        ],
    )
    .await
    .or_db()?
    .iter()
    .map(order_status)
    .collect()
}

/// Orders another transaction inserted meanwhile (`ON CONFLICT DO NOTHING` skipped them): what
/// it recorded is their outcome.
async fn read_raced(
    tx: &Transaction<'_>,
    decided: &Decided,
    inserted: &[OrderStatus],
    archived: &[OrderStatus],
) -> Result<Vec<OrderStatus>, DbError> {
    let done: std::collections::HashSet<Uuid> = inserted
        .iter()
        .chain(archived)
        .map(|o| o.order_id)
        .collect();
    let missing: Vec<Uuid> = decided
        .orders
        .ids
        .iter()
        .chain(&decided.stale.ids)
        .filter(|id| !done.contains(id))
        .copied()
        .collect();
    recorded_orders(tx, &missing).await
}

/// Add what this batch confirmed and held to each sale's `confirmed` and `held` (checked
/// against its stock).
async fn add_confirmed(
    tx: &Transaction<'_>,
    st: &Statements,
    inserted: &[OrderStatus],
) -> Result<(), DbError> {
    let mut taken: HashMap<String, (i32, i32)> = HashMap::new();
    for o in inserted {
        let t = taken.entry(o.sale_id.to_string()).or_default();
        match o.status {
            OrderState::Confirmed => t.0 += o.quantity as i32,
            OrderState::Held => t.1 += o.quantity as i32,
            _ => {}
        }
    }
    taken.retain(|_, (c, h)| *c + *h > 0);
    if taken.is_empty() {
        return Ok(());
    }
    let (mut sales, mut confirmed, mut held) = (Vec::new(), Vec::new(), Vec::new());
    for (sale, (c, h)) in taken {
        sales.push(sale);
        confirmed.push(c);
        held.push(h);
    }
    tx.execute(&st.add_confirmed, &[&sales, &confirmed, &held])
        .await
        .or_db()?;
    Ok(())
}

/// Every order's outcome: recorded before, recorded now (inserted, archived, or by a concurrent
/// batch), or of an unknown sale; plus the originals of duplicates, so settle can answer a replay
/// with the order that counts.
fn outcome(
    recorded: Vec<OrderStatus>,
    originals: Vec<OrderStatus>,
    unknown: Vec<Uuid>,
    now: [Vec<OrderStatus>; 3],
) -> HashMap<Uuid, Settled> {
    let mut outcome: HashMap<Uuid, Settled> = recorded
        .into_iter()
        .chain(now.into_iter().flatten())
        .map(|o| (o.order_id, Settled::Recorded(o)))
        .collect();
    for id in unknown {
        outcome.insert(id, Settled::UnknownSale);
    }
    for original in originals {
        outcome
            .entry(original.order_id)
            .or_insert(Settled::Recorded(original));
    }
    outcome
}
