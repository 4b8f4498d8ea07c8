//! The buy function's wiring, shared by its Lambda (`main.rs`) and `flashflow-local`: typed
//! settings → clients → the buy use case → its router.

use axum::Router;
use flashflow::ports::OrderPublisher;
use flashflow_adapters::aws::SdkConfig;
use flashflow_adapters::clients::{ready, StartupError};
use flashflow_adapters::keys::{AdmissionSettings, SigningSettings};
use flashflow_adapters::redis::{FastPathSettings, RedisSettings, RedisStore};
use flashflow_adapters::relay::{Relay, RelaySettings};
use flashflow_adapters::sqs::{OrdersQueueSettings, SqsPublisher};
use flashflow_app::buy::{Buy, BuySettings};
use flashflow_app::metrics::Metrics;
use flashflow_app::waiting_room::gate::AdmissionGate;
use flashflow_http::buy::{self, BuyCallers, BuyState};
use std::sync::Arc;

flashflow_settings::composite! {
    /// What buy reads.
    pub struct Settings {
        redis: RedisSettings,
        fast_path: FastPathSettings,
        queue: OrdersQueueSettings,
        signing: SigningSettings,
        admission: AdmissionSettings,
        buy: BuySettings,
        callers: BuyCallers,
    }
}

/// The Lambda's routes: each order is sent to the queue before the buyer is answered (a frozen
/// instance cannot relay).
///
/// # Errors
/// [`StartupError`] when a client cannot be built or Redis cannot be reached.
pub async fn routes(
    sdk: &SdkConfig,
    settings: &Settings,
    metrics: Metrics,
) -> Result<Router, StartupError> {
    let clients = Clients::build(sdk, settings).await?;
    let publisher = SqsPublisher::from_settings(sdk, &settings.queue);
    Ok(clients.router(settings, publisher, metrics))
}

/// The long-running server's routes: the buyer is answered once the reservation is in the
/// outbox, and the relay sends in batches behind it (see [`flashflow_adapters::relay`]). Must run
/// on a Tokio runtime, where the relay's worker is spawned.
///
/// # Errors
/// As [`routes`].
pub async fn relayed_routes(
    sdk: &SdkConfig,
    settings: &Settings,
    relay: RelaySettings,
    metrics: Metrics,
) -> Result<Router, StartupError> {
    let clients = Clients::build(sdk, settings).await?;
    let publisher = SqsPublisher::from_settings(sdk, &settings.queue);
    let (relay, _worker) = Relay::start(publisher, clients.store.clone(), relay);
    Ok(clients.router(settings, relay, metrics))
}

/// What every buy process builds once: the store (connected, scripts loaded, the sold-out fast
/// path listening), the key it signs orders with, the waiting room's key.
struct Clients {
    store: RedisStore,
    signer: flashflow::domain::signing::Signer,
    gate: AdmissionGate,
}

impl Clients {
    async fn build(sdk: &SdkConfig, settings: &Settings) -> Result<Self, StartupError> {
        let redis = settings.redis.clone().with_secret(sdk).await?;
        let signer = settings.signing.signer(sdk).await?;
        let store = RedisStore::connect(&redis)
            .and_then(|s| s.with_fast_path(&settings.fast_path, &redis))
            .map_err(StartupError::Redis)?;
        ready(&store).await?;
        let gate = AdmissionGate::new(settings.admission.keys(sdk).await?);
        Ok(Self {
            store,
            signer,
            gate,
        })
    }

    fn router<P: OrderPublisher>(
        self,
        settings: &Settings,
        publisher: P,
        metrics: Metrics,
    ) -> Router {
        let buy = Buy::new(self.store, publisher, self.signer, self.gate, metrics)
            .with_settings(settings.buy.clone());
        buy::routes(BuyState {
            buy: Arc::new(buy),
            callers: settings.callers.clone(),
        })
    }
}
