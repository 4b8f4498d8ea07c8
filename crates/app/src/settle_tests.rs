//! Unit tests of [`super`] on the in-memory adapters.

use super::*;
use flashflow::domain::{BuyerId, Quantity, SaleDefinition, ORDER_MESSAGE_VERSION};
use flashflow_adapters::memory::{
    LedgerCounts, MemoryLedger, MemoryQueue, MemoryStatus, MemoryStore,
};

const T0: i64 = 1_795_773_600_000;

struct Fixture {
    settler: Settler<MemoryLedger, MemoryStatus, MemoryStore, MemoryQueue>,
    ledger: MemoryLedger,
    status: MemoryStatus,
    store: MemoryStore,
    queue: MemoryQueue,
    sale: SaleId,
}

fn fixture(stock: u32) -> Fixture {
    let def = SaleDefinition::new(SaleId::parse("s").unwrap(), stock)
        .with_name("s")
        .with_limit(100);
    let (ledger, status) = (MemoryLedger::default(), MemoryStatus::default());
    let (queue, store) = (MemoryQueue::default(), MemoryStore::default());
    ledger.create_sale_now(&def);
    Fixture {
        settler: Settler::new(
            ledger.clone(),
            status.clone(),
            store.clone(),
            queue.clone(),
            signer(),
        ),
        ledger,
        status,
        store,
        queue,
        sale: def.id,
    }
}

/// An order of `sale` reserved `at` ms after T0, signed as buy signs it.
fn order(sale: &str, at: i64) -> String {
    let order = OrderMessage {
        v: ORDER_MESSAGE_VERSION,
        order_id: Uuid::now_v7(),
        sale_id: SaleId::parse(sale).unwrap(),
        buyer: BuyerId::parse("b").unwrap(),
        quantity: Quantity::default(),
        reserved_at_ms: T0 + at,
        idempotency_key: None,
        round: 1,
        pay_by_ms: None,
        sig: None,
    };
    signer().signed(order).to_json()
}

/// What the ledger should hold: confirmed orders, rejected orders, confirmed quantity.
fn counts(confirmed: usize, rejected: usize, quantity: u32) -> LedgerCounts {
    LedgerCounts {
        confirmed_orders: confirmed,
        rejected_orders: rejected,
        confirmed_quantity: quantity,
    }
}

fn signer() -> Signer {
    Signer::new(b"unit-test-order-signing-key-0123456789").unwrap()
}

/// A batch of `bodies` as the queue delivers it.
fn event(bodies: &[String]) -> (Vec<Delivered>, Vec<String>) {
    let ids: Vec<String> = (0..bodies.len()).map(|i| format!("m{i}")).collect();
    let batch = bodies
        .iter()
        .zip(&ids)
        .map(|(b, id)| Delivered {
            id: id.clone(),
            body: Some(b.clone()),
        })
        .collect();
    (batch, ids)
}

/// `body` with its signature replaced: `None` removes it.
fn resigned(body: &str, sig: Option<String>) -> String {
    let mut m = OrderMessage::parse(body).unwrap();
    m.sig = sig;
    m.to_json()
}

#[tokio::test]
async fn a_message_not_signed_by_buy_is_never_confirmed_and_takes_no_stock() {
    let f = fixture(1);
    // A made-up order, unsigned; one signed with another key; a signed order whose quantity
    // was altered after; and a real order's entry copied under a new id and another buyer.
    let other = Signer::new(b"someone-else's-key-0123456789abcdef").unwrap();
    let unsigned = resigned(&order("s", 0), None);
    let theirs = other
        .signed(OrderMessage::parse(&order("s", 1)).unwrap())
        .to_json();
    let altered = order("s", 2).replace("\"quantity\":1", "\"quantity\":2");
    let mut copy = OrderMessage::parse(&order("s", 4)).unwrap();
    copy.order_id = Uuid::now_v7();
    copy.buyer = BuyerId::parse("mallory").unwrap();
    let (mut ev, ids) = event(&[unsigned, theirs, altered, copy.to_json()]);
    let (mut good, good_ids) = event(&[order("s", 3)]);
    good[0].id = "good".into();
    ev.append(&mut good);
    let report = f.settler.settle(ev).await;
    assert_eq!(report.failed, ids);
    assert_eq!(report.confirmed, 1, "only the signed order of {good_ids:?}");
    assert_eq!(f.ledger.counts(&f.sale), counts(1, 0, 1));
}

#[tokio::test]
async fn the_same_batch_delivered_twice_records_each_order_once() {
    let f = fixture(10);
    let bodies: Vec<String> = (0..5).map(|i| order("s", i)).collect();
    for _ in 0..2 {
        assert!(f.settler.settle(event(&bodies).0).await.failed.is_empty());
    }
    assert_eq!(f.ledger.counts(&f.sale), counts(5, 0, 5));
    assert_eq!(f.status.len(), 5);
}

#[tokio::test]
async fn a_poison_message_fails_alone() {
    let f = fixture(10);
    let mut bodies: Vec<String> = (0..4).map(|i| order("s", i)).collect();
    bodies.insert(2, "not an order".into());
    let (ev, ids) = event(&bodies);
    let report = f.settler.settle(ev).await;
    assert_eq!(report.failed, vec![ids[2].clone()]);
    assert_eq!(report.confirmed, 4);
}

#[tokio::test]
async fn orders_past_the_stock_are_rejected_and_unknown_sales_fail() {
    let f = fixture(1);
    let (ev, ids) = event(&[order("s", 2), order("s", 1), order("other", 0)]);
    let report = f.settler.settle(ev).await;
    assert_eq!((report.confirmed, report.rejected), (1, 1));
    assert_eq!(report.failed, vec![ids[2].clone()]);
    assert_eq!(f.ledger.counts(&f.sale), counts(1, 1, 1));
}

fn order_by(buyer: &str, at: i64) -> String {
    order("s", at).replace("\"buyer\":\"b\"", &format!("\"buyer\":\"{buyer}\""))
}

#[tokio::test]
async fn an_order_the_ledger_refuses_fails_alone_and_the_rest_of_its_batch_settles_at_once() {
    let f = fixture(100);
    f.ledger.refuse_buyer("bad");
    let mut bodies: Vec<String> = (0..10).map(|i| order("s", i)).collect();
    bodies[6] = order_by("bad", 6);
    let (ev, ids) = event(&bodies);
    let report = f.settler.settle(ev).await;
    assert_eq!(report.failed, vec![ids[6].clone()]);
    assert_eq!((report.confirmed, report.rejected), (9, 0));
    assert_eq!(f.ledger.counts(&f.sale), counts(9, 0, 9));
    assert!(
        f.ledger.calls() <= 1 + 2 * 4,
        "bisecting 10 takes a few calls, not one per order"
    );
}

#[tokio::test]
async fn two_refused_orders_in_one_batch_fail_and_only_they() {
    let f = fixture(100);
    f.ledger.refuse_buyer("bad");
    let mut bodies: Vec<String> = (0..7).map(|i| order("s", i)).collect();
    bodies[0] = order_by("bad", 0);
    bodies[5] = order_by("bad", 5);
    let (ev, ids) = event(&bodies);
    let mut failed = f.settler.settle(ev).await.failed;
    failed.sort();
    let mut want = vec![ids[0].clone(), ids[5].clone()];
    want.sort();
    assert_eq!(failed, want);
    assert_eq!(f.ledger.counts(&f.sale), counts(5, 0, 5));
}

#[tokio::test]
async fn when_the_ledger_is_down_the_batch_goes_back_to_the_queue_for_later_not_to_the_dlq() {
    let f = fixture(10);
    f.ledger.set_unavailable(true);
    let bodies = [order("s", 0), order("s", 1)];
    let report = f.settler.settle(event(&bodies).0).await;
    assert_eq!((report.failed.len(), report.requeued), (0, 2));
    let later: Vec<String> = f.queue.later().into_iter().map(|(m, _)| m).collect();
    assert_eq!(later, bodies);
    assert!(f.status.is_empty());
    assert_eq!(f.ledger.calls(), 1, "an unavailable ledger is not bisected");
}

#[tokio::test]
async fn when_neither_the_ledger_nor_the_queue_takes_the_batch_every_message_fails() {
    let f = fixture(10);
    f.ledger.set_unavailable(true);
    f.queue.set_unavailable(true);
    let (ev, ids) = event(&[order("s", 0), order("s", 1)]);
    let mut failed = f.settler.settle(ev).await.failed;
    failed.sort();
    assert_eq!(failed, ids);
}

#[tokio::test]
async fn orders_whose_status_could_not_be_written_come_back_later_not_to_the_dlq() {
    let f = fixture(10);
    f.status.set_unavailable(true);
    let bodies = [order("s", 0)];
    let report = f.settler.settle(event(&bodies).0).await;
    assert_eq!((report.failed.len(), report.requeued), (0, 1));
    let later: Vec<String> = f.queue.later().into_iter().map(|(m, _)| m).collect();
    assert_eq!(later, bodies, "sent back for later");
    assert_eq!(
        f.ledger.counts(&f.sale),
        counts(1, 0, 1),
        "recorded once all the same"
    );
    // The store is back: the order comes again, is found recorded, and gets its status.
    f.status.set_unavailable(false);
    let report = f.settler.settle(event(&later).0).await;
    assert_eq!((report.failed.len(), report.requeued), (0, 0));
    assert_eq!(f.ledger.counts(&f.sale), counts(1, 0, 1), "still once");
    assert_eq!(f.status.len(), 1, "the status is written");
}

#[tokio::test]
async fn orders_whose_outbox_entry_could_not_be_removed_come_back_and_are_cleaned_then() {
    use flashflow::domain::{Reservation, ReserveRequest};
    use flashflow::ports::ReservationStore;
    let f = fixture(10);
    f.store
        .load_sale_now(&flashflow_adapters::contract::sale(&f.sale, 10), 10);
    let req = ReserveRequest {
        admission: None,
        order_id: Uuid::now_v7(),
        sale: f.sale.clone(),
        buyer: BuyerId::parse("b").unwrap(),
        quantity: Quantity::default(),
        idempotency_key: None,
        signature: None,
    }
    .signed(&signer());
    let Ok(Reservation::Reserved { message, .. }) = f.store.reserve(&req).await else {
        panic!("not reserved");
    };
    f.store.set_unavailable(true);
    let report = f
        .settler
        .settle(event(std::slice::from_ref(&message)).0)
        .await;
    assert_eq!((report.failed.len(), report.requeued), (0, 1));
    let later: Vec<String> = f.queue.later().into_iter().map(|(m, _)| m).collect();
    assert_eq!(later, [message], "sent back for later");
    assert_eq!(f.store.outbox(&f.sale).len(), 1, "the entry stayed");
    f.store.set_unavailable(false);
    let report = f.settler.settle(event(&later).0).await;
    assert_eq!((report.failed.len(), report.requeued), (0, 0));
    assert_eq!(f.ledger.counts(&f.sale), counts(1, 0, 1), "recorded once");
    assert!(
        f.store.outbox(&f.sale).is_empty(),
        "cleaned the second time"
    );
}

#[tokio::test]
async fn when_neither_the_status_store_nor_the_queue_takes_an_order_its_message_fails() {
    let f = fixture(10);
    f.status.set_unavailable(true);
    f.queue.set_unavailable(true);
    let (ev, ids) = event(&[order("s", 0)]);
    assert_eq!(f.settler.settle(ev).await.failed, ids);
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    /// A valid message with one field replaced by an arbitrary JSON value, or removed.
    fn mutated() -> impl Strategy<Value = String> {
        let fields = prop::sample::select(vec![
            "v",
            "order_id",
            "sale_id",
            "buyer",
            "quantity",
            "reserved_at_ms",
            "idempotency_key",
            "round",
            "extra",
        ]);
        let value = prop_oneof![
            Just(serde_json::Value::Null),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<f64>().prop_map(serde_json::Value::from),
            any::<bool>().prop_map(serde_json::Value::from),
            ".{0,300}".prop_map(serde_json::Value::from),
            Just(serde_json::json!({"nested": [1, 2]})),
        ];
        (fields, prop::option::of(value)).prop_map(|(field, value)| {
            let mut m: serde_json::Value = serde_json::from_str(&order("s", 1)).unwrap();
            match value {
                Some(v) => m[field] = v,
                None => {
                    m.as_object_mut().unwrap().remove(field);
                }
            }
            m.to_string()
        })
    }

    fn body() -> impl Strategy<Value = String> {
        prop_oneof![
            mutated(),
            ".{0,2000}",
            prop::collection::vec(any::<u8>(), 0..512)
                .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        /// 2,000 cases: whatever a message holds (a signed order with one field changed, or
        /// anything), it is recorded if it is a valid order of the sale that buy signed, fails
        /// alone (reported to SQS, nothing recorded) otherwise, and the good order beside it
        /// settles in the same batch either way.
        #[test]
        fn any_message_body_is_settled_or_fails_alone_and_records_nothing(body in body()) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let f = fixture(10);
            let good = order("s", 0);
            let good_id = OrderMessage::parse(&good).unwrap().order_id;
            let parsed = OrderMessage::parse(&body);
            let (ev, ids) = event(&[good, body]);
            let report = rt.block_on(f.settler.settle(ev));
            prop_assert!(f.ledger.is_recorded(good_id), "the good order settles");
            match parsed {
                Ok(order) if order.sale_id.as_str() == "s" && signer().verifies_order(&order) => {
                    prop_assert!(report.failed.is_empty(), "{:?}", report.failed);
                    prop_assert!(f.ledger.is_recorded(order.order_id), "{order:?} recorded");
                    prop_assert_eq!(f.status.len(), 2);
                }
                _ => {
                    // Not an order, or an order of a sale the ledger does not have.
                    prop_assert_eq!(&report.failed, &vec![ids[1].clone()]);
                    prop_assert_eq!(f.ledger.counts(&f.sale), counts(1, 0, 1));
                    prop_assert_eq!(f.status.len(), 1);
                    prop_assert!(f.queue.later().is_empty());
                }
            }
        }
    }
}
