//! The clients the functions build at start (Redis, Postgres), each built the same way in every
//! function, and why a function could not start ([`StartupError`]). Each function's wiring (its
//! crate's lib: settings → clients → run) is shared by its Lambda and `flashflow-local`; a
//! function's `Settings::variables()` is what `template.yaml` must declare for it.

use crate::keys::SignerError;
use crate::secrets::SecretError;
use flashflow_settings::ConfigError;

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
    Redis(#[source] flashflow::ports::StoreError),
    #[cfg(feature = "postgres")]
    #[error("connecting to Postgres: {0}")]
    Postgres(#[source] flashflow::ports::DbError),
    /// Another client could not be built (Stripe's).
    #[error("{0}")]
    Other(#[source] flashflow::ports::BoxError),
}

/// How long a function waits for Redis at start before it gives up.
#[cfg(feature = "redis")]
const REDIS_READY: std::time::Duration = std::time::Duration::from_secs(5);

#[cfg(feature = "redis")]
/// The Redis client for `settings`, its AUTH credentials read from Secrets Manager. It connects
/// in the background: commands wait for the connection up to the command timeout.
///
/// # Errors
/// [`StartupError`] when the secret cannot be read or the settings are unusable.
pub async fn redis(
    sdk: &aws_config::SdkConfig,
    settings: &crate::redis::RedisSettings,
) -> Result<crate::redis::RedisStore, StartupError> {
    let settings = settings.clone().with_secret(sdk).await?;
    crate::redis::RedisStore::connect(&settings).map_err(StartupError::Redis)
}

#[cfg(feature = "redis")]
/// [`redis`], connected and with its scripts loaded (the buy path's first request pays for
/// neither).
///
/// # Errors
/// As [`redis`], and when Redis cannot be reached within 5 s.
pub async fn redis_ready(
    sdk: &aws_config::SdkConfig,
    settings: &crate::redis::RedisSettings,
) -> Result<crate::redis::RedisStore, StartupError> {
    let store = redis(sdk, settings).await?;
    ready(&store).await?;
    Ok(store)
}

#[cfg(feature = "redis")]
/// Wait for `store`'s connection and load its scripts, for at most 5 s.
///
/// # Errors
/// [`StartupError::Redis`] when Redis cannot be reached in time.
pub async fn ready(store: &crate::redis::RedisStore) -> Result<(), StartupError> {
    store.ready(REDIS_READY).await.map_err(StartupError::Redis)
}

/// Postgres settings with the user and password of the configured secret.
///
/// # Errors
/// [`StartupError::Secret`] when the secret cannot be read.
#[cfg(feature = "postgres")]
pub async fn database_settings(
    sdk: &aws_config::SdkConfig,
    settings: &crate::postgres::DatabaseSettings,
) -> Result<crate::postgres::DatabaseSettings, StartupError> {
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
    settings: &crate::postgres::DatabaseSettings,
) -> Result<crate::postgres::Db, StartupError> {
    crate::postgres::Db::from_settings(settings).map_err(StartupError::Postgres)
}

/// [`postgres`], migrated: the operator's (a sale is created through it before anything else
/// uses the ledger), so the functions that take traffic never run migrations at start.
///
/// # Errors
/// [`StartupError::Postgres`] when the URL is unusable, Postgres cannot be reached or a migration
/// fails (or was edited after it was applied).
#[cfg(feature = "postgres")]
pub async fn postgres_migrated(
    settings: &crate::postgres::DatabaseSettings,
) -> Result<crate::postgres::Db, StartupError> {
    let db = postgres(settings)?;
    db.migrate().await.map_err(StartupError::Postgres)?;
    Ok(db)
}

/// The clients of checkout's use case (the checkout routes and the expiry job): the ledger's
/// holds, the store that gets units back, the status table and the payment provider.
#[cfg(all(
    feature = "postgres",
    feature = "redis",
    feature = "dynamodb",
    feature = "stripe"
))]
pub struct CheckoutClients {
    pub holds: crate::postgres::Db,
    pub store: crate::redis::RedisStore,
    pub status: crate::dynamodb::DynamoStatusStore,
    pub payments: crate::stripe::Stripe,
}

/// Why Stripe's client could not be built.
#[cfg(feature = "stripe")]
#[derive(Debug, thiserror::Error)]
#[error("stripe: {0}")]
pub struct StripeSetupError(#[source] pub flashflow::ports::PaymentError);

/// [`CheckoutClients`], each secret read from Secrets Manager; Postgres is connected on first use.
///
/// # Errors
/// [`StartupError`] when a secret cannot be read or a client cannot be built.
#[cfg(all(
    feature = "postgres",
    feature = "redis",
    feature = "dynamodb",
    feature = "stripe"
))]
pub async fn checkout_clients(
    sdk: &aws_config::SdkConfig,
    database: &crate::postgres::DatabaseSettings,
    redis_settings: &crate::redis::RedisSettings,
    status: &crate::dynamodb::StatusSettings,
    stripe: &crate::stripe::StripeSettings,
) -> Result<CheckoutClients, StartupError> {
    let holds = postgres(&database_settings(sdk, database).await?)?;
    let store = redis(sdk, redis_settings).await?;
    let stripe = stripe.clone().with_secret(sdk).await?;
    let payments = crate::stripe::Stripe::new(&stripe)
        .map_err(|e| StartupError::Other(Box::new(StripeSetupError(e))))?;
    Ok(CheckoutClients {
        holds,
        store,
        status: crate::dynamodb::DynamoStatusStore::from_settings(sdk, status),
        payments,
    })
}
