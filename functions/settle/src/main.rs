//! The settle function: SQS batches of orders into Postgres (one transaction per batch), then the
//! status into DynamoDB and the reservation out of the Redis outbox. Reports partial batch
//! failures. Migrations run at start.
//!
//! Settings: [`settle::Settings`] (`DATABASE_URL`, `REDIS_URL`,
//! `ORDERS_TABLE`, `ORDERS_QUEUE_URL`, `SETTLE_RETRY_DELAY_MS`, …).

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use flashflow_app::metrics::Metrics;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use settle::SqsBatches;
use std::sync::Arc;

/// mimalloc, as every FlashFlow binary: glibc's malloc cost a quarter of the API's CPU under load.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let settings = settle::Settings::from_env()?;
    let sdk = flashflow_adapters::aws::sdk_config().await;
    let clients = settle::clients(&sdk, &settings).await?;
    let settler = Arc::new(clients.settler(Metrics::new("settle")).await?);

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
