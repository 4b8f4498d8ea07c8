//! Durable writes (`REDIS_WAIT_REPLICAS`): on a primary with a replica, a promise (a `202`) is
//! given only once the replica holds its write; without the wait, a `202` can rest on the
//! primary alone (what a failover then forgets). A stopped replica stands for one that lags.

use crate::helpers::*;
use flashflow_adapters::redis::{RedisSettings, RedisStore};
use flashflow_http::testing::{call, request};
use std::process::Command;
use std::time::{Duration, Instant};

/// A primary and its replica, the link up.
fn primary_and_replica() -> (PrivateRedis, PrivateRedis) {
    let primary = PrivateRedis::start(&[]);
    let port = primary.port.to_string();
    let replica = PrivateRedis::start(&["--replicaof", "127.0.0.1", &port]);
    let until = Instant::now() + Duration::from_secs(10);
    while !cli(&replica, &["INFO", "replication"]).contains("master_link_status:up") {
        assert!(Instant::now() < until, "the replica did not sync");
        std::thread::sleep(Duration::from_millis(20));
    }
    (primary, replica)
}

fn cli(redis: &PrivateRedis, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-p", &redis.port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli is on the PATH");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn signal(redis: &PrivateRedis, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &redis.child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig}");
}

async fn store_waiting_for(primary: &PrivateRedis, replicas: u32) -> RedisStore {
    let store = RedisStore::connect(&RedisSettings {
        url: primary.url(),
        wait_replicas: replicas,
        wait_timeout: Duration::from_millis(200).into(),
        ..Default::default()
    })
    .unwrap();
    store.ready(Duration::from_secs(5)).await.unwrap();
    store
}

fn keyed_buy(
    sale: &flashflow::domain::SaleId,
    buyer: &str,
    key: &str,
) -> axum::http::Request<axum::body::Body> {
    request(
        "POST",
        &format!("/sales/{sale}/buy"),
        &[
            ("x-user-id", buyer),
            ("idempotency-key", key),
            ("content-type", "application/json"),
        ],
        None,
    )
}

fn replica_holds(
    replica: &PrivateRedis,
    sale: &flashflow::domain::SaleId,
    order: uuid::Uuid,
) -> bool {
    cli(
        replica,
        &["EXISTS", &format!("ff:{{{sale}}}:order:{order}")],
    ) == "1"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_replica_required_a_202_comes_only_once_the_replica_holds_the_order() {
    let (primary, replica) = primary_and_replica();
    let store = store_waiting_for(&primary, 1).await;
    let def = sale(&fresh_sale_id(), 100, 1);
    store.load_sale(&def, 100).await.unwrap();
    let app = buy_app(store.clone(), sqs().await, "http://127.0.0.1:9/unused");

    // Twenty buys at once share their waits; each 202's order is on the replica when it comes.
    let mut set = tokio::task::JoinSet::new();
    for i in 0..20 {
        let (app, id) = (app.clone(), def.id.clone());
        set.spawn(async move { call(&app, keyed_buy(&id, &format!("b{i}"), "k")).await });
    }
    while let Some(a) = set.join_next().await {
        let a = a.unwrap();
        assert_eq!(a.status, 202, "{}", a.body);
        assert!(replica_holds(&replica, &def.id, a.order_id()));
    }

    // The replica stops (a lagging link): the primary reserves, no replica confirms, and the
    // buyer is told the outcome is unknown, naming the order: never a 202 the replica lacks.
    signal(&replica, "-STOP");
    let stalled = call(&app, keyed_buy(&def.id, "late", "k1")).await;
    signal(&replica, "-CONT");
    assert_eq!(
        (stalled.status, stalled.error()),
        (503, Some("outcome_unknown")),
        "{}",
        stalled.body
    );
    let order = stalled.order_id();

    // Back: the buyer's retry with its key gets that order, now on the replica too.
    let retry = call(&app, keyed_buy(&def.id, "late", "k1")).await;
    assert!(matches!(retry.status, 200 | 202), "{}", retry.body);
    assert_eq!(retry.order_id(), order, "the same order, not a second one");
    assert!(replica_holds(&replica, &def.id, order));
    assert_eq!(
        store.live_sale(&def.id).await.unwrap().unwrap().remaining,
        79,
        "21 orders, each taken once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_wait_a_202_can_rest_on_the_primary_alone() {
    let (primary, replica) = primary_and_replica();
    let store = store_waiting_for(&primary, 0).await;
    let def = sale(&fresh_sale_id(), 100, 1);
    store.load_sale(&def, 100).await.unwrap();
    let app = buy_app(store.clone(), sqs().await, "http://127.0.0.1:9/unused");
    signal(&replica, "-STOP");
    let a = call(&app, keyed_buy(&def.id, "b", "k")).await;
    // What the stopped replica has confirmed, beside what the primary wrote (a stopped replica
    // answers nothing itself).
    let info = cli(&primary, &["INFO", "replication"]);
    signal(&replica, "-CONT");
    assert_eq!(a.status, 202, "{}", a.body);
    // "master_repl_offset:N" and "slave0:ip=…,port=…,state=online,offset=N,lag=0".
    let field = |prefix: &str, key: &str| -> i64 {
        let line = info.lines().find(|l| l.starts_with(prefix)).unwrap();
        line[prefix.len()..]
            .split(',')
            .find_map(|kv| kv.strip_prefix(key))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let (written, confirmed) = (
        field("master_repl_offset:", ""),
        field("slave0:", "offset="),
    );
    assert!(
        confirmed < written,
        "a 202 the replica had not confirmed ({confirmed} < {written}): what a failover to it would forget"
    );
}

/// A store on `redis` that pauses a sale after a failover (`REDIS_PAUSE_ON_FAILOVER`).
async fn store_pausing_on(redis: &PrivateRedis, pause: bool) -> RedisStore {
    let store = RedisStore::connect(&RedisSettings {
        url: redis.url(),
        pause_on_failover: flashflow_settings::Flag(pause),
        ..Default::default()
    })
    .unwrap();
    store.ready(Duration::from_secs(5)).await.unwrap();
    store
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_replica_is_promoted_a_sale_pauses_until_its_counts_are_rebuilt() {
    let (primary, replica) = primary_and_replica();
    let def = sale(&fresh_sale_id(), 10, 1);
    let before = store_pausing_on(&primary, true).await;
    before.load_sale(&def, 10).await.unwrap();
    let app = buy_app(before, sqs().await, "http://127.0.0.1:9/unused");
    assert_eq!(call(&app, keyed_buy(&def.id, "a", "k")).await.status, 202);
    cli(&primary, &["WAIT", "1", "2000"]);

    // The replica takes over: its counts may lack the old primary's last writes.
    assert_eq!(cli(&replica, &["REPLICAOF", "NO", "ONE"]), "OK");
    let after = store_pausing_on(&replica, true).await;
    let app = buy_app(after.clone(), sqs().await, "http://127.0.0.1:9/unused");
    let paused = call(&app, keyed_buy(&def.id, "b", "k")).await;
    assert_eq!(
        (paused.status, paused.error()),
        (503, Some("service_unavailable")),
        "{}",
        paused.body
    );
    assert!(
        paused.retry_after.is_some(),
        "the client is told when to ask again"
    );
    assert_eq!(
        after.live_sale(&def.id).await.unwrap().unwrap().remaining,
        9,
        "nothing taken while paused"
    );

    // The operator's rebuild (a rehydrate, here from the definition) resumes the sale.
    after.load_sale(&def, 9).await.unwrap();
    let resumed = call(&app, keyed_buy(&def.id, "b", "k")).await;
    assert_eq!(resumed.status, 202, "{}", resumed.body);
    drop(primary);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sale_a_failover_paused_is_rebuilt_only_once_settle_has_drained_the_queue() {
    let (primary, replica) = primary_and_replica();
    let mut app = TestApp::new().await;
    app.store = store_pausing_on(&primary, true).await;
    let def = app.sale(10, 1).await;
    let buy = buy_app(app.store.clone(), app.sqs.clone(), &app.queue);
    assert_eq!(call(&buy, keyed_buy(&def.id, "a", "k")).await.status, 202);
    cli(&primary, &["WAIT", "1", "2000"]);

    // The replica takes over; the order answered before is in the queue, not in Postgres yet.
    assert_eq!(cli(&replica, &["REPLICAOF", "NO", "ONE"]), "OK");
    app.store = store_pausing_on(&replica, true).await;
    let operator = app.operator().await;
    let rehydrate = format!("/admin/sales/{}/rehydrate", def.id);
    let early = call(&operator, admin("POST", &rehydrate, None)).await;
    assert_eq!(
        (early.status, early.error()),
        (409, Some("queue_not_drained")),
        "{}",
        early.body
    );
    let buy = buy_app(app.store.clone(), app.sqs.clone(), &app.queue);
    assert_eq!(
        call(&buy, keyed_buy(&def.id, "b", "k")).await.status,
        503,
        "still paused"
    );

    // Settle records the order and empties the queue; then the rebuild counts it, and the sale
    // sells again.
    let settlement = app.start_settlement(1).await;
    app.wait_for_settled(&def, 1).await;
    wait_for_depth(&app.sqs, &app.queue, 0, Duration::from_secs(15)).await;
    settlement.stop().await;
    let done = call(&operator, admin("POST", &rehydrate, None)).await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!(done.body["rehydrated"]["remaining"], 9);
    assert_eq!(call(&buy, keyed_buy(&def.id, "b", "k")).await.status, 202);
    drop(primary);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_pause_a_promoted_replica_sells_at_once() {
    let (primary, replica) = primary_and_replica();
    let def = sale(&fresh_sale_id(), 10, 1);
    store_pausing_on(&primary, false)
        .await
        .load_sale(&def, 10)
        .await
        .unwrap();
    cli(&primary, &["WAIT", "1", "2000"]);
    assert_eq!(cli(&replica, &["REPLICAOF", "NO", "ONE"]), "OK");
    let app = buy_app(
        store_pausing_on(&replica, false).await,
        sqs().await,
        "http://127.0.0.1:9/unused",
    );
    assert_eq!(call(&app, keyed_buy(&def.id, "b", "k")).await.status, 202);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settled_orders_removal_from_the_outbox_is_in_doubt_until_the_replica_has_it() {
    use flashflow::ports::{SettledOrders, StoreError};
    let (primary, replica) = primary_and_replica();
    let store = store_waiting_for(&primary, 1).await;
    let def = sale(&fresh_sale_id(), 10, 1);
    store.load_sale(&def, 10).await.unwrap();
    let app = buy_app(store.clone(), sqs().await, "http://127.0.0.1:9/unused");
    let (a, b) = (
        call(&app, keyed_buy(&def.id, "a", "k")).await.order_id(),
        call(&app, keyed_buy(&def.id, "b", "k")).await.order_id(),
    );

    // A replica that lags: settle must not take the removal as done (it would acknowledge the
    // message, and a failover would leave the order in the outbox as pending for days).
    signal(&replica, "-STOP");
    let stalled = store.remove_settled(&def.id, &[a], &[]).await;
    signal(&replica, "-CONT");
    assert!(
        matches!(stalled, Err(StoreError::InDoubt(_))),
        "{stalled:?}"
    );

    store.remove_settled(&def.id, &[a, b], &[]).await.unwrap();
    assert!(store.entries(&def.id).await.unwrap().is_empty());
}
