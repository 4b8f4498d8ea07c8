//! The settle function's wiring: SQS batches into Postgres, statuses into DynamoDB. No HTTP stack.
//! Shared by its Lambda and `flashflow-local`.
//!
//! # Layout
//! - [`Settings`], [`Clients`]: what settle reads, and the clients every handler of a process
//!   shares.
//! - [`SqsBatches`]: the Lambda's SQS event as the use case's batch, and its report as the
//!   partial batch response.

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use flashflow::domain::signing::Signer;
use flashflow::ports::{Ledger, OrderPublisher, SettledOrders, StatusStore};
use flashflow_adapters::aws::SdkConfig;
use flashflow_adapters::clients::{database_settings, postgres, redis_ready, StartupError};
use flashflow_adapters::dynamodb::{DynamoStatusStore, StatusSettings};
use flashflow_adapters::keys::SigningSettings;
use flashflow_adapters::postgres::{DatabaseSettings, Db};
use flashflow_adapters::redis::{RedisSettings, RedisStore};
use flashflow_adapters::sqs::{OrdersQueueSettings, SqsPublisher};
use flashflow_app::metrics::Metrics;
use flashflow_app::settle::{BatchReport, Delivered, SettleSettings, Settler};
use std::future::Future;

flashflow_settings::composite! {
    /// What settle reads.
    pub struct Settings {
        database: DatabaseSettings,
        redis: RedisSettings,
        status: StatusSettings,
        signing: SigningSettings,
        queue: OrdersQueueSettings,
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
    status: DynamoStatusStore,
    signer: Signer,
    retry_delay: std::time::Duration,
}

/// Build the shared clients once.
///
/// # Errors
/// [`StartupError`] when a secret cannot be read or Redis cannot be reached.
pub async fn clients(sdk: &SdkConfig, settings: &Settings) -> Result<Clients, StartupError> {
    let signer = settings.signing.signer(sdk).await?;
    Ok(Clients {
        database: database_settings(sdk, &settings.database).await?,
        store: redis_ready(sdk, &settings.redis).await?,
        requeue: SqsPublisher::from_settings(sdk, &settings.queue),
        status: DynamoStatusStore::from_settings(sdk, &settings.status),
        signer,
        retry_delay: settings.settle.retry_delay.get(),
    })
}

impl Clients {
    /// One settle handler (a Lambda instance's), with its own Postgres connection, counting into
    /// `metrics`.
    ///
    /// # Errors
    /// [`StartupError`] when the database settings are unusable.
    pub async fn settler(&self, metrics: Metrics) -> Result<RealSettler, StartupError> {
        Ok(Settler::new(
            postgres(&self.database)?,
            self.status.clone(),
            self.store.clone(),
            self.requeue.clone(),
            self.signer.clone(),
        )
        .with_retry_delay(self.retry_delay)
        .with_metrics(metrics))
    }
}

/// Settle an SQS event: the Lambda's batch as the use case's, its failures as the partial batch
/// response (`ReportBatchItemFailures`), so SQS redelivers exactly those.
pub trait SqsBatches {
    /// Settle `event`, counting the outcomes; the failed message ids in the response.
    fn handle(&self, event: SqsEvent) -> impl Future<Output = SqsBatchResponse> + Send;
    /// Settle `event` without counting, for tests and tools that read the report.
    fn settle_event(&self, event: SqsEvent) -> impl Future<Output = BatchReport> + Send;
}

impl<L: Ledger, S: StatusStore, R: SettledOrders, Q: OrderPublisher> SqsBatches
    for Settler<L, S, R, Q>
{
    async fn handle(&self, event: SqsEvent) -> SqsBatchResponse {
        response(self.run(batch(event)).await)
    }

    async fn settle_event(&self, event: SqsEvent) -> BatchReport {
        self.settle(batch(event)).await
    }
}

/// The event's messages as the queue delivered them.
pub fn batch(event: SqsEvent) -> Vec<Delivered> {
    event
        .records
        .into_iter()
        .map(|m| Delivered {
            id: m.message_id.unwrap_or_default(),
            body: m.body,
        })
        .collect()
}

/// The report's failed ids as SQS' partial batch response.
pub fn response(report: BatchReport) -> SqsBatchResponse {
    let mut resp = SqsBatchResponse::default();
    resp.batch_item_failures = report
        .failed
        .into_iter()
        .map(|id| {
            let mut f = BatchItemFailure::default();
            f.item_identifier = id;
            f
        })
        .collect();
    resp
}
