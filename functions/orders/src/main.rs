//! The order-status function: `GET /orders/{order_id}` for buyers (JWT) and
//! `GET /admin/orders/{order_id}` for operators (IAM).
//!
//! Settings: [`flashflow::startup::orders::Settings`] (`REDIS_URL`, `ORDERS_TABLE`, …).

use flashflow::{api, aws, startup};
use lambda_http::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let settings = startup::orders::Settings::from_env()?;
    let sdk = aws::sdk_config().await;
    let routes = startup::orders::routes(&sdk, &settings).await?;
    lambda_http::run(api::app(routes)).await
}
