//! Redis restarting or forgetting its scripts in the middle of a burst of buys: buyers pay latency
//! only. Runs on a private `redis-server` (AOF on, as ElastiCache replicas keep the data), so
//! restarting it disturbs no other test.

use crate::helpers::*;
use flashflow_adapters::redis::{RedisSettings, RedisStore};
use fred::prelude::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[tokio::test]
async fn script_flush_and_a_redis_restart_during_a_burst_cost_buyers_only_latency() {
    let mut redis = PrivateRedis::start(&["--appendonly", "yes", "--appendfsync", "always"]);
    let mut t = TestApp::new().await;
    t.store = RedisStore::connect(&RedisSettings {
        url: redis.url(),
        command_timeout: Duration::from_secs(2).into(),
        ..Default::default()
    })
    .unwrap();
    t.store.ready(Duration::from_secs(5)).await.unwrap();
    let def = sale(&fresh_sale_id(), 200, 1);
    t.db.create_sale(&def).await.unwrap();
    t.store.load_sale(&def, 200).await.unwrap();

    // 600 buyers, each retrying with its Idempotency-Key until it gets a definite answer, as a
    // client honouring 503 + Retry-After would.
    let app = t.buy_app();
    let answered = Arc::new(AtomicUsize::new(0));
    let unavailable = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(tokio::sync::Semaphore::new(32));
    let mut set = tokio::task::JoinSet::new();
    for i in 0..600 {
        let (app, id) = (app.clone(), def.id.clone());
        let (answered, unavailable, gate) = (answered.clone(), unavailable.clone(), gate.clone());
        set.spawn(async move {
            let _p = gate.acquire().await.unwrap();
            let started = Instant::now();
            loop {
                let req = request(
                    "POST",
                    &format!("/sales/{id}/buy"),
                    &[
                        ("x-user-id", &format!("u{i}")),
                        ("idempotency-key", &format!("k{i}")),
                    ],
                    None,
                );
                let a = call(&app, req).await;
                if a.status == 503 {
                    unavailable.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
                answered.fetch_add(1, Ordering::Relaxed);
                return (i, a, started.elapsed());
            }
        });
    }
    let chaos = {
        let answered = answered.clone();
        let client = t.store.client().clone();
        tokio::spawn(async move {
            while answered.load(Ordering::Relaxed) < 150 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            let _: () = client.script_flush(false).await.unwrap();
            while answered.load(Ordering::Relaxed) < 300 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            let before = redis.child.id();
            redis.restart();
            assert_ne!(redis.child.id(), before, "a new redis-server process");
            redis
        })
    };
    let mut accepted = Vec::new();
    let mut sold_out = 0;
    let mut slowest = Duration::ZERO;
    while let Some(done) = set.join_next().await {
        let (i, a, took) = done.unwrap();
        slowest = slowest.max(took);
        match a.status {
            202 => accepted.push(a.order_id()),
            _ => {
                assert_eq!(a.error(), Some("sold_out"), "u{i}: {}", a.body);
                sold_out += 1;
            }
        }
    }
    let _redis = chaos.await.unwrap();
    println!(
        "redis restart | 600 buyers, SCRIPT FLUSH at 150 answers, restart at 300 | 503s retried: {}, slowest buyer {slowest:?}",
        unavailable.load(Ordering::Relaxed)
    );
    accepted.sort();
    accepted.dedup();
    assert_eq!((accepted.len(), sold_out), (200, 400));

    let settlement = t.start_settlement(2).await;
    t.wait_for_settled(&def, 200).await;
    settlement.stop().await;
    t.assert_invariants(
        "Redis SCRIPT FLUSH, then a Redis restart, during a burst of 600 buys",
        &def,
        &accepted,
        0,
    )
    .await;
}
