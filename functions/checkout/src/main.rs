//! The checkout function: `POST /orders/{order_id}/payment` and `POST /orders/{order_id}/cancel`
//! (the order's buyer, behind the JWT authorizer) and `POST /webhooks/stripe` (Stripe; its
//! signature is its authentication). Migrations run at start.
//!
//! Settings: [`flashflow::startup::checkout::Settings`] (`DATABASE_URL`, `REDIS_URL`,
//! `ORDERS_TABLE`, `STRIPE_API_BASE`, `STRIPE_SECRET_KEY_SECRET_ARN`,
//! `STRIPE_WEBHOOK_SECRET_ARN`, …).

use flashflow::{api, aws, startup};
use lambda_http::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let settings = startup::checkout::Settings::from_env()?;
    let sdk = aws::sdk_config().await;
    let state = startup::checkout::state(&sdk, &settings, "checkout").await?;
    let metrics = state.checkout.metrics.clone();
    let app = api::flushing_metrics(api::app(startup::checkout::routes(state)), metrics);
    lambda_http::run(app).await
}
