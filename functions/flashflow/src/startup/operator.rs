//! The operator function: create, show, rehydrate and reset sales (`/admin/sales/...`).

use super::StartupError;
use crate::adapters::dynamodb::{DynamoStatusStore, StatusSettings};
use crate::adapters::postgres::DatabaseSettings;
use crate::adapters::redis::RedisSettings;
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
    }
}

/// The operator routes on Postgres (migrated here), Redis and the status table.
///
/// # Errors
/// [`StartupError`] when a client cannot be built or Postgres cannot be migrated.
pub async fn routes(sdk: &SdkConfig, settings: &Settings) -> Result<Router, StartupError> {
    let db = super::postgres(&super::database_settings(sdk, &settings.database).await?).await?;
    let store = super::redis(sdk, &settings.redis).await?;
    let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
    Ok(operator::routes(OperatorState {
        db,
        store,
        status: DynamoStatusStore::new(dynamodb, &settings.status.table),
        token: settings.operator.token.clone(),
        allow_reset: settings.operator.allow_reset,
    }))
}
