//! The expire function's wiring: checkout's use case on the real clients, for the schedule that
//! ends holds past `pay_by`. No HTTP stack. Shared by its Lambda and `flashflow-local`.

use flashflow_adapters::aws::SdkConfig;
use flashflow_adapters::clients::{checkout_clients, StartupError};
use flashflow_adapters::dynamodb::{DynamoStatusStore, StatusSettings};
use flashflow_adapters::postgres::{DatabaseSettings, Db};
use flashflow_adapters::redis::{RedisSettings, RedisStore};
use flashflow_adapters::stripe::{Stripe, StripeSettings};
use flashflow_app::checkout::Checkout;
use flashflow_app::metrics::Metrics;

flashflow_settings::composite! {
    /// What the expiry function reads.
    pub struct Settings {
        database: DatabaseSettings,
        redis: RedisSettings,
        status: StatusSettings,
        stripe: StripeSettings,
    }
}

/// Checkout on Postgres, Redis, the status table and Stripe.
pub type RealCheckout = Checkout<Db, RedisStore, DynamoStatusStore, Stripe>;

/// Checkout's use case, counting into metrics named for `service` (`expire`).
///
/// # Errors
/// [`StartupError`] when a client cannot be built or a secret read.
pub async fn checkout(
    sdk: &SdkConfig,
    settings: &Settings,
    service: &'static str,
) -> Result<RealCheckout, StartupError> {
    let c = checkout_clients(
        sdk,
        &settings.database,
        &settings.redis,
        &settings.status,
        &settings.stripe,
    )
    .await?;
    Ok(Checkout {
        holds: c.holds,
        store: c.store,
        status: c.status,
        payments: c.payments,
        metrics: Metrics::new(service),
    })
}
