//! The checkout function (`/orders/{id}/payment`, `/orders/{id}/cancel`, `/webhooks/stripe`) and
//! the expiry function (a schedule): both on the same clients, built here once.

use super::StartupError;
use crate::adapters::dynamodb::{DynamoStatusStore, StatusSettings};
use crate::adapters::postgres::{DatabaseSettings, Db};
use crate::adapters::redis::{RedisSettings, RedisStore};
use crate::adapters::stripe::{Stripe, StripeSettings};
use crate::api::checkout::{self, CheckoutSettings, CheckoutState};
use crate::app::checkout::Checkout;
use crate::metrics::Metrics;
use aws_config::SdkConfig;
use axum::Router;
use std::sync::Arc;

crate::composite! {
    /// What the checkout and expiry functions read.
    pub struct Settings {
        database: DatabaseSettings,
        redis: RedisSettings,
        status: StatusSettings,
        stripe: StripeSettings,
        checkout: CheckoutSettings,
    }
}

/// Checkout on Postgres (migrated here), Redis, the status table and Stripe.
pub type State = Arc<CheckoutState<Db, RedisStore, DynamoStatusStore, Stripe>>;

/// Why Stripe's client could not be built.
#[derive(Debug, thiserror::Error)]
#[error("stripe: {0}")]
pub struct StripeSetupError(#[source] pub crate::ports::PaymentError);

/// The clients of checkout, with `service` naming its metrics (`checkout`, `expire`).
///
/// # Errors
/// [`StartupError`] when a client cannot be built, a secret read or Postgres migrated.
pub async fn state(
    sdk: &SdkConfig,
    settings: &Settings,
    service: &'static str,
) -> Result<State, StartupError> {
    let db = super::postgres(&super::database_settings(sdk, &settings.database).await?)?;
    let store = super::redis(sdk, &settings.redis).await?;
    let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
    let stripe_settings = settings.stripe.clone().with_secret(sdk).await?;
    let stripe = Stripe::new(&stripe_settings)
        .map_err(|e| StartupError::Other(Box::new(StripeSetupError(e))))?;
    Ok(Arc::new(CheckoutState {
        checkout: Checkout {
            holds: db,
            store,
            status: DynamoStatusStore::new(dynamodb, &settings.status.table),
            payments: stripe,
            metrics: Metrics::new(service),
        },
        trust_user_header: settings.checkout.trust_user_header.get(),
    }))
}

/// The checkout routes on `state`.
pub fn routes(state: State) -> Router {
    checkout::routes(state)
}
