//! The whole flow on the local stack: buy → Redis → LocalStack SQS → event source → settle →
//! Postgres + DynamoDB; poison messages to the DLQ; the outbox sweeper; order status.

use crate::helpers::*;
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use axum::body::Body;
use axum::Router;
use flashflow::domain::{BuyerId, OrderMessage, OrderState, Quantity, Reservation, ReserveRequest};
use flashflow::ports::{ReservationStore, StatusStore};
use flashflow_adapters::dynamodb::DynamoStatusStore;
use flashflow_adapters::redis::RedisStore;
use flashflow_adapters::sqs::SqsPublisher;
use flashflow_app::reconcile::{sweep_sales, SweepTiming};
use flashflow_app::settle::Settler;
use flashflow_http::{self, orders};
use flashflow_local::event_source::{BatchTarget, EventSourceStats, InvokeError};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn buys_flow_through_sqs_and_the_event_source_into_postgres_and_dynamodb() {
    let app = TestApp::new().await;
    let def = app.sale(15, 1).await;
    let mut accepted = Vec::new();
    for i in 0..20 {
        let a = app.buy(&def, &format!("e2e-{i}")).await;
        if a.status == 202 {
            accepted.push(a.order_id());
        }
    }
    assert_eq!(accepted.len(), 15, "exactly the stock is accepted");

    let settlement = app.start_settlement(2).await;
    app.wait_for_settled(&def, 15).await;
    wait_for_depth(&app.sqs, &app.queue, 0, Duration::from_secs(10)).await;
    let stats = settlement.stop().await;

    for id in &accepted {
        assert_eq!(
            app.status.get(*id).await.unwrap().unwrap().status,
            OrderState::Confirmed
        );
    }
    assert!(app.store.entries(&def.id).await.unwrap().is_empty());
    assert_eq!(app.depth(&app.dlq).await, 0);
    assert_eq!(stats.deleted.load(Ordering::Relaxed), 15);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_poison_message_ends_in_the_dlq_after_max_receive_count_and_good_ones_settle() {
    let app = TestApp::with_max_receive(2).await;
    let def = app.sale(5, 5).await;
    app.send("this is not an order").await;
    app.send(&order(&def, "g", 1, 0).to_json()).await;

    let settlement = app.start_settlement(1).await;
    wait_for_depth(&app.sqs, &app.dlq, 1, Duration::from_secs(30)).await;
    wait_for_depth(&app.sqs, &app.queue, 0, Duration::from_secs(10)).await;
    let stats = settlement.stop().await;

    let in_dlq = app
        .sqs
        .receive_message()
        .queue_url(&app.dlq)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap();
    assert_eq!(in_dlq[0].body(), Some("this is not an order"));
    assert_eq!(app.counts(&def).await.orders, 1);
    assert!(
        stats.failed.load(Ordering::Relaxed) >= 2,
        "the poison failed on each of its receives"
    );
}

/// A target that reports a failure id that is not in the batch.
struct Misbehaving;
impl BatchTarget for Misbehaving {
    async fn invoke(&self, _: SqsEvent) -> Result<SqsBatchResponse, InvokeError> {
        let mut f = BatchItemFailure::default();
        f.item_identifier = "not-a-message-of-this-batch".into();
        let mut r = SqsBatchResponse::default();
        r.batch_item_failures = vec![f];
        Ok(r)
    }
}

/// A target that fails the whole invocation.
struct Crashing;
impl BatchTarget for Crashing {
    async fn invoke(&self, _: SqsEvent) -> Result<SqsBatchResponse, InvokeError> {
        Err(InvokeError("boom".into()))
    }
}

async fn run_briefly<T: BatchTarget>(
    target: T,
    queue: &str,
    sqs: &aws_sdk_sqs::Client,
) -> Arc<EventSourceStats> {
    let settlement = Settlement::start(sqs, queue, vec![target]);
    let s = Arc::clone(&settlement.stats);
    wait_until("a batch", Duration::from_secs(10), || {
        let s = Arc::clone(&s);
        async move { s.batches.load(Ordering::Relaxed) >= 1 }
    })
    .await;
    settlement.stop().await
}

#[tokio::test]
async fn an_unknown_failure_id_or_an_invocation_error_deletes_nothing_as_in_aws() {
    let sqs = sqs().await;
    for case in 0..2 {
        let queue = fresh_queue(&sqs).await;
        for i in 0..3 {
            sqs.send_message()
                .queue_url(&queue)
                .message_body(format!("m{i}"))
                .send()
                .await
                .unwrap();
        }
        let stats = if case == 0 {
            run_briefly(Misbehaving, &queue, &sqs).await
        } else {
            run_briefly(Crashing, &queue, &sqs).await
        };
        assert_eq!(stats.deleted.load(Ordering::Relaxed), 0, "case {case}");
        assert_eq!(
            depth(&sqs, &queue).await,
            3,
            "case {case}: every message is still there"
        );
    }
}

#[tokio::test]
async fn the_sweeper_resends_a_reservation_whose_message_was_never_sent_and_it_settles() {
    let app = TestApp::new().await;
    let def = app.sale(5, 5).await;
    // The buy process "died" after the script: reserved, never sent.
    let Reservation::Reserved { order_id, .. } = app
        .store
        .reserve(
            &ReserveRequest {
                admission: None,
                order_id: Uuid::now_v7(),
                sale: def.id.clone(),
                buyer: BuyerId::parse("lost").unwrap(),
                quantity: Quantity::default(),
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
    let publisher = SqsPublisher::new(app.sqs.clone(), &app.queue);
    let sweep = |threshold: Duration| {
        let (store, publisher, sales) = (&app.store, &publisher, std::slice::from_ref(&def.id));
        async move {
            let timing = SweepTiming {
                grace: threshold.into(),
                in_queue_for: Duration::from_secs(3600).into(),
                finished_ttl: flashflow_app::reconcile::SweepTiming::default().finished_ttl,
            };
            flashflow_app::reconcile::sweep_sales(store, publisher, timing, sales)
                .await
                .unwrap()
        }
    };
    // Younger than the threshold: left alone.
    let early = sweep(Duration::from_secs(3600)).await;
    assert_eq!(early.resent, 0);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let report = sweep(Duration::from_millis(10)).await;
    assert_eq!(report.resent, 1);
    assert_eq!(app.depth(&app.queue).await, 1);
    // Re-sent, so in the queue: however short the grace, the next sweeps leave it there instead of
    // flooding the queue.
    let again = sweep(Duration::from_millis(1)).await;
    assert_eq!(again.resent, 0);
    assert_eq!(app.depth(&app.queue).await, 1);

    let settlement = app.start_settlement(1).await;
    app.wait_for_settled(&def, 1).await;
    settlement.stop().await;
    assert_eq!(
        app.status.get(order_id).await.unwrap().unwrap().status,
        OrderState::Confirmed
    );
    assert!(app.store.entries(&def.id).await.unwrap().is_empty());
}

fn answer(a: Answer) -> (u16, serde_json::Value) {
    (a.status, a.body)
}

fn orders_app(status: DynamoStatusStore, store: RedisStore, token: Option<&str>) -> Router {
    flashflow_http::app(orders::routes(orders::OrdersState {
        status,
        store,
        trust_user_header: true,
        operator_token: token.map(Into::into),
    }))
}

fn get(path: &str, headers: &[(&str, &str)]) -> http::Request<Body> {
    let mut b = http::Request::builder().method("GET").uri(path);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Body::empty()).unwrap()
}

#[tokio::test]
async fn order_status_is_pending_then_confirmed_and_only_its_buyer_or_an_operator_sees_it() {
    let (store, sqs) = (store().await, sqs().await);
    let url = fresh_schema_url().await;
    let db = db_at(&url).await;
    let def = sale(&fresh_sale_id(), 5, 5);
    db.create_sale(&def).await.unwrap();
    store.load_sale(&def, 5).await.unwrap();
    let status = fresh_status_store().await;
    let orders = orders_app(status.clone(), store.clone(), Some("op-token"));

    let buy = buy_app(store.clone(), sqs.clone(), "http://127.0.0.1:9/unused");
    let (_, accepted) = answer(
        call(
            &buy,
            http::Request::builder()
                .method("POST")
                .uri(format!("/sales/{}/buy", def.id))
                .header("x-user-id", "owner")
                .body(Body::empty())
                .unwrap(),
        )
        .await,
    );
    let id = accepted["order_id"].as_str().unwrap().to_owned();
    let path = format!("/orders/{id}");

    let (code, body) = answer(call(&orders, get(&path, &[("x-user-id", "owner")])).await);
    assert_eq!(
        (code, body["status"].as_str()),
        (200, Some("PENDING")),
        "{body}"
    );
    let (code, body) = answer(call(&orders, get(&path, &[("x-user-id", "someone-else")])).await);
    assert_eq!(
        (code, body["error"].as_str()),
        (404, Some("order_not_found"))
    );
    assert_eq!(answer(call(&orders, get(&path, &[])).await).0, 401);
    assert_eq!(
        answer(
            call(
                &orders,
                get("/orders/not-a-uuid", &[("x-user-id", "owner")])
            )
            .await
        )
        .1["error"],
        "invalid_order_id"
    );
    let unknown = format!("/orders/{}", Uuid::now_v7());
    assert_eq!(
        answer(call(&orders, get(&unknown, &[("x-user-id", "owner")])).await).0,
        404
    );

    // Settle it (as the event source would) and look again.
    let outbox = store.entries(&def.id).await.unwrap();
    let (event, _) = sqs_event(&[outbox[0].1.clone()]);
    let settler = Settler::new(
        db,
        status.clone(),
        store.clone(),
        no_requeue().await,
        signer(),
    );
    assert!(settler.handle(event).await.batch_item_failures.is_empty());

    let (code, body) = answer(call(&orders, get(&path, &[("x-user-id", "owner")])).await);
    assert_eq!((code, body["status"].as_str()), (200, Some("CONFIRMED")));
    let (code, body) = answer(
        call(
            &orders,
            get(
                &format!("/admin/orders/{id}"),
                &[("authorization", "Bearer op-token")],
            ),
        )
        .await,
    );
    assert_eq!((code, body["buyer"].as_str()), (200, Some("owner")));
    assert_eq!(
        answer(call(&orders, get(&path, &[("authorization", "Bearer wrong")])).await).0,
        403
    );
    let _: DynamoStatusStore = status;
}

#[tokio::test]
async fn the_sweeper_retires_a_sold_out_sale_once_everything_is_settled_but_keeps_live_ones() {
    use fred::prelude::*;
    let (store, sqs) = (store().await, sqs().await);
    let publisher = SqsPublisher::new(sqs.clone(), fresh_queue(&sqs).await);
    let sold_out = loaded_sale(&store, 1, 1).await;
    let live = loaded_sale(&store, 5, 1).await;
    let reserve = |sale: &flashflow::domain::SaleId| {
        ReserveRequest {
            admission: None,
            order_id: Uuid::now_v7(),
            sale: sale.clone(),
            buyer: flashflow::domain::BuyerId::parse("r").unwrap(),
            quantity: flashflow::domain::Quantity::new(1).unwrap(),
            idempotency_key: None,
            signature: None,
        }
        .signed(&signer())
    };
    let Reservation::Reserved { order_id, .. } =
        store.reserve(&reserve(&sold_out.id)).await.unwrap()
    else {
        panic!()
    };
    let registered = |id: &flashflow::domain::SaleId| {
        let (c, id) = (store.client().clone(), id.to_string());
        async move {
            c.sismember::<bool, _, _>(flashflow_adapters::redis::SALES_KEY, id)
                .await
                .unwrap()
        }
    };
    let sales = [sold_out.id.clone(), live.id.clone()];
    let timing = SweepTiming {
        grace: Duration::from_secs(3600).into(),
        in_queue_for: Duration::from_secs(3600).into(),
        finished_ttl: flashflow_app::reconcile::SweepTiming::default().finished_ttl,
    };
    let sweep = || flashflow_app::reconcile::sweep_sales(&store, &publisher, timing, &sales);

    // Sold out but its order is still waiting in the outbox: kept.
    assert_eq!(sweep().await.unwrap().retired, 0);
    assert!(registered(&sold_out.id).await);
    // Settled: retired. The sale with stock left stays registered.
    store
        .remove_settled(&sold_out.id, &[order_id], &[])
        .await
        .unwrap();
    assert_eq!(sweep().await.unwrap().retired, 1);
    assert!(!registered(&sold_out.id).await);
    assert!(registered(&live.id).await);
    // A reset brings it back.
    store.reset_sale(&sold_out, 1).await.unwrap();
    assert!(registered(&sold_out.id).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forged_and_poison_messages_among_good_orders_reach_the_dlq_and_take_no_stock() {
    let app = TestApp::with_max_receive(2).await;
    let def = app.sale(3, 1).await;
    // Three real buyers take the whole stock; a forger adds a well-formed, unsigned order of its
    // own, reserved earlier than all of them; a poison message rides along.
    let mut accepted = Vec::new();
    for buyer in ["r1", "r2", "r3"] {
        accepted.push(app.buy(&def, buyer).await.order_id());
    }
    let mut forged = order(&def, &"f".repeat(128), 1, 0);
    forged.reserved_at_ms = T0 - 1;
    app.send_unsigned(&forged.to_json()).await;
    app.send("{\"v\":1}").await;

    let settlement = app.start_settlement(1).await;
    app.wait_for_settled(&def, 3).await;
    wait_for_depth(&app.sqs, &app.dlq, 2, Duration::from_secs(30)).await;
    wait_for_depth(&app.sqs, &app.queue, 0, Duration::from_secs(10)).await;
    settlement.stop().await;

    app.assert_invariants(
        "poison and forged messages among good orders",
        &def,
        &accepted,
        2,
    )
    .await;
    for id in &accepted {
        assert_eq!(
            app.status.get(*id).await.unwrap().unwrap().status,
            OrderState::Confirmed,
            "every buyer answered 202 is confirmed"
        );
    }
    assert!(
        app.status.get(forged.order_id).await.unwrap().is_none(),
        "the forged order has no status"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_outbox_entry_someone_copied_under_another_order_and_buyer_is_refused_never_confirmed() {
    let app = TestApp::with_max_receive(2).await;
    let def = app.sale(5, 1).await;
    // One real buy; then someone who can write to Redis copies its outbox entry under a new
    // order id with the buyer renamed, scored as old, for the sweeper to find.
    let real = app.buy(&def, "ann").await.order_id();
    let (_, body) = app.store.entries(&def.id).await.unwrap().pop().unwrap();
    let mut copy = OrderMessage::parse(&body).unwrap();
    copy.order_id = Uuid::now_v7();
    copy.buyer = BuyerId::parse("mallory").unwrap();
    let keys = flashflow_adapters::redis::SaleKeys::new(&def.id);
    use fred::interfaces::{HashesInterface, SortedSetsInterface};
    let client = app.store.client();
    let forged = copy.order_id.to_string();
    let _: i64 = client
        .hset(&keys.outbox, (forged.as_str(), copy.to_json()))
        .await
        .unwrap();
    let _: i64 = client
        .zadd(
            &keys.outbox_at,
            None,
            None,
            false,
            false,
            (1.0, forged.as_str()),
        )
        .await
        .unwrap();
    // The sweeper forwards it (it holds no key and signs nothing); settle refuses it.
    let timing = SweepTiming {
        grace: Duration::ZERO.into(),
        in_queue_for: Duration::from_secs(3600).into(),
        finished_ttl: flashflow_app::reconcile::SweepTiming::default().finished_ttl,
    };
    let publisher = SqsPublisher::new(app.sqs.clone(), &app.queue);
    let sales = [def.id.clone()];
    let swept = sweep_sales(&app.store, &publisher, timing, &sales)
        .await
        .unwrap();
    assert!(swept.resent >= 1, "{swept:?}");
    let settlement = app.start_settlement(1).await;
    app.wait_for_settled(&def, 1).await;
    wait_for_depth(&app.sqs, &app.dlq, 1, Duration::from_secs(30)).await;
    settlement.stop().await;
    let confirmed = app.status.get(real).await.unwrap().map(|s| s.status);
    assert_eq!(confirmed, Some(OrderState::Confirmed));
    assert!(
        app.status.get(copy.order_id).await.unwrap().is_none(),
        "never confirmed"
    );
    let in_postgres: i64 = app
        .db
        .client()
        .await
        .unwrap()
        .query_one(
            "SELECT count(*) FROM orders WHERE sale_id = $1",
            &[&def.id.as_str()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(in_postgres, 1, "only the order buy reserved");
}
