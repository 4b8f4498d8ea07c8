//! Answers that stay true under faults: Redis pausing its clients past the command timeout, Redis
//! refusing because of its own state, Redis losing its data, a status store that is away, and a
//! Redis process killed right after it answered.

use crate::helpers::*;
use flashflow::ports::{ReservationStore, SaleLedger};
use flashflow_adapters::redis::{RedisSettings, RedisStore};
use std::collections::{HashMap, HashSet};
use std::process::Command;
use std::time::Duration;

/// A store on a private Redis with a short command timeout.
async fn private_store(redis: &PrivateRedis, timeout: Duration) -> RedisStore {
    let store = RedisStore::connect(&RedisSettings {
        url: redis.url(),
        command_timeout: timeout.into(),
        ..Default::default()
    })
    .unwrap();
    store.ready(Duration::from_secs(5)).await.unwrap();
    store
}

fn redis_cli(redis: &PrivateRedis, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-p", &redis.port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli is on the PATH");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn clients_paused_past_the_command_timeout_get_no_503_that_bought() {
    let redis = PrivateRedis::start(&[]);
    let store = private_store(&redis, Duration::from_millis(300)).await;
    let def = sale(&fresh_sale_id(), 100, 1);
    store.load_sale(&def, 100).await.unwrap();
    let app = buy_app(store.clone(), sqs().await, "http://127.0.0.1:9/unused");

    // Redis holds every client for 1.5 s, five command timeouts; 30 buyers without a key buy
    // meanwhile, once each.
    assert_eq!(redis_cli(&redis, &["CLIENT", "PAUSE", "1500", "ALL"]), "OK");
    let paused_until = tokio::time::Instant::now() + Duration::from_millis(1_600);
    let mut set = tokio::task::JoinSet::new();
    for i in 0..30 {
        let (app, id) = (app.clone(), def.id.clone());
        set.spawn(async move {
            let a = call(&app, local_buy(&id, &format!("p{i}"), None)).await;
            (format!("p{i}"), a)
        });
    }
    let mut told: HashMap<String, (u16, Option<String>, Option<String>)> = HashMap::new();
    while let Some(done) = set.join_next().await {
        let (buyer, a) = done.unwrap();
        let order = a.body["order_id"].as_str().map(str::to_owned);
        told.insert(buyer, (a.status, a.error().map(str::to_owned), order));
    }

    // Every order Redis reserved was told to its buyer: by a 202, or by a 503 naming it.
    tokio::time::sleep_until(paused_until).await;
    let reserved = store.entries(&def.id).await.unwrap();
    let mut by_buyer: HashMap<String, HashSet<String>> = HashMap::new();
    for (order, body) in &reserved {
        let m = flashflow::domain::OrderMessage::parse(body).unwrap();
        by_buyer
            .entry(m.buyer.as_str().to_owned())
            .or_default()
            .insert(order.clone());
    }
    let mut accepted = 0;
    for (buyer, (status, error, order)) in &told {
        let orders = by_buyer.remove(buyer).unwrap_or_default();
        match (*status, error.as_deref()) {
            (202, _) => {
                accepted += 1;
                assert_eq!(orders.len(), 1, "{buyer}: one order");
                assert!(
                    orders.contains(order.as_ref().unwrap()),
                    "{buyer}: the order told"
                );
            }
            (503, Some("outcome_unknown")) => {
                assert!(orders.len() <= 1, "{buyer}");
                assert!(
                    orders.iter().all(|o| Some(o) == order.as_ref()),
                    "{buyer}: named"
                );
            }
            (503, Some("service_unavailable")) => {
                assert!(orders.is_empty(), "{buyer}: a 503 that bought {orders:?}");
            }
            other => panic!("{buyer}: unexpected answer {other:?}"),
        }
    }
    assert!(by_buyer.is_empty(), "orders nobody asked for: {by_buyer:?}");
    let live = store.live_sale(&def.id).await.unwrap().unwrap();
    assert_eq!(
        live.remaining,
        100 - reserved.len() as i64,
        "stock taken once per order"
    );
    println!(
        "CLIENT PAUSE 1500 ALL, command timeout 300 ms | 30 buyers: {accepted} 202, {} other, {} reserved",
        told.len() - accepted,
        reserved.len()
    );
    assert_eq!(
        accepted, 30,
        "asked again within the deadline, every buyer learns its order"
    );
}

#[tokio::test]
async fn redis_out_of_memory_or_busy_with_a_script_is_503_with_retry_after_and_takes_nothing() {
    let redis = PrivateRedis::start(&[]);
    let store = private_store(&redis, Duration::from_secs(2)).await;
    let def = sale(&fresh_sale_id(), 10, 5);
    store.load_sale(&def, 10).await.unwrap();
    let app = buy_app(store.clone(), sqs().await, "http://127.0.0.1:9/unused");

    redis_cli(&redis, &["CONFIG", "SET", "maxmemory", "1"]);
    let a = call(&app, local_buy(&def.id, "oom", None)).await;
    assert_eq!(
        (a.status, a.error()),
        (503, Some("service_unavailable")),
        "{}",
        a.body
    );
    assert_eq!(a.retry_after.as_deref(), Some("1"));
    redis_cli(&redis, &["CONFIG", "SET", "maxmemory", "0"]);

    // A script that runs past the busy threshold: Redis answers BUSY to everyone else.
    redis_cli(&redis, &["CONFIG", "SET", "busy-reply-threshold", "100"]);
    let busy = {
        let port = redis.port;
        std::thread::spawn(move || {
            Command::new("redis-cli")
                .args(["-p", &port.to_string(), "EVAL"])
                .arg("local t = redis.call('TIME') while true do local n = redis.call('TIME') if n[1] - t[1] >= 2 then break end end return 1")
                .arg("0")
                .output()
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let a = call(&app, local_buy(&def.id, "busy", None)).await;
    assert_eq!(
        (a.status, a.error()),
        (503, Some("service_unavailable")),
        "{}",
        a.body
    );
    busy.join().unwrap().unwrap();

    assert_eq!(
        store.live_sale(&def.id).await.unwrap().unwrap().remaining,
        10
    );
    assert!(store.entries(&def.id).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_sale_redis_lost_is_503_not_404_until_rehydrated() {
    let redis = PrivateRedis::start(&[]);
    let mut t = TestApp::new().await;
    t.store = private_store(&redis, Duration::from_secs(2)).await;
    let def = t.sale(10, 2).await;
    let key = t.buy_with_key(&def, "kim", "k1").await;
    assert_eq!(key.status, 202);
    redis_cli(&redis, &["FLUSHALL"]);
    let app = t.buy_app();
    let a = call(&app, local_buy(&def.id, "lee", None)).await;
    assert_eq!(
        (a.status, a.error()),
        (503, Some("service_unavailable")),
        "{}",
        a.body
    );
    let again = t.buy_with_key(&def, "kim", "k1").await;
    assert_eq!(
        again.status, 503,
        "a keyed retry is not told the sale does not exist"
    );
    // A sale that never existed is still 404 once Redis holds sales again.
    flashflow_app::admin::rehydrate(&t.db, &t.store, &def.id)
        .await
        .unwrap();
    let other = call(&app, local_buy(&fresh_sale_id(), "lee", None)).await;
    assert_eq!((other.status, other.error()), (404, Some("sale_not_found")));
    let back = call(&app, local_buy(&def.id, "lee", None)).await;
    assert_eq!(back.status, 202, "{}", back.body);
    assert!(t.db.sale(&def.id).await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redis_killed_right_after_its_answers_keeps_every_promised_order() {
    // AOF as `make up` runs Redis: appendfsync everysec. kill -9 loses what the kernel has not
    // been handed, and Redis hands the AOF to the kernel before it answers.
    let mut redis = PrivateRedis::start(&["--appendonly", "yes", "--appendfsync", "everysec"]);
    let store = private_store(&redis, Duration::from_secs(2)).await;
    let def = sale(&fresh_sale_id(), 500, 1);
    store.load_sale(&def, 500).await.unwrap();
    let app = buy_app(store.clone(), sqs().await, "http://127.0.0.1:9/unused");
    let mut promised = Vec::new();
    for i in 0..200 {
        let a = call(&app, local_buy(&def.id, &format!("k{i}"), None)).await;
        assert_eq!(a.status, 202, "{}", a.body);
        promised.push(a.order_id().to_string());
    }
    redis.kill_and_restart();
    store.ready(Duration::from_secs(10)).await.unwrap();
    let kept: HashSet<String> = store
        .entries(&def.id)
        .await
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let lost: Vec<&String> = promised.iter().filter(|o| !kept.contains(*o)).collect();
    assert!(
        lost.is_empty(),
        "{} promised orders lost to kill -9",
        lost.len()
    );
    assert_eq!(
        store.live_sale(&def.id).await.unwrap().unwrap().remaining,
        300
    );
    let again = store
        .reserve(
            &flashflow::domain::ReserveRequest {
                admission: None,
                order_id: uuid::Uuid::now_v7(),
                sale: def.id.clone(),
                buyer: flashflow::domain::BuyerId::parse("k0").unwrap(),
                quantity: flashflow::domain::Quantity::default(),
                idempotency_key: None,
                signature: None,
            }
            .signed(&signer()),
        )
        .await
        .unwrap();
    assert!(
        matches!(again, flashflow::domain::Reservation::Refused(_)),
        "the buyer's count survived too"
    );
}
