//! The buy function: `POST /sales/{sale_id}/buy` behind API Gateway (HTTP API, JWT authorizer).
//!
//! Settings: `REDIS_URL`, `ORDERS_QUEUE_URL`, `ORDER_SIGNING_KEY` (or `ORDER_SIGNING_KEY_SECRET_ARN`), optional `REDIS_CA_FILE`,
//! `REDIS_SECRET_ARN`, `REDIS_COMMAND_TIMEOUT_MS`, `TRUST_USER_HEADER` (local use only).
//! Writes EMF metrics (`Service=buy`) after each request.

use anyhow::Context;
use flashflow::adapters::{redis::RedisStore, sqs::SqsPublisher};
use flashflow::api::{self, buy};
use flashflow::metrics::Metrics;
use flashflow::{aws, config};
use lambda_http::Error;
use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();

    let sdk = aws::sdk_config().await;
    let redis = config::redis_from(&sdk).await?;
    let queue_url = config::required("ORDERS_QUEUE_URL", "the SQS queue that settle reads")?;
    let signer = config::signer_from(&sdk).await?;
    let settings = buy::BuySettings {
        trust_user_header: config::flag("TRUST_USER_HEADER", false)?,
        in_queue_for: config::millis("OUTBOX_IN_QUEUE_MS", 345_600_000)?,
    };

    let store = RedisStore::connect(&redis)?;
    store
        .ready(Duration::from_secs(5))
        .await
        .context("connecting to Redis")?;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let metrics = Metrics::new("buy");
    let app = api::app(buy::routes(buy::BuyState {
        store,
        publisher: SqsPublisher::new(sqs, queue_url, signer),
        settings,
        metrics: metrics.clone(),
    }));
    let app = api::flushing_metrics(app, metrics);
    lambda_http::run(app).await
}
