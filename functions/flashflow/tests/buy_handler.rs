//! The buy handler driven by API Gateway events, against real Redis and LocalStack SQS.

mod common;

use common::*;
use flashflow::api::buy::{BuyHandler, BuySettings};
use flashflow::domain::OrderMessage;
use flashflow::queue::SqsPublisher;
use flashflow::store::{RedisSettings, RedisStore};
use lambda_http::{Body, Request, RequestExt};
use std::time::Duration;

/// A buy request as the local server builds it (no authorizer context).
fn local_buy(sale: &str, body: Option<&str>, headers: &[(&str, &str)]) -> Request {
    let mut b = http::Request::builder()
        .method("POST")
        .uri(format!("/sales/{sale}/buy"));
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(body.map_or(Body::Empty, |s| Body::Text(s.into())))
        .unwrap()
}

async fn receive_all(sqs: &aws_sdk_sqs::Client, queue: &str) -> Vec<String> {
    let out = sqs
        .receive_message()
        .queue_url(queue)
        .max_number_of_messages(10)
        .wait_time_seconds(1)
        .send()
        .await
        .unwrap();
    out.messages()
        .iter()
        .filter_map(|m| m.body().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn a_buy_from_an_api_gateway_event_is_accepted_and_its_order_reaches_sqs() {
    let (store, sqs) = (store().await, sqs().await);
    let queue = fresh_queue(&sqs).await;
    let def = loaded_sale(&store, 10, 2).await;
    let handler = buy_handler(store.clone(), sqs.clone(), &queue);

    let (status, body) = parts(handler.handle(event(BUY_EVENT, &def.id)).await);
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["status"], "PENDING");
    assert_eq!(body["sale_id"], def.id.as_str());

    let messages = receive_all(&sqs, &queue).await;
    assert_eq!(messages.len(), 1);
    let msg = OrderMessage::parse(&messages[0]).unwrap();
    assert_eq!(msg.order_id.to_string(), body["order_id"].as_str().unwrap());
    assert_eq!(
        msg.buyer.as_str(),
        "buyer-123",
        "buyer comes from the JWT sub claim"
    );
    assert_eq!(msg.quantity, 1);
    assert_eq!(msg.idempotency_key.as_deref(), Some("9b2f6a1e-retry-safe"));
}

#[tokio::test]
async fn a_retried_event_with_the_same_idempotency_key_gets_the_same_order_id_and_one_message() {
    let (store, sqs) = (store().await, sqs().await);
    let queue = fresh_queue(&sqs).await;
    let def = loaded_sale(&store, 10, 2).await;
    let handler = buy_handler(store.clone(), sqs.clone(), &queue);
    let (_, first) = parts(handler.handle(event(BUY_EVENT, &def.id)).await);
    let (status, again) = parts(handler.handle(event(BUY_EVENT, &def.id)).await);
    assert_eq!(status, 202);
    assert_eq!(first["order_id"], again["order_id"]);
    assert_eq!(
        store.live_sale(&def.id).await.unwrap().unwrap().remaining,
        9
    );
    assert_eq!(receive_all(&sqs, &queue).await.len(), 1);
}

#[tokio::test]
async fn when_sqs_is_unreachable_the_buyer_still_gets_202_and_the_order_waits_in_the_outbox() {
    let store = store().await;
    let def = loaded_sale(&store, 10, 2).await;
    let handler = buy_handler(
        store.clone(),
        unreachable_sqs().await,
        "http://127.0.0.1:9/queue/x",
    );
    let (status, body) = parts(handler.handle(event(BUY_EVENT, &def.id)).await);
    assert_eq!(status, 202, "{body}");
    let outbox = store.outbox(&def.id).await.unwrap();
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0].0, body["order_id"].as_str().unwrap());
}

#[tokio::test]
async fn when_redis_is_unreachable_the_buyer_gets_503_without_details() {
    let store = RedisStore::connect(&RedisSettings {
        url: "redis://127.0.0.1:9".into(),
        command_timeout: Duration::from_millis(300),
    })
    .unwrap();
    let handler = BuyHandler::new(
        store,
        SqsPublisher::new(unreachable_sqs().await, "http://127.0.0.1:9/q"),
        BuySettings::default(),
    );
    let resp = handler.handle(event(BUY_EVENT, &fresh_sale_id())).await;
    assert_eq!(resp.headers()["retry-after"], "1");
    let (status, body) = parts(resp);
    assert_eq!(status, 503);
    assert_eq!(body["error"], "service_unavailable");
    assert!(
        !body.to_string().contains("127.0.0.1"),
        "internal detail leaked: {body}"
    );
}

#[tokio::test]
async fn a_buy_without_identity_is_refused_with_401_even_with_a_user_header_unless_enabled() {
    let (store, sqs) = (store().await, sqs().await);
    let def = loaded_sale(&store, 10, 2).await;
    let strict = BuyHandler::new(
        store.clone(),
        SqsPublisher::new(sqs.clone(), "unused"),
        BuySettings::default(),
    );
    let (status, body) = parts(strict.handle(event(BUY_NO_IDENTITY_EVENT, &def.id)).await);
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("unauthenticated"))
    );
    let spoof = local_buy(def.id.as_str(), None, &[("x-user-id", "mallory")]);
    assert_eq!(
        parts(strict.handle(spoof).await).0,
        401,
        "X-User-Id is ignored by default"
    );
    assert_eq!(
        store.live_sale(&def.id).await.unwrap().unwrap().remaining,
        10
    );
}

#[tokio::test]
async fn the_local_user_header_works_when_enabled() {
    let (store, sqs) = (store().await, sqs().await);
    let queue = fresh_queue(&sqs).await;
    let def = loaded_sale(&store, 10, 2).await;
    let handler = buy_handler(store.clone(), sqs.clone(), &queue);
    let req = local_buy(
        def.id.as_str(),
        Some(r#"{"quantity":2}"#),
        &[("x-user-id", "u-1")],
    );
    let (status, _) = parts(handler.handle(req).await);
    assert_eq!(status, 202);
    assert_eq!(
        store.live_sale(&def.id).await.unwrap().unwrap().remaining,
        8
    );
}

#[tokio::test]
async fn bad_input_gets_a_specific_error_and_reserves_nothing() {
    let (store, sqs) = (store().await, sqs().await);
    let def = loaded_sale(&store, 10, 3).await;
    let handler = buy_handler(store.clone(), sqs.clone(), "http://127.0.0.1:9/unused");
    let s = def.id.as_str();
    let user = ("x-user-id", "u-1");
    let json = ("content-type", "application/json");
    let huge = format!(r#"{{"quantity":1,"pad":"{}"}}"#, "x".repeat(5000));
    let long_key = "k".repeat(129);
    let long_user = "u".repeat(129);
    let cases: Vec<(&str, Request, u16, &str)> = vec![
        (
            "malformed JSON",
            local_buy(s, Some("{\"quantity\":"), &[user, json]),
            400,
            "invalid_body",
        ),
        (
            "not an object",
            local_buy(s, Some("[1]"), &[user, json]),
            400,
            "invalid_body",
        ),
        (
            "quantity as string",
            local_buy(s, Some(r#"{"quantity":"2"}"#), &[user, json]),
            400,
            "invalid_body",
        ),
        (
            "quantity fractional",
            local_buy(s, Some(r#"{"quantity":1.5}"#), &[user, json]),
            400,
            "invalid_body",
        ),
        (
            "quantity beyond i64",
            local_buy(
                s,
                Some(r#"{"quantity":99999999999999999999}"#),
                &[user, json],
            ),
            400,
            "invalid_body",
        ),
        (
            "quantity zero",
            local_buy(s, Some(r#"{"quantity":0}"#), &[user, json]),
            400,
            "invalid_quantity",
        ),
        (
            "quantity negative",
            local_buy(s, Some(r#"{"quantity":-1}"#), &[user, json]),
            400,
            "invalid_quantity",
        ),
        (
            "quantity too large",
            local_buy(s, Some(r#"{"quantity":101}"#), &[user, json]),
            400,
            "invalid_quantity",
        ),
        (
            "unknown field",
            local_buy(s, Some(r#"{"qty":1}"#), &[user, json]),
            400,
            "invalid_body",
        ),
        (
            "body too large",
            local_buy(s, Some(&huge), &[user, json]),
            413,
            "body_too_large",
        ),
        (
            "not JSON content type",
            local_buy(
                s,
                Some("quantity=1"),
                &[user, ("content-type", "application/x-www-form-urlencoded")],
            ),
            415,
            "unsupported_media_type",
        ),
        (
            "empty idempotency key",
            local_buy(s, None, &[user, ("idempotency-key", "")]),
            400,
            "invalid_idempotency_key",
        ),
        (
            "idempotency key too long",
            local_buy(s, None, &[user, ("idempotency-key", &long_key)]),
            400,
            "invalid_idempotency_key",
        ),
        (
            "idempotency key with space",
            local_buy(s, None, &[user, ("idempotency-key", "a b")]),
            400,
            "invalid_idempotency_key",
        ),
        (
            "idempotency key twice",
            local_buy(
                s,
                None,
                &[user, ("idempotency-key", "a"), ("idempotency-key", "b")],
            ),
            400,
            "invalid_idempotency_key",
        ),
        (
            "empty user",
            local_buy(s, None, &[("x-user-id", "")]),
            400,
            "invalid_buyer",
        ),
        (
            "user too long",
            local_buy(s, None, &[("x-user-id", &long_user)]),
            400,
            "invalid_buyer",
        ),
        (
            "no identity",
            local_buy(s, None, &[]),
            401,
            "unauthenticated",
        ),
        (
            "bad sale id",
            local_buy("a%20b", None, &[user]),
            400,
            "invalid_sale_id",
        ),
        (
            "sale id with hash tag braces",
            local_buy("x}y", None, &[user]),
            400,
            "invalid_sale_id",
        ),
        (
            "unknown sale",
            local_buy(fresh_sale_id().as_str(), None, &[user]),
            404,
            "sale_not_found",
        ),
        (
            "wrong method",
            http::Request::builder()
                .method("GET")
                .uri(format!("/sales/{s}/buy"))
                .header(user.0, user.1)
                .body(Body::Empty)
                .unwrap(),
            405,
            "method_not_allowed",
        ),
        (
            "wrong path",
            local_buy_path("/sales/x", &[user]),
            404,
            "route_not_found",
        ),
        (
            "over the per-user limit",
            local_buy(s, Some(r#"{"quantity":4}"#), &[user, json]),
            403,
            "limit_reached",
        ),
        (
            "more than the stock",
            local_buy(
                s,
                Some(r#"{"quantity":3}"#),
                &[("x-user-id", "other"), json],
            ),
            202,
            "",
        ),
    ];
    for (name, req, want_status, want_code) in cases {
        let (status, body) = parts(handler.handle(req).await);
        assert_eq!(status, want_status, "{name}: {body}");
        if want_status != 202 {
            assert_eq!(body["error"], want_code, "{name}: {body}");
            assert!(
                body["message"].as_str().is_some_and(|m| !m.is_empty()),
                "{name}: {body}"
            );
        }
    }
    // Only the last (valid) case reserved anything.
    let live = store.live_sale(&def.id).await.unwrap().unwrap();
    assert_eq!((live.remaining, live.pending), (7, 1));
}

fn local_buy_path(path: &str, headers: &[(&str, &str)]) -> Request {
    let mut b = http::Request::builder().method("POST").uri(path);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Body::Empty).unwrap()
}

#[tokio::test]
async fn sold_out_and_insufficient_stock_are_409_with_their_own_codes() {
    let (store, sqs) = (store().await, sqs().await);
    let def = loaded_sale(&store, 2, 5).await;
    let handler = buy_handler(store.clone(), sqs.clone(), "http://127.0.0.1:9/unused");
    let s = def.id.as_str();
    let q = |n: u32, who: &str| {
        local_buy(
            s,
            Some(&format!(r#"{{"quantity":{n}}}"#)),
            &[("x-user-id", who)],
        )
    };
    assert_eq!(parts(handler.handle(q(1, "a")).await).0, 202);
    let (status, body) = parts(handler.handle(q(2, "b")).await);
    assert_eq!(
        (status, body["error"].as_str()),
        (409, Some("insufficient_stock"))
    );
    assert_eq!(parts(handler.handle(q(1, "b")).await).0, 202);
    let (status, body) = parts(handler.handle(q(1, "c")).await);
    assert_eq!((status, body["error"].as_str()), (409, Some("sold_out")));
}

#[tokio::test]
async fn path_parameters_from_api_gateway_take_precedence_over_the_raw_path() {
    let (store, sqs) = (store().await, sqs().await);
    let def = loaded_sale(&store, 1, 1).await;
    let handler = buy_handler(store.clone(), sqs.clone(), "http://127.0.0.1:9/unused");
    let req = local_buy_path("/anything", &[("x-user-id", "p")]).with_path_parameters(
        std::collections::HashMap::from([("sale_id".to_string(), def.id.to_string())]),
    );
    assert_eq!(parts(handler.handle(req).await).0, 202);
}
