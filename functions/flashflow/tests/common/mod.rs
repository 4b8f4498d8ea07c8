//! Test helpers: connections to the real local stack, and per-test isolation (a fresh sale id, a
//! fresh Postgres schema, a fresh SQS queue), so tests run in parallel and on a dirty machine.
#![allow(dead_code)]

use flashflow::api::buy::{BuyHandler, BuySettings};
use flashflow::db::Db;
use flashflow::domain::{SaleDefinition, SaleId};
use flashflow::queue::SqsPublisher;
use flashflow::store::{RedisSettings, RedisStore};
use lambda_http::Request;
use std::time::Duration;
use uuid::Uuid;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the tests with 'make test', which starts the local stack and sets it")
    })
}

pub fn redis_settings() -> RedisSettings {
    RedisSettings {
        url: env("REDIS_URL"),
        command_timeout: Duration::from_secs(5),
    }
}

/// A connected store.
pub async fn store() -> RedisStore {
    let store = RedisStore::connect(&redis_settings()).unwrap();
    store
        .ready(Duration::from_secs(5))
        .await
        .expect("redis is not reachable");
    store
}

/// A sale id no other test (or earlier run) uses.
pub fn fresh_sale_id() -> SaleId {
    SaleId::parse(&format!("t-{}", Uuid::new_v4().simple())).unwrap()
}

pub fn sale(id: &SaleId, stock: u32, limit: u32) -> SaleDefinition {
    SaleDefinition {
        id: id.clone(),
        name: "test sale".into(),
        stock,
        per_user_limit: limit,
        opens_at_ms: None,
        closes_at_ms: None,
    }
}

/// A new sale loaded into Redis.
pub async fn loaded_sale(store: &RedisStore, stock: u32, limit: u32) -> SaleDefinition {
    let def = sale(&fresh_sale_id(), stock, limit);
    assert!(store.load_sale(&def, stock).await.unwrap());
    def
}

/// The URL of a brand-new schema in the test database.
pub async fn fresh_schema_url() -> String {
    let base = env("TEST_DATABASE_URL");
    let schema = format!("t_{}", Uuid::new_v4().simple());
    Db::new(&base)
        .unwrap()
        .client()
        .await
        .expect("postgres is not reachable")
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await
        .unwrap();
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options=-csearch_path%3D{schema}")
}

/// A migrated `Db` at `url`.
pub async fn db_at(url: &str) -> Db {
    let db = Db::new(url).unwrap();
    db.migrate().await.unwrap();
    db
}

/// A `Db` on a brand-new schema of the test database, migrated.
pub async fn fresh_db() -> Db {
    db_at(&fresh_schema_url().await).await
}

pub async fn dynamodb() -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(&flashflow::aws::sdk_config().await)
}

/// A new DynamoDB table shaped like the order-status table.
pub async fn fresh_status_store() -> flashflow::status::DynamoStatusStore {
    use aws_sdk_dynamodb::types::*;
    let client = dynamodb().await;
    let table = format!("t-{}", Uuid::new_v4().simple());
    client
        .create_table()
        .table_name(&table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("order_id")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("order_id")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("DynamoDB Local is not reachable");
    flashflow::status::DynamoStatusStore::new(client, table)
}

pub async fn sqs() -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(&flashflow::aws::sdk_config().await)
}

/// A new, empty queue; returns its URL.
pub async fn fresh_queue(sqs: &aws_sdk_sqs::Client) -> String {
    sqs.create_queue()
        .queue_name(format!("t-{}", Uuid::new_v4().simple()))
        .send()
        .await
        .expect("LocalStack SQS is not reachable")
        .queue_url
        .unwrap()
}

/// An SQS client whose endpoint refuses connections: "SQS is down".
pub async fn unreachable_sqs() -> aws_sdk_sqs::Client {
    let conf = aws_sdk_sqs::config::Builder::from(&flashflow::aws::sdk_config().await)
        .endpoint_url("http://127.0.0.1:9")
        .build();
    aws_sdk_sqs::Client::from_conf(conf)
}

pub fn buy_handler(
    store: RedisStore,
    sqs: aws_sdk_sqs::Client,
    queue_url: &str,
) -> BuyHandler<RedisStore, SqsPublisher> {
    BuyHandler::new(
        store,
        SqsPublisher::new(sqs, queue_url),
        BuySettings {
            trust_user_header: true,
        },
    )
}

/// An API Gateway event fixture from `events/`, with `demo-sale` replaced by `sale`.
pub fn event(fixture: &str, sale: &SaleId) -> Request {
    lambda_http::request::from_str(&fixture.replace("demo-sale", sale.as_str()))
        .expect("fixture parses")
}

pub const BUY_EVENT: &str = include_str!("../../../../events/apigw-buy.json");
pub const BUY_NO_IDENTITY_EVENT: &str =
    include_str!("../../../../events/apigw-buy-no-identity.json");
pub const ADMIN_CREATE_EVENT: &str =
    include_str!("../../../../events/apigw-admin-create-sale.json");
pub const ORDER_STATUS_EVENT: &str = include_str!("../../../../events/apigw-order-status.json");
pub const ADMIN_SHOW_EVENT: &str = include_str!("../../../../events/apigw-admin-show-sale.json");

/// The status and JSON body of a response.
pub fn parts(resp: lambda_http::Response<lambda_http::Body>) -> (u16, serde_json::Value) {
    let status = resp.status().as_u16();
    let body: &[u8] = resp.body().as_ref();
    (
        status,
        serde_json::from_slice(body).expect("response body is JSON"),
    )
}

/// An SQS event with one record per body, each with a fresh message id; returns the ids too.
pub fn sqs_event(bodies: &[String]) -> (aws_lambda_events::event::sqs::SqsEvent, Vec<String>) {
    let mut event = aws_lambda_events::event::sqs::SqsEvent::default();
    let mut ids = Vec::new();
    for b in bodies {
        let mut m = aws_lambda_events::event::sqs::SqsMessage::default();
        let id = Uuid::new_v4().to_string();
        m.message_id = Some(id.clone());
        m.body = Some(b.clone());
        event.records.push(m);
        ids.push(id);
    }
    (event, ids)
}

/// The message ids a batch response reports as failed.
pub fn failed_ids(resp: &aws_lambda_events::event::sqs::SqsBatchResponse) -> Vec<String> {
    resp.batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect()
}
