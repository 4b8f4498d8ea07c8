//! The sold-out fast path on the real Redis: sales answered from memory once sold out or closed,
//! woken by `CLIENT TRACKING` invalidations (or by the age bound alone), never answering a
//! retried key with anything but its order. (Checkout's cancel waking a sale is in
//! `checkout.rs`.)

use crate::helpers::*;
use flashflow::domain::{BuyerId, Quantity, Reservation, ReserveRequest, SaleDefinition};
use flashflow::ports::{ReservationStore, ResetStart};
use flashflow_adapters::redis::RedisStore;
use std::time::{Duration, Instant};

struct Shop {
    app: TestApp,
}

impl Shop {
    async fn new(store: RedisStore) -> Self {
        let mut app = TestApp::new().await;
        app.store = store;
        Self { app }
    }

    fn answered(&self) -> u64 {
        self.app.store.sold_out_cache().unwrap().answered()
    }

    async fn error(&self, def: &SaleDefinition, buyer: &str) -> String {
        let a = self.app.buy(def, buyer).await;
        assert!(matches!(a.status, 403 | 409), "{:?}", a.body);
        a.body["error"].as_str().unwrap().to_owned()
    }

    /// A new round with the full stock (`begin_reset.lua`, then `finish_reset.lua`).
    async fn restock(&self, def: &SaleDefinition) {
        let start = self.app.store.begin_reset(&def.id, 2, true).await.unwrap();
        assert!(matches!(start, ResetStart::Frozen { round: 2, .. }));
        self.app.store.finish_reset(def, 2).await.unwrap();
    }

    /// Sell the sale's one unit, then learn it sold out.
    async fn sold_out(&self) -> SaleDefinition {
        let def = self.app.sale(1, 1).await;
        assert_eq!(self.app.buy(&def, "first").await.status, 202);
        assert_eq!(self.error(&def, "second").await, "sold_out");
        learn_young(&self.app, &def).await;
        def
    }
}

#[tokio::test]
async fn a_sold_out_sale_is_answered_from_memory_and_a_restocked_unit_is_bought_by_the_next_request_after_the_invalidation(
) {
    let shop = Shop::new(store_with_fast_path(true, Duration::from_secs(1)).await).await;
    let def = shop.sold_out().await;
    let before = shop.answered();
    for i in 0..20 {
        assert_eq!(shop.error(&def, &format!("late-{i}")).await, "sold_out");
    }
    assert_eq!(shop.answered() - before, 20, "no round trip for these");

    // A restock (a reset to the next round) writes the wake key: the push makes the process
    // forget the sale.
    let age = learn_young(&shop.app, &def).await;
    let news = Instant::now();
    shop.restock(&def).await;
    assert_forgotten_by_news(&shop.app.store, &def.id, age, news).await;
    assert_eq!(shop.app.buy(&def, "woken").await.status, 202);
}

#[tokio::test]
async fn without_tracking_a_returned_unit_is_offered_again_within_the_age_bound() {
    let shop = Shop::new(store_with_fast_path(false, Duration::from_secs(1)).await).await;
    let def = shop.sold_out().await;
    shop.restock(&def).await;
    let restocked = Instant::now();
    // Nothing tells this process: the entry still says sold out, but only for its age.
    let before = shop.answered();
    assert_eq!(shop.error(&def, "early").await, "sold_out");
    assert_eq!(shop.answered(), before + 1, "answered from memory");
    wait_for_cached(&shop.app.store, &def.id, false).await;
    assert!(restocked.elapsed() <= Duration::from_millis(1_100));
    assert_eq!(shop.app.buy(&def, "woken").await.status, 202);
}

#[tokio::test]
async fn a_buyer_retrying_a_key_that_bought_gets_the_order_and_a_new_key_gets_sold_out_from_memory()
{
    let shop = Shop::new(store_with_fast_path(true, Duration::from_secs(1)).await).await;
    let def = shop.app.sale(1, 1).await;
    let first = shop.app.buy_with_key(&def, "ada", "k-1").await;
    assert_eq!(first.status, 202);
    assert_eq!(shop.error(&def, "bob").await, "sold_out");
    learn_young(&shop.app, &def).await;

    let before = shop.answered();
    let again = shop.app.buy_with_key(&def, "ada", "k-1").await;
    assert_eq!(again.status, 202, "{:?}", again.body);
    assert_eq!(again.body["order_id"], first.body["order_id"]);
    assert_eq!(shop.answered(), before, "the known key went to the script");

    let other = shop.app.buy_with_key(&def, "bob", "k-9").await;
    assert_eq!(other.body["error"], "sold_out");
    assert_eq!(
        shop.answered(),
        before + 1,
        "a new key is answered from memory"
    );
}

#[tokio::test]
async fn a_closed_sale_is_answered_closed_from_memory_and_a_reset_reopens_it() {
    let shop = Shop::new(store_with_fast_path(true, Duration::from_secs(1)).await).await;
    let mut def = sale(&fresh_sale_id(), 5, 1);
    def.closes_at_ms = Some(1_000); // long closed
    shop.app.db.create_sale(&def).await.unwrap();
    shop.app.store.load_sale(&def, 5).await.unwrap();
    assert_eq!(shop.error(&def, "a").await, "sale_closed");
    learn_young(&shop.app, &def).await;
    let before = shop.answered();
    assert_eq!(shop.error(&def, "b").await, "sale_closed");
    assert_eq!(shop.answered(), before + 1);

    // Reopened by the operator's rehydrate with a new window: the push wakes it.
    def.closes_at_ms = None;
    let age = learn_young(&shop.app, &def).await;
    let news = Instant::now();
    shop.app.store.load_sale(&def, 5).await.unwrap();
    assert_forgotten_by_news(&shop.app.store, &def.id, age, news).await;
    assert_eq!(shop.app.buy(&def, "c").await.status, 202);
}

#[tokio::test]
async fn an_in_doubt_retry_of_the_order_that_took_the_last_unit_answers_its_reservation_not_sold_out(
) {
    let shop = Shop::new(store_with_fast_path(true, Duration::from_secs(1)).await).await;
    let def = shop.app.sale(1, 1).await;
    // The first ask takes the last unit, and its answer is lost on the way back (buy then asks
    // again with the same order id: `reserve_until_known`).
    let first = ReserveRequest {
        admission: None,
        order_id: uuid::Uuid::now_v7(),
        sale: def.id.clone(),
        buyer: BuyerId::parse("ada").unwrap(),
        quantity: Quantity::default(),
        idempotency_key: None,
        signature: None,
    }
    .signed(&signer());
    let store = &shop.app.store;
    assert!(matches!(
        store.reserve(&first).await,
        Ok(Reservation::Reserved { .. })
    ));
    // Meanwhile the process learns that the sale is sold out.
    assert_eq!(shop.error(&def, "bob").await, "sold_out");
    learn_young(&shop.app, &def).await;
    match store.reserve(&first).await {
        Ok(Reservation::Reserved { order_id, .. }) => assert_eq!(order_id, first.order_id),
        other => panic!("the retry must answer the order's reservation, not {other:?}"),
    }
}
