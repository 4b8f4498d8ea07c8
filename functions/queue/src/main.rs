//! The queue function: a sale's waiting room for buyers (JWT) — join, poll one's place, a
//! proof-of-work challenge — and the draw's record (public).
//!
//! Settings: [`flashflow::startup::queue::Settings`] (`REDIS_URL`, `ADMISSION_KEY_SECRET_ARN`, …).

use flashflow::metrics::Metrics;
use flashflow::{api, aws, startup};
use lambda_http::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let settings = startup::queue::Settings::from_env()?;
    let sdk = aws::sdk_config().await;
    let metrics = Metrics::new("queue");
    let routes = startup::queue::routes(&sdk, &settings, metrics.clone()).await?;
    lambda_http::run(api::flushing_metrics(api::app(routes), metrics)).await
}
