//! The queue function: a sale's waiting room for buyers (JWT) — join, poll one's place, a
//! proof-of-work challenge — and the draw's record (public).
//!
//! Settings: [`queue::Settings`] (`REDIS_URL`, `ADMISSION_KEY_SECRET_ARN`, …).

use flashflow_app::metrics::Metrics;
use lambda_http::Error;

/// mimalloc, as every FlashFlow binary: glibc's malloc cost a quarter of the API's CPU under load.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let settings = queue::Settings::from_env()?;
    let sdk = flashflow_adapters::aws::sdk_config().await;
    let metrics = Metrics::new("queue");
    let routes = queue::routes(&sdk, &settings, metrics.clone()).await?;
    lambda_http::run(flashflow_http::flushing_metrics(
        flashflow_http::app(routes),
        metrics,
    ))
    .await
}
