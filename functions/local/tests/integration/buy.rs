//! The buy router against real Redis and LocalStack SQS, driven by API Gateway events and local
//! requests. (Every bad-input case is also covered, faster, on the in-memory adapters.)

use crate::helpers::*;
use flashflow::domain::OrderMessage;
use flashflow_adapters::redis::{RedisSettings, RedisStore};
use std::time::Duration;

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

async fn remaining(store: &RedisStore, sale: &flashflow::domain::SaleId) -> i64 {
    store.live_sale(sale).await.unwrap().unwrap().remaining
}

#[tokio::test]
async fn a_buy_from_an_api_gateway_event_is_accepted_and_its_order_reaches_sqs() {
    let (store, sqs) = (store().await, sqs().await);
    let queue = fresh_queue(&sqs).await;
    let def = loaded_sale(&store, 10, 2).await;
    let app = buy_app(store.clone(), sqs.clone(), &queue);

    let a = call(&app, event(BUY_EVENT, &def.id)).await;
    assert_eq!(a.status, 202, "{}", a.body);
    assert_eq!(a.body["status"], "PENDING");
    assert_eq!(a.body["sale_id"], def.id.as_str());

    let messages = receive_all(&sqs, &queue).await;
    assert_eq!(messages.len(), 1);
    let msg = OrderMessage::parse(&messages[0]).unwrap();
    assert_eq!(msg.order_id, a.order_id());
    assert_eq!(
        msg.buyer.as_str(),
        "buyer-123",
        "buyer comes from the JWT sub claim"
    );
    assert_eq!(msg.quantity.get(), 1);
    assert_eq!(
        msg.idempotency_key.as_ref().map(|k| k.as_str()),
        Some("9b2f6a1e-retry-safe")
    );
}

#[tokio::test]
async fn a_retried_event_with_the_same_idempotency_key_gets_the_same_order_id_and_one_message() {
    let (store, sqs) = (store().await, sqs().await);
    let queue = fresh_queue(&sqs).await;
    let def = loaded_sale(&store, 10, 2).await;
    let app = buy_app(store.clone(), sqs.clone(), &queue);
    let first = call(&app, event(BUY_EVENT, &def.id)).await;
    let again = call(&app, event(BUY_EVENT, &def.id)).await;
    assert_eq!(again.status, 202);
    assert_eq!(first.order_id(), again.order_id());
    assert_eq!(remaining(&store, &def.id).await, 9);
    assert_eq!(receive_all(&sqs, &queue).await.len(), 1);
}

#[tokio::test]
async fn an_idempotency_key_reused_with_another_quantity_is_422_on_redis_too() {
    let (store, sqs) = (store().await, sqs().await);
    let def = loaded_sale(&store, 10, 5).await;
    let app = buy_app(store.clone(), sqs, "http://127.0.0.1:9/unused");
    let with_key = |q: u32| {
        let body = format!(r#"{{"quantity":{q}}}"#);
        request(
            "POST",
            &format!("/sales/{}/buy", def.id),
            &[("x-user-id", "kim"), ("idempotency-key", "k1")],
            Some(body.as_str()),
        )
    };
    assert_eq!(call(&app, with_key(1)).await.status, 202);
    let reused = call(&app, with_key(3)).await;
    assert_eq!(
        (reused.status, reused.error()),
        (422, Some("idempotency_key_reused"))
    );
    assert_eq!(remaining(&store, &def.id).await, 9);
}

#[tokio::test]
async fn when_sqs_is_unreachable_the_buyer_still_gets_202_and_the_order_waits_in_the_outbox() {
    let store = store().await;
    let def = loaded_sale(&store, 10, 2).await;
    let app = buy_app(
        store.clone(),
        unreachable_sqs().await,
        "http://127.0.0.1:9/queue/x",
    );
    let a = call(&app, event(BUY_EVENT, &def.id)).await;
    assert_eq!(a.status, 202, "{}", a.body);
    let outbox = store.entries(&def.id).await.unwrap();
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0].0, a.order_id().to_string());
}

#[tokio::test]
async fn when_redis_is_unreachable_the_buyer_gets_503_without_details() {
    let store = RedisStore::connect(&RedisSettings {
        url: "redis://127.0.0.1:9".into(),
        command_timeout: Duration::from_millis(300).into(),
        ..Default::default()
    })
    .unwrap();
    let app = buy_app(store, unreachable_sqs().await, "http://127.0.0.1:9/q");
    let a = call(&app, event(BUY_EVENT, &fresh_sale_id())).await;
    assert_eq!(a.retry_after.as_deref(), Some("1"));
    assert_eq!((a.status, a.error()), (503, Some("service_unavailable")));
    assert!(
        !a.body.to_string().contains("127.0.0.1"),
        "internal detail leaked: {}",
        a.body
    );
}

#[tokio::test]
async fn bad_input_reserves_nothing_in_redis() {
    let (store, sqs) = (store().await, sqs().await);
    let def = loaded_sale(&store, 10, 3).await;
    let app = buy_app(store.clone(), sqs, "http://127.0.0.1:9/unused");
    for (body, code) in [
        (r#"{"quantity":"#, "invalid_body"),
        (r#"{"quantity":0}"#, "invalid_quantity"),
        (r#"{"quantity":4}"#, "limit_reached"),
    ] {
        let a = call(&app, local_buy(&def.id, "u-1", Some(body))).await;
        assert_eq!(a.error(), Some(code), "{body}: {}", a.body);
    }
    let live = store.live_sale(&def.id).await.unwrap().unwrap();
    assert_eq!((live.remaining, live.pending), (10, 0));
}

#[tokio::test]
async fn sold_out_and_insufficient_stock_are_409_with_their_own_codes() {
    let (store, sqs) = (store().await, sqs().await);
    let def = loaded_sale(&store, 2, 5).await;
    let app = buy_app(store.clone(), sqs, "http://127.0.0.1:9/unused");
    let buy = |n: u32, who: &'static str| {
        let body = format!(r#"{{"quantity":{n}}}"#);
        local_buy(&def.id, who, Some(&body))
    };
    assert_eq!(call(&app, buy(1, "a")).await.status, 202);
    let a = call(&app, buy(2, "b")).await;
    assert_eq!((a.status, a.error()), (409, Some("insufficient_stock")));
    assert_eq!(call(&app, buy(1, "b")).await.status, 202);
    let a = call(&app, buy(1, "c")).await;
    assert_eq!((a.status, a.error()), (409, Some("sold_out")));
}
