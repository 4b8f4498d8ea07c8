//! Checkout's held orders in the ledger (Postgres; in memory for unit tests).

use flashflow::domain::EpochMs;
use flashflow::domain::OrderState;
use flashflow::ports::prelude::*;
use flashflow::ports::Attached;
use std::future::Future;
use uuid::Uuid;

/// Makes a held order (as settlement records a checkout sale's reservation) whose hold ends at
/// `pay_by_ms`; the adapters make them differently.
pub trait MakeHeld: Send + Sync {
    fn held(&self, pay_by_ms: i64) -> impl Future<Output = Uuid> + Send;
}

/// A holds adapter, and how to make a held order in it.
pub struct HeldOrders<H, M> {
    pub holds: H,
    pub make: M,
}

/// Every behaviour of the holds' contract as a test of `$make` (an async expression giving
/// [`HeldOrders`]).
#[macro_export]
macro_rules! holds_contract {
    ($make:expr) => {
        $crate::contract_tests!(
            holds,
            $make,
            [
                a_hold_past_its_pay_by_is_due_and_one_before_is_not,
                due_holds_come_oldest_first,
                a_deferred_hold_is_not_due_until_its_wait_is_over,
                a_hold_moves_once_from_where_it_stands,
                a_move_that_did_not_see_an_attached_intent_is_refused,
                the_first_intent_attached_is_the_orders_one,
                an_ended_hold_awaits_its_follow_up_until_it_is_recorded_done,
                a_deferred_follow_up_waits_its_turn,
                overdue_counts_the_holds_still_held_past_a_time,
            ]
        );
    };
}

/// A fixed instant the tests' `pay_by`s are counted from.
const T0: i64 = 1_795_773_600_000;

async fn due<H: Holds, M: MakeHeld>(t: &HeldOrders<H, M>, now: i64) -> Vec<Uuid> {
    let due = t.holds.due(EpochMs(now), 100).await.unwrap();
    due.iter().map(|h| h.status.order_id).collect()
}

async fn unfinished<H: Holds, M: MakeHeld>(t: &HeldOrders<H, M>, now: i64) -> Vec<Uuid> {
    let todo = t.holds.unfinished(EpochMs(now), 100).await.unwrap();
    todo.iter().map(|h| h.status.order_id).collect()
}

async fn cancel<H: Holds, M: MakeHeld>(t: &HeldOrders<H, M>, id: Uuid) -> Option<OrderState> {
    let moved = t
        .holds
        .move_order(id, OrderState::Held, OrderState::Cancelled, None, None)
        .await
        .unwrap();
    moved.map(|h| h.status.status)
}

pub async fn a_hold_past_its_pay_by_is_due_and_one_before_is_not<H: Holds, M: MakeHeld>(
    t: &HeldOrders<H, M>,
) {
    let past = t.make.held(T0).await;
    let future = t.make.held(T0 + 60_000).await;
    let now = due(t, T0 + 1).await;
    assert!(now.contains(&past));
    assert!(!now.contains(&future));
}

pub async fn due_holds_come_oldest_first<H: Holds, M: MakeHeld>(t: &HeldOrders<H, M>) {
    let second = t.make.held(T0 + 2).await;
    let first = t.make.held(T0 + 1).await;
    let order: Vec<Uuid> = due(t, T0 + 10)
        .await
        .into_iter()
        .filter(|id| [first, second].contains(id))
        .collect();
    assert_eq!(order, [first, second]);
}

pub async fn a_deferred_hold_is_not_due_until_its_wait_is_over<H: Holds, M: MakeHeld>(
    t: &HeldOrders<H, M>,
) {
    let stuck = t.make.held(T0).await;
    t.holds.defer(stuck, EpochMs(T0 + 60_000)).await.unwrap();
    assert!(!due(t, T0 + 1).await.contains(&stuck));
    assert!(due(t, T0 + 60_000).await.contains(&stuck));
}

pub async fn a_hold_moves_once_from_where_it_stands<H: Holds, M: MakeHeld>(t: &HeldOrders<H, M>) {
    let id = t.make.held(T0).await;
    assert_eq!(cancel(t, id).await, Some(OrderState::Cancelled));
    assert_eq!(cancel(t, id).await, None, "it no longer stands held");
    let now = t.holds.hold(id).await.unwrap().unwrap();
    assert_eq!(now.status.status, OrderState::Cancelled);
}

pub async fn a_move_that_did_not_see_an_attached_intent_is_refused<H: Holds, M: MakeHeld>(
    t: &HeldOrders<H, M>,
) {
    let id = t.make.held(T0).await;
    t.holds.attach_intent(id, "pi_contract_1").await.unwrap();
    assert_eq!(cancel(t, id).await, None, "a payment may be under way");
    let seen = t
        .holds
        .move_order(
            id,
            OrderState::Held,
            OrderState::Cancelled,
            Some("pi_contract_1"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(seen.map(|h| h.status.status), Some(OrderState::Cancelled));
}

pub async fn the_first_intent_attached_is_the_orders_one<H: Holds, M: MakeHeld>(
    t: &HeldOrders<H, M>,
) {
    let id = t.make.held(T0).await;
    let pi = format!("pi_{}", Uuid::new_v4().simple());
    let other = format!("pi_{}", Uuid::new_v4().simple());
    assert_eq!(
        t.holds.attach_intent(id, &pi).await.unwrap(),
        Attached::Held(pi.clone())
    );
    assert_eq!(
        t.holds.attach_intent(id, &other).await.unwrap(),
        Attached::Held(pi)
    );
}

pub async fn an_ended_hold_awaits_its_follow_up_until_it_is_recorded_done<H: Holds, M: MakeHeld>(
    t: &HeldOrders<H, M>,
) {
    let id = t.make.held(T0).await;
    assert!(
        !unfinished(t, T0).await.contains(&id),
        "held: nothing to do"
    );
    cancel(t, id).await;
    let ended = t.holds.hold(id).await.unwrap().unwrap();
    assert!(!ended.stock_returned && !ended.status_written);
    assert!(unfinished(t, T0).await.contains(&id));
    t.holds
        .finished(id, true, Some(OrderState::Cancelled))
        .await
        .unwrap();
    assert!(!unfinished(t, T0).await.contains(&id));
}

pub async fn a_deferred_follow_up_waits_its_turn<H: Holds, M: MakeHeld>(t: &HeldOrders<H, M>) {
    let id = t.make.held(T0).await;
    cancel(t, id).await;
    t.holds.defer(id, EpochMs(T0 + 60_000)).await.unwrap();
    assert!(!unfinished(t, T0).await.contains(&id));
    assert!(unfinished(t, T0 + 60_000).await.contains(&id));
}

pub async fn overdue_counts_the_holds_still_held_past_a_time<H: Holds, M: MakeHeld>(
    t: &HeldOrders<H, M>,
) {
    let before = t.holds.overdue(EpochMs(T0 - 1_000)).await.unwrap();
    let late = t.make.held(T0 - 5_000).await;
    t.make.held(T0 + 5_000).await;
    assert_eq!(
        t.holds.overdue(EpochMs(T0 - 1_000)).await.unwrap(),
        before + 1
    );
    cancel(t, late).await;
    assert_eq!(t.holds.overdue(EpochMs(T0 - 1_000)).await.unwrap(), before);
}

#[cfg(test)]
mod on_memory {
    use super::{HeldOrders, MakeHeld};
    use crate::contract::fresh_sale_id;
    use crate::memory::MemoryHolds;
    use flashflow::domain::{BuyerId, OrderState, OrderStatus};
    use uuid::Uuid;

    impl MakeHeld for MemoryHolds {
        async fn held(&self, pay_by_ms: i64) -> Uuid {
            let status = OrderStatus {
                order_id: Uuid::now_v7(),
                sale_id: fresh_sale_id(),
                buyer: BuyerId::parse("holder").unwrap(),
                quantity: 1,
                status: OrderState::Held,
                duplicate_of: None,
                pay_by_ms: Some(pay_by_ms),
            };
            self.hold_now(status, 100, "eur").status.order_id
        }
    }

    crate::holds_contract!(async {
        let holds = MemoryHolds::default();
        HeldOrders {
            make: holds.clone(),
            holds,
        }
    });
}
