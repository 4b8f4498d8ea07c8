//! The reconcile function (scheduled): re-sends reservations that stayed in an outbox longer than
//! `OUTBOX_THRESHOLD_MS` (default 60000).
//!
//! Settings: `REDIS_URL` (and optional `REDIS_CA_FILE`, `REDIS_SECRET_ARN`), `ORDERS_QUEUE_URL`, `ORDER_SIGNING_KEY` (or `ORDER_SIGNING_KEY_SECRET_ARN`), optional `OUTBOX_THRESHOLD_MS`,
//! `OUTBOX_IN_QUEUE_MS`, `FINISHED_SALE_TTL_MS` (a day: how long a finished sale stays in Redis),
//! `REDIS_COMMAND_TIMEOUT_MS`.

use flashflow::adapters::{redis::RedisStore, sqs::SqsPublisher};
use flashflow::{aws, config, reconcile};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();

    let sdk = aws::sdk_config().await;
    let redis = config::redis_from(&sdk).await?;
    let queue_url = config::required("ORDERS_QUEUE_URL", "the SQS queue that settle reads")?;
    let timing = reconcile::SweepTiming {
        grace: config::millis("OUTBOX_THRESHOLD_MS", 60_000)?,
        in_queue_for: config::millis("OUTBOX_IN_QUEUE_MS", 345_600_000)?,
        finished_ttl: config::millis("FINISHED_SALE_TTL_MS", 86_400_000)?,
    };
    let signer = config::signer_from(&sdk).await?;

    let store = Arc::new(RedisStore::connect(&redis)?);
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let queue = Arc::new(SqsPublisher::new(sqs, queue_url, signer));

    lambda_runtime::run(service_fn(move |_: LambdaEvent<serde_json::Value>| {
        let (store, queue) = (Arc::clone(&store), Arc::clone(&queue));
        async move {
            let report = reconcile::sweep(&store, &queue, timing).await?;
            Ok::<_, Error>(serde_json::json!({
                "sales": report.sales,
                "resent": report.resent,
                "send_failed": report.send_failed,
                "forgotten": report.forgotten,
                "retired": report.retired,
            }))
        }
    }))
    .await
}
