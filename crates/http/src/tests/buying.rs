use super::*;
use crate::buy::{BuyCallers, BuyState};
use flashflow_app::buy::{Buy as BuyUseCase, BuySettings};
use flashflow_app::metrics::Metrics;
use std::sync::Arc;

/// The key tests sign orders with, as buy's.
fn signer() -> flashflow::domain::signing::Signer {
    flashflow::domain::signing::Signer::new(b"http-tests-order-signing-key-0123456789").unwrap()
}

/// Buy's routes on `store` and `queue` with `settings`, trusting `X-User-Id` when told.
fn buy_routes(
    store: &MemoryStore,
    queue: &MemoryQueue,
    settings: BuySettings,
    trust_user_header: bool,
) -> Router {
    let buy = BuyUseCase::new(
        store.clone(),
        queue.clone(),
        signer(),
        Default::default(),
        Metrics::new("buy"),
    )
    .with_settings(settings);
    app(crate::buy::routes(BuyState {
        buy: Arc::new(buy),
        callers: BuyCallers {
            trust_user_header: flashflow_settings::Flag(trust_user_header),
        },
    }))
}

pub(super) struct Buy {
    pub(super) app: Router,
    pub(super) store: MemoryStore,
    pub(super) queue: MemoryQueue,
    pub(super) sale: SaleDefinition,
}

pub(super) fn buy_app(stock: u32, limit: u32, trust_user_header: bool) -> Buy {
    let (store, queue) = (MemoryStore::default(), MemoryQueue::default());
    let def = sale("drop", stock, limit);
    store.load_sale_now(&def, stock);
    let app = buy_routes(&store, &queue, BuySettings::default(), trust_user_header);
    Buy {
        app,
        store,
        queue,
        sale: def,
    }
}

/// A local buy of the sale `drop` (every handler test's sale).
pub(super) fn local_buy(buyer: &str, body: &str) -> Request<Body> {
    crate::testing::local_buy(&SaleId::parse("drop").unwrap(), buyer, Some(body))
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
    let now = flashflow::domain::EpochMs::now();
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
    let settings = BuySettings {
        deadline: flashflow_settings::Millis::ms(deadline_ms),
        ..BuySettings::default()
    };
    let app = buy_routes(&b.store, &b.queue, settings, true);
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
