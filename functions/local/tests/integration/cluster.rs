//! The full flow on Redis Cluster: three local masters, several sales on different shards. Every
//! key of a sale carries its hash tag, so no script or pipeline meets a CROSSSLOT error.

use crate::helpers::*;
use flashflow::domain::{OrderState, SaleDefinition};
use flashflow::ports::StatusStore;
use flashflow_adapters::redis::{RedisSettings, RedisStore, SaleKeys};
use flashflow_app::reconcile::{sweep_sales, SweepTiming};
use fred::prelude::*;
use std::collections::HashSet;
use std::process::Command;
use std::time::{Duration, Instant};

/// Three cluster-enabled masters on loopback, joined into one cluster covering every slot.
fn start_cluster() -> Vec<PrivateRedis> {
    let nodes: Vec<PrivateRedis> = (0..3)
        .map(|_| {
            PrivateRedis::start(&[
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
            ])
        })
        .collect();
    let addrs: Vec<String> = nodes
        .iter()
        .map(|n| format!("127.0.0.1:{}", n.port))
        .collect();
    let out = Command::new("redis-cli")
        .args(["--cluster", "create"])
        .args(&addrs)
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .output()
        .expect("redis-cli is on the PATH");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let ok = nodes.iter().all(|n| {
            let info = Command::new("redis-cli")
                .args(["-p", &n.port.to_string(), "cluster", "info"])
                .output()
                .unwrap();
            String::from_utf8_lossy(&info.stdout).contains("cluster_state:ok")
        });
        if ok {
            break;
        }
        assert!(Instant::now() < until, "cluster did not become ok");
        std::thread::sleep(Duration::from_millis(100));
    }
    nodes
}

/// The node (port) that serves `key`'s slot, from each node's own line of `CLUSTER NODES`
/// (`... myself,master ... connected 0-5460`).
fn node_of(nodes: &[PrivateRedis], key: &str) -> u16 {
    let cli = |port: u16, args: &[&str]| {
        let out = Command::new("redis-cli")
            .args(["-p", &port.to_string()])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let slot: u16 = cli(nodes[0].port, &["cluster", "keyslot", key])
        .trim()
        .parse()
        .unwrap();
    for n in nodes {
        let nodes_out = cli(n.port, &["cluster", "nodes"]);
        let mine = nodes_out
            .lines()
            .find(|l| l.contains("myself"))
            .unwrap_or_default();
        for range in mine.split_whitespace().skip(8) {
            let (a, b) = range.split_once('-').unwrap_or((range, range));
            if let (Ok(a), Ok(b)) = (a.parse::<u16>(), b.parse::<u16>()) {
                if (a..=b).contains(&slot) {
                    return n.port;
                }
            }
        }
    }
    panic!("no node serves {key} (slot {slot})");
}

#[tokio::test]
async fn buy_settle_sweep_status_and_rehydrate_run_on_a_three_master_cluster() {
    let nodes = start_cluster();
    let url = format!(
        "redis-cluster://127.0.0.1:{}?node=127.0.0.1:{}&node=127.0.0.1:{}",
        nodes[0].port, nodes[1].port, nodes[2].port
    );
    let mut t = TestApp::new().await;
    t.store = RedisStore::connect(&RedisSettings {
        url,
        command_timeout: Duration::from_secs(5).into(),
        ..Default::default()
    })
    .unwrap();
    t.store.ready(Duration::from_secs(10)).await.unwrap();
    let op = t.operator().await;

    // Sales until three different shards hold one.
    let mut sales: Vec<SaleDefinition> = Vec::new();
    let mut shards = HashSet::new();
    while shards.len() < 3 {
        let def = sale(&fresh_sale_id(), 5, 1);
        if shards.insert(node_of(&nodes, &SaleKeys::new(&def.id).sale)) {
            let body = format!(
                r#"{{"id":"{}","name":"c","stock":5,"per_user_limit":1}}"#,
                def.id
            );
            let a = call(&op, admin("POST", "/admin/sales", Some(&body))).await;
            assert_eq!(a.status, 201, "{}", a.body);
            sales.push(def);
        }
    }

    // Buys on every shard, one of them with its send failing (left to the sweeper).
    let mut accepted: Vec<Vec<uuid::Uuid>> = vec![Vec::new(); 3];
    for (s, def) in sales.iter().enumerate() {
        for b in 0..3 {
            let a = t.buy_with_key(def, &format!("b{b}"), "k").await;
            assert_eq!(a.status, 202, "{}", a.body);
            accepted[s].push(a.order_id());
        }
    }
    let down = buy_app(
        t.store.clone(),
        unreachable_sqs().await,
        "http://127.0.0.1:9/q",
    );
    let lost = call(&down, local_buy(&sales[0].id, "late", None)).await;
    assert_eq!(lost.status, 202, "{}", lost.body);
    accepted[0].push(lost.order_id());

    // The order-status lookup of a pending order searches every sale's outbox (a pipeline across
    // shards).
    let pending = t.store.find_pending(lost.order_id()).await.unwrap();
    assert!(pending.is_some(), "found across shards");

    let queue = flashflow_adapters::sqs::SqsPublisher::new(t.sqs.clone(), &t.queue);
    let timing = SweepTiming {
        grace: Duration::ZERO.into(),
        in_queue_for: Duration::from_secs(3600).into(),
        finished_ttl: flashflow_app::reconcile::SweepTiming::default().finished_ttl,
    };
    let ids: Vec<_> = sales.iter().map(|d| d.id.clone()).collect();
    let swept = sweep_sales(&t.store, &queue, timing, &ids).await.unwrap();
    assert!(swept.resent >= 1, "{swept:?}");

    let settlement = t.start_settlement(2).await;
    for (s, def) in sales.iter().enumerate() {
        t.wait_for_settled(def, accepted[s].len() as i64).await;
    }
    settlement.stop().await;
    for (s, def) in sales.iter().enumerate() {
        t.assert_invariants(
            "the full flow on a 3-master Redis Cluster",
            def,
            &accepted[s],
            0,
        )
        .await;
    }

    // A replay answers the settled order; then one shard loses its sale and is rehydrated.
    let replay = t.buy_with_key(&sales[1], "b0", "k").await;
    assert_eq!((replay.status, replay.order_id()), (200, accepted[1][0]));
    let k = SaleKeys::new(&sales[1].id);
    let _: i64 = t
        .store
        .client()
        .del(vec![k.sale, k.buyers, k.idem])
        .await
        .unwrap();
    let rebuilt = call(
        &op,
        admin(
            "POST",
            &format!("/admin/sales/{}/rehydrate", sales[1].id),
            None,
        ),
    )
    .await;
    assert_eq!(rebuilt.status, 200, "{}", rebuilt.body);
    assert_eq!(rebuilt.body["remaining"], 2);
    let replay = t.buy_with_key(&sales[1], "b0", "k").await;
    assert_eq!((replay.status, replay.order_id()), (200, accepted[1][0]));
    assert_eq!(
        t.status
            .get(accepted[1][0])
            .await
            .unwrap()
            .map(|s| s.status),
        Some(OrderState::Confirmed)
    );
}

#[tokio::test]
async fn the_sold_out_fast_path_hears_returns_from_every_shard() {
    let nodes = start_cluster();
    let settings = RedisSettings {
        url: format!(
            "redis-cluster://127.0.0.1:{}?node=127.0.0.1:{}&node=127.0.0.1:{}",
            nodes[0].port, nodes[1].port, nodes[2].port
        ),
        command_timeout: Duration::from_secs(5).into(),
        ..Default::default()
    };
    let fast = flashflow_adapters::redis::FastPathSettings {
        max_age: Duration::from_secs(1).into(),
        tracking: flashflow_settings::Flag(true),
    };
    let mut t = TestApp::new().await;
    t.store = RedisStore::connect(&settings)
        .and_then(|s| s.with_fast_path(&fast, &settings))
        .unwrap();
    t.store.ready(Duration::from_secs(10)).await.unwrap();

    // One sold-out sale on each shard.
    let mut sales: Vec<SaleDefinition> = Vec::new();
    let mut shards = HashSet::new();
    while shards.len() < 3 {
        let def = sale(&fresh_sale_id(), 1, 1);
        if shards.insert(node_of(&nodes, &SaleKeys::new(&def.id).sale)) {
            t.db.create_sale(&def).await.unwrap();
            t.store.load_sale(&def, 1).await.unwrap();
            assert_eq!(t.buy(&def, "first").await.status, 202);
            assert_eq!(t.buy(&def, "second").await.body["error"], "sold_out");
            sales.push(def);
        }
    }
    // On each shard: learned (young, so that an entry's going tells news from age), then a
    // restock pushed by that shard's node. Learning one sale at a time, each right before its
    // restock: an entry lives a second at most, and the other shards' set-up takes time.
    for def in &sales {
        let age = learn_young(&t, def).await;
        let news = Instant::now();
        let start = t.store.begin_reset(&def.id, 2, true).await.unwrap();
        assert!(matches!(
            start,
            flashflow::ports::ResetStart::Frozen { round: 2, .. }
        ));
        t.store.finish_reset(def, 2).await.unwrap();
        assert_forgotten_by_news(&t.store, &def.id, age, news).await;
        assert_eq!(t.buy(def, "woken").await.status, 202);
    }
}

/// Each function's Redis user (`infra/redis/acl-users.txt`, the template's ElastiCache users)
/// logs in to a cluster: fred asks each node `CLUSTER INFO` while it connects.
#[tokio::test]
async fn every_functions_redis_user_connects_to_a_cluster() {
    const USERS: &str = include_str!("../../../../infra/redis/acl-users.txt");
    let nodes = start_cluster();
    let url = format!(
        "redis-cluster://127.0.0.1:{}?node=127.0.0.1:{}&node=127.0.0.1:{}",
        nodes[0].port, nodes[1].port, nodes[2].port
    );
    for line in USERS
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let (function, rules) = line.split_once(' ').unwrap();
        let name = format!("t-{function}-{}", uuid::Uuid::new_v4().simple());
        for n in &nodes {
            let out = Command::new("redis-cli")
                .args(["-p", &n.port.to_string(), "ACL", "SETUSER", &name, "reset"])
                .args(rules.split_whitespace())
                .arg(">pw-cluster-test")
                .output()
                .unwrap();
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "OK");
        }
        let store = RedisStore::connect(&RedisSettings {
            url: url.clone(),
            command_timeout: Duration::from_secs(5).into(),
            auth: Some(flashflow_adapters::secrets::Credentials {
                username: Some(name),
                password: "pw-cluster-test".to_owned().into(),
            }),
            ..Default::default()
        })
        .unwrap();
        tokio::time::timeout(Duration::from_secs(5), store.client().wait_for_connect())
            .await
            .unwrap_or_else(|_| panic!("{function}'s user did not connect in time"))
            .unwrap_or_else(|e| panic!("{function}'s user could not log in: {e}"));
    }
}
