//! The operator function: create, show, rehydrate and reset sales (`/admin/sales/...`).

use super::StartupError;
use crate::adapters::dynamodb::{DynamoStatusStore, StatusSettings};
use crate::adapters::postgres::DatabaseSettings;
use crate::adapters::redis::RedisSettings;
use crate::adapters::sqs::{DepthSettings, SqsDepths};
use crate::api::live::{self, LiveState};
use crate::api::operator::{self, OperatorSettings, OperatorState};
use aws_config::SdkConfig;
use axum::Router;

crate::composite! {
    /// What the operator function reads.
    pub struct Settings {
        database: DatabaseSettings,
        redis: RedisSettings,
        status: StatusSettings,
        operator: OperatorSettings,
        queues: DepthSettings,
    }
}

/// The operator routes on Postgres (migrated here), Redis and the status table, with the live
/// view's snapshot (which also reads the queues' depths).
///
/// # Errors
/// [`StartupError`] when a client cannot be built or Postgres cannot be migrated.
pub async fn routes(sdk: &SdkConfig, settings: &Settings) -> Result<Router, StartupError> {
    let db_settings = super::database_settings(sdk, &settings.database).await?;
    let db = super::postgres_migrated(&db_settings).await?;
    let store = super::redis(sdk, &settings.redis).await?;
    let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
    let live = live::routes(LiveState {
        // Its own connection: a snapshot a second must not queue behind an operator's reset.
        db: crate::adapters::postgres::Db::from_settings(&db_settings)
            .map_err(StartupError::Postgres)?,
        store: store.clone(),
        queues: SqsDepths {
            client: aws_sdk_sqs::Client::new(sdk),
            settings: settings.queues.clone(),
        },
        token: settings.operator.token.clone(),
    });
    Ok(operator::routes(OperatorState {
        db,
        store,
        status: DynamoStatusStore::new(dynamodb, &settings.status.table),
        token: settings.operator.token.clone(),
        allow_reset: settings.operator.allow_reset.get(),
    })
    .merge(live))
}
