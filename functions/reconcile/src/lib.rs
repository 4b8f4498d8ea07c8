//! The reconcile function's wiring: the outbox sweeper. It holds no signing key: what it re-sends
//! is signed by buy inside the message. Shared by its Lambda and `flashflow-local`.

use flashflow::ports::StoreError;
use flashflow_adapters::aws::SdkConfig;
use flashflow_adapters::clients::{redis_ready, StartupError};
use flashflow_adapters::redis::{RedisSettings, RedisStore};
use flashflow_adapters::sqs::{OrdersQueueSettings, SqsPublisher};
use flashflow_app::reconcile::{self, SweepReport, SweepTiming};

flashflow_settings::composite! {
    /// What the sweeper reads.
    pub struct Settings {
        redis: RedisSettings,
        queue: OrdersQueueSettings,
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
    /// One sweep over every sale Redis holds (see [`flashflow_app::reconcile::sweep`]).
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn sweep(&self) -> Result<SweepReport, StoreError> {
        reconcile::sweep(&self.store, &self.queue, self.timing).await
    }
}

/// The sweeper's clients.
///
/// # Errors
/// [`StartupError`] when a client cannot be built.
pub async fn sweeper(sdk: &SdkConfig, settings: &Settings) -> Result<Sweeper, StartupError> {
    Ok(Sweeper {
        store: redis_ready(sdk, &settings.redis).await?,
        // No signing key: the sweeper forwards messages as buy signed them.
        queue: SqsPublisher::from_settings(sdk, &settings.queue),
        timing: settings.timing,
    })
}
