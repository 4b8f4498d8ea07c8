//! The order-status read model in memory.

use super::{lock, switched_off};
use flashflow::domain::OrderStatus;
use flashflow::ports::{StatusError, StatusStore};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use uuid::Uuid;

/// The order-status store in memory. Cloning shares the data.
#[derive(Clone, Default)]
pub struct MemoryStatus {
    items: Arc<Mutex<HashMap<Uuid, OrderStatus>>>,
    down: Arc<AtomicBool>,
}

impl MemoryStatus {
    /// Fail every call (or work again).
    pub fn set_unavailable(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// How many statuses are stored.
    pub fn len(&self) -> usize {
        lock(&self.items).len()
    }

    /// Whether no status is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn is_down(&self) -> bool {
        self.down.load(Ordering::SeqCst)
    }
}

impl StatusStore for MemoryStatus {
    async fn get(&self, order_id: Uuid) -> Result<Option<OrderStatus>, StatusError> {
        if self.is_down() {
            return Err(StatusError(switched_off("memory status store")));
        }
        Ok(lock(&self.items).get(&order_id).cloned())
    }

    async fn put_all(&self, items: &[OrderStatus]) -> Vec<Uuid> {
        if self.is_down() {
            return items.iter().map(|s| s.order_id).collect();
        }
        let mut stored = lock(&self.items);
        for s in items {
            if s.pay_by_ms.is_some()
                && stored
                    .get(&s.order_id)
                    .is_some_and(|have| have.status.rank() >= s.status.rank())
            {
                continue;
            }
            stored.insert(s.order_id, s.clone());
        }
        Vec::new()
    }

    async fn put_newer(&self, status: &OrderStatus) -> Result<(), StatusError> {
        if self.is_down() {
            return Err(StatusError(switched_off("memory status store")));
        }
        let mut stored = lock(&self.items);
        if stored
            .get(&status.order_id)
            .is_none_or(|have| have.status.rank() < status.status.rank())
        {
            stored.insert(status.order_id, status.clone());
        }
        Ok(())
    }
}
