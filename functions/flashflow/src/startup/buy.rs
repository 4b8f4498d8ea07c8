//! The buy function: `POST /sales/{sale_id}/buy`.

use super::StartupError;
use crate::adapters::redis::{FastPathSettings, RedisSettings, RedisStore};
use crate::adapters::relay::{Relay, RelaySettings};
use crate::adapters::sqs::{QueueSettings, SqsPublisher};
use crate::api::buy::{self, BuySettings, BuyState};
use crate::app::waiting_room::gate::AdmissionGate;
use crate::metrics::Metrics;
use crate::signing::{AdmissionSettings, SigningSettings};
use aws_config::SdkConfig;
use axum::Router;

crate::composite! {
    /// What buy reads.
    pub struct Settings {
        redis: RedisSettings,
        fast_path: FastPathSettings,
        queue: QueueSettings,
        signing: SigningSettings,
        admission: AdmissionSettings,
        handler: BuySettings,
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
    let (store, publisher, gate) = clients(sdk, settings).await?;
    Ok(buy::routes(BuyState {
        store,
        publisher,
        settings: settings.handler.clone(),
        gate,
        metrics,
    }))
}

/// The long-running server's routes: the buyer is answered once the reservation is in the
/// outbox, and the relay sends in batches behind it (see [`crate::adapters::relay`]). Must run
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
    let (store, publisher, gate) = clients(sdk, settings).await?;
    let (relay, _worker) = Relay::start(publisher, store.clone(), relay);
    Ok(buy::routes(BuyState {
        store,
        publisher: relay,
        settings: settings.handler.clone(),
        gate,
        metrics,
    }))
}

async fn clients(
    sdk: &SdkConfig,
    settings: &Settings,
) -> Result<(RedisStore, SqsPublisher, AdmissionGate), StartupError> {
    let redis = settings.redis.clone().with_secret(sdk).await?;
    let signer = settings.signing.signer(sdk).await?;
    let store = RedisStore::connect(&redis)
        .and_then(|s| s.with_fast_path(&settings.fast_path, &redis))
        .map_err(StartupError::Redis)?
        .with_signer(signer);
    super::ready(&store).await?;
    let gate = AdmissionGate::new(settings.admission.keys(sdk).await?);
    let sqs = aws_sdk_sqs::Client::new(sdk);
    Ok((store, SqsPublisher::new(sqs, &settings.queue.url), gate))
}
