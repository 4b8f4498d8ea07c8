//! The expire function (EventBridge, every minute): holds past `pay_by` end — each order's
//! PaymentIntent cancelled at Stripe first, so no payment can complete afterwards; found paid,
//! the order is confirmed instead — and their units go back; changes a crash left half done are
//! finished.
//!
//! Settings: [`flashflow::startup::checkout::Settings`] (as the checkout function).

use flashflow::{aws, clock::EpochMs, startup};
use lambda_runtime::{service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let settings = startup::checkout::Settings::from_env()?;
    let sdk = aws::sdk_config().await;
    let state = startup::checkout::state(&sdk, &settings, "expire").await?;

    lambda_runtime::run(service_fn(move |_: LambdaEvent<serde_json::Value>| {
        let state = state.clone();
        async move {
            let report = state.checkout.expire_due(EpochMs::now().get()).await;
            // Written before the instance may freeze.
            state.checkout.metrics.flush();
            let report = report?;
            Ok::<_, Error>(serde_json::json!({
                "expired": report.expired,
                "confirmed": report.confirmed,
                "deferred": report.deferred,
                "finished": report.finished,
            }))
        }
    }))
    .await
}
