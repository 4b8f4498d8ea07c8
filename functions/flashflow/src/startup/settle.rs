//! The settle function: SQS batches into Postgres, statuses into DynamoDB.

use super::StartupError;
use crate::adapters::dynamodb::{DynamoStatusStore, StatusSettings};
use crate::adapters::postgres::{DatabaseSettings, Db};
use crate::adapters::redis::{RedisSettings, RedisStore};
use crate::adapters::sqs::{QueueSettings, SqsPublisher};
use crate::app::settle::{SettleSettings, Settler};
use crate::metrics::Metrics;
use crate::signing::SigningSettings;
use aws_config::SdkConfig;

crate::composite! {
    /// What settle reads.
    pub struct Settings {
        database: DatabaseSettings,
        redis: RedisSettings,
        status: StatusSettings,
        signing: SigningSettings,
        queue: QueueSettings,
        settle: SettleSettings,
    }
}

/// The settle handler as a Lambda instance runs it.
pub type RealSettler = Settler<Db, DynamoStatusStore, RedisStore, SqsPublisher>;

/// The clients every settle handler of a process shares (Redis, SQS, DynamoDB, the signer), and
/// the database settings each handler connects with.
pub struct Clients {
    database: DatabaseSettings,
    store: RedisStore,
    requeue: SqsPublisher,
    dynamodb: aws_sdk_dynamodb::Client,
    table: String,
    signer: crate::signing::Signer,
    retry_delay: std::time::Duration,
}

/// Build the shared clients once.
///
/// # Errors
/// [`StartupError`] when a secret cannot be read or Redis cannot be reached.
pub async fn clients(sdk: &SdkConfig, settings: &Settings) -> Result<Clients, StartupError> {
    let signer = settings.signing.signer(sdk).await?;
    Ok(Clients {
        database: super::database_settings(sdk, &settings.database).await?,
        store: super::redis_ready(sdk, &settings.redis).await?,
        requeue: SqsPublisher::new(aws_sdk_sqs::Client::new(sdk), &settings.queue.url),
        dynamodb: aws_sdk_dynamodb::Client::new(sdk),
        table: settings.status.table.clone(),
        signer,
        retry_delay: settings.settle.retry_delay.get(),
    })
}

impl Clients {
    /// One settle handler (a Lambda instance's), with its own Postgres connection, counting into
    /// `metrics`.
    ///
    /// # Errors
    /// [`StartupError`] when Postgres cannot be reached or migrated.
    pub async fn settler(&self, metrics: Metrics) -> Result<RealSettler, StartupError> {
        Ok(Settler::new(
            super::postgres(&self.database)?,
            DynamoStatusStore::new(self.dynamodb.clone(), &self.table),
            self.store.clone(),
            self.requeue.clone(),
            self.signer.clone(),
        )
        .with_retry_delay(self.retry_delay)
        .with_metrics(metrics))
    }
}
