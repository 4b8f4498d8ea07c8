//! Wiring: each function's settings → clients → state, written once and used by its Lambda
//! `main.rs` and by `flashflow-local` alike, so the two cannot drift.
//!
//! A function's `Settings` is made of the groups its adapters and handler own (see
//! [`crate::settings`]); `Settings::variables()` is what `template.yaml` must declare for it.
//!
//! # Layout
//! - this file: the clients every function shares (Redis, Postgres) and [`StartupError`].
//! - [`buy`], [`orders`], [`operator`], [`settle`], [`reconcile`], [`queue`]: one function each;
//!   [`checkout`]: the checkout routes and the expiry job, on the same clients.

#[cfg(all(feature = "sqs", feature = "http"))]
pub mod buy;
#[cfg(all(
    feature = "postgres",
    feature = "dynamodb",
    feature = "stripe",
    feature = "http"
))]
pub mod checkout;
#[cfg(all(
    feature = "postgres",
    feature = "dynamodb",
    feature = "sqs",
    feature = "http"
))]
pub mod operator;
#[cfg(all(feature = "dynamodb", feature = "http"))]
pub mod orders;
#[cfg(feature = "http")]
pub mod queue;
#[cfg(feature = "sqs")]
pub mod reconcile;
#[cfg(all(
    feature = "postgres",
    feature = "dynamodb",
    feature = "sqs",
    feature = "sqs-events"
))]
pub mod settle;

use crate::adapters::redis::{RedisSettings, RedisStore};
use crate::ports::StoreError;
use crate::secrets::SecretError;
use crate::settings::ConfigError;
use crate::signing::SignerError;
use aws_config::SdkConfig;
use std::time::Duration;

/// Why a function could not start. Messages name the setting or the service.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error(transparent)]
    Signer(#[from] SignerError),
    #[error("connecting to Redis: {0}")]
    Redis(#[source] StoreError),
    #[cfg(feature = "postgres")]
    #[error("connecting to Postgres: {0}")]
    Postgres(#[source] crate::ports::DbError),
    /// Another client could not be built (Stripe's).
    #[error("{0}")]
    Other(#[source] crate::ports::BoxError),
}

/// How long a function waits for Redis at start before it gives up.
const REDIS_READY: Duration = Duration::from_secs(5);

/// The Redis client for `settings`, its AUTH credentials read from Secrets Manager. It connects
/// in the background: commands wait for the connection up to the command timeout.
///
/// # Errors
/// [`StartupError`] when the secret cannot be read or the settings are unusable.
pub async fn redis(sdk: &SdkConfig, settings: &RedisSettings) -> Result<RedisStore, StartupError> {
    let settings = settings.clone().with_secret(sdk).await?;
    RedisStore::connect(&settings).map_err(StartupError::Redis)
}

/// [`redis`], connected and with its scripts loaded (the buy path's first request pays for
/// neither).
///
/// # Errors
/// As [`redis`], and when Redis cannot be reached within 5 s.
pub async fn redis_ready(
    sdk: &SdkConfig,
    settings: &RedisSettings,
) -> Result<RedisStore, StartupError> {
    let store = redis(sdk, settings).await?;
    ready(&store).await?;
    Ok(store)
}

/// Wait for `store`'s connection and load its scripts, for at most 5 s.
///
/// # Errors
/// [`StartupError::Redis`] when Redis cannot be reached in time.
pub async fn ready(store: &RedisStore) -> Result<(), StartupError> {
    store.ready(REDIS_READY).await.map_err(StartupError::Redis)
}

/// Postgres settings with the user and password of the configured secret.
///
/// # Errors
/// [`StartupError::Secret`] when the secret cannot be read.
#[cfg(feature = "postgres")]
pub async fn database_settings(
    sdk: &SdkConfig,
    settings: &crate::adapters::postgres::DatabaseSettings,
) -> Result<crate::adapters::postgres::DatabaseSettings, StartupError> {
    Ok(settings.clone().with_secret(sdk).await?)
}

/// One Postgres connection (one per function instance), made on first use: an instance that is
/// never asked for anything needing the ledger (a webhook whose signature is refused) never takes
/// one of the database's connections. The schema is the operator's to migrate.
///
/// # Errors
/// [`StartupError::Postgres`] when the URL is unusable.
#[cfg(feature = "postgres")]
pub fn postgres(
    settings: &crate::adapters::postgres::DatabaseSettings,
) -> Result<crate::adapters::postgres::Db, StartupError> {
    crate::adapters::postgres::Db::from_settings(settings).map_err(StartupError::Postgres)
}

/// [`postgres`], migrated: the operator's (a sale is created through it before anything else
/// uses the ledger), so the functions that take traffic never run migrations at start.
///
/// # Errors
/// [`StartupError::Postgres`] when the URL is unusable, Postgres cannot be reached or a migration
/// fails (or was edited after it was applied).
#[cfg(feature = "postgres")]
pub async fn postgres_migrated(
    settings: &crate::adapters::postgres::DatabaseSettings,
) -> Result<crate::adapters::postgres::Db, StartupError> {
    let db = postgres(settings)?;
    db.migrate().await.map_err(StartupError::Postgres)?;
    Ok(db)
}
