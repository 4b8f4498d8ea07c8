//! The checkout function: `POST /orders/{order_id}/payment` and `/cancel` for buyers (JWT), and
//! `POST /webhooks/stripe` (Stripe's signature, checked here).
//!
//! Settings: [`checkout::Settings`] (`DATABASE_URL`, `REDIS_URL`, `ORDERS_TABLE`,
//! `STRIPE_SECRET_KEY_SECRET_ARN`, `STRIPE_WEBHOOK_SECRET_ARN`, …).

use lambda_http::Error;

/// mimalloc, as every FlashFlow binary: glibc's malloc cost a quarter of the API's CPU under load.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let settings = checkout::Settings::from_env()?;
    let sdk = flashflow_adapters::aws::sdk_config().await;
    let state = checkout::state(&sdk, &settings).await?;
    let metrics = state.checkout.metrics.clone();
    let app =
        flashflow_http::flushing_metrics(flashflow_http::app(checkout::routes(state)), metrics);
    lambda_http::run(app).await
}
