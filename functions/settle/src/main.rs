//! The settle function: SQS batches of orders into Postgres (one transaction per batch), then the
//! status into DynamoDB and the reservation out of the Redis outbox. Reports partial batch failures.
//!
//! Settings: `DATABASE_URL` (and optional `DATABASE_CA_FILE`, `DATABASE_SECRET_ARN`), `REDIS_URL`
//! (and optional `REDIS_CA_FILE`, `REDIS_SECRET_ARN`), `ORDERS_TABLE`,
//! `ORDER_SIGNING_KEY` (or `ORDER_SIGNING_KEY_SECRET_ARN`), `ORDERS_QUEUE_URL`, optional `SETTLE_RETRY_DELAY_MS` (60000), `REDIS_COMMAND_TIMEOUT_MS`, `DATABASE_STATEMENT_TIMEOUT_MS`,
//! `DATABASE_LOCK_TIMEOUT_MS`.

use anyhow::Context;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use flashflow::adapters::{
    dynamodb::DynamoStatusStore, postgres::Db, redis::RedisStore, sqs::SqsPublisher,
};
use flashflow::metrics::Metrics;
use flashflow::{aws, config, settle::Settler};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();

    let sdk = aws::sdk_config().await;
    let database = config::database_from(&sdk).await?;
    let redis = config::redis_from(&sdk).await?;
    let table = config::required("ORDERS_TABLE", "the DynamoDB order-status table")?;
    let signer = config::signer_from(&sdk).await?;
    let queue_url = config::required(
        "ORDERS_QUEUE_URL",
        "the SQS queue settle reads (and re-queues to)",
    )?;
    let retry_delay = config::millis("SETTLE_RETRY_DELAY_MS", 60_000)?;

    let db = Db::from_settings(&database)?.with_timeouts(config::db_timeouts()?);
    db.migrate().await.context("migrating Postgres")?;
    let store = RedisStore::connect(&redis)?;
    let queue = SqsPublisher::new(aws_sdk_sqs::Client::new(&sdk), queue_url, signer.clone());
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let settler = Arc::new(
        Settler::new(
            db,
            DynamoStatusStore::new(dynamodb, table),
            store,
            queue,
            signer,
        )
        .with_retry_delay(retry_delay)
        .with_metrics(Metrics::new("settle")),
    );

    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let settler = Arc::clone(&settler);
        async move {
            let response = settler.handle(event.payload).await;
            settler.metrics().flush();
            Ok::<SqsBatchResponse, Error>(response)
        }
    }))
    .await
}
