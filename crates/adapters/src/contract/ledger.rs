//! Settlement and the sale's records (Postgres; in memory for unit tests).

use super::{order, sale};
use flashflow::domain::{OrderState, OrderStatus, SaleDefinition, SaleId, Settled};
use flashflow::ports::prelude::*;
use flashflow::ports::CreateOutcome;
use std::collections::HashMap;
use uuid::Uuid;

/// A ledger, and a sale id no other test uses.
pub struct Books<L> {
    pub ledger: L,
    pub id: SaleId,
}

/// Every behaviour of the ledger's contract as a test of `$make` (an async expression giving
/// [`Books`]).
#[macro_export]
macro_rules! ledger_contract {
    ($make:expr) => {
        $crate::contract_tests!(
            ledger,
            $make,
            [
                a_sale_is_created_once_and_another_with_its_id_conflicts,
                a_batch_is_settled_first_come_first_served_within_the_stock,
                a_batch_delivered_twice_records_each_order_once,
                a_keys_retry_is_recorded_as_a_duplicate_of_its_original,
                the_ledger_of_a_sale_holds_its_buyers_keys_and_which_pending_orders_are_recorded,
                the_ledger_of_a_checkout_sale_lists_its_open_holds_with_their_pay_by,
                a_reset_starts_the_next_round_and_repeating_it_changes_nothing,
                a_reset_that_skips_a_round_is_refused,
                an_order_of_an_earlier_round_arriving_late_is_rejected,
                orders_a_forced_reset_moved_aside_are_recorded_rejected_once,
                an_archived_order_still_answers_for_its_id,
                an_order_of_a_sale_the_ledger_does_not_know_is_not_recorded,
                a_reset_is_refused_while_an_order_is_held_for_payment,
                a_draw_seed_is_given_once_and_kept,
            ]
        );
    };
}

fn state_of(outcome: &HashMap<Uuid, Settled>, id: Uuid) -> OrderStatus {
    match outcome.get(&id) {
        Some(Settled::Recorded(s)) => s.clone(),
        other => panic!("order {id}: {other:?}"),
    }
}

impl<L: Ledger + SaleLedger> Books<L> {
    async fn created(&self, stock: u32) -> SaleDefinition {
        let def = sale(&self.id, stock);
        self.ledger.create_sale(&def).await.unwrap();
        def
    }

    async fn settle(&self, orders: &[flashflow::domain::OrderMessage]) -> HashMap<Uuid, Settled> {
        self.ledger.settle_orders(orders).await.unwrap()
    }
}

pub async fn a_sale_is_created_once_and_another_with_its_id_conflicts<L: Ledger + SaleLedger>(
    t: &Books<L>,
) {
    let def = sale(&t.id, 2);
    let created = t.ledger.create_sale(&def).await.unwrap();
    assert!(matches!(created, CreateOutcome::Created));
    let again = t.ledger.create_sale(&def).await.unwrap();
    assert!(matches!(again, CreateOutcome::AlreadyExists(_)));
    let other = SaleDefinition {
        name: "another".into(),
        ..def
    };
    let other = t.ledger.create_sale(&other).await.unwrap();
    assert!(matches!(other, CreateOutcome::Conflict(_)));
}

pub async fn a_batch_is_settled_first_come_first_served_within_the_stock<L: Ledger + SaleLedger>(
    t: &Books<L>,
) {
    t.created(2).await;
    let batch = [
        order(&t.id, "carol", 3, None, 1),
        order(&t.id, "alice", 1, None, 1),
        order(&t.id, "bob", 2, None, 1),
    ];
    let outcome = t.settle(&batch).await;
    let states: Vec<OrderState> = batch
        .iter()
        .map(|o| state_of(&outcome, o.order_id).status)
        .collect();
    use OrderState::{Confirmed, Rejected};
    assert_eq!(
        states,
        [Rejected, Confirmed, Confirmed],
        "by reservation time"
    );
    let record = t.ledger.sale(&t.id).await.unwrap().unwrap();
    let counts = (
        record.confirmed_quantity,
        record.confirmed_orders,
        record.rejected_orders,
    );
    assert_eq!(counts, (2, 2, 1));
}

pub async fn a_batch_delivered_twice_records_each_order_once<L: Ledger + SaleLedger>(t: &Books<L>) {
    t.created(2).await;
    let batch = [
        order(&t.id, "carol", 3, None, 1),
        order(&t.id, "alice", 1, None, 1),
        order(&t.id, "bob", 2, None, 1),
    ];
    let first = t.settle(&batch).await;
    let again = t.settle(&batch).await;
    for o in &batch {
        assert_eq!(state_of(&first, o.order_id), state_of(&again, o.order_id));
    }
    let record = t.ledger.sale(&t.id).await.unwrap().unwrap();
    assert_eq!((record.confirmed_orders, record.rejected_orders), (2, 1));
}

pub async fn a_keys_retry_is_recorded_as_a_duplicate_of_its_original<L: Ledger + SaleLedger>(
    t: &Books<L>,
) {
    t.created(2).await;
    let original = order(&t.id, "dave", 4, Some("k"), 1);
    let retry = order(&t.id, "dave", 5, Some("k"), 1);
    let outcome = t.settle(&[retry.clone(), original.clone()]).await;
    let dup = state_of(&outcome, retry.order_id);
    assert_eq!(
        (dup.status, dup.duplicate_of),
        (OrderState::Duplicate, Some(original.order_id))
    );
    let first = state_of(&outcome, original.order_id);
    assert_eq!(first.status, OrderState::Confirmed);
}

pub async fn the_ledger_of_a_sale_holds_its_buyers_keys_and_which_pending_orders_are_recorded<
    L: Ledger + SaleLedger,
>(
    t: &Books<L>,
) {
    t.created(3).await;
    let alice = order(&t.id, "alice", 1, None, 1);
    let bob = order(&t.id, "bob", 2, Some("k"), 1);
    t.settle(&[alice.clone(), bob.clone()]).await;
    let pending = [alice.order_id, Uuid::now_v7()];
    let held = t.ledger.ledger_of(&t.id, &pending).await.unwrap().unwrap();
    assert_eq!(held.settled.len(), 1);
    assert!(held.settled.contains(&alice.order_id));
    let mut bought: Vec<(String, i64)> = held
        .bought
        .iter()
        .map(|(b, n)| (b.as_str().to_owned(), *n))
        .collect();
    bought.sort();
    assert_eq!(bought, [("alice".into(), 1), ("bob".into(), 1)]);
    assert_eq!(held.keys.len(), 1);
    assert_eq!(held.keys[0].order_id, bob.order_id);
}

pub async fn the_ledger_of_a_checkout_sale_lists_its_open_holds_with_their_pay_by<
    L: Ledger + SaleLedger,
>(
    t: &Books<L>,
) {
    let def = sale(&t.id, 2).with_checkout(flashflow::domain::sale::Checkout {
        hold_seconds: 60,
        price: 100,
        currency: "eur".into(),
    });
    t.ledger.create_sale(&def).await.unwrap();
    let mut held = order(&t.id, "alice", 1, None, 1);
    let pay_by = held.reserved_at_ms + 60_000;
    held.pay_by_ms = Some(pay_by);
    t.settle(std::slice::from_ref(&held)).await;
    let ledger = t.ledger.ledger_of(&t.id, &[]).await.unwrap().unwrap();
    assert_eq!(
        ledger.holds,
        [(held.order_id, flashflow::domain::EpochMs(pay_by))]
    );
}

pub async fn a_reset_starts_the_next_round_and_repeating_it_changes_nothing<
    L: Ledger + SaleLedger,
>(
    t: &Books<L>,
) {
    t.created(2).await;
    t.settle(&[order(&t.id, "alice", 1, None, 1)]).await;
    let after = t.ledger.reset_sale(&t.id, Some(3), 2).await.unwrap();
    assert_eq!(after.started().unwrap().stock, 3);
    let again = t.ledger.reset_sale(&t.id, Some(4), 2).await.unwrap();
    let again = again.started().unwrap();
    assert_eq!(again.stock, 3, "the same round: nothing changes");
    let record = t.ledger.sale(&t.id).await.unwrap().unwrap();
    assert_eq!((record.confirmed_quantity, record.round), (0, 2));
}

pub async fn a_reset_that_skips_a_round_is_refused<L: Ledger + SaleLedger>(t: &Books<L>) {
    t.created(2).await;
    assert!(t.ledger.reset_sale(&t.id, None, 3).await.is_err());
    assert_eq!(t.ledger.sale(&t.id).await.unwrap().unwrap().round, 1);
}

pub async fn an_order_of_an_earlier_round_arriving_late_is_rejected<L: Ledger + SaleLedger>(
    t: &Books<L>,
) {
    t.created(2).await;
    t.ledger.reset_sale(&t.id, None, 2).await.unwrap();
    let late = order(&t.id, "erin", 6, None, 1);
    let outcome = t.settle(std::slice::from_ref(&late)).await;
    assert_eq!(
        state_of(&outcome, late.order_id).status,
        OrderState::Rejected
    );
    let record = t.ledger.sale(&t.id).await.unwrap().unwrap();
    assert_eq!(record.confirmed_quantity, 0);
}

pub async fn orders_a_forced_reset_moved_aside_are_recorded_rejected_once<
    L: Ledger + SaleLedger,
>(
    t: &Books<L>,
) {
    t.created(2).await;
    t.ledger.reset_sale(&t.id, None, 2).await.unwrap();
    let cancelled = order(&t.id, "frank", 7, None, 1);
    for _ in 0..2 {
        let statuses = t
            .ledger
            .cancel_orders(std::slice::from_ref(&cancelled))
            .await
            .unwrap();
        assert_eq!(statuses.len(), 1);
        assert_eq!(statuses[0].status, OrderState::Rejected);
    }
}

pub async fn an_archived_order_still_answers_for_its_id<L: Ledger + SaleLedger>(t: &Books<L>) {
    t.created(2).await;
    let first = order(&t.id, "alice", 1, None, 1);
    t.settle(std::slice::from_ref(&first)).await;
    t.ledger.reset_sale(&t.id, None, 2).await.unwrap();
    let outcome = t.settle(std::slice::from_ref(&first)).await;
    let state = state_of(&outcome, first.order_id).status;
    assert_eq!(state, OrderState::Confirmed, "the archive answers");
}

pub async fn an_order_of_a_sale_the_ledger_does_not_know_is_not_recorded<L: Ledger + SaleLedger>(
    t: &Books<L>,
) {
    let unknown = order(&t.id, "x", 0, None, 1);
    let outcome = t.settle(std::slice::from_ref(&unknown)).await;
    assert_eq!(outcome.get(&unknown.order_id), Some(&Settled::UnknownSale));
    assert!(t.ledger.sale(&t.id).await.unwrap().is_none());
}

pub async fn a_reset_is_refused_while_an_order_is_held_for_payment<L: Ledger + SaleLedger>(
    t: &Books<L>,
) {
    let def = SaleDefinition {
        checkout: Some(flashflow::domain::sale::Checkout {
            hold_seconds: 60,
            price: 100,
            currency: "eur".into(),
        }),
        ..sale(&t.id, 2)
    };
    t.ledger.create_sale(&def).await.unwrap();
    let mut held = order(&t.id, "alice", 1, None, 1);
    held.pay_by_ms = Some(held.reserved_at_ms + 60_000);
    let outcome = t.settle(std::slice::from_ref(&held)).await;
    assert_eq!(state_of(&outcome, held.order_id).status, OrderState::Held);
    let reset = t.ledger.reset_sale(&t.id, None, 2).await.unwrap();
    assert_eq!(reset, flashflow::ports::LedgerReset::OrdersInPlay(1));
    let record = t.ledger.sale(&t.id).await.unwrap().unwrap();
    assert_eq!(record.round, 1, "nothing moved");
    let again = t.settle(std::slice::from_ref(&held)).await;
    assert_eq!(
        state_of(&again, held.order_id).status,
        OrderState::Held,
        "still here"
    );
}

pub async fn a_draw_seed_is_given_once_and_kept<L: Ledger + SaleLedger>(t: &Books<L>) {
    use flashflow::domain::waiting_room::draw::Seed;
    t.created(5).await;
    let first = Seed::new([1; 32]);
    let given = t.ledger.draw_seed(&t.id, &first).await.unwrap();
    assert_eq!(given, Some(first.clone()));
    let again = t
        .ledger
        .draw_seed(&t.id, &Seed::new([2; 32]))
        .await
        .unwrap();
    assert_eq!(again, Some(first), "never replaced");
    let nobody = super::fresh_sale_id();
    assert_eq!(
        t.ledger
            .draw_seed(&nobody, &Seed::new([3; 32]))
            .await
            .unwrap(),
        None
    );
}

#[cfg(test)]
mod on_memory {
    use super::Books;
    use crate::contract::fresh_sale_id;
    use crate::memory::MemoryLedger;

    crate::ledger_contract!(async {
        Books {
            ledger: MemoryLedger::default(),
            id: fresh_sale_id(),
        }
    });
}
