//! The operator function: create, show, rehydrate and reset sales (`/admin/...`, IAM-authorized
//! in AWS). Migrations run at start.
//!
//! Settings: [`flashflow::startup::operator::Settings`] (`DATABASE_URL`, `REDIS_URL`,
//! `ORDERS_TABLE`, `SALE_RESET_ENABLED`, …).

use flashflow::{api, aws, startup};
use lambda_http::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let settings = startup::operator::Settings::from_env()?;
    let sdk = aws::sdk_config().await;
    let routes = startup::operator::routes(&sdk, &settings).await?;
    lambda_http::run(api::app(routes)).await
}
