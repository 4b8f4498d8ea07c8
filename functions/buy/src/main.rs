//! The buy function: `POST /sales/{sale_id}/buy` behind API Gateway (HTTP API, JWT authorizer).
//!
//! Settings: [`flashflow::startup::buy::Settings`] (`REDIS_URL`, `ORDERS_QUEUE_URL`,
//! `ORDER_SIGNING_KEY_SECRET_ARN`, …). Writes EMF metrics (`Service=buy`) after each request.

use flashflow::metrics::Metrics;
use flashflow::{api, aws, startup};
use lambda_http::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let settings = startup::buy::Settings::from_env()?;
    let sdk = aws::sdk_config().await;
    let metrics = Metrics::new("buy");
    let routes = startup::buy::routes(&sdk, &settings, metrics.clone()).await?;
    lambda_http::run(api::flushing_metrics(api::app(routes), metrics)).await
}
