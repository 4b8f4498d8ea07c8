//! Handler tests on the in-memory adapters: the routers exactly as the Lambdas run them, no
//! service needed. The same routers run against Redis, SQS, DynamoDB and Postgres in the
//! integration tests (`functions/local/tests/integration`).

use super::buy::{BuySettings, BuyState};
use super::orders::OrdersState;
use super::*;
use crate::adapters::memory::{MemoryQueue, MemoryStatus, MemoryStore};
use crate::domain::{OrderMessage, OrderState, OrderStatus, SaleDefinition, SaleId};
use crate::ports::StatusStore;
use crate::testing::http::{call, event, request};
use axum::http::{Method, Request};

const BUY_EVENT: &str = include_str!("../../../../events/apigw-buy.json");
const BUY_NO_IDENTITY_EVENT: &str = include_str!("../../../../events/apigw-buy-no-identity.json");
const ORDER_STATUS_EVENT: &str = include_str!("../../../../events/apigw-order-status.json");
const TEMPLATE: &str = include_str!("../../../../template.yaml");

fn sale(id: &str, stock: u32, limit: u32) -> SaleDefinition {
    SaleDefinition {
        id: SaleId::parse(id).unwrap(),
        name: "test".into(),
        stock,
        per_user_limit: limit,
        opens_at_ms: None,
        closes_at_ms: None,
        attempts_per_minute: None,
        checkout: None,
        waiting_room: None,
    }
}

struct Buy {
    app: Router,
    store: MemoryStore,
    queue: MemoryQueue,
    sale: SaleDefinition,
}

fn buy_app(stock: u32, limit: u32, trust_user_header: bool) -> Buy {
    let (store, queue) = (MemoryStore::default(), MemoryQueue::default());
    let def = sale("drop", stock, limit);
    store.load_sale_now(&def, stock);
    let app = app(buy::routes(BuyState {
        store: store.clone(),
        publisher: queue.clone(),
        settings: BuySettings {
            trust_user_header: crate::settings::Flag(trust_user_header),
            ..BuySettings::default()
        },
        gate: Default::default(),
        metrics: crate::metrics::Metrics::new("buy"),
    }));
    Buy {
        app,
        store,
        queue,
        sale: def,
    }
}

/// A local buy of the sale `drop` (every handler test's sale).
fn local_buy(buyer: &str, body: &str) -> Request<Body> {
    crate::testing::http::local_buy(&SaleId::parse("drop").unwrap(), buyer, Some(body))
}

#[tokio::test]
async fn a_buy_from_an_api_gateway_event_is_accepted_and_its_order_is_sent() {
    let b = buy_app(10, 2, false);
    let a = call(&b.app, event(BUY_EVENT, &b.sale.id)).await;
    assert_eq!(a.status, 202, "{}", a.body);
    assert_eq!(a.body["status"], "PENDING");
    let sent = b.queue.sent();
    assert_eq!(sent.len(), 1);
    let msg = OrderMessage::parse(&sent[0]).unwrap();
    assert_eq!(
        msg.order_id.to_string(),
        a.body["order_id"].as_str().unwrap()
    );
    assert_eq!(msg.buyer.as_str(), "buyer-123", "the buyer is the JWT sub");
    assert_eq!(
        msg.idempotency_key.as_ref().map(|k| k.as_str()),
        Some("9b2f6a1e-retry-safe")
    );
}

#[tokio::test]
async fn a_sent_order_is_marked_as_in_the_queue_and_an_unsent_one_is_not() {
    let b = buy_app(10, 2, true);
    let sent = call(&b.app, local_buy("u", "")).await.body["order_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    b.queue.set_unavailable(true);
    let unsent = call(&b.app, local_buy("v", "")).await.body["order_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    // The mark is made off the buyer's path: wait for it (the bound only stops a broken run).
    let marked = b
        .store
        .wait_marked(sent, std::time::Duration::from_secs(10))
        .await;
    let three_days = std::time::Duration::from_secs(3 * 24 * 3600);
    let now = crate::clock::EpochMs::now();
    assert!(marked.is_some_and(|t| t > now.plus(three_days).get()));
    assert_eq!(b.store.marked_until(unsent), None);
}

#[tokio::test]
async fn an_idempotency_key_reused_for_another_quantity_is_422_and_takes_nothing() {
    let b = buy_app(10, 5, true);
    let with_key = |q: u32| {
        request(
            "POST",
            "/sales/drop/buy",
            &[("x-user-id", "kim"), ("idempotency-key", "k1")],
            format!(r#"{{"quantity":{q}}}"#).as_str(),
        )
    };
    let first = call(&b.app, with_key(1)).await;
    assert_eq!(first.status, 202);
    let reused = call(&b.app, with_key(3)).await;
    assert_eq!(
        (reused.status, reused.body["error"].as_str()),
        (422, Some("idempotency_key_reused"))
    );
    let replay = call(&b.app, with_key(1)).await;
    assert_eq!(
        (replay.status, &replay.body["order_id"]),
        (202, &first.body["order_id"])
    );
    assert_eq!(b.store.remaining(&b.sale.id), Some(9));
    assert_eq!(b.queue.sent().len(), 1);
}

#[tokio::test]
async fn a_retried_event_with_the_same_idempotency_key_gets_the_same_order_and_one_message() {
    let b = buy_app(10, 2, false);
    let first = call(&b.app, event(BUY_EVENT, &b.sale.id)).await;
    let again = call(&b.app, event(BUY_EVENT, &b.sale.id)).await;
    assert_eq!((first.status, again.status), (202, 202));
    assert_eq!(first.body["order_id"], again.body["order_id"]);
    assert_eq!(b.store.remaining(&b.sale.id), Some(9));
    assert_eq!(b.queue.sent().len(), 1);
}

#[tokio::test]
async fn when_the_queue_refuses_the_buyer_still_gets_202_and_the_order_waits_in_the_outbox() {
    let b = buy_app(10, 2, true);
    b.queue.set_unavailable(true);
    let a = call(&b.app, local_buy("u", "")).await;
    assert_eq!(a.status, 202, "{}", a.body);
    let outbox = b.store.outbox(&b.sale.id);
    assert_eq!(outbox.len(), 1);
    assert!(outbox.contains_key(&a.body["order_id"].as_str().unwrap().parse().unwrap()));
}

#[tokio::test]
async fn when_the_store_is_unreachable_the_buyer_gets_503_with_retry_after_and_no_details() {
    let b = buy_app(10, 2, true);
    b.store.set_unavailable(true);
    let a = call(&b.app, local_buy("u", "")).await;
    assert_eq!(a.status, 503);
    assert_eq!(a.body["error"], "service_unavailable");
    assert_eq!(a.retry_after.as_deref(), Some("1"));
    assert!(!a.body.to_string().contains("switched off"), "{}", a.body);
}

#[tokio::test]
async fn when_the_store_is_unreachable_the_503_says_nothing_was_reserved() {
    let b = buy_app(10, 2, true);
    b.store.set_unavailable(true);
    let a = call(&b.app, local_buy("u", "")).await;
    assert_eq!(a.status, 503);
    assert!(
        a.body["message"]
            .as_str()
            .unwrap()
            .contains("nothing was reserved"),
        "{}",
        a.body
    );
    b.store.set_unavailable(false);
    assert_eq!(b.store.remaining(&b.sale.id), Some(10));
}

/// A buy app whose store answers after `lost` runs are lost, with a short deadline.
fn buy_app_losing_answers(lost: usize, deadline_ms: u64) -> Buy {
    let b = buy_app(10, 1, true);
    b.store.lose_answers(lost);
    let app = app(buy::routes(BuyState {
        store: b.store.clone(),
        publisher: b.queue.clone(),
        settings: BuySettings {
            trust_user_header: crate::settings::Flag(true),
            deadline: crate::settings::Millis::ms(deadline_ms),
            ..BuySettings::default()
        },
        gate: Default::default(),
        metrics: crate::metrics::Metrics::new("buy"),
    }));
    Buy { app, ..b }
}

#[tokio::test]
async fn a_reservation_whose_answer_was_lost_is_asked_again_and_the_buyer_gets_its_one_order() {
    let b = buy_app_losing_answers(2, 5_000);
    let a = call(&b.app, local_buy("u", "")).await;
    assert_eq!(a.status, 202, "{}", a.body);
    assert_eq!(b.store.remaining(&b.sale.id), Some(9), "stock taken once");
    let outbox = b.store.outbox(&b.sale.id);
    assert_eq!(outbox.len(), 1, "one order");
    let id: uuid::Uuid = a.body["order_id"].as_str().unwrap().parse().unwrap();
    assert!(outbox.contains_key(&id), "the order the buyer was told of");
    // Limit 1: the buyer's allowance was taken once too, so a new buy is refused.
    let again = call(&b.app, local_buy("u", "")).await;
    assert_eq!(again.body["error"], "limit_reached", "{}", again.body);
}

#[tokio::test]
async fn when_the_outcome_stays_unknown_the_503_names_the_order_and_the_order_can_be_looked_up() {
    let b = buy_app_losing_answers(usize::MAX, 100);
    let a = call(&b.app, local_buy("u", "")).await;
    assert_eq!(a.status, 503, "{}", a.body);
    assert_eq!(a.body["error"], "outcome_unknown");
    assert_eq!(a.retry_after.as_deref(), Some("1"));
    let id: uuid::Uuid = a.body["order_id"].as_str().unwrap().parse().unwrap();
    assert!(
        b.store.outbox(&b.sale.id).contains_key(&id),
        "the named order is the one that was reserved"
    );
    assert_eq!(b.store.remaining(&b.sale.id), Some(9), "taken once");
}

#[tokio::test]
async fn after_the_store_lost_its_data_a_buy_is_503_not_404() {
    let b = buy_app(10, 2, true);
    b.store.flush();
    let a = call(&b.app, local_buy("u", "")).await;
    assert_eq!(a.status, 503, "{}", a.body);
    assert_eq!(a.body["error"], "service_unavailable");
    assert_eq!(a.retry_after.as_deref(), Some("1"));
}

#[tokio::test]
async fn a_buyer_past_the_sales_attempts_per_minute_gets_429_with_retry_after_and_takes_nothing() {
    let b = buy_app(10, 1, true);
    let limited = SaleDefinition {
        attempts_per_minute: Some(1),
        ..b.sale.clone()
    };
    b.store.load_sale_now(&limited, 10);
    let mut answers = Vec::new();
    for _ in 0..3 {
        answers.push(call(&b.app, local_buy("hog", "")).await);
    }
    let refused: Vec<_> = answers.iter().filter(|a| a.status == 429).collect();
    assert!(
        !refused.is_empty(),
        "{:?}",
        answers.iter().map(|a| a.status).collect::<Vec<_>>()
    );
    for a in &refused {
        assert_eq!(a.body["error"], "too_many_requests");
        let after: u32 = a.retry_after.as_deref().unwrap().parse().unwrap();
        assert!((1..=60).contains(&after));
    }
    assert_eq!(
        b.store.remaining(&b.sale.id),
        Some(9),
        "one bought, the rest took nothing"
    );
}

#[tokio::test]
async fn a_buy_without_identity_is_refused_with_401_even_with_a_user_header_unless_enabled() {
    let b = buy_app(10, 2, false);
    let a = call(&b.app, event(BUY_NO_IDENTITY_EVENT, &b.sale.id)).await;
    assert_eq!(
        (a.status, a.body["error"].as_str()),
        (401, Some("unauthenticated"))
    );
    let spoof = call(&b.app, local_buy("mallory", "")).await;
    assert_eq!(spoof.status, 401, "X-User-Id is ignored by default");
    assert_eq!(b.store.remaining(&b.sale.id), Some(10));
}

/// Found by schemathesis: JSON has one number type, and the document's `"type": "integer"`
/// admits `2.0`; a buy that asks for it is a buy of two.
#[tokio::test]
async fn a_quantity_written_as_a_whole_float_buys_that_many() {
    let b = buy_app(10, 5, true);
    let a = call(&b.app, local_buy("alice", r#"{"quantity":2.0}"#)).await;
    assert_eq!(a.status, 202, "{}", a.body);
    assert_eq!(b.store.remaining(&b.sale.id), Some(8));
}

#[tokio::test]
async fn the_readme_example_without_a_content_type_is_accepted() {
    let b = buy_app(10, 2, true);
    // curl -X POST …/buy -H 'x-user-id: alice' -H 'idempotency-key: k1' -d '{"quantity":1}' sends
    // form content type; without any content type the body is taken as JSON.
    let req = request(
        "POST",
        "/sales/drop/buy",
        &[("x-user-id", "alice"), ("idempotency-key", "k1")],
        r#"{"quantity":1}"#,
    );
    assert_eq!(call(&b.app, req).await.status, 202);
}

#[tokio::test]
async fn bad_input_gets_a_specific_error_and_reserves_nothing() {
    let b = buy_app(10, 3, true);
    let user = ("x-user-id", "u-1");
    let json = ("content-type", "application/json");
    let huge = format!(r#"{{"quantity":1,"pad":"{}"}}"#, "x".repeat(5000));
    let long_key = "k".repeat(129);
    let long_user = "u".repeat(129);
    let post =
        |path: &str, headers: &[(&str, &str)], body: &str| request("POST", path, headers, body);
    let p = "/sales/drop/buy";
    let cases: Vec<(&str, Request<Body>, u16, &str)> = vec![
        (
            "malformed JSON",
            post(p, &[user, json], "{\"quantity\":"),
            400,
            "invalid_body",
        ),
        (
            "not an object",
            post(p, &[user, json], "[1]"),
            400,
            "invalid_body",
        ),
        (
            "quantity as string",
            post(p, &[user, json], r#"{"quantity":"2"}"#),
            400,
            "invalid_body",
        ),
        (
            "quantity fractional",
            post(p, &[user, json], r#"{"quantity":1.5}"#),
            400,
            "invalid_body",
        ),
        (
            "quantity beyond i64",
            post(p, &[user, json], r#"{"quantity":99999999999999999999}"#),
            400,
            "invalid_body",
        ),
        (
            "quantity zero",
            post(p, &[user, json], r#"{"quantity":0}"#),
            400,
            "invalid_quantity",
        ),
        (
            "quantity negative",
            post(p, &[user, json], r#"{"quantity":-1}"#),
            400,
            "invalid_quantity",
        ),
        (
            "quantity too large",
            post(p, &[user, json], r#"{"quantity":101}"#),
            400,
            "invalid_quantity",
        ),
        (
            "unknown field",
            post(p, &[user, json], r#"{"qty":1}"#),
            400,
            "invalid_body",
        ),
        (
            "body too large",
            post(p, &[user, json], &huge),
            413,
            "body_too_large",
        ),
        (
            "not JSON content type",
            post(
                p,
                &[user, ("content-type", "application/x-www-form-urlencoded")],
                "quantity=1",
            ),
            415,
            "unsupported_media_type",
        ),
        (
            "empty idempotency key",
            post(p, &[user, ("idempotency-key", "")], ""),
            400,
            "invalid_idempotency_key",
        ),
        (
            "idempotency key too long",
            post(p, &[user, ("idempotency-key", &long_key)], ""),
            400,
            "invalid_idempotency_key",
        ),
        (
            "idempotency key with space",
            post(p, &[user, ("idempotency-key", "a b")], ""),
            400,
            "invalid_idempotency_key",
        ),
        (
            "idempotency key twice",
            post(
                p,
                &[user, ("idempotency-key", "a"), ("idempotency-key", "b")],
                "",
            ),
            400,
            "invalid_idempotency_key",
        ),
        (
            "empty user",
            post(p, &[("x-user-id", "")], ""),
            400,
            "invalid_buyer",
        ),
        (
            "user too long",
            post(p, &[("x-user-id", &long_user)], ""),
            400,
            "invalid_buyer",
        ),
        ("no identity", post(p, &[], ""), 401, "unauthenticated"),
        (
            "bad sale id",
            post("/sales/a%20b/buy", &[user], ""),
            400,
            "invalid_sale_id",
        ),
        (
            "sale id with hash tag braces",
            post("/sales/x%7Dy/buy", &[user], ""),
            400,
            "invalid_sale_id",
        ),
        (
            "sale id not UTF-8",
            post("/sales/%FF/buy", &[user], ""),
            400,
            "invalid_sale_id",
        ),
        (
            "unknown sale",
            post("/sales/nope/buy", &[user], ""),
            404,
            "sale_not_found",
        ),
        (
            "wrong method",
            request("GET", p, &[user], ""),
            405,
            "method_not_allowed",
        ),
        (
            "wrong path",
            post("/sales/x", &[user], ""),
            404,
            "route_not_found",
        ),
        (
            "the root",
            request("GET", "/", &[], ""),
            404,
            "route_not_found",
        ),
        (
            "over the per-user limit",
            post(p, &[user, json], r#"{"quantity":4}"#),
            403,
            "limit_reached",
        ),
    ];
    for (name, req, want_status, want_code) in cases {
        let a = call(&b.app, req).await;
        assert_eq!(a.status, want_status, "{name}: {}", a.body);
        assert_eq!(a.body["error"], want_code, "{name}: {}", a.body);
        assert!(
            a.body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{name}: {}",
            a.body
        );
    }
    assert_eq!(
        b.store.remaining(&b.sale.id),
        Some(10),
        "nothing was reserved"
    );
    assert!(b.queue.sent().is_empty());
    // A valid buy after all that still works.
    assert_eq!(
        call(&b.app, local_buy("other", r#"{"quantity":3}"#))
            .await
            .status,
        202
    );
    assert_eq!(b.store.remaining(&b.sale.id), Some(7));
}

#[tokio::test]
async fn a_known_path_with_another_method_is_405_with_an_allow_header() {
    let b = buy_app(1, 1, true);
    let a = call(&b.app, request("DELETE", "/sales/drop/buy", &[], "")).await;
    assert_eq!((a.status, a.allow.as_deref()), (405, Some("POST")));
    assert_eq!(a.body["error"], "method_not_allowed");
}

#[tokio::test]
async fn sold_out_and_insufficient_stock_are_409_with_their_own_codes() {
    let b = buy_app(2, 5, true);
    let q = |n: u32, who: &str| local_buy(who, &format!(r#"{{"quantity":{n}}}"#));
    assert_eq!(call(&b.app, q(1, "a")).await.status, 202);
    let a = call(&b.app, q(2, "b")).await;
    assert_eq!(
        (a.status, a.body["error"].as_str()),
        (409, Some("insufficient_stock"))
    );
    assert_eq!(a.body["message"], "only 1 left");
    assert_eq!(call(&b.app, q(1, "b")).await.status, 202);
    let a = call(&b.app, q(1, "c")).await;
    assert_eq!(
        (a.status, a.body["error"].as_str()),
        (409, Some("sold_out"))
    );
}

struct Orders {
    app: Router,
    status: MemoryStatus,
    store: MemoryStore,
}

fn orders_app() -> Orders {
    let (status, store) = (MemoryStatus::default(), MemoryStore::default());
    store.load_sale_now(&sale("drop", 5, 5), 5);
    let app = app(orders::routes(OrdersState {
        status: status.clone(),
        store: store.clone(),
        trust_user_header: true,
        operator_token: Some("op-token".into()),
    }));
    Orders { app, status, store }
}

async fn reserve(store: &MemoryStore, buyer: &str) -> OrderMessage {
    use crate::domain::{BuyerId, Quantity, Reservation, ReserveRequest};
    use crate::ports::ReservationStore;
    let req = ReserveRequest {
        admission: None,
        order_id: uuid::Uuid::now_v7(),
        sale: SaleId::parse("drop").unwrap(),
        buyer: BuyerId::parse(buyer).unwrap(),
        quantity: Quantity::default(),
        idempotency_key: None,
    };
    match store.reserve(&req).await.unwrap() {
        Reservation::Reserved { message, .. } => OrderMessage::parse(&message).unwrap(),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn order_status_is_pending_then_confirmed_and_only_its_buyer_or_an_operator_sees_it() {
    let o = orders_app();
    let order = reserve(&o.store, "owner").await;
    let path = format!("/orders/{}", order.order_id);
    let get = |headers: &[(&str, &str)]| request("GET", &path, headers, "");

    let a = call(&o.app, get(&[("x-user-id", "owner")])).await;
    assert_eq!(
        (a.status, a.body["status"].as_str()),
        (200, Some("PENDING"))
    );
    let a = call(&o.app, get(&[("x-user-id", "someone-else")])).await;
    assert_eq!(
        (a.status, a.body["error"].as_str()),
        (404, Some("order_not_found"))
    );
    assert_eq!(call(&o.app, get(&[])).await.status, 401);
    assert_eq!(
        call(&o.app, get(&[("authorization", "Bearer wrong")]))
            .await
            .status,
        403
    );

    o.status
        .put_all(&[OrderStatus::of(&order, OrderState::Confirmed)])
        .await;
    let a = call(&o.app, get(&[("x-user-id", "owner")])).await;
    assert_eq!(
        (a.status, a.body["status"].as_str()),
        (200, Some("CONFIRMED"))
    );
    let admin = format!("/admin/orders/{}", order.order_id);
    let a = call(
        &o.app,
        request("GET", &admin, &[("authorization", "Bearer op-token")], ""),
    )
    .await;
    assert_eq!((a.status, a.body["buyer"].as_str()), (200, Some("owner")));
}

#[tokio::test]
async fn an_unknown_or_malformed_order_id_is_404_or_400() {
    let o = orders_app();
    let who = [("x-user-id", "owner")];
    let a = call(&o.app, request("GET", "/orders/not-a-uuid", &who, "")).await;
    assert_eq!(
        (a.status, a.body["error"].as_str()),
        (400, Some("invalid_order_id"))
    );
    let unknown = format!("/orders/{}", uuid::Uuid::now_v7());
    let a = call(&o.app, request("GET", &unknown, &who, "")).await;
    assert_eq!(
        (a.status, a.body["error"].as_str()),
        (404, Some("order_not_found"))
    );
}

#[tokio::test]
async fn when_the_status_store_is_down_order_status_is_503() {
    let o = orders_app();
    o.status.set_unavailable(true);
    let path = format!("/orders/{}", uuid::Uuid::now_v7());
    let a = call(&o.app, request("GET", &path, &[("x-user-id", "owner")], "")).await;
    assert_eq!(
        (a.status, a.body["error"].as_str()),
        (503, Some("service_unavailable"))
    );
}

#[tokio::test]
async fn a_jwt_buyer_reads_their_order_even_where_an_operator_token_is_configured() {
    let o = orders_app();
    let order = reserve(&o.store, "buyer-123").await;
    let req = lambda_http::request::from_str(&ORDER_STATUS_EVENT.replace(
        "01936f1e-0000-7000-8000-000000000001",
        &order.order_id.to_string(),
    ))
    .unwrap();
    let a = call(&o.app, req).await;
    assert_eq!(
        (
            a.status,
            a.body["status"].as_str(),
            a.body["buyer"].as_str()
        ),
        (200, Some("PENDING"), Some("buyer-123")),
        "{}",
        a.body
    );
}

/// The operator routes with clients that reach nothing: every case here is decided before any I/O.
fn offline_operator() -> Router {
    use crate::adapters::{postgres::Db, redis::RedisStore};
    let db = Db::new("postgres://nobody@127.0.0.1:9/none").unwrap();
    let store = RedisStore::connect(&crate::adapters::redis::RedisSettings {
        url: "redis://127.0.0.1:9".into(),
        command_timeout: std::time::Duration::from_millis(200).into(),
        ..Default::default()
    })
    .unwrap();
    let dynamodb = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::Config::builder()
            .behavior_version_latest()
            .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
            .endpoint_url("http://127.0.0.1:9")
            .build(),
    );
    app(operator::routes(operator::OperatorState {
        db,
        store,
        status: crate::adapters::dynamodb::DynamoStatusStore::new(dynamodb, "none"),
        token: Some("t".into()),
        allow_reset: true,
    }))
}

#[tokio::test]
async fn the_operator_api_refuses_missing_or_wrong_credentials_and_bad_requests() {
    let app = offline_operator();
    let ok = r#"{"id":"s","name":"n","stock":1,"per_user_limit":1}"#;
    let json = ("content-type", "application/json");
    let auth = ("authorization", "Bearer t");
    let cases: Vec<(Request<Body>, u16, &str)> = vec![
        (
            request("POST", "/admin/sales", &[json], ok),
            401,
            "unauthenticated",
        ),
        (
            request(
                "POST",
                "/admin/sales",
                &[json, ("authorization", "Bearer x")],
                ok,
            ),
            403,
            "forbidden",
        ),
        (
            request("POST", "/admin/sales", &[json, auth], "{"),
            400,
            "invalid_body",
        ),
        (
            request("POST", "/admin/sales", &[json, auth], ""),
            400,
            "invalid_body",
        ),
        (
            request(
                "POST",
                "/admin/sales",
                &[json, auth],
                r#"{"id":"x","name":"n","stock":"many","per_user_limit":1}"#,
            ),
            400,
            "invalid_body",
        ),
        (
            request(
                "POST",
                "/admin/sales",
                &[json, auth],
                r#"{"id":"x","name":"n","stock":1,"per_user_limit":1,"opens_at":"soon"}"#,
            ),
            400,
            "invalid_opens_at",
        ),
        (
            request(
                "POST",
                "/admin/sales",
                &[json, auth],
                format!(
                    r#"{{"id":"x","name":"{}","stock":1,"per_user_limit":1}}"#,
                    "n".repeat(17_000)
                )
                .as_str(),
            ),
            413,
            "body_too_large",
        ),
        (
            request("GET", "/admin/sales", &[auth], ""),
            405,
            "method_not_allowed",
        ),
        (
            request(
                "POST",
                "/admin/sales/s/reset",
                &[json, auth],
                r#"{"stock":-5}"#,
            ),
            400,
            "invalid_stock",
        ),
        (
            request("GET", "/admin/sales/a%20b", &[auth], ""),
            400,
            "invalid_sale_id",
        ),
        (
            request("GET", "/admin/nope", &[auth], ""),
            404,
            "route_not_found",
        ),
    ];
    for (req, want_status, want_code) in cases {
        let a = call(&app, req).await;
        assert_eq!(
            (a.status, a.body["error"].as_str()),
            (want_status, Some(want_code)),
            "{}",
            a.body
        );
    }
}

#[tokio::test]
async fn every_api_error_maps_to_its_status_and_server_errors_hide_their_detail() {
    for (e, status) in [
        (ApiError::Unauthenticated, 401),
        (ApiError::Forbidden, 403),
        (ApiError::RouteNotFound, 404),
        (ApiError::MethodNotAllowed, 405),
        (ApiError::BodyTooLarge { limit: 1 }, 413),
        (ApiError::UnsupportedMediaType, 415),
        (ApiError::Refused(Refusal::SoldOut), 409),
        (ApiError::Refused(Refusal::UnknownSale), 404),
        (ApiError::Refused(Refusal::NotOpen { opens_at_ms: 0 }), 403),
        (ApiError::Unavailable("db at 10.0.0.1 down".into()), 503),
        (ApiError::NotReserved("redis at 10.0.0.1 down".into()), 503),
        (
            ApiError::OutcomeUnknown {
                order_id: uuid::Uuid::nil(),
                source: "redis at 10.0.0.1 timed out".into(),
            },
            503,
        ),
        (ApiError::RequestTimeout, 408),
        (ApiError::Internal("secret detail".into()), 500),
    ] {
        let resp = e.into_response();
        assert_eq!(resp.status().as_u16(), status);
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        let text = String::from_utf8(body.to_vec()).unwrap();
        assert!(
            !text.contains("10.0.0.1") && !text.contains("secret"),
            "{text}"
        );
    }
}

/// `template.yaml`'s HttpApi events of `function`, as (method, path) pairs.
fn template_routes(function: &str) -> Vec<(String, String)> {
    let doc: serde_yaml::Value = serde_yaml::from_str(TEMPLATE).unwrap();
    let events = &doc["Resources"][function]["Properties"]["Events"];
    let mut routes: Vec<(String, String)> = events
        .as_mapping()
        .unwrap_or_else(|| panic!("{function} has no events in template.yaml"))
        .values()
        .filter(|e| e["Type"] == "HttpApi")
        .map(|e| {
            let p = &e["Properties"];
            (
                p["Method"].as_str().unwrap().to_owned(),
                p["Path"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    routes.sort();
    routes
}

fn rust_routes(routes: &[Route]) -> Vec<(String, String)> {
    let mut r: Vec<(String, String)> = routes
        .iter()
        .map(|r| (r.method.to_owned(), r.path.to_owned()))
        .collect();
    r.sort();
    r
}

#[test]
fn template_yaml_and_the_routers_declare_the_same_routes() {
    assert_eq!(template_routes("BuyFunction"), rust_routes(buy::ROUTES));
    let both = |a: &[Route], b: &[Route]| {
        let mut r = rust_routes(a);
        r.extend(rust_routes(b));
        r.sort();
        r
    };
    assert_eq!(
        template_routes("OrdersFunction"),
        both(orders::ROUTES, super::pages::ROUTES)
    );
    assert_eq!(
        template_routes("OperatorFunction"),
        both(operator::ROUTES, super::live::ROUTES)
    );
    assert_eq!(
        template_routes("CheckoutFunction"),
        rust_routes(super::checkout::ROUTES)
    );
    assert_eq!(
        template_routes("QueueFunction"),
        rust_routes(super::queue::ROUTES)
    );
}

#[tokio::test]
async fn every_declared_route_is_served_by_its_router() {
    let b = buy_app(1, 1, true);
    let o = orders_app();
    for (app, routes) in [
        (&b.app, buy::ROUTES),
        (&o.app, orders::ROUTES),
        (&offline_operator(), operator::ROUTES),
    ] {
        for r in routes {
            let path = r
                .path
                .replace("{sale_id}", "drop")
                .replace("{order_id}", &uuid::Uuid::now_v7().to_string());
            let a = call(app, request(r.method, &path, &[], "")).await;
            assert!(
                !matches!(
                    a.body["error"].as_str(),
                    Some("route_not_found" | "method_not_allowed")
                ),
                "{} {path}: {}",
                r.method,
                a.body
            );
            let other = if r.method == "GET" {
                Method::DELETE
            } else {
                Method::GET
            };
            let a = call(app, request(other.as_str(), &path, &[], "")).await;
            assert_eq!(
                a.allow.as_deref().map(|h| h.contains(r.method)),
                Some(true),
                "{path}"
            );
        }
    }
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    fn sale_segment() -> impl Strategy<Value = String> {
        prop_oneof![Just("drop".to_owned()), "[A-Za-z0-9._~%-]{0,300}"]
    }

    fn header_value() -> impl Strategy<Value = Option<String>> {
        prop::option::of(prop_oneof!["[ -~]{0,300}", "[a-z0-9-]{1,20}"])
    }

    fn content_type() -> impl Strategy<Value = Option<String>> {
        prop::option::of(prop_oneof![
            Just("application/json".to_owned()),
            Just("application/json; charset=utf-8".to_owned()),
            Just("text/plain".to_owned()),
            "[ -~]{0,60}",
        ])
    }

    fn body() -> impl Strategy<Value = Vec<u8>> {
        let quantity = prop_oneof![
            any::<i64>().prop_map(|n| n.to_string()),
            any::<f64>().prop_map(|n| n.to_string()),
            Just("null".to_owned()),
            Just("\"2\"".to_owned()),
            Just("[1]".to_owned()),
            "[0-9]{1,40}",
        ];
        prop_oneof![
            Just(Vec::new()),
            quantity.prop_map(|q| format!("{{\"quantity\":{q}}}").into_bytes()),
            "\\PC{0,200}".prop_map(String::into_bytes),
            prop::collection::vec(any::<u8>(), 0..3000),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1_000))]

        /// 1,000 cases: whatever the path, headers and body of a buy, the answer is JSON, a 4xx
        /// carries its specific error code, no client input gets a 5xx, and only a 202 takes
        /// stock and sends a message (exactly one).
        #[test]
        fn any_buy_request_gets_a_json_answer_and_only_a_202_changes_anything(
            sale in sale_segment(),
            buyer in header_value(),
            key in header_value(),
            ctype in content_type(),
            body in body(),
        ) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let b = buy_app(5, 5, true);
            let mut req = Request::builder().method("POST").uri(format!("/sales/{sale}/buy"));
            for (name, value) in [("x-user-id", &buyer), ("idempotency-key", &key), ("content-type", &ctype)] {
                if let Some(v) = value {
                    req = req.header(name, v.as_str());
                }
            }
            let Ok(req) = req.body(Body::from(body)) else {
                return Ok(()); // not a request http can even express
            };
            let a = rt.block_on(call(&b.app, req));
            prop_assert!(a.status < 500, "{} {}", a.status, a.body);
            let remaining = b.store.remaining(&b.sale.id).unwrap();
            if a.status == 202 {
                prop_assert_eq!(b.queue.sent().len(), 1);
                prop_assert_eq!(b.store.outbox(&b.sale.id).len(), 1);
                prop_assert!(remaining < 5);
            } else {
                prop_assert!(a.status >= 400, "{} {}", a.status, a.body);
                prop_assert!(a.body["error"].as_str().is_some_and(|c| !c.is_empty()), "{}", a.body);
                prop_assert!(a.body["message"].is_string(), "{}", a.body);
                prop_assert!(b.queue.sent().is_empty());
                prop_assert!(b.store.outbox(&b.sale.id).is_empty());
                prop_assert_eq!(remaining, 5);
            }
        }
    }
}

#[test]
fn every_variable_a_function_reads_is_declared_in_the_template() {
    // `sam local` overrides only declared variables, and a deployed function must not silently
    // run on a default the operator never saw. The names come from the settings types the
    // functions' mains read (`crate::startup`), not from their source text.
    use crate::startup;
    let doc: serde_yaml::Value = serde_yaml::from_str(TEMPLATE).unwrap();
    let globals = doc["Globals"]["Function"]["Environment"]["Variables"]
        .as_mapping()
        .unwrap();
    let functions = [
        ("BuyFunction", startup::buy::Settings::variables()),
        ("SettleFunction", startup::settle::Settings::variables()),
        ("OperatorFunction", startup::operator::Settings::variables()),
        ("OrdersFunction", startup::orders::Settings::variables()),
        (
            "ReconcileFunction",
            startup::reconcile::Settings::variables(),
        ),
        ("CheckoutFunction", startup::checkout::Settings::variables()),
        ("ExpireFunction", startup::checkout::Settings::variables()),
        ("QueueFunction", startup::queue::Settings::variables()),
    ];
    for (function, read) in functions {
        let own = doc["Resources"][function]["Properties"]["Environment"]["Variables"]
            .as_mapping()
            .unwrap_or_else(|| panic!("{function} declares no variables"));
        assert!(
            read.iter().any(|v| v == "REDIS_URL"),
            "{function}: its settings list {read:?}"
        );
        for var in read {
            // The keys themselves are for local runs; in AWS their secrets' ARNs are declared.
            if [
                "ORDER_SIGNING_KEY",
                "ADMISSION_KEY",
                "STRIPE_SECRET_KEY",
                "STRIPE_WEBHOOK_SECRET",
            ]
            .contains(&var.as_str())
            {
                continue;
            }
            let key = serde_yaml::Value::String(var.clone());
            assert!(
                own.contains_key(&key) || globals.contains_key(&key),
                "{function} reads {var}, which template.yaml does not declare"
            );
        }
    }
}

#[tokio::test]
async fn the_order_status_fixture_as_is_asks_for_a_well_formed_id_no_sale_has() {
    // Invoked unchanged (`cargo lambda invoke orders --data-file …`): a 404 for that order, never
    // the 400 of a malformed id.
    let o = orders_app();
    let req = lambda_http::request::from_str(ORDER_STATUS_EVENT).unwrap();
    let a = call(&o.app, req).await;
    assert_eq!(
        (a.status, a.body["error"].as_str()),
        (404, Some("order_not_found"))
    );
}

#[tokio::test]
async fn the_operator_api_creates_shows_and_resets_a_sale_on_the_in_memory_ports() {
    use crate::adapters::memory::MemoryLedger;
    let store = MemoryStore::default();
    let app = app(operator::routes(operator::OperatorState {
        db: MemoryLedger::default(),
        store: store.clone(),
        status: MemoryStatus::default(),
        token: Some("op".into()),
        allow_reset: true,
    }));
    let admin = |method: &str, path: &str, body: &str| {
        request(
            method,
            path,
            &[
                ("authorization", "Bearer op"),
                ("content-type", "application/json"),
            ],
            body,
        )
    };
    let body = r#"{"id":"op-sale","name":"n","stock":3,"per_user_limit":1}"#;
    let created = call(&app, admin("POST", "/admin/sales", body)).await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["remaining"], 3);
    let again = call(&app, admin("POST", "/admin/sales", body)).await;
    assert_eq!(again.status, 200, "a retried create finds the same sale");
    let shown = call(&app, admin("GET", "/admin/sales/op-sale", "")).await;
    assert_eq!(
        (shown.status, &shown.body["loaded"], &shown.body["round"]),
        (200, &serde_json::json!(true), &serde_json::json!(1))
    );
    let reset = call(
        &app,
        admin("POST", "/admin/sales/op-sale/reset", r#"{"stock":4}"#),
    )
    .await;
    assert_eq!(
        (reset.status, &reset.body["round"], &reset.body["stock"]),
        (200, &serde_json::json!(2), &serde_json::json!(4))
    );
    assert_eq!(store.remaining(&SaleId::parse("op-sale").unwrap()), Some(4));
    let missing = call(&app, admin("GET", "/admin/sales/nobody", "")).await;
    assert_eq!(
        (missing.status, missing.error()),
        (404, Some("sale_not_found"))
    );
}

mod pages_and_public_sale {
    use super::*;
    use tower::ServiceExt;

    async fn text(app: &axum::Router, path: &str) -> (u16, String, String) {
        let resp = app
            .clone()
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let kind = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let status = resp.status().as_u16();
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, kind, String::from_utf8_lossy(&body).into_owned())
    }

    fn pages_app(trust: bool) -> axum::Router {
        app(super::super::pages::routes(
            super::super::pages::PagesSettings {
                stripe_js: "http://127.0.0.1:8420/js.stripe.com/v3/".into(),
                stripe_key: "pk_test_x".into(),
                trust_user_header: crate::settings::Flag(trust),
            },
        ))
    }

    #[tokio::test]
    async fn the_storefront_renders_its_buy_button_disabled_until_the_script_runs() {
        // Without the script (slow to load, or off) a click cannot submit anything.
        let (status, kind, html) = text(&pages_app(true), "/shop/drop").await;
        assert_eq!((status, kind.as_str()), (200, "text/html; charset=utf-8"));
        assert!(
            html.contains(r#"<button id="buy" type="submit" disabled>"#),
            "{html}"
        );
        assert!(html.contains(r#"name="viewport""#), "phone-width layout");
        let (status, kind, _) = text(&pages_app(true), "/pages/shop.js").await;
        assert_eq!(
            (status, kind.as_str()),
            (200, "text/javascript; charset=utf-8")
        );
        let (status, _, _) = text(&pages_app(true), "/admin/live/drop").await;
        assert_eq!(status, 200);
    }

    #[tokio::test]
    async fn every_page_forbids_framing_and_sniffing_and_keeps_its_referrer_and_scripts_at_home() {
        for path in [
            "/shop/drop",
            "/admin/live/drop",
            "/pages/shop.js",
            "/pages/pages.css",
        ] {
            let resp = tower::ServiceExt::oneshot(
                pages_app(true),
                axum::http::Request::get(path)
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
            let h = |name: &str| {
                resp.headers()
                    .get(name)
                    .map(|v| v.to_str().unwrap().to_owned())
                    .unwrap_or_default()
            };
            let csp = h("content-security-policy");
            assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
            assert!(
                csp.contains("script-src 'self' http://127.0.0.1:8420"),
                "{csp}"
            );
            assert!(csp.contains("default-src 'none'"), "{csp}");
            assert_eq!(h("x-frame-options"), "DENY", "{path}");
            assert_eq!(h("referrer-policy"), "strict-origin-when-cross-origin");
            assert_eq!(h("x-content-type-options"), "nosniff");
        }
    }

    #[tokio::test]
    async fn the_page_config_says_how_buyers_identify_and_where_stripe_js_is() {
        let a = call(
            &pages_app(true),
            request("GET", "/pages/config.json", &[], ""),
        )
        .await;
        assert_eq!(a.body["identity"], "header");
        assert_eq!(a.body["stripe_key"], "pk_test_x");
        let a = call(
            &pages_app(false),
            request("GET", "/pages/config.json", &[], ""),
        )
        .await;
        assert_eq!(a.body["identity"], "jwt", "in AWS: the site's JWT");
        let a = call(
            &pages_app(true),
            request("GET", "/pages/secret.txt", &[], ""),
        )
        .await;
        assert_eq!(
            (a.status, a.body["error"].as_str()),
            (404, Some("file_not_found"))
        );
        let a = call(&pages_app(true), request("GET", "/shop/a%20b", &[], "")).await;
        assert_eq!(
            (a.status, a.body["error"].as_str()),
            (400, Some("invalid_sale_id"))
        );
    }

    #[tokio::test]
    async fn anyone_reads_a_sales_name_price_and_remaining_units_and_nothing_else() {
        let o = orders_app();
        let a = call(&o.app, request("GET", "/sales/drop", &[], "")).await;
        assert_eq!(a.status, 200, "{}", a.body);
        assert_eq!(
            (&a.body["remaining"], &a.body["stock"]),
            (&5.into(), &5.into())
        );
        assert_eq!(a.body["name"], "test");
        assert!(a.body["now_ms"].as_i64().unwrap() > 0);
        let a = call(&o.app, request("GET", "/sales/nope", &[], "")).await;
        assert_eq!(
            (a.status, a.body["error"].as_str()),
            (404, Some("sale_not_found"))
        );
    }
}

/// The template's ElastiCache users carry the rules of `infra/redis/acl-users.txt`, which the
/// integration tests prove on a real Redis (`acl.rs`), so what deploys is what was tested.
#[test]
fn the_templates_redis_users_have_the_rules_the_tests_prove() {
    const USERS: &str = include_str!("../../../../infra/redis/acl-users.txt");
    let doc: serde_yaml::Value = serde_yaml::from_str(TEMPLATE).unwrap();
    let resources = doc["Resources"].as_mapping().unwrap();
    let mut checked = 0;
    for line in USERS
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let (function, rules) = line.split_once(' ').unwrap();
        let user = resources
            .values()
            .find(|r| {
                r["Type"] == "AWS::ElastiCache::User"
                    && format!("{:?}", r["Properties"]["UserId"])
                        .contains(&format!("-{function}\""))
            })
            .unwrap_or_else(|| panic!("no ElastiCache user for {function} in template.yaml"));
        assert_eq!(
            user["Properties"]["AccessString"].as_str(),
            Some(rules),
            "{function}'s rules differ between template.yaml and infra/redis/acl-users.txt"
        );
        checked += 1;
    }
    assert_eq!(
        checked, 7,
        "buy, orders, settle, reconcile, operator, checkout, queue"
    );
}

#[test]
fn a_deadlock_or_a_race_in_the_ledger_is_503_retry_and_a_refused_statement_is_500() {
    let busy = ApiError::from(DbError::Busy("40P01: deadlock detected".into()));
    assert_eq!(busy.parts().0, StatusCode::SERVICE_UNAVAILABLE);
    let raced = ApiError::from(DbError::Raced {
        what: "sale s".into(),
    });
    assert_eq!(raced.parts().0, StatusCode::SERVICE_UNAVAILABLE);
    let refused = ApiError::from(DbError::Query("23514: check violation".into()));
    assert_eq!(refused.parts().0, StatusCode::INTERNAL_SERVER_ERROR);
}

#[test]
fn a_reset_that_began_and_waits_for_orders_in_play_says_the_sale_is_paused() {
    let e = ApiError::from(crate::app::admin::AdminError::ResetWaits {
        sale: SaleId::parse("s").unwrap(),
        in_play: 2,
    });
    let (status, code, message) = e.parts();
    assert_eq!(
        (status, code),
        (StatusCode::SERVICE_UNAVAILABLE, "reset_incomplete")
    );
    assert!(
        message.contains("paused") && message.contains("run again"),
        "{message}"
    );
}
