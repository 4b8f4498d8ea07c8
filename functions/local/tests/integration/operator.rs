//! The operator router against real Postgres (a fresh schema per test) and Redis.

use crate::helpers::*;
use axum::body::Body;
use axum::Router;
use flashflow_adapters::postgres::Db;
use flashflow_http::{self, operator};

const TOKEN: &str = "test-operator-token";

fn operator_app(
    db: Db,
    store: flashflow_adapters::redis::RedisStore,
    status: flashflow_adapters::dynamodb::DynamoStatusStore,
    token: Option<&str>,
) -> Router {
    flashflow_http::app(operator::routes(operator::OperatorState {
        db,
        store,
        status,
        queues: flashflow_adapters::memory::MemoryQueue::default(),
        token: token.map(Into::into),
        allow_reset: true,
    }))
}

async fn handler() -> Router {
    operator_app(
        fresh_db().await,
        store().await,
        fresh_status_store().await,
        Some(TOKEN),
    )
}

fn req(method: &str, path: &str, body: Option<&str>, token: Option<&str>) -> http::Request<Body> {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("content-type", "application/json")];
    if let Some(b) = &bearer {
        headers.push(("authorization", b.as_str()));
    }
    request(method, path, &headers, body)
}

async fn status_of(op: &Router, r: http::Request<Body>) -> u16 {
    call(op, r).await.status
}

fn answer(a: Answer) -> (u16, serde_json::Value) {
    (a.status, a.body)
}

/// `POST /admin/sales` of sale `id` with `stock` (limit 2), with the operator token.
async fn create(op: &Router, id: &flashflow::domain::SaleId, stock: u32) -> Answer {
    let body = create_body(id.as_str(), stock);
    call(op, req("POST", "/admin/sales", Some(&body), Some(TOKEN))).await
}

fn create_body(id: &str, stock: u32) -> String {
    format!(r#"{{"id":"{id}","name":"Phone launch","stock":{stock},"per_user_limit":2}}"#)
}

#[tokio::test]
async fn an_operator_creates_a_sale_that_buyers_can_then_buy_from() {
    let op = handler().await;
    let id = fresh_sale_id();
    let (status, body) = answer(create(&op, &id, 100).await);
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["stock"], 100);
    assert_eq!(body["remaining"], 100);
    assert_eq!(body["loaded"], true);

    let store = store().await;
    let sqs = sqs().await;
    let buy = buy_app(store.clone(), sqs, "http://127.0.0.1:9/unused");
    let r = http::Request::builder()
        .method("POST")
        .uri(format!("/sales/{id}/buy"))
        .header("x-user-id", "zed")
        .body(Body::empty())
        .unwrap();
    assert_eq!(answer(call(&buy, r).await).0, 202);

    let (status, shown) = answer(
        call(
            &op,
            req("GET", &format!("/admin/sales/{id}"), None, Some(TOKEN)),
        )
        .await,
    );
    assert_eq!(status, 200);
    assert_eq!(
        (
            shown["remaining"].as_i64(),
            shown["reserved"].as_i64(),
            shown["pending"].as_i64()
        ),
        (Some(99), Some(1), Some(1))
    );
    assert_eq!(shown["settled"]["confirmed_orders"], 0);
}

#[tokio::test]
async fn creating_the_same_sale_twice_is_idempotent_but_a_different_one_with_that_id_conflicts() {
    let op = handler().await;
    let id = fresh_sale_id();
    let body = create_body(id.as_str(), 10);
    assert_eq!(
        status_of(&op, req("POST", "/admin/sales", Some(&body), Some(TOKEN))).await,
        201
    );
    assert_eq!(
        status_of(&op, req("POST", "/admin/sales", Some(&body), Some(TOKEN))).await,
        200
    );
    let (status, err) = answer(create(&op, &id, 11).await);
    assert_eq!((status, err["error"].as_str()), (409, Some("sale_exists")));
}

/// `POST /admin/sales/{id}/reset`, with the operator token and an optional body.
async fn reset(op: &Router, id: &flashflow::domain::SaleId, body: Option<&str>) -> Answer {
    call(
        op,
        req(
            "POST",
            &format!("/admin/sales/{id}/reset"),
            body,
            Some(TOKEN),
        ),
    )
    .await
}

#[tokio::test]
async fn a_forced_reset_restores_the_stock_and_forgets_buyers() {
    let op = handler().await;
    let id = fresh_sale_id();
    assert_eq!(create(&op, &id, 1).await.status, 201);
    let buy = buy_app(store().await, sqs().await, "http://127.0.0.1:9/unused");
    let one = || local_buy(&id, "yan", None);
    assert_eq!(call(&buy, one()).await.status, 202);
    assert_eq!(call(&buy, one()).await.error(), Some("sold_out"));

    let shown = reset(&op, &id, Some(r#"{"stock":5,"force":true}"#)).await;
    assert_eq!(shown.status, 200, "{}", shown.body);
    assert_eq!(
        (
            shown.body["stock"].as_i64(),
            shown.body["remaining"].as_i64(),
            shown.body["pending"].as_i64()
        ),
        (Some(5), Some(5), Some(0))
    );
    assert_eq!(
        call(&buy, one()).await.status,
        202,
        "the buyer's count was reset too"
    );

    let shown = reset(&op, &id, Some(r#"{"force":true}"#)).await;
    assert_eq!(
        (shown.status, shown.body["remaining"].as_i64()),
        (200, Some(5)),
        "reset without a stock keeps the stock"
    );
}

#[tokio::test]
async fn an_unknown_sale_is_404_for_show_and_reset_and_nothing_is_created() {
    let op = handler().await;
    for r in [
        req(
            "GET",
            &format!("/admin/sales/{}", fresh_sale_id()),
            None,
            Some(TOKEN),
        ),
        req(
            "POST",
            &format!("/admin/sales/{}/reset", fresh_sale_id()),
            None,
            Some(TOKEN),
        ),
    ] {
        let a = call(&op, r).await;
        assert_eq!(
            (a.status, a.error()),
            (404, Some("sale_not_found")),
            "{}",
            a.body
        );
    }
    let id = fresh_sale_id();
    let a = call(
        &op,
        req(
            "POST",
            "/admin/sales",
            Some(&create_body(id.as_str(), 1)),
            Some("wrong"),
        ),
    )
    .await;
    assert_eq!(a.status, 403);
    assert!(
        store().await.live_sale(&id).await.unwrap().is_none(),
        "nothing was created"
    );
}

#[tokio::test]
async fn an_iam_authorized_api_gateway_event_needs_no_token() {
    let op = operator_app(
        fresh_db().await,
        store().await,
        fresh_status_store().await,
        None,
    );
    let id = fresh_sale_id();
    let (status, body) = answer(call(&op, event(ADMIN_CREATE_EVENT, &id)).await);
    assert_eq!(status, 201, "{body}");
    let (status, body) = answer(call(&op, event(ADMIN_SHOW_EVENT, &id)).await);
    assert_eq!((status, body["id"].as_str()), (200, Some(id.as_str())));
    // Without IAM context and with no token configured, nothing is authorized.
    assert_eq!(
        status_of(
            &op,
            req("GET", &format!("/admin/sales/{id}"), None, Some("x"))
        )
        .await,
        401
    );
}

#[tokio::test]
async fn migrations_apply_once_even_when_run_again() {
    let db = fresh_db().await;
    db.migrate().await.unwrap();
    let n: i64 = db
        .client()
        .await
        .unwrap()
        .query_one("SELECT count(*) FROM schema_migrations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 10, "0001 to 0010, once each");
}

#[tokio::test]
async fn after_redis_loses_a_sale_recreating_it_loads_only_what_postgres_has_not_confirmed() {
    use flashflow_app::settle::Settler;
    use fred::prelude::*;
    let url = fresh_schema_url().await;
    let op = operator_app(
        db_at(&url).await,
        store().await,
        fresh_status_store().await,
        Some(TOKEN),
    );
    let id = fresh_sale_id();
    let body = create_body(id.as_str(), 10);
    assert_eq!(
        status_of(&op, req("POST", "/admin/sales", Some(&body), Some(TOKEN))).await,
        201
    );
    // Settle 4 orders, then Redis loses everything it had for the sale.
    let settler = Settler::new(
        db_at(&url).await,
        fresh_status_store().await,
        store().await,
        no_requeue().await,
        signer(),
    );
    let def = sale(&id, 10, 2);
    let bodies: Vec<String> = (0..4)
        .map(|i| order(&def, &format!("b{i}"), 1, i).to_json())
        .collect();
    assert!(settler
        .handle(sqs_event(&bodies).0)
        .await
        .batch_item_failures
        .is_empty());
    let store = store().await;
    let keys = flashflow_adapters::redis::SaleKeys::new(&id);
    let _: i64 = store
        .client()
        .del(vec![keys.sale, keys.buyers, keys.idem])
        .await
        .unwrap();
    let (_, shown) = answer(
        call(
            &op,
            req("GET", &format!("/admin/sales/{id}"), None, Some(TOKEN)),
        )
        .await,
    );
    assert_eq!(shown["loaded"], false);

    // The operator re-creates the same sale: Redis gets stock minus what Postgres confirmed.
    let (status, shown) =
        answer(call(&op, req("POST", "/admin/sales", Some(&body), Some(TOKEN))).await);
    assert_eq!(status, 200, "{shown}");
    assert_eq!(shown["remaining"], 6);
    assert_eq!(shown["settled"]["confirmed_quantity"], 4);
}

#[tokio::test]
async fn postgres_connections_use_tls_when_the_url_requires_it() {
    let base = std::env::var("TEST_DATABASE_URL").unwrap();
    let sep = if base.contains('?') { '&' } else { '?' };
    let db = Db::new(&format!("{base}{sep}sslmode=require")).unwrap();
    let ssl: bool = db
        .client()
        .await
        .expect("the local Postgres serves TLS (Debian enables it with its snakeoil certificate)")
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(ssl, "the session is encrypted");
}

#[tokio::test]
async fn a_server_certificate_not_signed_by_the_configured_ca_is_refused() {
    // Any CA that did not sign the local server's certificate: a public root from the system store.
    let ca = std::fs::read_dir("/etc/ssl/certs")
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.extension().is_some_and(|x| x == "pem") && !p.to_string_lossy().contains("snakeoil")
        })
        .expect("a CA certificate under /etc/ssl/certs");
    let base = std::env::var("TEST_DATABASE_URL").unwrap();
    let sep = if base.contains('?') { '&' } else { '?' };
    let db = Db::with_ca_file(&format!("{base}{sep}sslmode=require"), ca.to_str()).unwrap();
    assert!(
        db.client().await.is_err(),
        "an unverifiable server must not be trusted"
    );
}

#[tokio::test]
async fn a_sales_attempts_per_minute_is_kept_by_postgres_and_survives_a_rehydrate() {
    let t = TestApp::new().await;
    let op = t.operator().await;
    let id = fresh_sale_id();
    let created = call(
        &op,
        admin(
            "POST",
            "/admin/sales",
            Some(&format!(
                r#"{{"id":"{id}","name":"limited","stock":10,"per_user_limit":5,"attempts_per_minute":1}}"#
            )),
        ),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["attempts_per_minute"], 1);
    // Two attempts by one buyer in a minute: the second is refused. (Across a minute boundary
    // the second would be a new minute's first; so a third is asked for too.)
    let app = t.buy_app();
    let buy = || call(&app, local_buy(&id, "hog", None));
    let answers = [buy().await, buy().await, buy().await];
    assert!(
        answers.iter().any(|a| a.status == 429),
        "{:?}",
        answers.map(|a| a.status)
    );

    // Redis loses the sale; the rehydrate loads the limit back from Postgres.
    let k = flashflow_adapters::redis::SaleKeys::new(&id);
    let _: i64 = fred::prelude::KeysInterface::del(
        t.store.client(),
        vec![k.sale, k.buyers, k.idem, k.outbox, k.outbox_at, k.attempts],
    )
    .await
    .unwrap();
    let back = call(
        &op,
        admin("POST", &format!("/admin/sales/{id}/rehydrate"), None),
    )
    .await;
    assert_eq!(back.status, 200, "{}", back.body);
    let answers = [buy().await, buy().await, buy().await];
    assert!(
        answers.iter().any(|a| a.status == 429),
        "the limit came back: {:?}",
        answers.map(|a| a.status)
    );
}
