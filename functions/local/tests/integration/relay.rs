//! The local server's outbox relay: buyers answered from the outbox, messages sent in batches
//! behind them; and when the queue refuses, the sweeper delivers what the relay could not.

use crate::helpers::*;
use flashflow_adapters::relay::{Relay, RelaySettings};
use flashflow_adapters::sqs::SqsPublisher;
use flashflow_app::reconcile::{sweep_sales, SweepTiming};
use std::sync::atomic::Ordering;
use std::time::Duration;
use uuid::Uuid;

async fn buy_many(
    app: &axum::Router,
    def: &flashflow::domain::SaleDefinition,
    n: usize,
) -> Vec<Uuid> {
    let mut ids = Vec::new();
    for i in 0..n {
        let a = call(app, local_buy(&def.id, &format!("relay-{i}"), None)).await;
        assert_eq!(a.status, 202, "{}", a.body);
        ids.push(a.body["order_id"].as_str().unwrap().parse().unwrap());
    }
    ids
}

/// The buy router behind a relay to `publisher`, and the relay's counters and worker.
fn relayed_app(
    t: &TestApp,
    publisher: SqsPublisher,
) -> (
    axum::Router,
    std::sync::Arc<flashflow_adapters::relay::RelayStats>,
    tokio::task::JoinHandle<()>,
) {
    let (relay, worker) = Relay::start(publisher, t.store.clone(), RelaySettings::default());
    let stats = relay.stats();
    let app = buy_routes(t.store.clone(), relay, Default::default());
    (app, stats, worker)
}

/// Run the sweeper once over `def` with `grace`; returns how many it re-sent.
async fn sweep(t: &TestApp, def: &flashflow::domain::SaleDefinition, grace: Duration) -> usize {
    let timing = SweepTiming {
        grace: grace.into(),
        in_queue_for: Duration::from_secs(3600).into(),
        finished_ttl: flashflow_app::reconcile::SweepTiming::default().finished_ttl,
    };
    let publisher = SqsPublisher::new(t.sqs.clone(), &t.queue);
    sweep_sales(&t.store, &publisher, timing, std::slice::from_ref(&def.id))
        .await
        .unwrap()
        .resent
}

#[tokio::test]
async fn relayed_buys_are_sent_in_batches_and_each_settles_once() {
    let t = TestApp::new().await;
    let def = t.sale(60, 1).await;
    let (app, stats, worker) = relayed_app(&t, SqsPublisher::new(t.sqs.clone(), &t.queue));
    // Concurrent buyers, so batches can form.
    let mut tasks = Vec::new();
    for chunk in 0..6 {
        let (app, def) = (app.clone(), def.clone());
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..10 {
                let a = call(
                    &app,
                    local_buy(&def.id, &format!("relay-{chunk}-{i}"), None),
                )
                .await;
                assert_eq!(a.status, 202, "{}", a.body);
                ids.push(
                    a.body["order_id"]
                        .as_str()
                        .unwrap()
                        .parse::<Uuid>()
                        .unwrap(),
                );
            }
            ids
        }));
    }
    let mut accepted = Vec::new();
    for t in tasks {
        accepted.extend(t.await.unwrap());
    }
    drop(app);
    worker.await.unwrap();
    assert_eq!(stats.sent.load(Ordering::Relaxed), 60);
    let batches = stats.batches.load(Ordering::Relaxed);
    assert!(batches >= 6, "at most ten per SendMessageBatch: {batches}");
    // Marked sent: the sweeper finds nothing to re-send even with no grace at all.
    assert_eq!(sweep(&t, &def, Duration::ZERO).await, 0);
    let settlement = t.start_settlement(2).await;
    t.wait_for_settled(&def, 60).await;
    settlement.stop().await;
    t.assert_invariants(
        "relay: 60 buyers answered from the outbox",
        &def,
        &accepted,
        0,
    )
    .await;
}

#[tokio::test]
async fn when_the_queue_refuses_the_relay_the_sweeper_delivers_every_202() {
    let t = TestApp::new().await;
    let def = t.sale(5, 1).await;
    let (app, stats, worker) = relayed_app(
        &t,
        SqsPublisher::new(unreachable_sqs().await, "http://127.0.0.1:9/q"),
    );
    let accepted = buy_many(&app, &def, 3).await;
    drop(app);
    worker.await.unwrap();
    assert_eq!(stats.failed.load(Ordering::Relaxed), 3);
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(sweep(&t, &def, Duration::from_millis(10)).await, 3);
    let settlement = t.start_settlement(1).await;
    t.wait_for_settled(&def, 3).await;
    settlement.stop().await;
    t.assert_invariants(
        "relay: the queue refuses, the sweeper delivers",
        &def,
        &accepted,
        0,
    )
    .await;
}
