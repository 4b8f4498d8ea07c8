//! Checkout's holds ([`Holds`]): every change of a held order is one conditional `UPDATE` of its
//! row (so it happens once, whoever asks first) with the sale's counters in the same transaction,
//! the sale row locked first as settlement locks it.

use super::rows::{ms_to_time, order_status};
use super::Db;
use super::OrDbError;
use flashflow::domain::EpochMs;
use flashflow::domain::OrderState;
use flashflow::ports::{
    Attached, DbError, ExpiryWork, FollowUps, HoldChanges, HoldReader, HoldRecord,
};
use tokio_postgres::Row;
use uuid::Uuid;

/// A checkout order with its sale's terms: what [`hold_record`] reads.
const HOLD: &str = "SELECT o.order_id, o.sale_id, o.buyer, o.quantity, o.status, o.duplicate_of,
                           o.pay_by, o.payment_intent, o.stock_returned, o.status_written,
                           s.price, s.currency, s.round
                      FROM orders o JOIN sales s ON s.id = o.sale_id
                     WHERE s.price IS NOT NULL";

impl HoldReader for Db {
    async fn hold(&self, order_id: Uuid) -> Result<Option<HoldRecord>, DbError> {
        let client = self.client().await?;
        let row = client
            .query_opt(&format!("{HOLD} AND o.order_id = $1"), &[&order_id])
            .await
            .or_db()?;
        row.as_ref().map(hold_record).transpose()
    }
}

impl HoldChanges for Db {
    async fn attach_intent(&self, order_id: Uuid, intent: &str) -> Result<Attached, DbError> {
        let client = self.client().await?;
        client
            .execute(
                "UPDATE orders SET payment_intent = $2
                  WHERE order_id = $1 AND status = 'HELD' AND payment_intent IS NULL",
                &[&order_id, &intent],
            )
            .await
            .or_db()?;
        let row = client
            .query_opt(&format!("{HOLD} AND o.order_id = $1"), &[&order_id])
            .await
            .or_db()?
            .ok_or_else(|| DbError::Raced {
                what: format!("order {order_id}"),
            })?;
        let hold = hold_record(&row)?;
        Ok(match (&hold.status.status, &hold.payment_intent) {
            (OrderState::Held, Some(pi)) => Attached::Held(pi.clone()),
            _ => Attached::NotHeld(hold),
        })
    }

    async fn move_order(
        &self,
        order_id: Uuid,
        from: OrderState,
        to: OrderState,
        intent: Option<&str>,
        paid_with: Option<&str>,
    ) -> Result<Option<HoldRecord>, DbError> {
        // A hold that ends (paid, expired, cancelled) is carried to Redis after: its units back,
        // or for a paid one, no longer open there.
        let returns = from == OrderState::Held
            && matches!(
                to,
                OrderState::Expired | OrderState::Cancelled | OrderState::Confirmed
            );
        let mut conn = self.client().await?;
        let tx = conn.transaction().await.or_db()?;
        tx.execute(
            "SELECT 1 FROM sales WHERE id = (SELECT sale_id FROM orders WHERE order_id = $1)
                FOR UPDATE",
            &[&order_id],
        )
        .await
        .or_db()?;
        let moved = tx
            .query_opt(
                "UPDATE orders SET status = $3, stock_returned = stock_returned AND NOT $5,
                                   status_written = false,
                                   payment_intent = coalesce($6::text, payment_intent)
                  WHERE order_id = $1 AND status = $2
                    AND payment_intent IS NOT DISTINCT FROM $4::text
                  RETURNING sale_id, quantity",
                &[
                    &order_id,
                    &from.as_str(),
                    &to.as_str(),
                    &intent,
                    &returns,
                    &paid_with,
                ],
            )
            .await
            .or_db()?;
        let Some(moved) = moved else {
            return Ok(None);
        };
        let (sale, quantity): (String, i32) =
            (moved.try_get(0).or_db()?, moved.try_get(1).or_db()?);
        let from_held = if from == OrderState::Held {
            quantity
        } else {
            0
        };
        let confirmed = if to == OrderState::Confirmed {
            quantity
        } else {
            0
        };
        tx.execute(
            "UPDATE sales SET held = held - $2, confirmed = confirmed + $3 WHERE id = $1",
            &[&sale, &from_held, &confirmed],
        )
        .await
        .or_db()?;
        let row = tx
            .query_one(&format!("{HOLD} AND o.order_id = $1"), &[&order_id])
            .await
            .or_db()?;
        tx.commit().await.or_db()?;
        hold_record(&row).map(Some)
    }
}

impl ExpiryWork for Db {
    async fn due(&self, now: EpochMs, limit: usize) -> Result<Vec<HoldRecord>, DbError> {
        let now_ms = now.get();
        let client = self.client().await?;
        client
            .query(
                &format!(
                    "{HOLD} AND o.status = 'HELD' AND o.pay_by <= $1
                       AND (o.retry_at IS NULL OR o.retry_at <= $1)
                     ORDER BY o.pay_by LIMIT $2"
                ),
                &[&ms_to_time(now_ms), &(limit as i64)],
            )
            .await
            .or_db()?
            .iter()
            .map(hold_record)
            .collect()
    }

    async fn unfinished(&self, now: EpochMs, limit: usize) -> Result<Vec<HoldRecord>, DbError> {
        let now_ms = now.get();
        let client = self.client().await?;
        client
            .query(
                &format!(
                    "{HOLD} AND (NOT o.stock_returned OR NOT o.status_written)
                       AND (o.retry_at IS NULL OR o.retry_at <= $1)
                     ORDER BY o.retry_at NULLS FIRST, o.order_id LIMIT $2"
                ),
                &[&ms_to_time(now_ms), &(limit as i64)],
            )
            .await
            .or_db()?
            .iter()
            .map(hold_record)
            .collect()
    }

    async fn defer(&self, order_id: Uuid, until: EpochMs) -> Result<(), DbError> {
        let until_ms = until.get();
        self.client()
            .await?
            .execute(
                "UPDATE orders SET retry_at = $2 WHERE order_id = $1",
                &[&order_id, &ms_to_time(until_ms)],
            )
            .await
            .or_db()?;
        Ok(())
    }

    async fn overdue(&self, before: EpochMs) -> Result<u64, DbError> {
        let before_ms = before.get();
        let n: i64 = self
            .client()
            .await?
            .query_one(
                "SELECT count(*) FROM orders WHERE status = 'HELD' AND pay_by < $1",
                &[&ms_to_time(before_ms)],
            )
            .await
            .or_db()?
            .try_get(0)
            .or_db()?;
        Ok(n as u64)
    }
}

impl FollowUps for Db {
    async fn finished(
        &self,
        order_id: Uuid,
        stock_returned: bool,
        written: Option<OrderState>,
    ) -> Result<(), DbError> {
        self.client()
            .await?
            .execute(
                "UPDATE orders SET stock_returned = stock_returned OR $2,
                                   status_written = status_written OR status = $3
                  WHERE order_id = $1",
                &[&order_id, &stock_returned, &written.map(|s| s.as_str())],
            )
            .await
            .or_db()?;
        Ok(())
    }
}

fn hold_record(r: &Row) -> Result<HoldRecord, DbError> {
    Ok(HoldRecord {
        status: order_status(r)?,
        payment_intent: r.try_get("payment_intent").or_db()?,
        price: r.try_get::<_, i64>("price").or_db()? as u64,
        currency: r.try_get("currency").or_db()?,
        round: r.try_get::<_, i32>("round").or_db()? as u32,
        stock_returned: r.try_get("stock_returned").or_db()?,
        status_written: r.try_get("status_written").or_db()?,
    })
}
