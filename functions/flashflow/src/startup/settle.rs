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

/// `instances` settle handlers, each with its own Postgres connection (one per Lambda instance),
/// sharing the Redis, SQS and DynamoDB clients and `metrics`.
///
/// # Errors
/// [`StartupError`] when a client cannot be built or Postgres cannot be reached or migrated.
pub async fn settlers(
    sdk: &SdkConfig,
    settings: &Settings,
    instances: usize,
    metrics: Metrics,
) -> Result<Vec<RealSettler>, StartupError> {
    let database = super::database_settings(sdk, &settings.database).await?;
    let store = super::redis_ready(sdk, &settings.redis).await?;
    let signer = settings.signing.signer(sdk).await?;
    let requeue = SqsPublisher::new(
        aws_sdk_sqs::Client::new(sdk),
        &settings.queue.url,
        signer.clone(),
    );
    let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
    let mut settlers = Vec::with_capacity(instances);
    for _ in 0..instances {
        settlers.push(
            Settler::new(
                super::postgres(&database).await?,
                DynamoStatusStore::new(dynamodb.clone(), &settings.status.table),
                store.clone(),
                requeue.clone(),
                signer.clone(),
            )
            .with_retry_delay(settings.settle.retry_delay)
            .with_metrics(metrics.clone()),
        );
    }
    Ok(settlers)
}
