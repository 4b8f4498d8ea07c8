//! The expire function (EventBridge, every minute): holds past `pay_by` end — each order's
//! PaymentIntent cancelled at Stripe first, so no payment can complete afterwards; found paid,
//! the order is confirmed instead — and their units go back; changes a crash left half done are
//! finished.
//!
//! Settings: [`expire::Settings`].

use flashflow::domain::EpochMs;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use std::sync::Arc;

/// mimalloc, as every FlashFlow binary: glibc's malloc cost a quarter of the API's CPU under load.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let settings = expire::Settings::from_env()?;
    let sdk = flashflow_adapters::aws::sdk_config().await;
    let checkout = Arc::new(expire::checkout(&sdk, &settings, "expire").await?);

    lambda_runtime::run(service_fn(move |_: LambdaEvent<serde_json::Value>| {
        let checkout = Arc::clone(&checkout);
        async move {
            let report = checkout.expire_due(EpochMs::now()).await;
            // Written before the instance may freeze.
            checkout.metrics.flush();
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
