//! Redis losing data, retries with Idempotency-Keys, and resets: Postgres backs every promise
//! Redis makes, and the operator can rebuild Redis from it.

use crate::helpers::*;
use flashflow::domain::{IdempotencyKey, OrderState, SaleDefinition, SaleId};
use flashflow::ports::StatusStore;
use flashflow_adapters::redis::{RedisStore, SaleKeys};
use fred::prelude::*;
use std::time::Duration;
use uuid::Uuid;

/// Redis forgets the sale, its buyers and its idempotency keys (as after a flush, an eviction or
/// a failover to an empty replica); the outbox too when `outbox`.
async fn lose(store: &RedisStore, id: &SaleId, outbox: bool) {
    let k = SaleKeys::new(id);
    let mut keys = vec![k.sale, k.buyers, k.idem];
    if outbox {
        keys.extend([k.outbox, k.outbox_at]);
    }
    let _: i64 = store.client().del(keys).await.unwrap();
}

fn create_body(id: &SaleId, stock: u32, limit: u32) -> String {
    format!(r#"{{"id":"{id}","name":"drop","stock":{stock},"per_user_limit":{limit}}}"#)
}

/// A sale created through the operator API, as an operator would.
async fn created(t: &TestApp, stock: u32, limit: u32) -> SaleDefinition {
    let id = fresh_sale_id();
    let a = call(
        &t.operator().await,
        admin(
            "POST",
            "/admin/sales",
            Some(&create_body(&id, stock, limit)),
        ),
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.body);
    sale(&id, stock, limit)
}

async fn statuses(t: &TestApp, sale: &SaleId) -> Vec<(Uuid, String, Option<Uuid>)> {
    t.db.client()
        .await
        .unwrap()
        .query(
            "SELECT order_id, status, duplicate_of FROM orders WHERE sale_id = $1
              ORDER BY reserved_at, order_id",
            &[&sale.as_str()],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

#[tokio::test]
async fn a_retry_after_redis_lost_the_sale_gets_its_original_order_and_postgres_keeps_one() {
    let t = TestApp::new().await;
    let def = created(&t, 10, 1).await;
    let first = t.buy_with_key(&def, "alice", "k1").await;
    assert_eq!(first.status, 202, "{}", first.body);
    let settlement = t.start_settlement(1).await;
    t.wait_for_settled(&def, 1).await;

    lose(&t.store, &def.id, false).await;
    let op = t.operator().await;
    let again = call(
        &op,
        admin("POST", "/admin/sales", Some(&create_body(&def.id, 10, 1))),
    )
    .await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.body["rehydrated"]["idempotency_keys"], 1);

    let retry = t.buy_with_key(&def, "alice", "k1").await;
    assert_eq!(
        (
            retry.status,
            retry.order_id(),
            retry.body["status"].as_str()
        ),
        (200, first.order_id(), Some("CONFIRMED")),
        "the original order, as it stands"
    );
    let other = t.buy_with_key(&def, "alice", "k2").await;
    assert_eq!(other.error(), Some("limit_reached"), "{}", other.body);
    settlement.stop().await;
    t.assert_invariants(
        "Redis loses a sale's keys; operator re-creates it; buyer retries its key",
        &def,
        &[first.order_id()],
        0,
    )
    .await;
}

#[tokio::test]
async fn postgres_holds_the_limit_and_the_keys_when_redis_forgot_them() {
    let t = TestApp::new().await;
    let def = t.sale(10, 1).await;
    let keyed = |buyer: &str, key: &str, at: i64| {
        let mut o = order(&def, buyer, 1, at);
        o.idempotency_key = Some(IdempotencyKey::parse(key).unwrap());
        o
    };
    let x1 = keyed("alice", "k1", 1);
    let x2 = keyed("alice", "k1", 2);
    let x3 = keyed("alice", "k2", 3);
    let x4 = keyed("bob", "k1", 4);
    let settler = t.settler().await;
    // The original settles on its own first: the later ones meet it in Postgres, not in the batch.
    let r = settler.handle(sqs_event(&[x1.to_json()]).0).await;
    assert!(r.batch_item_failures.is_empty());
    let r = settler
        .handle(sqs_event(&[x2.to_json(), x3.to_json(), x4.to_json()]).0)
        .await;
    assert!(r.batch_item_failures.is_empty());
    assert_eq!(
        statuses(&t, &def.id).await,
        vec![
            (x1.order_id, "CONFIRMED".into(), None),
            (x2.order_id, "DUPLICATE".into(), Some(x1.order_id)),
            (x3.order_id, "REJECTED".into(), None),
            (x4.order_id, "CONFIRMED".into(), None),
        ]
    );
    let shown = t.status.get(x2.order_id).await.unwrap().unwrap();
    assert_eq!(
        (shown.status, shown.duplicate_of),
        (OrderState::Duplicate, Some(x1.order_id))
    );
    // Delivered again, each keeps its outcome.
    let r = settler
        .handle(sqs_event(&[x2.to_json(), x1.to_json()]).0)
        .await;
    assert!(r.batch_item_failures.is_empty());
    assert_eq!(statuses(&t, &def.id).await.len(), 4);
    // Settle told Redis: a replay of alice's k1 answers the original, confirmed.
    let replay = t.buy_with_key(&def, "alice", "k1").await;
    assert_eq!(
        (replay.status, replay.order_id()),
        (200, x1.order_id),
        "{}",
        replay.body
    );
    assert_eq!(replay.body["status"], "CONFIRMED");
}

#[tokio::test]
async fn redis_data_loss_in_the_middle_of_a_sale_then_rehydrate_and_the_sale_goes_on() {
    let t = TestApp::new().await;
    let def = created(&t, 40, 1).await;
    let settlement = t.start_settlement(2).await;
    let mut accepted = Vec::new();
    for i in 0..30 {
        let a = t.buy(&def, &format!("b{i}")).await;
        assert_eq!(a.status, 202, "{}", a.body);
        accepted.push(a.order_id());
    }
    // Some settled, some still pending when Redis loses the sale.
    wait_until("10 settled", Duration::from_secs(30), || async {
        t.counts(&def).await.orders >= 10
    })
    .await;
    lose(&t.store, &def.id, false).await;
    assert_eq!(t.buy(&def, "late").await.error(), Some("sale_not_found"));

    let op = t.operator().await;
    let rebuilt = call(
        &op,
        admin("POST", &format!("/admin/sales/{}/rehydrate", def.id), None),
    )
    .await;
    assert_eq!(rebuilt.status, 200, "{}", rebuilt.body);
    assert_eq!(
        rebuilt.body["rehydrated"]["remaining"], 10,
        "stock - confirmed - pending, whatever the split: {}",
        rebuilt.body
    );
    for i in [0, 17, 29] {
        let again = t.buy(&def, &format!("b{i}")).await;
        assert_eq!(again.error(), Some("limit_reached"), "b{i} bought already");
    }
    let mut sold_out = 0;
    for i in 30..60 {
        let a = t.buy(&def, &format!("b{i}")).await;
        match a.status {
            202 => accepted.push(a.order_id()),
            _ => {
                assert_eq!(a.error(), Some("sold_out"), "{}", a.body);
                sold_out += 1;
            }
        }
    }
    assert_eq!((accepted.len(), sold_out), (40, 20));
    t.wait_for_settled(&def, 40).await;
    settlement.stop().await;
    t.assert_invariants(
        "Redis loses a sale mid-sale; rehydrate; the sale goes on",
        &def,
        &accepted,
        0,
    )
    .await;
}

#[tokio::test]
async fn ten_thousand_buyers_on_100_stock_with_a_fifth_retrying_their_key() {
    let t = TestApp::new().await;
    let def = created(&t, 100, 1).await;
    let app = t.buy_app();
    let buyers = 10_000;
    let attempt = |i: usize| {
        let app = app.clone();
        let id = def.id.clone();
        async move {
            let req = request(
                "POST",
                &format!("/sales/{id}/buy"),
                &[
                    ("x-user-id", format!("u{i}").as_str()),
                    ("idempotency-key", format!("key-{i}").as_str()),
                ],
                None,
            );
            call(&app, req).await
        }
    };
    let mut first: Vec<Option<Uuid>> = vec![None; buyers];
    for round in 0..2 {
        let who: Vec<usize> = (0..buyers).filter(|i| round == 0 || i % 5 == 0).collect();
        let mut set = tokio::task::JoinSet::new();
        let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(64));
        for i in who {
            let gate = std::sync::Arc::clone(&gate);
            let fut = attempt(i);
            set.spawn(async move {
                let _p = gate.acquire().await.unwrap();
                (i, fut.await)
            });
        }
        while let Some(done) = set.join_next().await {
            let (i, a) = done.unwrap();
            match (round, a.status) {
                (0, 202) => first[i] = Some(a.order_id()),
                (1, 202 | 200) => assert_eq!(Some(a.order_id()), first[i], "u{i} retried"),
                _ => assert_eq!(a.error(), Some("sold_out"), "u{i}: {}", a.body),
            }
        }
    }
    let accepted: Vec<Uuid> = first.iter().flatten().copied().collect();
    assert_eq!(accepted.len(), 100);
    let settlement = t.start_settlement(2).await;
    t.wait_for_settled(&def, 100).await;
    settlement.stop().await;
    t.assert_invariants(
        "10,000 buyers on 100 stock, 2,000 retrying with their Idempotency-Key",
        &def,
        &accepted,
        0,
    )
    .await;
}

#[tokio::test]
async fn a_reset_waits_for_pending_orders_unless_forced_and_keeps_the_history() {
    let t = TestApp::new().await;
    let def = created(&t, 3, 1).await;
    let op = t.operator().await;
    let reset = |body: Option<&'static str>| {
        let op = op.clone();
        let path = format!("/admin/sales/{}/reset", def.id);
        async move { call(&op, admin("POST", &path, body)).await }
    };
    let settled = t.buy(&def, "alice").await.order_id();
    let settlement = t.start_settlement(1).await;
    t.wait_for_settled(&def, 1).await;
    settlement.stop().await;
    // bob's order is reserved and its message in the queue, not settled: a reset mid-settlement.
    let pending = t.buy(&def, "bob").await.order_id();

    let refused = reset(None).await;
    assert_eq!(
        (refused.status, refused.error()),
        (409, Some("sale_has_pending_orders")),
        "{}",
        refused.body
    );
    let live = t.store.live_sale(&def.id).await.unwrap().unwrap();
    assert_eq!((live.remaining, live.pending), (1, 1), "nothing changed");

    let forced = reset(Some(r#"{"force":true,"stock":2}"#)).await;
    assert_eq!(forced.status, 200, "{}", forced.body);
    assert_eq!(forced.body["reset"]["cancelled"], 1);
    assert_eq!(
        (
            forced.body["round"].as_i64(),
            forced.body["remaining"].as_i64()
        ),
        (Some(2), Some(2))
    );
    // The cancelled order is recorded, as rejected, in Postgres and DynamoDB alike; the settled
    // one keeps its status.
    let status = |id| {
        let s = t.status.clone();
        async move { s.get(id).await.unwrap().map(|s| s.status) }
    };
    assert_eq!(status(pending).await, Some(OrderState::Rejected));
    assert_eq!(status(settled).await, Some(OrderState::Confirmed));
    let archived: Vec<(Uuid, String, i32)> =
        t.db.client()
            .await
            .unwrap()
            .query(
                "SELECT order_id, status, round FROM orders_archive WHERE sale_id = $1
              ORDER BY reserved_at",
                &[&def.id.as_str()],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
    assert_eq!(
        archived,
        vec![
            (settled, "CONFIRMED".into(), 1),
            (pending, "REJECTED".into(), 1)
        ]
    );

    // The earlier round's messages still arrive (bob's, and one never seen): they take nothing.
    let mut stray = order(&def, "carol", 1, 0);
    stray.reserved_at_ms = T0;
    let settlement = t.start_settlement(1).await;
    t.send(&stray.to_json()).await;
    let again = t.buy(&def, "alice").await;
    assert_eq!(again.status, 202, "alice may buy in the new round");
    t.wait_for_settled(&def, 1).await;
    wait_until(
        "bob's and carol's messages settled",
        Duration::from_secs(30),
        || async { t.depth(&t.queue).await == 0 },
    )
    .await;
    settlement.stop().await;
    assert_eq!(status(stray.order_id).await, Some(OrderState::Rejected));
    assert_eq!(status(pending).await, Some(OrderState::Rejected));
    let shown = call(&op, admin("GET", &format!("/admin/sales/{}", def.id), None)).await;
    assert_eq!(shown.body["settled"]["confirmed_quantity"], 1);
    t.assert_invariants(
        "reset attempted mid-settlement: refused, then forced",
        &sale(&def.id, 2, 1),
        &[again.order_id()],
        0,
    )
    .await;
}
