//! The queue function: a sale's waiting room (`POST /sales/{sale_id}/queue`, its polls, the
//! draw's record, proof-of-work challenges).

use super::StartupError;
use crate::adapters::redis::RedisSettings;
use crate::api::queue::{self, QueueState};
use crate::app::waiting_room::Queue;
use crate::metrics::Metrics;
use crate::signing::AdmissionSettings;
use aws_config::SdkConfig;
use axum::Router;

/// Accept `X-User-Id` as the buyer: `TRUST_USER_HEADER` (false; local use only).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default)]
pub struct QueueSettings {
    pub trust_user_header: crate::settings::Flag,
}

impl crate::settings::FromEnv for QueueSettings {}

crate::composite! {
    /// What the queue function reads.
    pub struct Settings {
        redis: RedisSettings,
        admission: AdmissionSettings,
        callers: QueueSettings,
    }
}

/// The queue routes on Redis, with the waiting room's key (required).
///
/// # Errors
/// [`StartupError`] when a client cannot be built or no key is configured.
pub async fn routes(
    sdk: &SdkConfig,
    settings: &Settings,
    metrics: Metrics,
) -> Result<Router, StartupError> {
    let store = super::redis(sdk, &settings.redis).await?;
    let keys = settings.admission.required_keys(sdk).await?;
    Ok(queue::routes(QueueState {
        queue: Queue::new(store, keys, metrics),
        trust_user_header: settings.callers.trust_user_header.get(),
    }))
}
