//! The operator function: create, show, rehydrate and reset sales (`/admin/...`, IAM-authorized
//! in AWS), the waiting room's controls and the live view. Migrations run at start.
//!
//! Settings: [`operator::Settings`] (`DATABASE_URL`, `REDIS_URL`, `ORDERS_TABLE`,
//! `SALE_RESET_ENABLED`, …).

use lambda_http::Error;

/// mimalloc, as every FlashFlow binary: glibc's malloc cost a quarter of the API's CPU under load.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let settings = operator::Settings::from_env()?;
    let sdk = flashflow_adapters::aws::sdk_config().await;
    let routes = operator::routes(&sdk, &settings).await?;
    lambda_http::run(flashflow_http::app(routes)).await
}
