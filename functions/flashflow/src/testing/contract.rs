//! The ports' contracts: what every adapter must do, written once. The unit tests run them on
//! the in-memory adapters, the integration tests on Redis, Postgres, DynamoDB Local and
//! LocalStack, so the fast tests' fakes cannot drift from the real thing.
//!
//! Each takes the adapter and a sale id no other test uses, and panics (failing the test) at the
//! first broken promise.

use crate::clock::EpochMs;
use crate::domain::rehydrate::KeyHolder;
use crate::domain::{
    BuyerId, IdempotencyKey, OrderMessage, OrderState, OrderStatus, Quantity, Refusal, Reservation,
    ReserveRequest, SaleDefinition, SaleId, Settled, ORDER_MESSAGE_VERSION,
};
use crate::ports::{
    CreateOutcome, Ledger, OrderPublisher, Outbox, ReservationStore, ResetStart, SaleCache,
    SaleLedger, StatusStore,
};
use std::time::Duration;
use uuid::Uuid;

/// A sale of `stock` with a limit of one per buyer, always open.
pub fn sale(id: &SaleId, stock: u32) -> SaleDefinition {
    SaleDefinition {
        id: id.clone(),
        name: "contract".into(),
        stock,
        per_user_limit: 1,
        opens_at_ms: None,
        closes_at_ms: None,
        attempts_per_minute: None,
        checkout: None,
    }
}

fn buy(sale: &SaleId, buyer: &str, quantity: i64, key: Option<&str>) -> ReserveRequest {
    ReserveRequest {
        order_id: Uuid::now_v7(),
        sale: sale.clone(),
        buyer: BuyerId::parse(buyer).expect("a valid buyer"),
        quantity: Quantity::new(quantity).expect("a valid quantity"),
        idempotency_key: key.map(|k| IdempotencyKey::parse(k).expect("a valid key")),
    }
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

/// The reservation store, the outbox and the sale cache of one adapter: stock taken once per
/// order, replays answered with their order, limits and sold-out refused, reserved orders kept
/// in the outbox until settled, a live sale never given more stock by a reload, resets and
/// retirement.
pub async fn reservations<S: ReservationStore + Outbox + SaleCache>(store: &S, id: &SaleId) {
    let def = sale(id, 2);
    assert!(
        store.load_sale(&def, 2).await.unwrap(),
        "a new sale loads anew"
    );
    assert!(store.sales().await.unwrap().contains(id));

    let first = buy(id, "alice", 1, Some("k1"));
    let (order_id, message) = reserved(store.reserve(&first).await.unwrap());
    assert_eq!(order_id, first.order_id);
    assert_eq!(
        reserved(store.reserve(&first).await.unwrap()),
        (order_id, message.clone()),
        "the same order again answers its reservation and takes nothing more"
    );
    assert_eq!(
        (
            message.buyer.as_str(),
            message.round,
            message.quantity.get()
        ),
        ("alice", 1, 1)
    );
    assert_eq!(
        store
            .reserve(&buy(id, "alice", 1, Some("k1")))
            .await
            .unwrap(),
        Reservation::Duplicate {
            order_id,
            state: None
        },
        "a replay answers the first order and takes nothing"
    );
    assert_eq!(
        store
            .reserve(&buy(id, "alice", 2, Some("k1")))
            .await
            .unwrap(),
        Reservation::Refused(Refusal::KeyReused { order_id }),
    );
    assert_eq!(
        store.reserve(&buy(id, "alice", 1, None)).await.unwrap(),
        Reservation::Refused(Refusal::LimitReached { allowance: 0 }),
    );
    let (second, _) = reserved(store.reserve(&buy(id, "bob", 1, None)).await.unwrap());
    assert_eq!(
        store.reserve(&buy(id, "carol", 1, None)).await.unwrap(),
        Reservation::Refused(Refusal::SoldOut),
    );

    let live = store
        .live_sale(id)
        .await
        .unwrap()
        .expect("the sale is held");
    assert_eq!((live.stock, live.remaining, live.pending), (2, 0, 2));

    // A sale that allows two attempts per buyer per minute. (Two calls could straddle a minute;
    // then the third is allowed, so the check asks for two refusals in three tries.)
    let limited_id = SaleId::parse(&format!("{id}-a")).expect("a valid id");
    let limited = SaleDefinition {
        attempts_per_minute: Some(2),
        ..sale(&limited_id, 10)
    };
    store.load_sale(&limited, 10).await.unwrap();
    let mut refused = 0;
    for _ in 0..5 {
        match store
            .reserve(&buy(&limited_id, "dan", 1, None))
            .await
            .unwrap()
        {
            Reservation::Refused(Refusal::TooManyAttempts { retry_after_s }) => {
                assert!((1..=60).contains(&retry_after_s));
                refused += 1;
            }
            Reservation::Reserved { .. } | Reservation::Refused(Refusal::LimitReached { .. }) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(
        refused >= 2,
        "past two attempts a minute: too many ({refused} refused)"
    );
    assert!(
        matches!(
            store
                .reserve(&buy(&limited_id, "eve", 1, None))
                .await
                .unwrap(),
            Reservation::Reserved { .. }
        ),
        "another buyer is not held back"
    );
    assert_eq!(
        store
            .live_sale(&limited_id)
            .await
            .unwrap()
            .unwrap()
            .remaining,
        8,
        "refused attempts took nothing"
    );
    assert!(
        !store.load_sale(&def, 2).await.unwrap(),
        "a live sale is not loaded anew"
    );
    assert_eq!(
        store.live_sale(id).await.unwrap().map(|l| l.remaining),
        Some(0),
        "a reload never hands out stock twice"
    );
    assert_eq!(
        store
            .find_pending(order_id)
            .await
            .unwrap()
            .map(|o| o.order_id),
        Some(order_id)
    );
    assert_eq!(store.entries(id).await.unwrap().len(), 2);

    let soon = EpochMs::now().plus(Duration::from_secs(5));
    assert_eq!(store.stale(id, soon, 10).await.unwrap().len(), 2);
    let later = EpochMs::now().plus(Duration::from_secs(3600));
    store.mark_sent(id, &[order_id], later).await.unwrap();
    let stale: Vec<String> = store
        .stale(id, soon, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|(id, message)| {
            assert!(message.is_some());
            id
        })
        .collect();
    assert_eq!(stale, [second.to_string()], "a marked entry waits");

    let held = KeyHolder {
        buyer: first.buyer.clone(),
        key: IdempotencyKey::parse("k1").unwrap(),
        order_id,
        quantity: 1,
        state: OrderState::Confirmed,
        round: 1,
    };
    store
        .remove_settled(id, &[order_id], &[held])
        .await
        .unwrap();
    assert_eq!(store.find_pending(order_id).await.unwrap(), None);
    assert_eq!(
        store
            .reserve(&buy(id, "alice", 1, Some("k1")))
            .await
            .unwrap(),
        Reservation::Duplicate {
            order_id,
            state: Some(OrderState::Confirmed)
        },
        "a settled key answers its order's state"
    );
    store
        .touch(id, &[], &[second.to_string()], later)
        .await
        .unwrap();
    assert!(store.stale(id, soon, 10).await.unwrap().is_empty());

    assert_eq!(
        store.begin_reset(id, 2, false).await.unwrap(),
        ResetStart::Pending(1),
        "a reset that is not forced does not start while an order is pending"
    );
    assert_eq!(store.live_sale(id).await.unwrap().unwrap().pending, 1);
    let dropped = store.reset_sale(&def, 2).await.unwrap();
    assert_eq!(
        store.begin_reset(id, 3, false).await.unwrap(),
        ResetStart::Frozen {
            round: 3,
            dropped: Vec::new()
        },
        "with nothing pending a reset starts"
    );
    store.finish_reset(&def, 3).await.unwrap();
    store.finish_reset(&def, 3).await.unwrap();
    assert_eq!(
        dropped.len(),
        1,
        "the reset hands back what was still pending"
    );
    assert_eq!(OrderMessage::parse(&dropped[0]).unwrap().order_id, second);
    let live = store.live_sale(id).await.unwrap().unwrap();
    assert_eq!((live.remaining, live.pending), (2, 0));
    let (again, message) = reserved(
        store
            .reserve(&buy(id, "alice", 1, Some("k1")))
            .await
            .unwrap(),
    );
    assert_eq!(message.round, 3, "a new round forgets the old keys");
    assert!(
        !store
            .retire_if_finished(id, EpochMs::now(), Duration::from_secs(60))
            .await
            .unwrap(),
        "a sale with pending orders is not finished"
    );
    store.remove_settled(id, &[again], &[]).await.unwrap();
    let (last, _) = reserved(store.reserve(&buy(id, "bob", 1, None)).await.unwrap());
    store.remove_settled(id, &[last], &[]).await.unwrap();
    assert!(store
        .retire_if_finished(id, EpochMs::now(), Duration::from_secs(60))
        .await
        .unwrap());
    assert!(!store.sales().await.unwrap().contains(id));
}

fn order(sale: &SaleId, buyer: &str, at: i64, key: Option<&str>, round: u32) -> OrderMessage {
    OrderMessage {
        v: ORDER_MESSAGE_VERSION,
        order_id: Uuid::now_v7(),
        sale_id: sale.clone(),
        buyer: BuyerId::parse(buyer).unwrap(),
        quantity: Quantity::default(),
        reserved_at_ms: 1_795_773_600_000 + at,
        idempotency_key: key.map(|k| IdempotencyKey::parse(k).unwrap()),
        round,
        pay_by_ms: None,
    }
}

fn state_of(outcome: &std::collections::HashMap<Uuid, Settled>, id: Uuid) -> OrderStatus {
    match outcome.get(&id) {
        Some(Settled::Recorded(s)) => s.clone(),
        other => panic!("order {id}: {other:?}"),
    }
}

/// The ledger and its sale administration: sales created once, first come first served within
/// the stock, each order recorded once however often it arrives, a key's retry recorded as a
/// duplicate of its original, resets that archive a round, earlier rounds' orders rejected.
pub async fn ledger<L: Ledger + SaleLedger>(ledger: &L, id: &SaleId) {
    let def = sale(id, 2);
    assert!(matches!(
        ledger.create_sale(&def).await.unwrap(),
        CreateOutcome::Created
    ));
    assert!(matches!(
        ledger.create_sale(&def).await.unwrap(),
        CreateOutcome::AlreadyExists(_)
    ));
    let other = SaleDefinition {
        name: "another".into(),
        ..def.clone()
    };
    assert!(matches!(
        ledger.create_sale(&other).await.unwrap(),
        CreateOutcome::Conflict(_)
    ));

    let batch = [
        order(id, "carol", 3, None, 1),
        order(id, "alice", 1, None, 1),
        order(id, "bob", 2, None, 1),
    ];
    for _ in 0..2 {
        let outcome = ledger.settle_orders(&batch).await.unwrap();
        let states: Vec<OrderState> = batch
            .iter()
            .map(|o| state_of(&outcome, o.order_id).status)
            .collect();
        assert_eq!(
            states,
            [
                OrderState::Rejected,
                OrderState::Confirmed,
                OrderState::Confirmed
            ],
            "first come, first served, and the same again on a redelivery"
        );
    }
    let record = ledger.sale(id).await.unwrap().unwrap();
    assert_eq!(
        (
            record.confirmed_quantity,
            record.confirmed_orders,
            record.rejected_orders
        ),
        (2, 2, 1)
    );

    let (original, retry) = (
        order(id, "dave", 4, Some("k"), 1),
        order(id, "dave", 5, Some("k"), 1),
    );
    let outcome = ledger
        .settle_orders(&[retry.clone(), original.clone()])
        .await
        .unwrap();
    let dup = state_of(&outcome, retry.order_id);
    assert_eq!(
        (dup.status, dup.duplicate_of),
        (OrderState::Duplicate, Some(original.order_id))
    );
    assert_eq!(
        state_of(&outcome, original.order_id).status,
        OrderState::Rejected
    );

    let pending = [batch[1].order_id, Uuid::now_v7()];
    let held = ledger.ledger_of(id, &pending).await.unwrap().unwrap();
    assert_eq!(held.settled.len(), 1);
    assert!(held.settled.contains(&batch[1].order_id));
    let mut bought: Vec<(String, i64)> = held
        .bought
        .iter()
        .map(|(b, n)| (b.as_str().to_owned(), *n))
        .collect();
    bought.sort();
    assert_eq!(bought, [("alice".into(), 1), ("bob".into(), 1)]);
    assert_eq!(held.keys.len(), 1);
    assert_eq!(held.keys[0].order_id, original.order_id);

    let after = ledger.reset_sale(id, Some(3), 2).await.unwrap().unwrap();
    assert_eq!(after.stock, 3);
    let again = ledger.reset_sale(id, Some(4), 2).await.unwrap().unwrap();
    assert_eq!(
        again.stock, 3,
        "a repeated reset to the same round changes nothing"
    );
    assert!(
        ledger.reset_sale(id, None, 4).await.is_err(),
        "a reset that skips a round is refused"
    );
    let record = ledger.sale(id).await.unwrap().unwrap();
    assert_eq!((record.confirmed_quantity, record.round), (0, 2));
    let late = order(id, "erin", 6, None, 1);
    let outcome = ledger
        .settle_orders(std::slice::from_ref(&late))
        .await
        .unwrap();
    assert_eq!(
        state_of(&outcome, late.order_id).status,
        OrderState::Rejected
    );
    assert_eq!(
        ledger.sale(id).await.unwrap().unwrap().confirmed_quantity,
        0
    );
    let cancelled = order(id, "frank", 7, None, 1);
    for _ in 0..2 {
        let statuses = ledger
            .cancel_orders(std::slice::from_ref(&cancelled))
            .await
            .unwrap();
        assert_eq!(statuses.len(), 1);
        assert_eq!(statuses[0].status, OrderState::Rejected);
    }
    let outcome = ledger.settle_orders(&[batch[1].clone()]).await.unwrap();
    assert_eq!(
        state_of(&outcome, batch[1].order_id).status,
        OrderState::Confirmed,
        "an archived order still answers for its id"
    );
    let unknown = order(
        &SaleId::parse(&format!("{id}-none")).unwrap(),
        "x",
        0,
        None,
        1,
    );
    let outcome = ledger
        .settle_orders(std::slice::from_ref(&unknown))
        .await
        .unwrap();
    assert_eq!(outcome.get(&unknown.order_id), Some(&Settled::UnknownSale));
    assert!(ledger.sale(&unknown.sale_id).await.unwrap().is_none());
}

/// The status read model: what is written is read back, overwritten by a later write; an
/// unknown order reads as none.
pub async fn status<S: StatusStore>(store: &S, id: &SaleId) {
    let o = order(id, "alice", 0, None, 1);
    let confirmed = OrderStatus::of(&o, OrderState::Confirmed);
    assert!(store
        .put_all(std::slice::from_ref(&confirmed))
        .await
        .is_empty());
    assert_eq!(store.get(o.order_id).await.unwrap(), Some(confirmed));
    let rejected = OrderStatus::of(&o, OrderState::Rejected);
    assert!(store
        .put_all(std::slice::from_ref(&rejected))
        .await
        .is_empty());
    assert_eq!(store.get(o.order_id).await.unwrap(), Some(rejected));
    assert_eq!(store.get(Uuid::now_v7()).await.unwrap(), None);
}

/// The order queue takes messages now, many at once, and for later.
pub async fn publisher<P: OrderPublisher>(queue: &P) {
    queue.publish("contract-1").await.unwrap();
    let many: Vec<String> = (0..12).map(|i| format!("contract-many-{i}")).collect();
    assert!(queue.publish_many(&many).await.is_empty());
    assert!(queue
        .publish_later(&many[..2], Duration::from_secs(1))
        .await
        .is_empty());
}

#[cfg(test)]
mod on_memory {
    use super::*;
    use crate::adapters::memory::{MemoryLedger, MemoryQueue, MemoryStatus, MemoryStore};

    fn id() -> SaleId {
        SaleId::parse("contract-sale").unwrap()
    }

    #[tokio::test]
    async fn the_memory_store_keeps_the_reservation_outbox_and_sale_contract() {
        reservations(&MemoryStore::default(), &id()).await;
    }

    #[tokio::test]
    async fn the_memory_ledger_keeps_the_ledger_contract() {
        ledger(&MemoryLedger::default(), &id()).await;
    }

    #[tokio::test]
    async fn the_memory_status_store_keeps_the_status_contract() {
        status(&MemoryStatus::default(), &id()).await;
    }

    #[tokio::test]
    async fn the_memory_queue_keeps_the_publisher_contract() {
        let queue = MemoryQueue::default();
        publisher(&queue).await;
        assert_eq!(queue.sent().len(), 13);
    }
}
