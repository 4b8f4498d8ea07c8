//! Typed settings from the environment. Each function reads its settings once at start and fails
//! fast with a message naming the variable.

use std::time::Duration;

/// A setting is missing or malformed.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {name} is required: {hint}")]
    Missing {
        name: &'static str,
        hint: &'static str,
    },
    #[error("environment variable {name}={value:?} is invalid: expected {expected}")]
    Invalid {
        name: &'static str,
        value: String,
        expected: &'static str,
    },
}

/// A required, non-empty variable.
///
/// # Errors
/// [`ConfigError::Missing`] with `hint` when unset or empty.
pub fn required(name: &'static str, hint: &'static str) -> Result<String, ConfigError> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => Ok(v),
        _ => Err(ConfigError::Missing { name, hint }),
    }
}

/// An optional variable; empty counts as unset.
pub fn optional(name: &'static str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// A boolean flag: `1/true/yes/on` or `0/false/no/off`.
///
/// # Errors
/// [`ConfigError::Invalid`] for any other value.
pub fn flag(name: &'static str, default: bool) -> Result<bool, ConfigError> {
    match optional(name) {
        None => Ok(default),
        Some(v) => match v.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" => Ok(false),
            _ => Err(ConfigError::Invalid {
                name,
                value: v,
                expected: "true or false",
            }),
        },
    }
}

/// A positive duration in milliseconds.
///
/// # Errors
/// [`ConfigError::Invalid`] when not a positive integer.
pub fn millis(name: &'static str, default: u64) -> Result<Duration, ConfigError> {
    let d = millis_or_zero(name, default)?;
    if d.is_zero() {
        return Err(ConfigError::Invalid {
            name,
            value: "0".into(),
            expected: "a positive number of milliseconds",
        });
    }
    Ok(d)
}

/// A duration in milliseconds, zero allowed.
///
/// # Errors
/// [`ConfigError::Invalid`] when not a non-negative integer.
pub fn millis_or_zero(name: &'static str, default: u64) -> Result<Duration, ConfigError> {
    match optional(name) {
        None => Ok(Duration::from_millis(default)),
        Some(v) => v
            .parse::<u64>()
            .map(Duration::from_millis)
            .map_err(|_| ConfigError::Invalid {
                name,
                value: v,
                expected: "a number of milliseconds",
            }),
    }
}

/// Redis settings shared by the functions: `REDIS_URL`, `REDIS_COMMAND_TIMEOUT_MS` (default 1000),
/// optional `REDIS_CA_FILE` (PEM; `rediss` only) and `REDIS_SECRET_ARN` (the AUTH credentials in
/// Secrets Manager, read by [`RedisSettings::with_secret`](crate::adapters::redis::RedisSettings::with_secret)).
///
/// # Errors
/// [`ConfigError`] when `REDIS_URL` is missing or the timeout is malformed.
pub fn redis() -> Result<crate::adapters::redis::RedisSettings, ConfigError> {
    Ok(crate::adapters::redis::RedisSettings {
        url: required(
            "REDIS_URL",
            "the Redis endpoint, e.g. redis://127.0.0.1:6379 or rediss://host:6379",
        )?,
        command_timeout: millis("REDIS_COMMAND_TIMEOUT_MS", 1000)?,
        ca_file: optional("REDIS_CA_FILE"),
        secret: optional("REDIS_SECRET_ARN"),
        auth: None,
    })
}

/// [`redis`] with the AUTH credentials of `REDIS_SECRET_ARN` read from Secrets Manager.
///
/// # Errors
/// When a setting is missing or malformed, or the secret cannot be read.
pub async fn redis_from(
    sdk: &aws_config::SdkConfig,
) -> Result<crate::adapters::redis::RedisSettings, Box<dyn std::error::Error + Send + Sync>> {
    Ok(redis()?.with_secret(sdk).await?)
}

/// [`database`] with the user and password of `DATABASE_SECRET_ARN` read from Secrets Manager.
///
/// # Errors
/// When a setting is missing, or the secret cannot be read.
#[cfg(feature = "postgres")]
pub async fn database_from(
    sdk: &aws_config::SdkConfig,
) -> Result<crate::adapters::postgres::DatabaseSettings, Box<dyn std::error::Error + Send + Sync>> {
    Ok(database()?.with_secret(sdk).await?)
}

/// The order-message signer from `ORDER_SIGNING_KEY` (at least 32 bytes), shared by buy, the
/// sweeper and settle.
///
/// # Errors
/// [`ConfigError`] when the key is missing or too short.
pub fn signer() -> Result<crate::signing::Signer, ConfigError> {
    let key = required(
        "ORDER_SIGNING_KEY",
        "a secret of at least 32 bytes shared by buy, reconcile and settle (or ORDER_SIGNING_KEY_SECRET_ARN)",
    )?;
    signer_of(&key)
}

/// The signer, its key read from Secrets Manager when `ORDER_SIGNING_KEY_SECRET_ARN` is set (a bare
/// string, as the template generates it), else from `ORDER_SIGNING_KEY` as [`signer`].
///
/// # Errors
/// When the secret cannot be read, or the key is missing or too short.
pub async fn signer_from(
    sdk: &aws_config::SdkConfig,
) -> Result<crate::signing::Signer, Box<dyn std::error::Error + Send + Sync>> {
    match optional("ORDER_SIGNING_KEY_SECRET_ARN") {
        Some(id) => Ok(signer_of(&crate::secrets::read(sdk, &id).await?.password)?),
        None => Ok(signer()?),
    }
}

fn signer_of(key: &str) -> Result<crate::signing::Signer, ConfigError> {
    crate::signing::Signer::new(key.as_bytes()).map_err(|_| ConfigError::Invalid {
        name: "ORDER_SIGNING_KEY",
        value: "(hidden)".into(),
        expected: "at least 32 bytes",
    })
}

#[cfg(feature = "postgres")]
/// Postgres session limits: `DATABASE_STATEMENT_TIMEOUT_MS` (10000), `DATABASE_LOCK_TIMEOUT_MS` (3000).
///
/// # Errors
/// [`ConfigError::Invalid`] when a value is not a positive number of milliseconds.
pub fn db_timeouts() -> Result<crate::adapters::postgres::Timeouts, ConfigError> {
    Ok(crate::adapters::postgres::Timeouts {
        statement: millis("DATABASE_STATEMENT_TIMEOUT_MS", 10_000)?,
        lock: millis("DATABASE_LOCK_TIMEOUT_MS", 3_000)?,
    })
}

#[cfg(feature = "postgres")]
/// Postgres: `DATABASE_URL` (its `sslmode` applies; `verify-full` in AWS), optional
/// `DATABASE_CA_FILE` (the PEM bundle that verifies the server; given, TLS is forced) and
/// `DATABASE_SECRET_ARN` (user and password in Secrets Manager, read by
/// [`DatabaseSettings::with_secret`](crate::adapters::postgres::DatabaseSettings::with_secret)).
///
/// # Errors
/// [`ConfigError::Missing`] without `DATABASE_URL`.
pub fn database() -> Result<crate::adapters::postgres::DatabaseSettings, ConfigError> {
    Ok(crate::adapters::postgres::DatabaseSettings {
        url: required(
            "DATABASE_URL",
            "postgres://host:5432/db?sslmode=verify-full (credentials from DATABASE_SECRET_ARN)",
        )?,
        ca_file: optional("DATABASE_CA_FILE"),
        secret: optional("DATABASE_SECRET_ARN"),
        auth: None,
    })
}
