//! Unit tests of [`super`] on the in-memory adapters.

use super::*;
use flashflow::domain::{BuyerId, Quantity, Reservation, ReserveRequest, SaleDefinition};
use flashflow::ports::prelude::*;
use flashflow_adapters::memory::{MemoryLedger, MemoryStatus, MemoryStore};

struct World {
    ledger: MemoryLedger,
    store: MemoryStore,
    status: MemoryStatus,
    def: SaleDefinition,
}

async fn world(stock: u32) -> World {
    let def = flashflow_adapters::contract::sale(&SaleId::parse("admin-sale").unwrap(), stock);
    let w = World {
        ledger: MemoryLedger::default(),
        store: MemoryStore::default(),
        status: MemoryStatus::default(),
        def,
    };
    w.ledger.create_sale(&w.def).await.unwrap();
    rehydrate(&w.ledger, &w.store, &w.def.id).await.unwrap();
    w
}

async fn buy(w: &World, buyer: &str) -> Reservation {
    let req = ReserveRequest {
        admission: None,
        order_id: uuid::Uuid::now_v7(),
        sale: w.def.id.clone(),
        buyer: BuyerId::parse(buyer).unwrap(),
        quantity: Quantity::default(),
        idempotency_key: None,
        signature: None,
    };
    w.store.reserve(&req).await.unwrap()
}

#[tokio::test]
async fn a_cache_that_lost_the_sale_is_rebuilt_from_the_ledger_with_each_buyers_count() {
    use flashflow::ports::Ledger;
    let w = world(3).await;
    let Reservation::Reserved { message, .. } = buy(&w, "a").await else {
        panic!("reserved");
    };
    let settled = flashflow::domain::OrderMessage::parse(&message).unwrap();
    w.ledger.settle_orders(&[settled]).await.unwrap();
    w.store.flush();
    let done = rehydrate(&w.ledger, &w.store, &w.def.id).await.unwrap();
    assert!(done.loaded_anew);
    assert_eq!((done.remaining, done.buyers), (2, 1));
    assert!(
        matches!(buy(&w, "a").await, Reservation::Refused(_)),
        "the buyer's limit survived the loss"
    );
    let again = rehydrate(&w.ledger, &w.store, &w.def.id).await.unwrap();
    assert!(!again.loaded_anew, "a live sale is not loaded anew");
}

#[tokio::test]
async fn a_rebuild_of_a_live_sale_never_hands_out_its_pending_stock_again() {
    let w = world(2).await;
    assert!(matches!(buy(&w, "a").await, Reservation::Reserved { .. }));
    let done = rehydrate(&w.ledger, &w.store, &w.def.id).await.unwrap();
    assert_eq!((done.remaining, done.pending), (1, 1));
    assert_eq!(w.store.remaining(&w.def.id), Some(1));
}

#[tokio::test]
async fn a_reset_is_refused_while_orders_are_pending_and_a_forced_one_records_them() {
    let w = world(2).await;
    assert!(matches!(buy(&w, "a").await, Reservation::Reserved { .. }));
    let refused = reset(&w.ledger, &w.store, &w.status, &w.def.id, None, false).await;
    assert!(matches!(
        refused,
        Err(AdminError::Pending { pending: 1, .. })
    ));
    assert_eq!(w.ledger.sale(&w.def.id).await.unwrap().unwrap().round, 1);
    let done = reset(&w.ledger, &w.store, &w.status, &w.def.id, Some(5), true)
        .await
        .unwrap();
    assert_eq!(
        (done.round, done.cancelled, done.status_write_failures),
        (2, 1, 0)
    );
    assert_eq!(w.status.len(), 1, "the cancelled order's status is written");
    let live = w.store.live_sale(&w.def.id).await.unwrap().unwrap();
    assert_eq!((live.stock, live.remaining, live.pending), (5, 5, 0));
}

#[tokio::test]
async fn a_reset_stopped_after_the_freeze_takes_no_buys_and_running_it_again_finishes_it() {
    let w = world(2).await;
    let Reservation::Reserved { order_id, .. } = buy(&w, "a").await else {
        panic!("reserved");
    };
    // A forced reset that died after its first step.
    let started = w.store.begin_reset(&w.def.id, 2, true).await.unwrap();
    assert!(matches!(started, ResetStart::Frozen { round: 2, ref dropped } if dropped.len() == 1));
    let req = ReserveRequest {
        admission: None,
        order_id: uuid::Uuid::now_v7(),
        sale: w.def.id.clone(),
        buyer: BuyerId::parse("b").unwrap(),
        quantity: Quantity::default(),
        idempotency_key: None,
        signature: None,
    };
    assert!(
        matches!(w.store.reserve(&req).await, Err(StoreError::Unavailable(_))),
        "a frozen sale takes no buy"
    );
    // Run again (even unforced): it resumes the reset under way.
    let done = reset(&w.ledger, &w.store, &w.status, &w.def.id, None, false)
        .await
        .unwrap();
    assert_eq!((done.round, done.cancelled), (2, 1));
    assert_eq!(
        w.status.get(order_id).await.unwrap().unwrap().status,
        flashflow::domain::OrderState::Rejected,
        "the order moved aside is recorded"
    );
    assert!(matches!(
        w.store.reserve(&req).await,
        Ok(Reservation::Reserved { .. })
    ));
}

#[tokio::test]
async fn a_reset_stopped_after_the_ledger_moved_resumes_in_the_same_round() {
    let w = world(2).await;
    assert!(matches!(buy(&w, "a").await, Reservation::Reserved { .. }));
    w.store.begin_reset(&w.def.id, 2, true).await.unwrap();
    w.ledger
        .reset_sale(&w.def.id, None, 2)
        .await
        .unwrap()
        .started()
        .unwrap();
    let done = reset(&w.ledger, &w.store, &w.status, &w.def.id, None, true)
        .await
        .unwrap();
    assert_eq!((done.round, done.cancelled), (2, 1), "not a second round");
    assert_eq!(w.ledger.sale(&w.def.id).await.unwrap().unwrap().round, 2);
    let live = w.store.live_sale(&w.def.id).await.unwrap().unwrap();
    assert_eq!((live.remaining, live.pending), (2, 0));
}

#[tokio::test]
async fn a_reset_that_is_not_forced_changes_nothing_while_an_order_is_pending() {
    let w = world(2).await;
    assert!(matches!(buy(&w, "a").await, Reservation::Reserved { .. }));
    assert!(matches!(
        reset(&w.ledger, &w.store, &w.status, &w.def.id, None, false).await,
        Err(AdminError::Pending { .. })
    ));
    assert!(
        matches!(buy(&w, "b").await, Reservation::Reserved { .. }),
        "not frozen: buys go on"
    );
    assert_eq!(w.store.outbox(&w.def.id).len(), 2);
}

#[tokio::test]
async fn operator_work_on_an_unknown_sale_is_not_found() {
    let w = world(1).await;
    let other = SaleId::parse("nobody").unwrap();
    assert!(matches!(
        rehydrate(&w.ledger, &w.store, &other).await,
        Err(AdminError::NotFound(_))
    ));
    assert!(matches!(
        reset(&w.ledger, &w.store, &w.status, &other, None, true).await,
        Err(AdminError::NotFound(_))
    ));
}
