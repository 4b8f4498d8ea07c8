//! Unit tests of [`super`] on the in-memory adapters.

use super::*;
use flashflow::domain::{BuyerId, Quantity, Reservation, ReserveRequest};
use flashflow::ports::{LiveSales, ReservationStore};
use flashflow_adapters::memory::{MemoryQueue, MemoryStore};
use std::time::Duration;

fn timing() -> SweepTiming {
    SweepTiming {
        grace: Millis::ms(0),
        in_queue_for: Millis::secs(3600),
        ..SweepTiming::default()
    }
}

async fn reserve(store: &MemoryStore, sale: &SaleId, buyer: &str) -> uuid::Uuid {
    let req = ReserveRequest {
        admission: None,
        order_id: uuid::Uuid::now_v7(),
        sale: sale.clone(),
        buyer: BuyerId::parse(buyer).unwrap(),
        quantity: Quantity::default(),
        idempotency_key: None,
        signature: None,
    };
    match store.reserve(&req).await.unwrap() {
        Reservation::Reserved { order_id, .. } => order_id,
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn the_sweeper_resends_an_unsent_reservation_once_and_leaves_it_until_its_mark_runs_out() {
    let (store, queue) = (MemoryStore::default(), MemoryQueue::default());
    let def = flashflow_adapters::contract::sale(&SaleId::parse("sweep").unwrap(), 2);
    store.load_sale_now(&def, 2);
    let order = reserve(&store, &def.id, "a").await;
    tokio::time::sleep(Duration::from_millis(2)).await;
    let first = sweep(&store, &queue, timing()).await.unwrap();
    assert_eq!((first.sales, first.resent, first.send_failed), (1, 1, 0));
    assert_eq!(queue.sent().len(), 1);
    assert!(queue.sent()[0].contains(&order.to_string()));
    let second = sweep(&store, &queue, timing()).await.unwrap();
    assert_eq!(second.resent, 0, "marked in the queue: not sent again");
}

#[tokio::test]
async fn a_failed_resend_is_retried_by_the_next_sweep() {
    let (store, queue) = (MemoryStore::default(), MemoryQueue::default());
    let def = flashflow_adapters::contract::sale(&SaleId::parse("sweep-down").unwrap(), 2);
    store.load_sale_now(&def, 2);
    reserve(&store, &def.id, "a").await;
    tokio::time::sleep(Duration::from_millis(2)).await;
    queue.set_unavailable(true);
    let down = sweep(&store, &queue, timing()).await.unwrap();
    assert_eq!((down.resent, down.send_failed), (0, 1));
    queue.set_unavailable(false);
    let up = sweep(&store, &queue, timing()).await.unwrap();
    assert_eq!(up.resent, 1);
}

#[tokio::test]
async fn a_sold_out_sale_with_nothing_pending_is_retired_and_a_live_one_is_kept() {
    let (store, queue) = (MemoryStore::default(), MemoryQueue::default());
    let done = flashflow_adapters::contract::sale(&SaleId::parse("sold-out").unwrap(), 1);
    let live = flashflow_adapters::contract::sale(&SaleId::parse("live").unwrap(), 5);
    store.load_sale_now(&done, 0);
    store.load_sale_now(&live, 5);
    let report = sweep(&store, &queue, timing()).await.unwrap();
    assert_eq!((report.sales, report.retired), (2, 1));
    assert_eq!(store.sales().await.unwrap(), vec![live.id]);
}
