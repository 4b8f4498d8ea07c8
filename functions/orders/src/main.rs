//! The order-status function: `GET /orders/{order_id}` for buyers (JWT) and
//! `GET /admin/orders/{order_id}` for operators (IAM), the public sale view and the pages.
//!
//! Settings: [`orders::Settings`] (`REDIS_URL`, `ORDERS_TABLE`, …).

use lambda_http::Error;

/// mimalloc, as every FlashFlow binary: glibc's malloc cost a quarter of the API's CPU under load.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let settings = orders::Settings::from_env()?;
    let sdk = flashflow_adapters::aws::sdk_config().await;
    let routes = orders::routes(&sdk, &settings).await?;
    lambda_http::run(flashflow_http::app(routes)).await
}
