//! Fault injection on the real local stack: each scenario breaks something on purpose, lets the
//! system recover, and ends by checking every promise ([`TestApp::assert_invariants`]).

use crate::helpers::*;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use flashflow::ports::StatusStore;
use flashflow_adapters::dynamodb::DynamoStatusStore;
use flashflow_adapters::postgres::{Db, Timeouts};
use flashflow_adapters::sqs::SqsPublisher;
use flashflow_app::reconcile::{sweep_sales, SweepTiming};
use flashflow_app::settle::Settler;
use flashflow_local::event_source::{BatchTarget, InvokeError};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use uuid::Uuid;

async fn buy_all(app: &TestApp, sale: &flashflow::domain::SaleDefinition, n: usize) -> Vec<Uuid> {
    let mut accepted = Vec::new();
    for i in 0..n {
        let a = app.buy(sale, &format!("f-{i}")).await;
        if a.status == 202 {
            accepted.push(a.order_id());
        }
    }
    accepted
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqs_unreachable_during_a_burst_of_buys_everything_arrives_once_after_recovery() {
    let app = TestApp::new().await;
    let def = app.sale(15, 1).await;
    let down = buy_app(
        app.store.clone(),
        unreachable_sqs().await,
        "http://127.0.0.1:9/q",
    );
    let mut accepted = Vec::new();
    for i in 0..20 {
        let a = call(&down, local_buy(&def.id, &format!("b{i}"), None)).await;
        if a.status == 202 {
            accepted.push(a.order_id());
        }
    }
    assert_eq!(
        accepted.len(),
        15,
        "buyers are answered 202 while SQS is down"
    );
    assert_eq!(app.depth(&app.queue).await, 0);

    // SQS is back: the sweeper sends what never made it, twice over to be sure it does not
    // duplicate, and settlement runs.
    let publisher = SqsPublisher::new(app.sqs.clone(), &app.queue);
    let timing = SweepTiming {
        grace: Duration::ZERO.into(),
        in_queue_for: Duration::from_secs(3600).into(),
        finished_ttl: flashflow_app::reconcile::SweepTiming::default().finished_ttl,
    };
    let sales = [def.id.clone()];
    assert_eq!(
        sweep_sales(&app.store, &publisher, timing, &sales)
            .await
            .unwrap()
            .resent,
        15
    );
    assert_eq!(
        sweep_sales(&app.store, &publisher, timing, &sales)
            .await
            .unwrap()
            .resent,
        0
    );
    assert_eq!(app.depth(&app.queue).await, 15, "one message per order");
    let settlement = app.start_settlement(2).await;
    app.wait_for_settled(&def, 15).await;
    wait_for_depth(&app.sqs, &app.queue, 0, Duration::from_secs(10)).await;
    settlement.stop().await;
    app.assert_invariants(
        "SQS unreachable during a burst of buys (20 buyers, stock 15)",
        &def,
        &accepted,
        0,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_down_for_several_visibility_timeouts_loses_nothing_and_fills_no_dlq() {
    let app = TestApp::with_max_receive(2).await;
    let def = app.sale(10, 1).await;
    let accepted = buy_all(&app, &def, 10).await;

    // Settle runs but Postgres cannot be reached: ~6 s, six visibility timeouts of 1 s, three
    // times maxReceiveCount.
    let down = app.settler_on(Db::new("postgres://postgres@127.0.0.1:9/gone").unwrap());
    let outage = Settlement::start(&app.sqs, &app.queue, vec![down]);
    tokio::time::sleep(Duration::from_secs(6)).await;
    let stats = outage.stop().await;
    assert!(
        stats.batches.load(Ordering::Relaxed) >= 2,
        "settle kept trying"
    );
    assert_eq!(
        app.depth(&app.dlq).await,
        0,
        "good orders never reach the DLQ"
    );
    assert_eq!(app.depth(&app.queue).await, 10, "one message per order");
    assert_eq!(app.counts(&def).await.orders, 0);

    let settlement = app.start_settlement(2).await;
    app.wait_for_settled(&def, 10).await;
    wait_for_depth(&app.sqs, &app.queue, 0, Duration::from_secs(15)).await;
    settlement.stop().await;
    app.assert_invariants(
        "Postgres down for 6 visibility timeouts during settlement",
        &def,
        &accepted,
        0,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_queue_endpoint_frozen_past_the_long_polls_sends_no_good_order_to_the_dlq() {
    // The chaos run's good order in the DLQ: a receive the client gives up on (the queue frozen
    // past its deadline) still counts as a receive of every message the queue hands to it once it
    // runs again, and nobody sees them. With maxReceiveCount 1 one such receive is enough.
    let app = TestApp::with_max_receive(1).await;
    let def = app.sale(5, 1).await;
    let accepted = buy_all(&app, &def, 3).await;
    let endpoint = std::env::var("AWS_ENDPOINT_URL_SQS")
        .or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
        .unwrap_or_else(|_| "http://127.0.0.1:4566".into());
    let upstream = endpoint
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .replace("localhost", "127.0.0.1");
    let proxy = FreezableProxy::start(upstream).await;
    // The event source's own client, as `flashflow-local settle` builds it (1 s long polls),
    // through the proxy.
    let poller = flashflow_adapters::aws::long_poll_sqs(
        &flashflow_adapters::aws::sdk_config().await,
        Duration::from_secs(1),
    );
    let poller = aws_sdk_sqs::Client::from_conf(
        poller
            .config()
            .to_builder()
            .endpoint_url(format!("http://{}", proxy.addr))
            .build(),
    );

    // Frozen for 8 s (the chaos run freezes LocalStack for 1 to 8 s) from the first poll on.
    proxy.freeze(true);
    let settlement = Settlement::start(&poller, &app.queue, vec![app.settler().await]);
    tokio::time::sleep(Duration::from_secs(8)).await;
    proxy.freeze(false);
    wait_until(
        "the orders settled or in the DLQ",
        Duration::from_secs(30),
        || async { app.counts(&def).await.orders == 3 || app.depth(&app.dlq).await > 0 },
    )
    .await;
    wait_for_depth(&app.sqs, &app.queue, 0, Duration::from_secs(15)).await;
    settlement.stop().await;
    app.assert_invariants(
        "the queue's endpoint frozen for 8 s while settle long-polls (DLQ after 1 receive)",
        &def,
        &accepted,
        0,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_status_store_down_for_several_visibility_timeouts_sends_no_good_order_to_the_dlq() {
    let app = TestApp::with_max_receive(2).await;
    let def = app.sale(10, 1).await;
    let accepted = buy_all(&app, &def, 5).await;

    // Settle reaches Postgres but not DynamoDB: ~6 s, six visibility timeouts of 1 s, three
    // times maxReceiveCount.
    let blind = Settler::new(
        db_at(&app.db_url).await,
        DynamoStatusStore::new(unreachable_dynamodb().await, app.status.table()),
        app.store.clone(),
        SqsPublisher::new(app.sqs.clone(), &app.queue),
        signer(),
    )
    .with_retry_delay(Duration::from_secs(1));
    let outage = Settlement::start(&app.sqs, &app.queue, vec![blind]);
    tokio::time::sleep(Duration::from_secs(6)).await;
    let stats = outage.stop().await;
    assert!(
        stats.batches.load(Ordering::Relaxed) >= 2,
        "settle kept trying"
    );
    assert_eq!(app.counts(&def).await.confirmed, 5, "recorded in Postgres");
    assert_eq!(
        app.depth(&app.dlq).await,
        0,
        "good orders never reach the DLQ"
    );

    // DynamoDB is back: the statuses are written, the queue drains.
    let settlement = app.start_settlement(2).await;
    wait_until("every status written", Duration::from_secs(20), || async {
        let mut all = true;
        for id in &accepted {
            all &= app.status.get(*id).await.ok().flatten().is_some();
        }
        all
    })
    .await;
    wait_for_depth(&app.sqs, &app.queue, 0, Duration::from_secs(15)).await;
    settlement.stop().await;
    assert_eq!(app.depth(&app.dlq).await, 0);
    app.assert_invariants(
        "DynamoDB down for 6 visibility timeouts",
        &def,
        &accepted,
        0,
    )
    .await;
}

/// A settle instance that dies after its first commit, before answering: as a Lambda that timed
/// out or crashed there, nothing of that batch is deleted.
struct DiesAfterCommit {
    inner: RealSettler,
    died: AtomicBool,
}

impl BatchTarget for DiesAfterCommit {
    async fn invoke(&self, event: SqsEvent) -> Result<SqsBatchResponse, InvokeError> {
        let resp = self.inner.handle(event).await;
        if !self.died.swap(true, Ordering::SeqCst) {
            return Err(InvokeError("process died after commit".into()));
        }
        Ok(resp)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn settle_dying_after_commit_before_the_delete_records_each_order_once() {
    let app = TestApp::new().await;
    let def = app.sale(5, 1).await;
    let accepted = buy_all(&app, &def, 5).await;
    let target = DiesAfterCommit {
        inner: app.settler().await,
        died: AtomicBool::new(false),
    };
    let settlement = Settlement::start(&app.sqs, &app.queue, vec![target]);
    app.wait_for_settled(&def, 5).await;
    wait_for_depth(&app.sqs, &app.queue, 0, Duration::from_secs(15)).await;
    let stats = settlement.stop().await;
    assert_eq!(stats.invoke_errors.load(Ordering::Relaxed), 1);
    assert!(
        stats.messages.load(Ordering::Relaxed) > 5,
        "the batch was delivered again"
    );
    app.assert_invariants(
        "settle dies after commit, before the delete",
        &def,
        &accepted,
        0,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_message_delivered_many_times_to_several_settle_instances_makes_one_row() {
    let app = TestApp::new().await;
    let def = app.sale(5, 1).await;
    let body = order(&def, "twenty-times", 1, 0).to_json();
    let id = flashflow::domain::OrderMessage::parse(&body)
        .unwrap()
        .order_id;
    for _ in 0..20 {
        app.send(&body).await;
    }
    let settlement = app.start_settlement(4).await;
    wait_for_depth(&app.sqs, &app.queue, 0, Duration::from_secs(20)).await;
    settlement.stop().await;
    app.assert_invariants(
        "one message delivered 20 times to 4 settle instances",
        &def,
        &[id],
        0,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lock_held_past_lock_timeout_fails_the_batch_cleanly_and_it_settles_after_release() {
    let app = TestApp::with_max_receive(2).await;
    let def = app.sale(5, 1).await;
    let accepted = buy_all(&app, &def, 3).await;

    // Someone holds the sale's row.
    let holder = db_at(&app.db_url).await;
    let mut conn = holder.client().await.unwrap();
    let tx = conn.transaction().await.unwrap();
    tx.execute(
        "SELECT 1 FROM sales WHERE id = $1 FOR UPDATE",
        &[&def.id.as_str()],
    )
    .await
    .unwrap();
    let impatient = Db::new(&app.db_url).unwrap().with_timeouts(Timeouts {
        statement: Duration::from_secs(5),
        lock: Duration::from_millis(300),
    });
    let settlement = Settlement::start(&app.sqs, &app.queue, vec![app.settler_on(impatient)]);
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        app.counts(&def).await.orders,
        0,
        "nothing recorded while the lock is held"
    );
    assert_eq!(app.depth(&app.dlq).await, 0);
    tx.rollback().await.unwrap();
    drop(conn);

    app.wait_for_settled(&def, 3).await;
    wait_for_depth(&app.sqs, &app.queue, 0, Duration::from_secs(15)).await;
    settlement.stop().await;
    app.assert_invariants(
        "a lock on the sale row held past lock_timeout",
        &def,
        &accepted,
        0,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_order_for_a_sale_postgres_lacks_reaches_the_dlq_once_and_a_redrive_after_the_fix_settles_it_once(
) {
    let app = TestApp::with_max_receive(2).await;
    // The sale exists in Redis only (say its creation in Postgres was lost).
    let def = loaded_sale(&app.store, 5, 1).await;
    let accepted = buy_all(&app, &def, 2).await;
    let settlement = app.start_settlement(1).await;
    wait_for_depth(&app.sqs, &app.dlq, 2, Duration::from_secs(30)).await;
    wait_for_depth(&app.sqs, &app.queue, 0, Duration::from_secs(10)).await;
    settlement.stop().await;
    assert_eq!(
        app.store.live_sale(&def.id).await.unwrap().unwrap().pending,
        0,
        "the sweeper will not send them again"
    );
    let shown = flashflow_local::dlq::show(&app.sqs, &app.dlq, 10)
        .await
        .unwrap();
    assert_eq!(shown.len(), 2);
    assert!(shown.iter().all(|m| m.signed));

    // The operator fixes the cause and redrives.
    app.db.create_sale(&def).await.unwrap();
    assert_eq!(
        flashflow_local::dlq::redrive(&app.sqs, &app.dlq, &app.queue)
            .await
            .unwrap(),
        2
    );
    let settlement = app.start_settlement(1).await;
    app.wait_for_settled(&def, 2).await;
    wait_for_depth(&app.sqs, &app.queue, 0, Duration::from_secs(10)).await;
    settlement.stop().await;
    // Redriving again finds nothing and settles nothing twice.
    assert_eq!(
        flashflow_local::dlq::redrive(&app.sqs, &app.dlq, &app.queue)
            .await
            .unwrap(),
        0
    );
    app.assert_invariants(
        "orders for a sale Postgres lacks, then fixed and redriven",
        &def,
        &accepted,
        0,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn buy_dying_between_the_script_and_the_send_is_delivered_by_the_sweeper() {
    use flashflow::domain::{BuyerId, Quantity, Reservation, ReserveRequest};
    use flashflow::ports::ReservationStore;
    let app = TestApp::new().await;
    let def = app.sale(5, 1).await;
    let mut accepted = Vec::new();
    for i in 0..3 {
        // The script ran; the process died before SendMessage.
        let reserved = app
            .store
            .reserve(
                &ReserveRequest {
                    admission: None,
                    order_id: Uuid::now_v7(),
                    sale: def.id.clone(),
                    buyer: BuyerId::parse(&format!("d{i}")).unwrap(),
                    quantity: Quantity::default(),
                    idempotency_key: None,
                    signature: None,
                }
                .signed(&signer()),
            )
            .await
            .unwrap();
        let Reservation::Reserved { order_id, .. } = reserved else {
            panic!("{reserved:?}")
        };
        accepted.push(order_id);
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    let publisher = SqsPublisher::new(app.sqs.clone(), &app.queue);
    let timing = SweepTiming {
        grace: Duration::from_millis(10).into(),
        in_queue_for: Duration::from_secs(3600).into(),
        finished_ttl: flashflow_app::reconcile::SweepTiming::default().finished_ttl,
    };
    let report = sweep_sales(
        &app.store,
        &publisher,
        timing,
        std::slice::from_ref(&def.id),
    )
    .await
    .unwrap();
    assert_eq!(report.resent, 3);
    let settlement = app.start_settlement(1).await;
    app.wait_for_settled(&def, 3).await;
    wait_for_depth(&app.sqs, &app.queue, 0, Duration::from_secs(10)).await;
    settlement.stop().await;
    app.assert_invariants(
        "buy dies between the script and the send",
        &def,
        &accepted,
        0,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_connection_that_died_between_batches_is_replaced_and_the_next_batch_settles_first_time()
{
    let app = TestApp::new().await;
    let def = app.sale(5, 5).await;
    let db = db_at(&app.db_url).await;
    let pid: i32 = db
        .client()
        .await
        .unwrap()
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    let settler = app.settler_on(db);
    // As when a frozen Lambda instance's connection was closed by the server meanwhile.
    app.db
        .client()
        .await
        .unwrap()
        .execute("SELECT pg_terminate_backend($1)", &[&pid])
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let bodies: Vec<String> = (0..3).map(|i| order(&def, "c", 1, i).to_json()).collect();
    let report = settler.settle_event(sqs_event(&bodies).0).await;
    assert_eq!(
        (report.confirmed, report.requeued, report.failed.len()),
        (3, 0, 0)
    );
}
