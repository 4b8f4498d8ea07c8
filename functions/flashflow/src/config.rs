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

/// A duration in milliseconds.
///
/// # Errors
/// [`ConfigError::Invalid`] when not a positive integer.
pub fn millis(name: &'static str, default: u64) -> Result<Duration, ConfigError> {
    match optional(name) {
        None => Ok(Duration::from_millis(default)),
        Some(v) => match v.parse::<u64>() {
            Ok(n) if n > 0 => Ok(Duration::from_millis(n)),
            _ => Err(ConfigError::Invalid {
                name,
                value: v,
                expected: "a positive number of milliseconds",
            }),
        },
    }
}

/// Redis settings shared by the functions: `REDIS_URL`, `REDIS_COMMAND_TIMEOUT_MS` (default 1000).
///
/// # Errors
/// [`ConfigError`] when `REDIS_URL` is missing or the timeout is malformed.
pub fn redis() -> Result<crate::store::RedisSettings, ConfigError> {
    Ok(crate::store::RedisSettings {
        url: required(
            "REDIS_URL",
            "the Redis endpoint, e.g. redis://127.0.0.1:6379",
        )?,
        command_timeout: millis("REDIS_COMMAND_TIMEOUT_MS", 1000)?,
    })
}
