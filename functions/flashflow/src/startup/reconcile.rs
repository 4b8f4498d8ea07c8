//! The reconcile function: the outbox sweeper.

use super::StartupError;
use crate::adapters::redis::{RedisSettings, RedisStore};
use crate::adapters::sqs::{QueueSettings, SqsPublisher};
use crate::app::reconcile::SweepTiming;
use crate::signing::SigningSettings;
use aws_config::SdkConfig;

crate::composite! {
    /// What the sweeper reads.
    pub struct Settings {
        redis: RedisSettings,
        queue: QueueSettings,
        signing: SigningSettings,
        timing: SweepTiming,
    }
}

/// What one sweep runs on.
pub struct Sweeper {
    pub store: RedisStore,
    pub queue: SqsPublisher,
    pub timing: SweepTiming,
}

impl Sweeper {
    /// One sweep over every sale Redis holds (see [`crate::app::reconcile::sweep`]).
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn sweep(
        &self,
    ) -> Result<crate::app::reconcile::SweepReport, crate::ports::StoreError> {
        crate::app::reconcile::sweep(&self.store, &self.queue, self.timing).await
    }
}

/// The sweeper's clients.
///
/// # Errors
/// [`StartupError`] when a client cannot be built.
pub async fn sweeper(sdk: &SdkConfig, settings: &Settings) -> Result<Sweeper, StartupError> {
    let store = super::redis_ready(sdk, &settings.redis).await?;
    let signer = settings.signing.signer(sdk).await?;
    let queue = SqsPublisher::new(aws_sdk_sqs::Client::new(sdk), &settings.queue.url, signer);
    Ok(Sweeper {
        store,
        queue,
        timing: settings.timing,
    })
}
