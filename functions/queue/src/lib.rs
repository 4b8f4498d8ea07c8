//! The queue function's wiring: a sale's waiting room (`POST /sales/{sale_id}/queue`, its polls,
//! the draw's record, proof-of-work challenges), on Redis and the drand beacon the draw mixes in.
//! Shared by its Lambda and `flashflow-local`.

use axum::Router;
use flashflow_adapters::aws::SdkConfig;
use flashflow_adapters::beacon::{Drand, DrandSettings};
use flashflow_adapters::clients::{redis, StartupError};
use flashflow_adapters::keys::AdmissionSettings;
use flashflow_adapters::redis::RedisSettings;
use flashflow_app::metrics::Metrics;
use flashflow_app::waiting_room::Queue;
use flashflow_http::queue::{self, QueueCallers, QueueState};

flashflow_settings::composite! {
    /// What the queue function reads.
    pub struct Settings {
        redis: RedisSettings,
        admission: AdmissionSettings,
        beacon: DrandSettings,
        callers: QueueCallers,
    }
}

/// The queue routes on Redis and the beacon, with the waiting room's key (required).
///
/// # Errors
/// [`StartupError`] when a client cannot be built or no key is configured.
pub async fn routes(
    sdk: &SdkConfig,
    settings: &Settings,
    metrics: Metrics,
) -> Result<Router, StartupError> {
    let store = redis(sdk, &settings.redis).await?;
    let keys = settings.admission.required_keys(sdk).await?;
    let beacon = Drand::new(&settings.beacon)
        .map_err(|e| StartupError::Other(format!("the beacon client: {e}").into()))?;
    Ok(queue::routes(QueueState {
        queue: Queue::new(store, beacon, keys, metrics),
        trust_user_header: settings.callers.trust_user_header.get(),
    }))
}
