//! The operator function's wiring: create, show, rehydrate and reset sales, the waiting room's
//! controls (`/admin/sales/...`) and the live view's snapshot. Shared by its Lambda and
//! `flashflow-local`.

use axum::Router;
use flashflow_adapters::aws::SdkConfig;
use flashflow_adapters::clients::{
    database_settings, postgres, postgres_migrated, redis, StartupError,
};
use flashflow_adapters::dynamodb::{DynamoStatusStore, StatusSettings};
use flashflow_adapters::postgres::DatabaseSettings;
use flashflow_adapters::redis::RedisSettings;
use flashflow_adapters::sqs::{DepthSettings, SqsDepths};
use flashflow_http::live::{self, LiveState};
use flashflow_http::operator::{self, OperatorSettings, OperatorState};

flashflow_settings::composite! {
    /// What the operator function reads.
    pub struct Settings {
        database: DatabaseSettings,
        redis: RedisSettings,
        status: StatusSettings,
        operator: OperatorSettings,
        queues: DepthSettings,
    }
}

/// The operator routes on Postgres (migrated here), Redis, the status table and the queues'
/// depths (a sale a failover paused is rebuilt once the orders queue is empty), with the live
/// view's snapshot.
///
/// # Errors
/// [`StartupError`] when a client cannot be built or Postgres cannot be migrated.
pub async fn routes(sdk: &SdkConfig, settings: &Settings) -> Result<Router, StartupError> {
    let db_settings = database_settings(sdk, &settings.database).await?;
    let db = postgres_migrated(&db_settings).await?;
    let store = redis(sdk, &settings.redis).await?;
    let live = live::routes(LiveState {
        // Its own connection: a snapshot a second must not queue behind an operator's reset.
        db: postgres(&db_settings)?,
        store: store.clone(),
        queues: SqsDepths::from_settings(sdk, &settings.queues),
        token: settings.operator.token.clone(),
    });
    Ok(operator::routes(OperatorState {
        db,
        store,
        status: DynamoStatusStore::from_settings(sdk, &settings.status),
        queues: SqsDepths::from_settings(sdk, &settings.queues),
        token: settings.operator.token.clone(),
        allow_reset: settings.operator.allow_reset.get(),
    })
    .merge(live))
}
