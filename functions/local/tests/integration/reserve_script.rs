//! The reservation Lua script against a real Redis, and its agreement with the Rust rule and the
//! Rust definition of the order message.

use crate::helpers::*;
use flashflow::domain::{
    BuyerId, IdempotencyKey, OrderMessage, Quantity, Refusal, Reservation, ReserveRequest,
    ORDER_MESSAGE_VERSION,
};
use flashflow::ports::ReservationStore;
use flashflow_adapters::memory::MemoryStore;
use flashflow_adapters::redis::SaleKeys;
use fred::prelude::*;
use std::collections::HashMap;
use std::sync::Arc;
use uuid::Uuid;

fn request(
    sale: &flashflow::domain::SaleId,
    buyer: &str,
    qty: i64,
    key: Option<&str>,
) -> ReserveRequest {
    ReserveRequest {
        admission: None,
        order_id: Uuid::now_v7(),
        sale: sale.clone(),
        buyer: BuyerId::parse(buyer).unwrap(),
        quantity: Quantity::new(qty).unwrap(),
        idempotency_key: key.map(|k| IdempotencyKey::parse(k).unwrap()),
        signature: None,
    }
    .signed(&signer())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn contention_never_sells_more_than_the_stock_nor_past_the_per_user_limit() {
    let store = Arc::new(store().await);
    let def = loaded_sale(&store, 1_000, 2).await;
    let (tasks, attempts) = (64, 5_000);

    let mut handles = Vec::new();
    for t in 0..tasks {
        let (store, sale) = (Arc::clone(&store), def.id.clone());
        handles.push(tokio::spawn(async move {
            let mut won = 0u32;
            for i in 0..attempts {
                // 64 × 40 = 2,560 distinct buyers, each trying many times.
                let buyer = format!("b{t}-{}", i % 40);
                match store
                    .reserve(&request(&sale, &buyer, 1, None))
                    .await
                    .unwrap()
                {
                    Reservation::Reserved { .. } => won += 1,
                    Reservation::Refused(Refusal::SoldOut | Refusal::LimitReached { .. }) => {}
                    other => panic!("unexpected {other:?}"),
                }
            }
            won
        }));
    }
    let mut reserved = 0;
    for h in handles {
        reserved += h.await.unwrap();
    }
    assert_eq!(reserved, 1_000, "exactly the stock is reserved");

    let keys = SaleKeys::new(&def.id);
    let client = store.client();
    let remaining: i64 = client.hget(&keys.sale, "remaining").await.unwrap();
    assert_eq!(remaining, 0);
    let buyers: HashMap<String, i64> = client.hgetall(&keys.buyers).await.unwrap();
    assert!(
        buyers.values().all(|&n| n <= 2),
        "a buyer got more than the limit"
    );
    assert_eq!(buyers.values().sum::<i64>(), 1_000);
    let outbox = store.entries(&def.id).await.unwrap();
    assert_eq!(outbox.len(), 1_000, "every reservation is in the outbox");
    let quantity: u32 = outbox
        .iter()
        .map(|(_, body)| OrderMessage::parse(body).unwrap().quantity.get())
        .sum();
    assert_eq!(quantity, 1_000);
}

#[tokio::test]
async fn a_retried_idempotency_key_returns_the_same_order_and_takes_stock_once() {
    let store = store().await;
    let def = loaded_sale(&store, 10, 5).await;
    let first = store
        .reserve(&request(&def.id, "alice", 2, Some("k-1")))
        .await
        .unwrap();
    let Reservation::Reserved { order_id, .. } = first else {
        panic!("{first:?}")
    };
    for _ in 0..3 {
        let again = store
            .reserve(&request(&def.id, "alice", 2, Some("k-1")))
            .await
            .unwrap();
        assert_eq!(
            again,
            Reservation::Duplicate {
                order_id,
                state: None
            }
        );
    }
    // The same key from another buyer is another buyer's request.
    let bob = store
        .reserve(&request(&def.id, "bob", 1, Some("k-1")))
        .await
        .unwrap();
    assert!(matches!(bob, Reservation::Reserved { .. }));
    assert_eq!(
        store.live_sale(&def.id).await.unwrap().unwrap().remaining,
        7
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_retries_of_one_key_reserve_one_order() {
    let store = Arc::new(store().await);
    let def = loaded_sale(&store, 100, 1).await;
    let mut handles = Vec::new();
    for _ in 0..32 {
        let (store, sale) = (Arc::clone(&store), def.id.clone());
        handles.push(tokio::spawn(async move {
            match store
                .reserve(&request(&sale, "carol", 1, Some("same")))
                .await
                .unwrap()
            {
                Reservation::Reserved { order_id, .. }
                | Reservation::Duplicate { order_id, .. } => order_id,
                other => panic!("{other:?}"),
            }
        }));
    }
    let mut ids = Vec::new();
    for h in handles {
        ids.push(h.await.unwrap());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "all retries see one order id");
    assert_eq!(
        store.live_sale(&def.id).await.unwrap().unwrap().remaining,
        99
    );
}

#[tokio::test]
async fn the_order_message_in_the_outbox_carries_every_field() {
    let store = store().await;
    let def = loaded_sale(&store, 5, 3).await;
    let req = request(&def.id, "dave", 3, Some("idem-9"));
    let Reservation::Reserved {
        order_id, message, ..
    } = store.reserve(&req).await.unwrap()
    else {
        panic!()
    };
    let msg = OrderMessage::parse(&message).unwrap();
    assert_eq!(msg.order_id, order_id);
    assert_eq!(msg.sale_id, def.id);
    assert_eq!(msg.buyer.as_str(), "dave");
    assert_eq!(msg.quantity.get(), 3);
    assert_eq!(
        msg.idempotency_key.as_ref().map(|k| k.as_str()),
        Some("idem-9")
    );
    assert!(msg.reserved_at_ms > 1_700_000_000_000);
    assert_eq!(
        store.entries(&def.id).await.unwrap(),
        vec![(order_id.to_string(), message)]
    );
}

#[tokio::test]
async fn refusals_take_nothing() {
    let store = store().await;
    let def = loaded_sale(&store, 3, 2).await;
    let r = |buyer: &str, q| request(&def.id, buyer, q, None);

    assert_eq!(
        store.reserve(&r("erin", 3)).await.unwrap(),
        Reservation::Refused(Refusal::LimitReached { allowance: 2 })
    );
    assert!(matches!(
        store.reserve(&r("erin", 2)).await.unwrap(),
        Reservation::Reserved { .. }
    ));
    assert_eq!(
        store.reserve(&r("frank", 2)).await.unwrap(),
        Reservation::Refused(Refusal::InsufficientStock { remaining: 1 })
    );
    assert!(matches!(
        store.reserve(&r("frank", 1)).await.unwrap(),
        Reservation::Reserved { .. }
    ));
    assert_eq!(
        store.reserve(&r("gina", 1)).await.unwrap(),
        Reservation::Refused(Refusal::SoldOut)
    );
    let unknown = fresh_sale_id();
    assert_eq!(
        store
            .reserve(&request(&unknown, "gina", 1, None))
            .await
            .unwrap(),
        Reservation::Refused(Refusal::UnknownSale)
    );
    let live = store.live_sale(&def.id).await.unwrap().unwrap();
    assert_eq!((live.remaining, live.pending), (0, 2));
}

#[tokio::test]
async fn buys_outside_the_sale_window_are_refused() {
    let store = store().await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let mut later = sale(&fresh_sale_id(), 5, 1);
    later.opens_at_ms = Some(now + 3_600_000);
    store.load_sale(&later, 5).await.unwrap();
    assert_eq!(
        store
            .reserve(&request(&later.id, "h", 1, None))
            .await
            .unwrap(),
        Reservation::Refused(Refusal::NotOpen {
            opens_at_ms: now + 3_600_000
        })
    );
    let mut over = sale(&fresh_sale_id(), 5, 1);
    over.opens_at_ms = Some(now - 7_200_000);
    over.closes_at_ms = Some(now - 3_600_000);
    store.load_sale(&over, 5).await.unwrap();
    assert!(matches!(
        store
            .reserve(&request(&over.id, "h", 1, None))
            .await
            .unwrap(),
        Reservation::Refused(Refusal::Closed { .. })
    ));
    assert_eq!(
        store.live_sale(&later.id).await.unwrap().unwrap().remaining,
        5
    );
    assert_eq!(
        store.live_sale(&over.id).await.unwrap().unwrap().remaining,
        5
    );
}

/// Found by schemathesis: a sale opening in the year 9999 (a valid RFC 3339 time) made every buy
/// a 500, Lua writing the opening's milliseconds with an exponent.
#[tokio::test]
async fn a_sale_opening_far_in_the_future_is_refused_as_not_open_not_failed() {
    let store = store().await;
    let far = flashflow::domain::timefmt::parse_ms("9999-12-31T23:59:59Z", "", "").unwrap();
    let mut def = sale(&fresh_sale_id(), 5, 1);
    def.opens_at_ms = Some(far);
    store.load_sale(&def, 5).await.unwrap();
    assert_eq!(
        store
            .reserve(&request(&def.id, "h", 1, None))
            .await
            .unwrap(),
        Reservation::Refused(Refusal::NotOpen { opens_at_ms: far })
    );
    let mut closed = sale(&fresh_sale_id(), 5, 1);
    closed.opens_at_ms = Some(far - 2_000);
    closed.closes_at_ms = Some(far - 1_000);
    store.load_sale(&closed, 5).await.unwrap();
    assert!(matches!(
        store
            .reserve(&request(&closed.id, "h", 1, None))
            .await
            .unwrap(),
        Reservation::Refused(Refusal::NotOpen { .. })
    ));
}

#[tokio::test]
async fn the_script_survives_a_flushed_script_cache() {
    let store = store().await;
    let def = loaded_sale(&store, 2, 2).await;
    let _: () = store.client().script_flush(false).await.unwrap();
    assert!(matches!(
        store
            .reserve(&request(&def.id, "ivan", 1, None))
            .await
            .unwrap(),
        Reservation::Reserved { .. }
    ));
}

#[tokio::test]
async fn reloading_a_live_sale_does_not_hand_out_its_stock_again() {
    let store = store().await;
    let def = loaded_sale(&store, 2, 2).await;
    store
        .reserve(&request(&def.id, "jo", 2, None))
        .await
        .unwrap();
    assert!(!store.load_sale(&def, 2).await.unwrap(), "already loaded");
    assert_eq!(
        store
            .reserve(&request(&def.id, "kim", 1, None))
            .await
            .unwrap(),
        Reservation::Refused(Refusal::SoldOut)
    );
}

#[tokio::test]
async fn the_script_writes_exactly_the_fields_and_version_of_the_rust_order_message() {
    let store = store().await;
    let def = loaded_sale(&store, 5, 3).await;
    for key in [Some("k-1"), None] {
        let req = request(&def.id, "lee", 1, key);
        let Reservation::Reserved { message, .. } = store.reserve(&req).await.unwrap() else {
            panic!()
        };
        let from_lua: serde_json::Value = serde_json::from_str(&message).unwrap();
        let parsed = OrderMessage::parse(&message).unwrap();
        let from_rust: serde_json::Value = serde_json::from_str(&parsed.to_json()).unwrap();
        assert_eq!(from_lua, from_rust, "same fields, same values");
        assert_eq!(from_lua["v"], ORDER_MESSAGE_VERSION);
    }
}

/// One step of a reservation scenario: buyer, quantity, idempotency key.
struct Step(&'static str, i64, Option<&'static str>);

/// What a reservation answered, without the ids that differ between stores.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Reserved,
    Duplicate,
    KeyReused,
    Refused(Refusal),
}

async fn run<S: ReservationStore>(
    store: &S,
    sale: &flashflow::domain::SaleId,
    steps: &[Step],
) -> Vec<Outcome> {
    let mut out = Vec::new();
    for Step(buyer, qty, key) in steps {
        out.push(
            match store
                .reserve(&request(sale, buyer, *qty, *key))
                .await
                .unwrap()
            {
                Reservation::Reserved { .. } => Outcome::Reserved,
                Reservation::Duplicate { .. } => Outcome::Duplicate,
                Reservation::Refused(Refusal::KeyReused { .. }) => Outcome::KeyReused,
                Reservation::Refused(r) => Outcome::Refused(r),
            },
        );
    }
    out
}

#[tokio::test]
async fn the_lua_script_and_the_rust_rule_answer_every_step_alike() {
    let steps = [
        Step("a", 2, Some("k")),
        Step("a", 2, Some("k")),
        Step("a", 2, None),
        Step("a", 1, None),
        Step("b", 3, None),
        Step("b", 2, None),
        Step("c", 1, Some("k")),
        Step("c", 1, None),
        Step("d", 1, None),
        Step("a", 1, Some("k")),
        Step("a", 3, Some("k")),
        Step("a", 2, Some("k")),
    ];
    let redis = store().await;
    let def = loaded_sale(&redis, 5, 3).await;
    let memory = MemoryStore::default();
    memory.load_sale_now(&def, 5);
    let from_lua = run(&redis, &def.id, &steps).await;
    assert_eq!(from_lua, run(&memory, &def.id, &steps).await);
    assert_eq!(
        from_lua,
        vec![
            Outcome::Reserved,
            Outcome::Duplicate,
            Outcome::Refused(Refusal::LimitReached { allowance: 1 }),
            Outcome::Reserved,
            Outcome::Refused(Refusal::InsufficientStock { remaining: 2 }),
            Outcome::Reserved,
            Outcome::Refused(Refusal::SoldOut),
            Outcome::Refused(Refusal::SoldOut),
            Outcome::Refused(Refusal::SoldOut),
            Outcome::KeyReused,
            Outcome::KeyReused,
            Outcome::Duplicate,
        ]
    );
    let unknown = fresh_sale_id();
    assert_eq!(
        run(&redis, &unknown, &steps[..1]).await,
        run(&memory, &unknown, &steps[..1]).await
    );
}
