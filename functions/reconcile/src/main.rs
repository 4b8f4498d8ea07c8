//! The reconcile function (scheduled): re-sends reservations that stayed in an outbox longer than
//! `OUTBOX_THRESHOLD_MS`, and retires finished sales.
//!
//! Settings: [`reconcile::Settings`] (`REDIS_URL`, `ORDERS_QUEUE_URL`,
//! `OUTBOX_THRESHOLD_MS`, `OUTBOX_IN_QUEUE_MS`, `FINISHED_SALE_TTL_MS`, …).

use lambda_runtime::{service_fn, Error, LambdaEvent};
use std::sync::Arc;

/// mimalloc, as every FlashFlow binary: glibc's malloc cost a quarter of the API's CPU under load.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let settings = reconcile::Settings::from_env()?;
    let sdk = flashflow_adapters::aws::sdk_config().await;
    let sweeper = Arc::new(reconcile::sweeper(&sdk, &settings).await?);

    lambda_runtime::run(service_fn(move |_: LambdaEvent<serde_json::Value>| {
        let sweeper = Arc::clone(&sweeper);
        async move {
            let report = sweeper.sweep().await?;
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
