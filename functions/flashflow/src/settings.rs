//! Typed settings from the environment, read once at start.
//!
//! Each adapter and handler owns a settings type whose fields are its environment variables
//! (`serde` names, upper-cased by `envy`), each with its one default; a function's settings (see
//! [`crate::startup`]) are made of those groups. The names a type reads come from the type itself
//! ([`FromEnv::variables`]), so the template check and `flashflow-local --help` cannot drift from
//! the code. An empty variable counts as unset (the template writes `""` for "not configured").
//!
//! # Layout
//! - [`FromEnv`]: read a settings type, list its variables.
//! - [`millis`], [`millis_or_zero`], [`flag`], [`count`]: the field readers (`deserialize_with`).
//! - [`composite!`](crate::composite): a function's settings made of groups.

use serde::de::{DeserializeOwned, Deserializer, Error as _};
use serde::Deserialize;
use std::time::Duration;

/// A setting is missing or malformed.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {name} is required: {hint}")]
    Missing { name: String, hint: &'static str },
    /// A value did not parse or is out of range. `variables` are those of the group it is in
    /// (the reader of a single value does not know its name; the group is at most a handful).
    #[error("invalid setting among {variables}: {reason}")]
    Invalid {
        variables: String,
        reason: String,
        #[source]
        source: Option<envy::Error>,
    },
}

/// Hints for the required variables, shown when one is missing.
fn hint(name: &str) -> &'static str {
    match name {
        "REDIS_URL" => "the Redis endpoint, e.g. redis://127.0.0.1:6379 or rediss://host:6379",
        "DATABASE_URL" => {
            "postgres://host:5432/db?sslmode=verify-full (credentials from DATABASE_SECRET_ARN)"
        }
        "ORDERS_QUEUE_URL" => "the SQS queue that settle reads",
        "ORDERS_DLQ_URL" => "the orders queue's dead-letter queue",
        "ORDERS_TABLE" => "the DynamoDB order-status table",
        _ => "see the README's settings",
    }
}

/// A settings type read from environment variables.
pub trait FromEnv: DeserializeOwned {
    /// The variables this type reads, upper-case, in declaration order.
    fn variables() -> Vec<String> {
        serde_aux::serde_introspection::serde_introspect::<Self>()
            .iter()
            .map(|f| f.to_ascii_uppercase())
            .collect()
    }

    /// Checks across fields, after each field has parsed.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the variable.
    fn check(&self) -> Result<(), ConfigError> {
        Ok(())
    }

    /// Read from the process environment.
    ///
    /// # Errors
    /// [`ConfigError`] naming the variable that is missing or malformed.
    fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(std::env::vars())
    }

    /// Read from `vars` (name, value); empty values count as unset.
    ///
    /// # Errors
    /// As [`FromEnv::from_env`].
    fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> Result<Self, ConfigError> {
        let set = vars.into_iter().filter(|(_, v)| !v.trim().is_empty());
        let settings: Self = envy::from_iter(set).map_err(|e| match e {
            envy::Error::MissingValue(field) => {
                let name = field.to_ascii_uppercase();
                ConfigError::Missing {
                    hint: hint(&name),
                    name,
                }
            }
            other => ConfigError::Invalid {
                variables: Self::variables().join(", "),
                reason: other.to_string(),
                source: Some(other),
            },
        })?;
        settings.check()?;
        Ok(settings)
    }
}

/// A [`ConfigError::Invalid`] for one named variable (cross-field checks).
pub fn invalid(name: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        variables: name.to_owned(),
        reason: reason.into(),
        source: None,
    }
}

/// A positive number of milliseconds.
///
/// # Errors
/// When the value is not a whole number above zero.
pub fn millis<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    match u64::deserialize(d)? {
        0 => Err(D::Error::custom(
            "0 is not a positive number of milliseconds",
        )),
        n => Ok(Duration::from_millis(n)),
    }
}

/// A number of milliseconds, zero allowed.
///
/// # Errors
/// When the value is not a whole number.
pub fn millis_or_zero<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    u64::deserialize(d).map(Duration::from_millis)
}

/// A boolean flag: `1/true/yes/on` or `0/false/no/off`, any case.
///
/// # Errors
/// For any other word.
pub fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    let v = String::deserialize(d)?;
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(D::Error::custom(format!(
            "{v:?} is not a flag: expected true or false"
        ))),
    }
}

/// A count of at least one.
///
/// # Errors
/// When the value is not a whole number above zero.
pub fn count<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    match usize::deserialize(d)? {
        0 => Err(D::Error::custom("0 is not a count of at least 1")),
        n => Ok(n),
    }
}

/// A count within `1..=max`, for [`FromEnv::check`].
///
/// # Errors
/// [`ConfigError::Invalid`] naming `name`.
pub fn at_most(name: &str, n: usize, max: usize) -> Result<(), ConfigError> {
    if n > max {
        return Err(invalid(name, format!("{n} is above the maximum of {max}")));
    }
    Ok(())
}

/// A function's settings made of groups, each a [`FromEnv`] type read on its own (envy has no
/// nesting): `composite!(pub struct BuySettings { redis: RedisSettings, … })` gives the struct,
/// `from_env()` and `variables()` (every group's, in order, without repeats).
#[macro_export]
macro_rules! composite {
    ($(#[$meta:meta])* pub struct $name:ident { $($(#[$fmeta:meta])* $field:ident: $ty:ty),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone)]
        pub struct $name { $($(#[$fmeta])* pub $field: $ty),* }

        impl $name {
            /// Read every group from the process environment.
            ///
            /// # Errors
            /// The first group's [`ConfigError`]($crate::settings::ConfigError).
            pub fn from_env() -> Result<Self, $crate::settings::ConfigError> {
                Ok(Self { $($field: <$ty as $crate::settings::FromEnv>::from_env()?),* })
            }

            /// Every variable the groups read, in order, each once.
            pub fn variables() -> Vec<String> {
                let mut all: Vec<String> = Vec::new();
                $(for v in <$ty as $crate::settings::FromEnv>::variables() {
                    if !all.contains(&v) { all.push(v); }
                })*
                all
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)] // read by the tests through Debug and the checks below
    struct Sample {
        sample_url: String,
        #[serde(default = "ten", deserialize_with = "millis")]
        sample_timeout_ms: Duration,
        #[serde(default, deserialize_with = "flag")]
        sample_enabled: bool,
        sample_file: Option<String>,
    }
    fn ten() -> Duration {
        Duration::from_millis(10)
    }
    impl FromEnv for Sample {}

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_settings_type_lists_the_variables_it_reads() {
        assert_eq!(
            Sample::variables(),
            [
                "SAMPLE_URL",
                "SAMPLE_TIMEOUT_MS",
                "SAMPLE_ENABLED",
                "SAMPLE_FILE"
            ]
        );
    }

    #[test]
    fn defaults_apply_when_unset_or_empty_and_flags_take_the_usual_words() {
        let s = Sample::from_vars(vars(&[
            ("SAMPLE_URL", "x"),
            ("SAMPLE_FILE", " "),
            ("SAMPLE_ENABLED", "YES"),
        ]))
        .unwrap();
        assert_eq!(s.sample_timeout_ms, Duration::from_millis(10));
        assert_eq!(s.sample_file, None, "empty counts as unset");
        assert!(s.sample_enabled);
        let s = Sample::from_vars(vars(&[("SAMPLE_URL", "x"), ("SAMPLE_ENABLED", "0")])).unwrap();
        assert!(!s.sample_enabled);
    }

    #[test]
    fn a_missing_required_variable_is_named_with_its_hint() {
        let e = Sample::from_vars(vars(&[("SAMPLE_URL", "")])).unwrap_err();
        assert!(
            matches!(&e, ConfigError::Missing { name, .. } if name == "SAMPLE_URL"),
            "{e}"
        );
    }

    #[test]
    fn malformed_values_are_refused_naming_their_group() {
        for (var, value) in [
            ("SAMPLE_TIMEOUT_MS", "0"),
            ("SAMPLE_TIMEOUT_MS", "soon"),
            ("SAMPLE_ENABLED", "maybe"),
        ] {
            let e = Sample::from_vars(vars(&[("SAMPLE_URL", "x"), (var, value)])).unwrap_err();
            let text = e.to_string();
            assert!(matches!(e, ConfigError::Invalid { .. }), "{text}");
            assert!(text.contains(var), "{var}={value}: {text}");
        }
    }
}
