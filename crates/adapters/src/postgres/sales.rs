//! Sale administration in the ledger: create, read, reset, cancel what a forced reset dropped,
//! and read back what a rebuild of the cache needs.

use super::rows::{
    ms_to_time, recorded_orders, sale_definition, time_to_ms, ArchiveRows, SALE_COLUMNS,
};
use super::Db;
use super::OrDbError;
use flashflow::domain::rehydrate::KeyHolder;
use flashflow::domain::waiting_room::draw::Seed;
use flashflow::domain::{
    BuyerId, EpochMs, IdempotencyKey, OrderMessage, OrderState, OrderStatus, SaleDefinition, SaleId,
};
use flashflow::ports::{
    CheckoutCounts, CreateOutcome, DbError, LedgerOfSale, LedgerReset, SaleLedger, SaleRecord,
};
use uuid::Uuid;

impl SaleLedger for Db {
    async fn draw_seed(&self, id: &SaleId, fresh: &Seed) -> Result<Option<Seed>, DbError> {
        let row = self
            .client()
            .await?
            .query_opt(
                "UPDATE sales SET draw_seed = coalesce(draw_seed, $2) WHERE id = $1
                  RETURNING draw_seed",
                &[&id.as_str(), &fresh.hex()],
            )
            .await
            .or_db()?;
        row.map(|r| {
            let hex: String = r.try_get(0).or_db()?;
            Seed::from_hex(&hex)
                .ok_or_else(|| DbError::Query(format!("sale {id}: a malformed draw seed").into()))
        })
        .transpose()
    }

    async fn create_sale(&self, def: &SaleDefinition) -> Result<CreateOutcome, DbError> {
        let room = def.waiting_room.as_ref();
        let entry_policy = room
            .and_then(|w| w.entry.as_ref())
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| DbError::Query(Box::new(e)))?;
        let inserted = self
            .client()
            .await?
            .execute(
                "INSERT INTO sales (id, name, stock, per_user_limit, opens_at, closes_at,
                                    attempts_per_minute, hold_seconds, price, currency,
                                    queue_opens_at, admission_seconds, admit_per_second, pow_bits,
                                    entry_policy)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14,
                         $15::text::jsonb)
                 ON CONFLICT (id) DO NOTHING",
                &[
                    &def.id.as_str(),
                    &def.name,
                    &(def.stock as i32),
                    &(def.per_user_limit as i32),
                    &def.opens_at_ms.map(ms_to_time),
                    &def.closes_at_ms.map(ms_to_time),
                    &def.attempts_per_minute.map(|n| n as i32),
                    &def.checkout.as_ref().map(|c| c.hold_seconds as i32),
                    &def.checkout.as_ref().map(|c| c.price as i64),
                    &def.checkout.as_ref().map(|c| c.currency.as_str()),
                    &room.map(|w| ms_to_time(w.opens_at_ms)),
                    &room.map(|w| w.admission_seconds as i32),
                    &room.and_then(|w| w.admit_per_second.map(|n| n as i32)),
                    &room.map_or(0i16, |w| i16::from(w.pow_bits)),
                    &entry_policy,
                ],
            )
            .await
            .or_db()?;
        if inserted == 1 {
            return Ok(CreateOutcome::Created);
        }
        match self.sale(&def.id).await? {
            Some(existing) if existing.definition == *def => {
                Ok(CreateOutcome::AlreadyExists(existing))
            }
            Some(existing) => Ok(CreateOutcome::Conflict(existing)),
            // Deleted between the insert and the read: rare enough to let the caller retry.
            None => Err(DbError::Raced {
                what: format!("sale {}", def.id),
            }),
        }
    }

    async fn sale(&self, id: &SaleId) -> Result<Option<SaleRecord>, DbError> {
        sale_on(&*self.client().await?, id).await
    }

    /// Messages of the earlier round that arrive later are recorded in the archive as rejected.
    async fn reset_sale(
        &self,
        id: &SaleId,
        stock: Option<u32>,
        round: u32,
    ) -> Result<LedgerReset, DbError> {
        let mut conn = self.client().await?;
        let tx = conn.transaction().await.or_db()?;
        // The sale row first, as settle does: a batch in progress finishes before the move.
        let Some(current) = tx
            .query_opt(
                &format!("SELECT {SALE_COLUMNS}, round FROM sales WHERE id = $1 FOR UPDATE"),
                &[&id.as_str()],
            )
            .await
            .or_db()?
        else {
            return Ok(LedgerReset::NoSuchSale);
        };
        let now = current.try_get::<_, i32>("round").or_db()? as u32;
        if now == round {
            // A repeated reset: this round has started already.
            return Ok(LedgerReset::Started(sale_definition(id, &current)?));
        }
        if now + 1 != round {
            return Err(DbError::Raced {
                what: format!("sale {id} (in round {now}, not before round {round})"),
            });
        }
        // Under the sale's lock, as every hold's change takes it: none can be settled or end
        // between this look and the move.
        let in_play: i64 = tx
            .query_one(
                "SELECT count(*) FROM orders
                  WHERE sale_id = $1
                    AND (status = 'HELD' OR NOT stock_returned OR NOT status_written)",
                &[&id.as_str()],
            )
            .await
            .or_db()?
            .try_get(0)
            .or_db()?;
        if in_play > 0 {
            return Ok(LedgerReset::OrdersInPlay(in_play as u64));
        }
        tx.execute(
            "WITH moved AS (DELETE FROM orders WHERE sale_id = $1 RETURNING *)
             INSERT INTO orders_archive (order_id, sale_id, round, buyer, quantity, status,
                                         idempotency_key, duplicate_of, reserved_at, settled_at,
                                         pay_by, payment_intent)
             SELECT m.order_id, m.sale_id, s.round, m.buyer, m.quantity, m.status,
                    m.idempotency_key, m.duplicate_of, m.reserved_at, m.settled_at, m.pay_by,
                    m.payment_intent
               FROM moved m JOIN sales s ON s.id = m.sale_id",
            &[&id.as_str()],
        )
        .await
        .or_db()?;
        let row = tx
            .query_one(
                &format!(
                    "UPDATE sales SET confirmed = 0, held = 0, stock = COALESCE($2, stock),
                                      round = round + 1
                      WHERE id = $1
                      RETURNING {SALE_COLUMNS}, round"
                ),
                &[&id.as_str(), &stock.map(|s| s as i32)],
            )
            .await
            .or_db()?;
        tx.commit().await.or_db()?;
        Ok(LedgerReset::Started(sale_definition(id, &row)?))
    }

    async fn cancel_orders(&self, orders: &[OrderMessage]) -> Result<Vec<OrderStatus>, DbError> {
        if orders.is_empty() {
            return Ok(Vec::new());
        }
        let mut rows = ArchiveRows::default();
        for o in orders {
            rows.push(o);
        }
        let mut conn = self.client().await?;
        let tx = conn.transaction().await.or_db()?;
        // The sale rows first, in id order, as settle takes them: a late message of one of these
        // orders writes the same archive row, and two transactions that take the same rows in
        // no agreed order deadlock (each holds what the other's next insert waits for).
        let mut sales: Vec<&str> = orders.iter().map(|o| o.sale_id.as_str()).collect();
        sales.sort_unstable();
        sales.dedup();
        tx.execute(
            "SELECT 1 FROM sales WHERE id = ANY($1) ORDER BY id FOR UPDATE",
            &[&sales],
        )
        .await
        .or_db()?;
        rows.insert(&tx).await?;
        let recorded = recorded_orders(&tx, &rows.ids).await?;
        tx.commit().await.or_db()?;
        Ok(recorded)
    }

    async fn ledger_of(
        &self,
        id: &SaleId,
        pending: &[Uuid],
    ) -> Result<Option<LedgerOfSale>, DbError> {
        // One snapshot for every read: an order settling meanwhile is then either in the
        // confirmed count and among the settled ids, or in neither (and counted as pending).
        let mut conn = self.client().await?;
        let client = conn
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .or_db()?;
        let Some(record) = sale_on(&client, id).await? else {
            return Ok(None);
        };
        let round = record.round;
        let bought = client
            .query(
                "SELECT buyer, sum(quantity)::bigint AS bought FROM orders
                  WHERE sale_id = $1 AND status IN ('CONFIRMED', 'HELD')
                  GROUP BY buyer",
                &[&id.as_str()],
            )
            .await
            .or_db()?
            .iter()
            .filter_map(|r| {
                Some((
                    BuyerId::parse(r.get("buyer")).ok()?,
                    r.get::<_, i64>("bought"),
                ))
            })
            .collect();
        let keys = client
            .query(
                "SELECT buyer, idempotency_key, order_id, quantity, status FROM orders
                  WHERE sale_id = $1 AND idempotency_key IS NOT NULL AND status <> 'DUPLICATE'",
                &[&id.as_str()],
            )
            .await
            .or_db()?
            .iter()
            .filter_map(|r| {
                Some(KeyHolder {
                    buyer: BuyerId::parse(r.get("buyer")).ok()?,
                    key: IdempotencyKey::parse(r.get("idempotency_key")).ok()?,
                    order_id: r.get("order_id"),
                    quantity: r.get::<_, i32>("quantity") as u32,
                    state: OrderState::parse(r.get("status")).ok()?,
                    round,
                })
            })
            .collect();
        let holds = client
            .query(
                "SELECT order_id, pay_by FROM orders
                  WHERE sale_id = $1 AND pay_by IS NOT NULL
                    AND (status = 'HELD' OR NOT stock_returned)",
                &[&id.as_str()],
            )
            .await
            .or_db()?
            .iter()
            .map(|r| (r.get("order_id"), EpochMs(time_to_ms(r.get("pay_by")))))
            .collect();
        let ended = client
            .query(
                "SELECT order_id FROM orders
                  WHERE sale_id = $1 AND pay_by IS NOT NULL
                    AND status IN ('EXPIRED', 'CANCELLED', 'REFUNDED')",
                &[&id.as_str()],
            )
            .await
            .or_db()?
            .iter()
            .map(|r| r.get("order_id"))
            .collect();
        let settled = recorded_orders(&client, pending)
            .await?
            .into_iter()
            .map(|o| o.order_id)
            .collect();
        client.commit().await.or_db()?;
        Ok(Some(LedgerOfSale {
            record,
            bought,
            keys,
            holds,
            ended,
            settled,
        }))
    }
}

/// The sale with its counters, read on `client` (a connection or a transaction's snapshot).
async fn sale_on(
    client: &impl tokio_postgres::GenericClient,
    id: &SaleId,
) -> Result<Option<SaleRecord>, DbError> {
    let row = client
        .query_opt(
            "SELECT s.name, s.stock, s.per_user_limit, s.opens_at, s.closes_at, s.confirmed,
                        s.attempts_per_minute, s.hold_seconds, s.price, s.currency, s.held,
                        s.queue_opens_at, s.admission_seconds, s.admit_per_second, s.pow_bits,
                        s.entry_policy::text AS entry_policy,
                        count(o.*) FILTER (WHERE o.status = 'CONFIRMED') AS confirmed_orders,
                        count(o.*) FILTER (WHERE o.status = 'HELD') AS held_orders,
                        count(o.*) FILTER (WHERE o.status = 'EXPIRED') AS expired_orders,
                        count(o.*) FILTER (WHERE o.status = 'CANCELLED') AS cancelled_orders,
                        count(o.*) FILTER (WHERE o.status = 'REFUNDED') AS refunded_orders,
                        coalesce(sum(o.quantity) FILTER (WHERE NOT o.stock_returned), 0)::bigint
                            AS unreturned,
                        count(o.*) FILTER (WHERE o.status = 'REJECTED') AS rejected_orders,
                        count(o.*) FILTER (WHERE o.status = 'DUPLICATE') AS duplicate_orders,
                        s.round
                   FROM sales s LEFT JOIN orders o ON o.sale_id = s.id
                  WHERE s.id = $1
                  GROUP BY s.id",
            &[&id.as_str()],
        )
        .await
        .or_db()?;
    let Some(r) = row else {
        return Ok(None);
    };
    Ok(Some(SaleRecord {
        definition: sale_definition(id, &r)?,
        confirmed_quantity: r.try_get::<_, i32>("confirmed").or_db()? as u32,
        confirmed_orders: r.try_get::<_, i64>("confirmed_orders").or_db()? as u64,
        rejected_orders: r.try_get::<_, i64>("rejected_orders").or_db()? as u64,
        duplicate_orders: r.try_get::<_, i64>("duplicate_orders").or_db()? as u64,
        round: r.try_get::<_, i32>("round").or_db()? as u32,
        checkout: CheckoutCounts {
            held_quantity: r.try_get::<_, i32>("held").or_db()? as u32,
            held_orders: r.try_get::<_, i64>("held_orders").or_db()? as u64,
            expired_orders: r.try_get::<_, i64>("expired_orders").or_db()? as u64,
            cancelled_orders: r.try_get::<_, i64>("cancelled_orders").or_db()? as u64,
            refunded_orders: r.try_get::<_, i64>("refunded_orders").or_db()? as u64,
            unreturned_quantity: r.try_get::<_, i64>("unreturned").or_db()? as u32,
        },
    }))
}
