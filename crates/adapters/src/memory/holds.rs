//! Checkout's held orders in memory: each change is conditional on where the order stands (and
//! on the intent the caller saw), as the ledger's one `UPDATE` makes it.

use super::{lock, switched_off};
use flashflow::domain::EpochMs;
use flashflow::domain::{OrderState, OrderStatus};
use flashflow::ports::{
    Attached, DbError, ExpiryWork, FollowUps, HoldChanges, HoldReader, HoldRecord,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use uuid::Uuid;

#[derive(Default)]
struct Book {
    holds: HashMap<Uuid, HoldRecord>,
    /// Orders [deferred](Holds::defer) until then.
    retry_at: HashMap<Uuid, i64>,
    down: bool,
}

impl Book {
    fn waits(&self, id: &Uuid, now_ms: i64) -> bool {
        self.retry_at.get(id).is_some_and(|t| *t > now_ms)
    }
}

/// The holds in memory. Cloning shares the data.
#[derive(Clone, Default)]
pub struct MemoryHolds {
    book: Arc<Mutex<Book>>,
}

impl MemoryHolds {
    /// Record a held order (what settlement does for a checkout sale's reservation).
    pub fn hold_now(&self, status: OrderStatus, price: u64, currency: &str) -> HoldRecord {
        let hold = HoldRecord {
            status,
            payment_intent: None,
            price,
            currency: currency.to_owned(),
            round: 1,
            stock_returned: true,
            status_written: true,
        };
        lock(&self.book)
            .holds
            .insert(hold.status.order_id, hold.clone());
        hold
    }

    /// Fail every call as an unreachable database does (or work again).
    pub fn set_unavailable(&self, down: bool) {
        lock(&self.book).down = down;
    }

    /// The order as recorded, if any.
    pub fn get(&self, order_id: Uuid) -> Option<HoldRecord> {
        lock(&self.book).holds.get(&order_id).cloned()
    }

    fn book(&self) -> Result<std::sync::MutexGuard<'_, Book>, DbError> {
        let book = lock(&self.book);
        if book.down {
            return Err(DbError::Unavailable(switched_off("memory holds")));
        }
        Ok(book)
    }
}

impl HoldReader for MemoryHolds {
    async fn hold(&self, order_id: Uuid) -> Result<Option<HoldRecord>, DbError> {
        Ok(self.book()?.holds.get(&order_id).cloned())
    }
}

impl HoldChanges for MemoryHolds {
    async fn attach_intent(&self, order_id: Uuid, intent: &str) -> Result<Attached, DbError> {
        let mut book = self.book()?;
        let hold = book
            .holds
            .get_mut(&order_id)
            .ok_or_else(|| DbError::Raced {
                what: format!("order {order_id}"),
            })?;
        if hold.status.status == OrderState::Held && hold.payment_intent.is_none() {
            hold.payment_intent = Some(intent.to_owned());
        }
        Ok(match (&hold.status.status, &hold.payment_intent) {
            (OrderState::Held, Some(pi)) => Attached::Held(pi.clone()),
            _ => Attached::NotHeld(hold.clone()),
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
        let mut book = self.book()?;
        let Some(hold) = book.holds.get_mut(&order_id) else {
            return Ok(None);
        };
        if hold.status.status != from || hold.payment_intent.as_deref() != intent {
            return Ok(None);
        }
        let returns = from == OrderState::Held
            && matches!(
                to,
                OrderState::Expired | OrderState::Cancelled | OrderState::Confirmed
            );
        hold.status.status = to;
        hold.stock_returned &= !returns;
        hold.status_written = false;
        if let Some(pi) = paid_with {
            hold.payment_intent = Some(pi.to_owned());
        }
        Ok(Some(hold.clone()))
    }
}

impl ExpiryWork for MemoryHolds {
    async fn due(&self, now: EpochMs, limit: usize) -> Result<Vec<HoldRecord>, DbError> {
        let now_ms = now.get();
        let book = self.book()?;
        let mut due: Vec<HoldRecord> = book
            .holds
            .values()
            .filter(|h| {
                h.status.status == OrderState::Held
                    && h.status.pay_by_ms.is_some_and(|p| p <= now_ms)
                    && !book.waits(&h.status.order_id, now_ms)
            })
            .cloned()
            .collect();
        due.sort_by_key(|h| h.status.pay_by_ms);
        due.truncate(limit);
        Ok(due)
    }

    async fn unfinished(&self, now: EpochMs, limit: usize) -> Result<Vec<HoldRecord>, DbError> {
        let now_ms = now.get();
        let book = self.book()?;
        let mut todo: Vec<HoldRecord> = book
            .holds
            .values()
            .filter(|h| !h.stock_returned || !h.status_written)
            .filter(|h| !book.waits(&h.status.order_id, now_ms))
            .cloned()
            .collect();
        todo.sort_by_key(|h| book.retry_at.get(&h.status.order_id).copied());
        todo.truncate(limit);
        Ok(todo)
    }

    async fn defer(&self, order_id: Uuid, until: EpochMs) -> Result<(), DbError> {
        let until_ms = until.get();
        self.book()?.retry_at.insert(order_id, until_ms);
        Ok(())
    }

    async fn overdue(&self, before: EpochMs) -> Result<u64, DbError> {
        let before_ms = before.get();
        let book = self.book()?;
        Ok(book
            .holds
            .values()
            .filter(|h| {
                h.status.status == OrderState::Held
                    && h.status.pay_by_ms.is_some_and(|p| p < before_ms)
            })
            .count() as u64)
    }
}

impl FollowUps for MemoryHolds {
    async fn finished(
        &self,
        order_id: Uuid,
        stock_returned: bool,
        written: Option<OrderState>,
    ) -> Result<(), DbError> {
        let mut book = self.book()?;
        if let Some(h) = book.holds.get_mut(&order_id) {
            h.stock_returned |= stock_returned;
            h.status_written |= written == Some(h.status.status);
        }
        Ok(())
    }
}
