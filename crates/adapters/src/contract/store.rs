//! The reservation store, the outbox and the sale cache (Redis; in memory for unit tests).

use super::LoadForTests;
use super::{buy, checkout_sale, sale};
use flashflow::domain::rehydrate::KeyHolder;
use flashflow::domain::EpochMs;
use flashflow::domain::{
    IdempotencyKey, OrderMessage, OrderState, OrderStatus, Refusal, Reservation, SaleDefinition,
    SaleId,
};
use flashflow::ports::prelude::*;
use flashflow::ports::{HoldRecord, ResetStart, Returned};
use std::time::Duration;
use uuid::Uuid;

/// An adapter of every store port, and a sale id no other test uses.
pub struct Store<S> {
    pub store: S,
    pub id: SaleId,
}

/// Every behaviour of the store's contract as a test of `$make` (an async expression giving a
/// [`Store`]).
#[macro_export]
macro_rules! store_contract {
    ($make:expr) => {
        $crate::contract_tests!(
            store,
            $make,
            [
                a_new_sale_loads_anew_and_is_listed,
                a_reservation_takes_stock_and_keeps_the_order_in_the_outbox,
                the_same_order_again_answers_its_reservation_and_takes_nothing_more,
                the_same_order_again_after_it_settled_answers_it_and_takes_nothing,
                a_replayed_key_answers_its_order_and_takes_nothing,
                a_key_sent_again_with_another_quantity_is_refused_naming_its_order,
                a_buyer_at_the_limit_is_refused,
                a_sale_with_nothing_left_is_sold_out,
                attempts_past_a_minutes_limit_are_refused_take_nothing_and_hold_no_one_else_back,
                a_reload_of_a_live_sale_never_hands_out_stock_twice,
                an_entry_marked_sent_waits_and_an_unmarked_one_is_stale,
                a_settled_order_leaves_the_outbox_and_its_key_answers_its_state,
                an_index_entry_whose_order_settled_is_forgotten,
                a_reset_that_is_not_forced_does_not_start_while_an_order_is_pending,
                a_forced_reset_hands_back_what_was_pending_and_starts_the_round_full,
                a_finished_reset_run_again_changes_nothing,
                a_new_round_forgets_the_old_keys,
                a_sale_with_pending_orders_is_not_retired,
                a_sold_out_sale_with_nothing_pending_is_retired_and_leaves_the_registry,
                a_sold_out_checkout_sale_is_not_retired_while_a_hold_may_still_end,
                a_unit_given_back_makes_a_retired_sale_live_again,
                a_unit_is_given_back_once,
                a_sale_loaded_anew_counts_its_ended_holds_back_and_their_late_return_gives_nothing_twice,
                a_reload_of_a_live_sale_leaves_an_ended_hold_out_until_its_return_comes,
                attempts_before_the_opening_are_not_counted_against_the_opening_minute,
            ]
        );
    };
}

fn reserved(r: Reservation) -> (Uuid, OrderMessage) {
    match r {
        Reservation::Reserved {
            order_id, message, ..
        } => (
            order_id,
            OrderMessage::parse(&message).expect("the outbox message parses"),
        ),
        other => panic!("expected a reservation, got {other:?}"),
    }
}

impl<S: ReservationStore + Outbox + SaleCache + ReturnStock> Store<S> {
    /// The sale of this test, loaded with `stock`.
    async fn loaded(&self, stock: u32) -> SaleDefinition {
        let def = sale(&self.id, stock);
        self.store.load_sale(&def, stock).await.unwrap();
        def
    }

    async fn take(&self, buyer: &str, key: Option<&str>) -> (Uuid, OrderMessage) {
        reserved(
            self.store
                .reserve(&buy(&self.id, buyer, 1, key))
                .await
                .unwrap(),
        )
    }

    async fn answer(&self, buyer: &str, quantity: i64, key: Option<&str>) -> Reservation {
        let req = buy(&self.id, buyer, quantity, key);
        self.store.reserve(&req).await.unwrap()
    }

    async fn live(&self) -> flashflow::ports::LiveSale {
        self.store.live_sale(&self.id).await.unwrap().expect("held")
    }

    async fn retired(&self) -> bool {
        self.retired_at(EpochMs::now()).await
    }

    async fn retired_at(&self, now: EpochMs) -> bool {
        let ttl = Duration::from_secs(60);
        self.store
            .retire_if_finished(&self.id, now, ttl)
            .await
            .unwrap()
    }

    /// A checkout sale of `stock` (holds of a minute), loaded.
    async fn checkout(&self, stock: u32) -> SaleDefinition {
        let def = checkout_sale(&self.id, stock);
        self.store.load_sale(&def, stock).await.unwrap();
        def
    }

    /// A held order ended (expired or cancelled), as the ledger records it.
    fn ended(&self, message: &OrderMessage) -> HoldRecord {
        HoldRecord {
            status: OrderStatus::of(message, OrderState::Expired),
            payment_intent: None,
            price: 100,
            currency: "eur".into(),
            round: message.round,
            stock_returned: false,
            status_written: false,
        }
    }
}

pub async fn a_new_sale_loads_anew_and_is_listed<
    S: ReservationStore + Outbox + SaleCache + ReturnStock,
>(
    t: &Store<S>,
) {
    assert!(t.store.load_sale(&sale(&t.id, 2), 2).await.unwrap());
    assert!(t.store.sales().await.unwrap().contains(&t.id));
}

pub async fn a_reservation_takes_stock_and_keeps_the_order_in_the_outbox<
    S: ReservationStore + Outbox + SaleCache + ReturnStock,
>(
    t: &Store<S>,
) {
    t.loaded(2).await;
    let (order_id, message) = t.take("alice", None).await;
    assert_eq!(
        (
            message.buyer.as_str(),
            message.round,
            message.quantity.get()
        ),
        ("alice", 1, 1)
    );
    let live = t.live().await;
    assert_eq!((live.stock, live.remaining, live.pending), (2, 1, 1));
    let pending = t.store.find_pending(order_id).await.unwrap();
    assert_eq!(pending.map(|o| o.order_id), Some(order_id));
    assert_eq!(t.store.entries(&t.id).await.unwrap().len(), 1);
}

pub async fn the_same_order_again_answers_its_reservation_and_takes_nothing_more<
    S: ReservationStore + Outbox + SaleCache + ReturnStock,
>(
    t: &Store<S>,
) {
    t.loaded(2).await;
    let first = buy(&t.id, "alice", 1, Some("k1"));
    let once = reserved(t.store.reserve(&first).await.unwrap());
    assert_eq!(once.0, first.order_id);
    assert_eq!(reserved(t.store.reserve(&first).await.unwrap()), once);
    assert_eq!(t.live().await.remaining, 1);
}

pub async fn the_same_order_again_after_it_settled_answers_it_and_takes_nothing<
    S: ReservationStore + Outbox + SaleCache + ReturnStock,
>(
    t: &Store<S>,
) {
    t.loaded(2).await;
    let first = buy(&t.id, "alice", 1, None);
    let (order_id, _) = reserved(t.store.reserve(&first).await.unwrap());
    t.store
        .remove_settled(&t.id, &[order_id], &[])
        .await
        .unwrap();
    // Its message left the outbox: nothing to send again, the order stands.
    let state = None;
    assert_eq!(
        t.store.reserve(&first).await.unwrap(),
        Reservation::Duplicate { order_id, state }
    );
    assert_eq!(t.live().await.remaining, 1);
}

pub async fn a_replayed_key_answers_its_order_and_takes_nothing<
    S: ReservationStore + Outbox + SaleCache + ReturnStock,
>(
    t: &Store<S>,
) {
    t.loaded(2).await;
    let (order_id, _) = t.take("alice", Some("k1")).await;
    let replay = t.answer("alice", 1, Some("k1")).await;
    let state = None;
    assert_eq!(replay, Reservation::Duplicate { order_id, state });
    assert_eq!(t.live().await.remaining, 1);
}

pub async fn a_key_sent_again_with_another_quantity_is_refused_naming_its_order<
    S: ReservationStore + Outbox + SaleCache + ReturnStock,
>(
    t: &Store<S>,
) {
    t.loaded(2).await;
    let (order_id, _) = t.take("alice", Some("k1")).await;
    assert_eq!(
        t.answer("alice", 2, Some("k1")).await,
        Reservation::Refused(Refusal::KeyReused { order_id })
    );
}

pub async fn a_buyer_at_the_limit_is_refused<
    S: ReservationStore + Outbox + SaleCache + ReturnStock,
>(
    t: &Store<S>,
) {
    t.loaded(2).await;
    t.take("alice", None).await;
    assert_eq!(
        t.answer("alice", 1, None).await,
        Reservation::Refused(Refusal::LimitReached { allowance: 0 })
    );
}

pub async fn a_sale_with_nothing_left_is_sold_out<
    S: ReservationStore + Outbox + SaleCache + ReturnStock,
>(
    t: &Store<S>,
) {
    t.loaded(1).await;
    t.take("alice", None).await;
    assert_eq!(
        t.answer("bob", 1, None).await,
        Reservation::Refused(Refusal::SoldOut)
    );
    assert_eq!(t.live().await.remaining, 0);
}

/// Two calls could straddle a minute; then the third is allowed, so the check asks for two
/// refusals in five tries.
pub async fn attempts_past_a_minutes_limit_are_refused_take_nothing_and_hold_no_one_else_back<
    S: ReservationStore + Outbox + SaleCache + ReturnStock,
>(
    t: &Store<S>,
) {
    let limited = SaleDefinition {
        attempts_per_minute: Some(2),
        ..sale(&t.id, 10)
    };
    t.store.load_sale(&limited, 10).await.unwrap();
    let mut refused = 0;
    for _ in 0..5 {
        match t.answer("dan", 1, None).await {
            Reservation::Refused(Refusal::TooManyAttempts { retry_after_s }) => {
                assert!((1..=60).contains(&retry_after_s));
                refused += 1;
            }
            Reservation::Reserved { .. } | Reservation::Refused(Refusal::LimitReached { .. }) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(refused >= 2, "{refused} refused");
    assert!(matches!(
        t.answer("eve", 1, None).await,
        Reservation::Reserved { .. }
    ));
    assert_eq!(t.live().await.remaining, 8, "refused attempts took nothing");
}

pub async fn a_reload_of_a_live_sale_never_hands_out_stock_twice<
    S: ReservationStore + Outbox + SaleCache + ReturnStock,
>(
    t: &Store<S>,
) {
    let def = t.loaded(2).await;
    t.take("alice", None).await;
    t.take("bob", None).await;
    assert!(!t.store.load_sale(&def, 2).await.unwrap(), "not anew");
    assert_eq!(t.live().await.remaining, 0);
}

pub async fn an_entry_marked_sent_waits_and_an_unmarked_one_is_stale<
    S: ReservationStore + Outbox + SaleCache + ReturnStock,
>(
    t: &Store<S>,
) {
    t.loaded(2).await;
    let (sent, _) = t.take("alice", None).await;
    let (unsent, _) = t.take("bob", None).await;
    let soon = EpochMs::now().plus(Duration::from_secs(5));
    assert_eq!(t.store.stale(&t.id, soon, 10).await.unwrap().len(), 2);
    let later = EpochMs::now().plus(Duration::from_secs(3600));
    t.store.mark_sent(&t.id, &[sent], later).await.unwrap();
    let stale = t.store.stale(&t.id, soon, 10).await.unwrap();
    assert_eq!(stale.len(), 1);
    assert_eq!(stale[0].0, unsent.to_string());
    assert!(stale[0].1.is_some(), "with its message");
}

pub async fn a_settled_order_leaves_the_outbox_and_its_key_answers_its_state<
    S: ReservationStore + Outbox + SaleCache + ReturnStock,
>(
    t: &Store<S>,
) {
    t.loaded(2).await;
    let (order_id, message) = t.take("alice", Some("k1")).await;
    let held = KeyHolder {
        buyer: message.buyer.clone(),
        key: IdempotencyKey::parse("k1").unwrap(),
        order_id,
        quantity: 1,
        state: OrderState::Confirmed,
        round: 1,
    };
    t.store
        .remove_settled(&t.id, &[order_id], &[held])
        .await
        .unwrap();
    assert_eq!(t.store.find_pending(order_id).await.unwrap(), None);
    assert_eq!(t.live().await.pending, 0);
    let state = Some(OrderState::Confirmed);
    assert_eq!(
        t.answer("alice", 1, Some("k1")).await,
        Reservation::Duplicate { order_id, state }
    );
}

pub async fn an_index_entry_whose_order_settled_is_forgotten<
    S: ReservationStore + Outbox + SaleCache + ReturnStock,
>(
    t: &Store<S>,
) {
    t.loaded(2).await;
    let (order_id, _) = t.take("alice", None).await;
    let later = EpochMs::now().plus(Duration::from_secs(3600));
    let gone = [order_id.to_string()];
    t.store.touch(&t.id, &[], &gone, later).await.unwrap();
    let soon = EpochMs::now().plus(Duration::from_secs(5));
    assert!(t.store.stale(&t.id, soon, 10).await.unwrap().is_empty());
}

pub async fn a_reset_that_is_not_forced_does_not_start_while_an_order_is_pending<
    S: ReservationStore + Outbox + SaleCache + ReturnStock,
>(
    t: &Store<S>,
) {
    t.loaded(2).await;
    t.take("alice", None).await;
    assert_eq!(
        t.store.begin_reset(&t.id, 2, false).await.unwrap(),
        ResetStart::Pending(1)
    );
    assert_eq!(t.live().await.pending, 1, "nothing changed");
    assert!(matches!(
        t.answer("bob", 1, None).await,
        Reservation::Reserved { .. }
    ));
}

pub async fn a_forced_reset_hands_back_what_was_pending_and_starts_the_round_full<
    S: ReservationStore + Outbox + SaleCache + ReturnStock,
>(
    t: &Store<S>,
) {
    let def = t.loaded(2).await;
    let (pending, _) = t.take("alice", None).await;
    let dropped = t.store.reset_sale(&def, 2).await.unwrap();
    assert_eq!(dropped.len(), 1);
    assert_eq!(OrderMessage::parse(&dropped[0]).unwrap().order_id, pending);
    let live = t.live().await;
    assert_eq!((live.remaining, live.pending), (2, 0));
    assert_eq!(
        t.store.begin_reset(&t.id, 3, false).await.unwrap(),
        ResetStart::Frozen {
            round: 3,
            dropped: Vec::new()
        },
        "with nothing pending a reset starts"
    );
}

pub async fn a_finished_reset_run_again_changes_nothing<
    S: ReservationStore + Outbox + SaleCache + ReturnStock,
>(
    t: &Store<S>,
) {
    let def = t.loaded(2).await;
    t.store.reset_sale(&def, 2).await.unwrap();
    t.take("alice", None).await;
    t.store.finish_reset(&def, 2).await.unwrap();
    let live = t.live().await;
    assert_eq!((live.remaining, live.pending), (1, 1));
}

pub async fn a_new_round_forgets_the_old_keys<
    S: ReservationStore + Outbox + SaleCache + ReturnStock,
>(
    t: &Store<S>,
) {
    let def = t.loaded(2).await;
    let (first, _) = t.take("alice", Some("k1")).await;
    t.store.reset_sale(&def, 2).await.unwrap();
    let (again, message) = t.take("alice", Some("k1")).await;
    assert_ne!(again, first);
    assert_eq!(message.round, 2);
}

pub async fn a_sale_with_pending_orders_is_not_retired<
    S: ReservationStore + Outbox + SaleCache + ReturnStock,
>(
    t: &Store<S>,
) {
    t.loaded(1).await;
    t.take("alice", None).await;
    assert!(!t.retired().await, "sold out, but an order is pending");
    assert!(t.store.sales().await.unwrap().contains(&t.id));
}

pub async fn a_sold_out_sale_with_nothing_pending_is_retired_and_leaves_the_registry<
    S: ReservationStore + Outbox + SaleCache + ReturnStock,
>(
    t: &Store<S>,
) {
    t.loaded(1).await;
    let (order_id, _) = t.take("alice", None).await;
    t.store
        .remove_settled(&t.id, &[order_id], &[])
        .await
        .unwrap();
    assert!(t.retired().await);
    assert!(!t.store.sales().await.unwrap().contains(&t.id));
}

pub async fn a_sold_out_checkout_sale_is_not_retired_while_a_hold_may_still_end<
    S: ReservationStore + Outbox + SaleCache + ReturnStock,
>(
    t: &Store<S>,
) {
    t.checkout(1).await;
    let (order_id, message) = t.take("alice", None).await;
    t.store
        .remove_settled(&t.id, &[order_id], &[])
        .await
        .unwrap();
    assert!(
        !t.retired().await,
        "its hold may end and give the unit back"
    );
    assert!(t.store.sales().await.unwrap().contains(&t.id));
    let pay_by = message.pay_by_ms.expect("a hold");
    let all_ended = pay_by + flashflow::ports::HOLDS_END_WITHIN.as_millis() as i64 + 1;
    assert!(t.retired_at(EpochMs(all_ended)).await);
}

pub async fn a_unit_given_back_makes_a_retired_sale_live_again<
    S: ReservationStore + Outbox + SaleCache + ReturnStock,
>(
    t: &Store<S>,
) {
    t.checkout(1).await;
    let (order_id, message) = t.take("alice", None).await;
    t.store
        .remove_settled(&t.id, &[order_id], &[])
        .await
        .unwrap();
    let far = EpochMs::now().plus(Duration::from_secs(24 * 3600));
    assert!(t.retired_at(far).await);
    let back = t.store.return_stock(&t.ended(&message)).await.unwrap();
    assert_eq!(back, Returned::Now);
    assert!(t.store.sales().await.unwrap().contains(&t.id), "live again");
    assert_eq!(t.live().await.remaining, 1);
    assert!(matches!(
        t.answer("bob", 1, None).await,
        Reservation::Reserved { .. }
    ));
}

pub async fn a_unit_is_given_back_once<S: ReservationStore + Outbox + SaleCache + ReturnStock>(
    t: &Store<S>,
) {
    t.checkout(2).await;
    let (_, message) = t.take("alice", None).await;
    let hold = t.ended(&message);
    assert_eq!(t.store.return_stock(&hold).await.unwrap(), Returned::Now);
    assert_eq!(t.store.return_stock(&hold).await.unwrap(), Returned::Before);
    assert_eq!(t.live().await.remaining, 2);
}

/// The plan of a rebuild of a 3-unit checkout sale: one unit held, `ended` an ended hold whose
/// return the ledger has not seen (out for a live sale, back for one loaded anew).
fn rebuild_with_an_ended_hold(ended: Uuid) -> flashflow::domain::rehydrate::Plan {
    flashflow::domain::rehydrate::Plan {
        remaining: 1,
        remaining_if_new: 2,
        returned: vec![ended],
        round: 1,
        buyers: Vec::new(),
        keys: Vec::new(),
        holds: Vec::new(),
        draw_seed: None,
    }
}

pub async fn a_sale_loaded_anew_counts_its_ended_holds_back_and_their_late_return_gives_nothing_twice<
    S: ReservationStore + Outbox + SaleCache + ReturnStock,
>(
    t: &Store<S>,
) {
    // Redis lost the sale while a hold's end was carried: its return may have reached the Redis
    // that is gone, and its carrier may try again.
    let def = checkout_sale(&t.id, 3);
    let mut ended = super::order(&t.id, "mo", 0, None, 1);
    ended.pay_by_ms = Some(EpochMs::now().get());
    let loaded = t
        .store
        .rehydrate(&def, &rebuild_with_an_ended_hold(ended.order_id))
        .await
        .unwrap();
    assert!(loaded, "loaded anew");
    assert_eq!(t.live().await.remaining, 2, "the ended hold's unit is back");
    let late = t.store.return_stock(&t.ended(&ended)).await.unwrap();
    assert_eq!(late, Returned::Before, "recorded as returned by the load");
    assert_eq!(t.live().await.remaining, 2, "given back once");
}

pub async fn a_reload_of_a_live_sale_leaves_an_ended_hold_out_until_its_return_comes<
    S: ReservationStore + Outbox + SaleCache + ReturnStock,
>(
    t: &Store<S>,
) {
    let def = t.checkout(3).await;
    let (_, held) = t.take("mo", None).await;
    t.take("ned", None).await;
    // The ledger: mo's hold ended, its return not yet in Redis (remaining 1 as Redis has it).
    let loaded = t
        .store
        .rehydrate(&def, &rebuild_with_an_ended_hold(held.order_id))
        .await
        .unwrap();
    assert!(!loaded, "Redis held it");
    assert_eq!(t.live().await.remaining, 1, "out until its return comes");
    let back = t.store.return_stock(&t.ended(&held)).await.unwrap();
    assert_eq!(back, Returned::Now);
    assert_eq!(t.live().await.remaining, 2);
}

pub async fn attempts_before_the_opening_are_not_counted_against_the_opening_minute<
    S: ReservationStore + Outbox + SaleCache + ReturnStock,
>(
    t: &Store<S>,
) {
    let opens = EpochMs::now().plus(Duration::from_millis(1_500));
    let countdown = SaleDefinition {
        attempts_per_minute: Some(2),
        opens_at_ms: Some(opens.get()),
        ..sale(&t.id, 10)
    };
    t.store.load_sale(&countdown, 10).await.unwrap();
    for _ in 0..5 {
        let early = t.answer("dan", 1, None).await;
        assert!(
            matches!(early, Reservation::Refused(Refusal::NotOpen { .. })),
            "{early:?}"
        );
    }
    let wait = opens.get() + 100 - EpochMs::now().get();
    tokio::time::sleep(Duration::from_millis(wait.max(0) as u64)).await;
    let first = t.answer("dan", 1, None).await;
    assert!(
        matches!(first, Reservation::Reserved { .. }),
        "the opening's first attempt: {first:?}"
    );
}

#[cfg(test)]
mod on_memory {
    use super::Store;
    use crate::contract::fresh_sale_id;
    use crate::memory::MemoryStore;

    crate::store_contract!(async {
        Store {
            store: MemoryStore::default(),
            id: fresh_sale_id(),
        }
    });
}
