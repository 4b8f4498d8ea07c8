//! The checkout function's wiring (`/orders/{id}/payment`, `/orders/{id}/cancel`,
//! `/webhooks/stripe`): checkout's use case on the real clients, behind its router. Shared by its
//! Lambda and `flashflow-local`.

use axum::Router;
use flashflow_adapters::aws::SdkConfig;
use flashflow_adapters::clients::{checkout_clients, StartupError};
use flashflow_adapters::dynamodb::{DynamoStatusStore, StatusSettings};
use flashflow_adapters::postgres::{DatabaseSettings, Db};
use flashflow_adapters::redis::{RedisSettings, RedisStore};
use flashflow_adapters::stripe::{Stripe, StripeSettings};
use flashflow_app::checkout::Checkout;
use flashflow_app::metrics::Metrics;
use flashflow_http::checkout::{self, CheckoutSettings, CheckoutState};
use std::sync::Arc;

flashflow_settings::composite! {
    /// What the checkout function reads.
    pub struct Settings {
        database: DatabaseSettings,
        redis: RedisSettings,
        status: StatusSettings,
        stripe: StripeSettings,
        checkout: CheckoutSettings,
    }
}

/// Checkout on Postgres, Redis, the status table and Stripe.
pub type State = Arc<CheckoutState<Db, RedisStore, DynamoStatusStore, Stripe>>;

/// The clients of checkout.
///
/// # Errors
/// [`StartupError`] when a client cannot be built or a secret read.
pub async fn state(sdk: &SdkConfig, settings: &Settings) -> Result<State, StartupError> {
    let c = checkout_clients(
        sdk,
        &settings.database,
        &settings.redis,
        &settings.status,
        &settings.stripe,
    )
    .await?;
    Ok(Arc::new(CheckoutState {
        checkout: Checkout {
            holds: c.holds,
            store: c.store,
            status: c.status,
            payments: c.payments,
            metrics: Metrics::new("checkout"),
        },
        trust_user_header: settings.checkout.trust_user_header.get(),
    }))
}

/// The checkout routes on `state`.
pub fn routes(state: State) -> Router {
    checkout::routes(state)
}
