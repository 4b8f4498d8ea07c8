//! Settlement against real Postgres (fresh schema per test), DynamoDB Local and Redis.

use crate::helpers::*;
use flashflow::domain::{OrderMessage, OrderState, SaleDefinition};
use flashflow::ports::StatusStore;
use flashflow_adapters::dynamodb::DynamoStatusStore;
use flashflow_adapters::postgres::Db;
use flashflow_app::settle::Settler;
use uuid::Uuid;

fn body(o: &OrderMessage) -> String {
    o.to_json()
}

/// Counts with `confirmed`, `rejected` and `orders` recorded and the confirmed quantity.
fn expect(confirmed: i64, rejected: i64, orders: i64, confirmed_quantity: i32) -> Counts {
    Counts {
        confirmed,
        rejected,
        orders,
        confirmed_quantity,
    }
}

struct Fixture {
    settler: RealSettler,
    /// A second connection on the same schema, for checking.
    check: Db,
    sale: SaleDefinition,
    status: DynamoStatusStore,
}

async fn fixture(stock: u32) -> Fixture {
    let url = fresh_schema_url().await;
    let db = db_at(&url).await;
    let sale = sale(&fresh_sale_id(), stock, 5);
    db.create_sale(&sale).await.unwrap();
    let status = fresh_status_store().await;
    Fixture {
        settler: Settler::new(
            db,
            status.clone(),
            store().await,
            no_requeue().await,
            signer(),
        ),
        check: db_at(&url).await,
        sale,
        status,
    }
}

#[tokio::test]
async fn the_same_batch_delivered_twice_records_each_order_once() {
    let f = fixture(10).await;
    let bodies: Vec<String> = (0..5)
        .map(|i| body(&order(&f.sale, &format!("b{i}"), 1, 1_000 + i)))
        .collect();
    for _ in 0..2 {
        let (event, _) = sqs_event(&bodies);
        let resp = f.settler.handle(event).await;
        assert!(resp.batch_item_failures.is_empty());
    }
    assert_eq!(counts(&f.check, &f.sale).await, expect(5, 0, 5, 5));
}

#[tokio::test]
async fn a_duplicate_inside_one_batch_is_recorded_once() {
    let f = fixture(10).await;
    let one = body(&order(&f.sale, "dup", 2, 1));
    let (event, _) = sqs_event(&[one.clone(), one]);
    assert!(f.settler.handle(event).await.batch_item_failures.is_empty());
    assert_eq!(counts(&f.check, &f.sale).await, expect(1, 0, 1, 2));
}

#[tokio::test]
async fn nine_good_and_one_poison_message_settle_nine_and_report_exactly_the_poison() {
    let f = fixture(100).await;
    let mut bodies: Vec<String> = (0..9)
        .map(|i| body(&order(&f.sale, &format!("g{i}"), 1, i)))
        .collect();
    bodies.insert(4, r#"{"v":1,"order_id":"not-a-uuid"}"#.into());
    let (event, ids) = sqs_event(&bodies);
    let resp = f.settler.handle(event).await;
    assert_eq!(failed_ids(&resp), vec![ids[4].clone()]);
    assert_eq!(counts(&f.check, &f.sale).await, expect(9, 0, 9, 9));
}

#[tokio::test]
async fn orders_past_the_stock_are_recorded_as_rejected_never_dropped() {
    let f = fixture(3).await;
    // As if Redis had lost its data and let 5 through: the earliest 3 win.
    let orders: Vec<OrderMessage> = (0..5)
        .map(|i| order(&f.sale, &format!("r{i}"), 1, 100 - i))
        .collect();
    let (event, _) = sqs_event(&orders.iter().map(body).collect::<Vec<_>>());
    let report = f.settler.settle_event(event).await;
    assert_eq!(
        (report.confirmed, report.rejected, report.failed.len()),
        (3, 2, 0)
    );
    assert_eq!(counts(&f.check, &f.sale).await, expect(3, 2, 5, 3));
    // Reserved last (smallest reserved_at_ms first): r4, r3, r2 confirmed.
    for (i, o) in orders.iter().enumerate() {
        let st = f.status.get(o.order_id).await.unwrap().unwrap();
        assert_eq!(
            st.status,
            if i >= 2 {
                OrderState::Confirmed
            } else {
                OrderState::Rejected
            },
            "{i}"
        );
    }
    // A later batch can confirm nothing more.
    let (event, _) = sqs_event(&[body(&order(&f.sale, "late", 1, 1))]);
    assert_eq!(f.settler.settle_event(event).await.rejected, 1);
    assert_eq!(counts(&f.check, &f.sale).await.confirmed_quantity, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_batches_of_one_sale_never_confirm_more_than_the_stock() {
    let url = fresh_schema_url().await;
    let setup = db_at(&url).await;
    let def = sale(&fresh_sale_id(), 50, 5);
    setup.create_sale(&def).await.unwrap();
    let status = fresh_status_store().await;
    let mut handles = Vec::new();
    for w in 0..4 {
        let (url, def, status) = (url.clone(), def.clone(), status.clone());
        handles.push(tokio::spawn(async move {
            let settler = Settler::new(
                db_at(&url).await,
                status,
                store().await,
                no_requeue().await,
                signer(),
            );
            for b in 0..5 {
                let bodies: Vec<String> = (0..10)
                    .map(|i| body(&order(&def, &format!("w{w}b{b}i{i}"), 1, i)))
                    .collect();
                let (event, _) = sqs_event(&bodies);
                assert!(settler.handle(event).await.batch_item_failures.is_empty());
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    assert_eq!(counts(&setup, &def).await, expect(50, 150, 200, 50));
}

#[tokio::test]
async fn an_order_for_a_sale_postgres_does_not_know_is_reported_failed() {
    let f = fixture(5).await;
    let stranger = sale(&fresh_sale_id(), 5, 5);
    let (event, ids) = sqs_event(&[
        body(&order(&f.sale, "k", 1, 1)),
        body(&order(&stranger, "k", 1, 1)),
    ]);
    let resp = f.settler.handle(event).await;
    assert_eq!(failed_ids(&resp), vec![ids[1].clone()]);
    assert_eq!(counts(&f.check, &f.sale).await.orders, 1);
}

#[tokio::test]
async fn when_postgres_is_unavailable_every_message_is_reported_failed() {
    let status = fresh_status_store().await;
    let settler = Settler::new(
        Db::new("postgres://postgres@127.0.0.1:9/nothing").unwrap(),
        status,
        store().await,
        no_requeue().await,
        signer(),
    );
    let def = sale(&fresh_sale_id(), 5, 5);
    let bodies: Vec<String> = (0..3).map(|i| body(&order(&def, "p", 1, i))).collect();
    let (event, ids) = sqs_event(&bodies);
    let resp = settler.handle(event).await;
    let (mut failed, mut ids) = (failed_ids(&resp), ids);
    failed.sort();
    ids.sort();
    assert_eq!(failed, ids);
}

#[tokio::test]
async fn settling_removes_the_reservation_from_the_outbox_and_writes_the_status() {
    use flashflow::domain::{BuyerId, Reservation, ReserveRequest};
    use flashflow::ports::ReservationStore;
    let f = fixture(5).await;
    let store = store().await;
    store.load_sale(&f.sale, 5).await.unwrap();
    let Reservation::Reserved {
        order_id, message, ..
    } = store
        .reserve(
            &ReserveRequest {
                admission: None,
                order_id: Uuid::now_v7(),
                sale: f.sale.id.clone(),
                buyer: BuyerId::parse("o").unwrap(),
                quantity: flashflow::domain::Quantity::new(2).unwrap(),
                idempotency_key: None,
                signature: None,
            }
            .signed(&signer()),
        )
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(store.entries(&f.sale.id).await.unwrap().len(), 1);
    let (event, _) = sqs_event(&[message]);
    assert!(f.settler.handle(event).await.batch_item_failures.is_empty());
    assert!(store.entries(&f.sale.id).await.unwrap().is_empty());
    let st = f.status.get(order_id).await.unwrap().unwrap();
    assert_eq!(
        (st.status, st.quantity, st.buyer.as_str()),
        (OrderState::Confirmed, 2, "o")
    );
}

#[tokio::test]
async fn the_sqs_batch_fixture_settles_its_two_orders_and_reports_its_poison_message() {
    let f = fixture(10).await;
    // Fresh order ids too, so re-runs against the same schema stay independent.
    let text = SQS_BATCH_EVENT
        .replace("demo-sale", f.sale.id.as_str())
        .replace(
            "01a21c50-0000-7000-8000-000000000001",
            &Uuid::now_v7().to_string(),
        )
        .replace(
            "01a21c50-0000-7000-8000-000000000002",
            &Uuid::now_v7().to_string(),
        );
    let mut event: aws_lambda_events::event::sqs::SqsEvent = serde_json::from_str(&text).unwrap();
    // The bodies changed, so their signatures (made with the local key) are made again.
    event.records.iter_mut().for_each(sign_record);
    let resp = f.settler.handle(event).await;
    assert_eq!(
        failed_ids(&resp),
        vec!["2e1424d0-d2ea-4a6e-aa4a-ad5aa8e2a3b1".to_string()]
    );
    assert_eq!(counts(&f.check, &f.sale).await, expect(2, 0, 2, 2));
}

#[tokio::test]
async fn an_order_postgres_refuses_fails_alone_and_the_rest_of_its_batch_settles_at_once() {
    let f = fixture(100).await;
    // A constraint of the schema this code does not know about refuses one buyer.
    f.check
        .client()
        .await
        .unwrap()
        .batch_execute(
            "CREATE FUNCTION refuse_mallory() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN IF NEW.buyer = 'mallory' THEN RAISE EXCEPTION 'refused'; END IF; RETURN NEW; END $$;
             CREATE TRIGGER refuse_mallory BEFORE INSERT ON orders
               FOR EACH ROW EXECUTE FUNCTION refuse_mallory();",
        )
        .await
        .unwrap();
    let mut bodies: Vec<String> = (0..9)
        .map(|i| body(&order(&f.sale, &format!("g{i}"), 1, i)))
        .collect();
    bodies.insert(3, body(&order(&f.sale, "mallory", 1, 3)));
    let (event, ids) = sqs_event(&bodies);
    let resp = f.settler.handle(event).await;
    assert_eq!(failed_ids(&resp), vec![ids[3].clone()]);
    assert_eq!(counts(&f.check, &f.sale).await, expect(9, 0, 9, 9));
}

#[tokio::test]
async fn the_status_written_for_a_redelivered_order_is_what_postgres_recorded() {
    let f = fixture(10).await;
    let first = order(&f.sale, "owner", 1, 0);
    let (event, _) = sqs_event(&[body(&first)]);
    assert!(f.settler.handle(event).await.batch_item_failures.is_empty());
    // The same order id again, claiming another buyer and quantity.
    let mut other = first.clone();
    other.buyer = flashflow::domain::BuyerId::parse("someone-else").unwrap();
    other.quantity = flashflow::domain::Quantity::new(3).unwrap();
    let (event, _) = sqs_event(&[body(&other)]);
    assert!(f.settler.handle(event).await.batch_item_failures.is_empty());
    let st = f.status.get(first.order_id).await.unwrap().unwrap();
    assert_eq!((st.buyer.as_str(), st.quantity), ("owner", 1));
    assert_eq!(counts(&f.check, &f.sale).await, expect(1, 0, 1, 1));
}

#[tokio::test]
async fn a_forced_resets_cancellations_and_late_messages_of_the_same_orders_never_deadlock() {
    use flashflow::ports::{Ledger, SaleLedger};
    let url = fresh_schema_url().await;
    let (settling, resetting) = (db_at(&url).await, db_at(&url).await);
    let sale = sale(&fresh_sale_id(), 1_000, 5);
    settling.create_sale(&sale).await.unwrap();
    resetting.reset_sale(&sale.id, None, 2).await.unwrap();
    // Orders of round 1, reserved before the reset: the reset records them as rejected while
    // their messages, still in flight, settle into the same archive. The two write the same rows
    // in opposite orders, which is how two transactions deadlock if nothing orders them.
    for attempt in 0..20 {
        let late: Vec<OrderMessage> = (0..40)
            .map(|i| order(&sale, &format!("r{attempt}-{i}"), 1, i))
            .collect();
        let dropped: Vec<OrderMessage> = late.iter().rev().cloned().collect();
        let (settled, cancelled) = tokio::join!(
            settling.settle_orders(&late),
            resetting.cancel_orders(&dropped)
        );
        let (settled, cancelled) = (settled.unwrap(), cancelled.unwrap());
        assert_eq!(
            (settled.len(), cancelled.len()),
            (40, 40),
            "attempt {attempt}"
        );
        assert!(cancelled.iter().all(|s| s.status == OrderState::Rejected));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batchs_order_ids_are_looked_up_through_the_index_of_a_large_orders_table() {
    // Settle looks up a batch's order ids (up to 1,000) by primary key with the array's values
    // known to the planner (custom plans). On a table not analyzed yet (autovacuum off, or behind
    // a burst), Postgres' default random_page_cost made it read the whole table instead, once
    // per batch, a cost that grew with the table.
    let db = db_at(&fresh_schema_url().await).await;
    let def = sale(&fresh_sale_id(), 10, 1);
    db.create_sale(&def).await.unwrap();
    let conn = db.client().await.unwrap();
    conn.batch_execute(&format!(
        "INSERT INTO orders (order_id, sale_id, buyer, quantity, status, reserved_at)
         SELECT gen_random_uuid(), '{}', 'b' || g, 1, 'REJECTED', now()
           FROM generate_series(1, 200000) g",
        def.id
    ))
    .await
    .unwrap();
    let ids: Vec<Uuid> = (0..1000).map(|_| Uuid::new_v4()).collect();
    let plan: Vec<String> = conn
        .query(
            "EXPLAIN SELECT order_id FROM orders WHERE order_id = ANY($1)",
            &[&ids],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        !plan.iter().any(|l| l.contains("Seq Scan on orders")),
        "{}",
        plan[0]
    );
}
