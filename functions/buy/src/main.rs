//! The buy function: `POST /sales/{sale_id}/buy` behind API Gateway (HTTP API, JWT authorizer).
//!
//! Settings: `REDIS_URL`, `ORDERS_QUEUE_URL`, optional `REDIS_COMMAND_TIMEOUT_MS`,
//! `TRUST_USER_HEADER` (local use only).

use anyhow::Context;
use flashflow::api::buy::{BuyHandler, BuySettings};
use flashflow::{aws, config, queue::SqsPublisher, store::RedisStore};
use lambda_http::{service_fn, Error, Request};
use std::sync::Arc;
use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();

    let redis = config::redis()?;
    let queue_url = config::required("ORDERS_QUEUE_URL", "the SQS queue that settle reads")?;
    let settings = BuySettings {
        trust_user_header: config::flag("TRUST_USER_HEADER", false)?,
    };

    let store = RedisStore::connect(&redis)?;
    store
        .ready(Duration::from_secs(5))
        .await
        .context("connecting to Redis")?;
    let sqs = aws_sdk_sqs::Client::new(&aws::sdk_config().await);
    let handler = Arc::new(BuyHandler::new(
        store,
        SqsPublisher::new(sqs, queue_url),
        settings,
    ));

    lambda_http::run(service_fn(move |req: Request| {
        let handler = Arc::clone(&handler);
        async move { Ok::<_, Error>(handler.handle(req).await) }
    }))
    .await
}
