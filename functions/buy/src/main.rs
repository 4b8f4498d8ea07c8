//! The buy function: `POST /sales/{sale_id}/buy` behind API Gateway (HTTP API, JWT authorizer).
//!
//! Settings: [`buy::Settings`] (`REDIS_URL`, `ORDERS_QUEUE_URL`, `ORDER_SIGNING_KEY_SECRET_ARN`,
//! …). Writes EMF metrics (`Service=buy`) after each request.

use flashflow_app::metrics::Metrics;
use lambda_http::Error;

/// mimalloc, as every FlashFlow binary: glibc's malloc cost a quarter of the API's CPU under load.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let settings = buy::Settings::from_env()?;
    let sdk = flashflow_adapters::aws::sdk_config().await;
    let metrics = Metrics::new("buy");
    let routes = buy::routes(&sdk, &settings, metrics.clone()).await?;
    let app = flashflow_http::flushing_metrics(flashflow_http::app(routes), metrics);
    lambda_http::run(app).await
}
