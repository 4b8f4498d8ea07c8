//! The order-status read model (DynamoDB; in memory for unit tests).

use super::order;
use flashflow::domain::{OrderState, OrderStatus, SaleId};
use flashflow::ports::StatusStore;
use uuid::Uuid;

/// A status store, and a sale id no other test uses.
pub struct Statuses<S> {
    pub store: S,
    pub id: SaleId,
}

/// Every behaviour of the status store's contract as a test of `$make` (an async expression
/// giving [`Statuses`]).
#[macro_export]
macro_rules! status_contract {
    ($make:expr) => {
        $crate::contract_tests!(
            status,
            $make,
            [
                a_written_status_is_read_back,
                a_later_write_replaces_a_status,
                an_unknown_order_reads_as_none,
                a_late_write_of_a_lower_rank_never_undoes_a_later_change,
            ]
        );
    };
}

impl<S: StatusStore> Statuses<S> {
    fn status(&self, state: OrderState) -> OrderStatus {
        OrderStatus::of(&order(&self.id, "alice", 0, None, 1), state)
    }
}

pub async fn a_written_status_is_read_back<S: StatusStore>(t: &Statuses<S>) {
    let confirmed = t.status(OrderState::Confirmed);
    assert!(t
        .store
        .put_all(std::slice::from_ref(&confirmed))
        .await
        .is_empty());
    assert_eq!(
        t.store.get(confirmed.order_id).await.unwrap(),
        Some(confirmed)
    );
}

pub async fn a_later_write_replaces_a_status<S: StatusStore>(t: &Statuses<S>) {
    let confirmed = t.status(OrderState::Confirmed);
    let rejected = OrderStatus {
        status: OrderState::Rejected,
        ..confirmed.clone()
    };
    assert!(t.store.put_all(&[confirmed]).await.is_empty());
    assert!(t
        .store
        .put_all(std::slice::from_ref(&rejected))
        .await
        .is_empty());
    assert_eq!(
        t.store.get(rejected.order_id).await.unwrap(),
        Some(rejected)
    );
}

pub async fn an_unknown_order_reads_as_none<S: StatusStore>(t: &Statuses<S>) {
    assert_eq!(t.store.get(Uuid::now_v7()).await.unwrap(), None);
}

pub async fn a_late_write_of_a_lower_rank_never_undoes_a_later_change<S: StatusStore>(
    t: &Statuses<S>,
) {
    let held = OrderStatus {
        pay_by_ms: Some(1_795_773_600_000),
        ..t.status(OrderState::Held)
    };
    let paid = OrderStatus {
        status: OrderState::Confirmed,
        ..held.clone()
    };
    t.store.put_newer(&paid).await.unwrap();
    t.store.put_newer(&held).await.unwrap();
    let shown = t.store.get(held.order_id).await.unwrap().map(|s| s.status);
    assert_eq!(shown, Some(OrderState::Confirmed));
}

#[cfg(test)]
mod on_memory {
    use super::Statuses;
    use crate::contract::fresh_sale_id;
    use crate::memory::MemoryStatus;

    crate::status_contract!(async {
        Statuses {
            store: MemoryStatus::default(),
            id: fresh_sale_id(),
        }
    });
}
