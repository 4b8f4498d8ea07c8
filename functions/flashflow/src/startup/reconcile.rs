//! The reconcile function: the outbox sweeper. It holds no signing key: what it re-sends is
//! signed by buy inside the message.

use super::StartupError;
use crate::adapters::redis::{RedisSettings, RedisStore};
use crate::adapters::sqs::{QueueSettings, SqsPublisher};
use crate::app::reconcile::SweepTiming;
use aws_config::SdkConfig;

crate::composite! {
    /// What the sweeper reads.
    pub struct Settings {
        redis: RedisSettings,
        queue: QueueSettings,
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
    // No signing key: the sweeper forwards messages as buy signed them.
    let queue = SqsPublisher::new(aws_sdk_sqs::Client::new(sdk), &settings.queue.url);
    Ok(Sweeper {
        store,
        queue,
        timing: settings.timing,
    })
}
