//! Typed settings from the environment, read once at start.
//!
//! Each adapter and handler owns a settings type whose fields are its environment variables
//! (`serde` names, upper-cased), typed ([`Millis`], [`Flag`], [`Count`], strings), with its
//! defaults written once: the type's `Default` is its defaults table, and
//! `#[serde(default)]` on the type takes every unset variable from it. A function's settings
//! (each function crate's `Settings`) are made of those groups. The names a type reads come from the type
//! itself ([`FromEnv::variables`]), so the template check and `flashflow-local --help` cannot
//! drift from the code. An empty variable counts as unset (the template writes `""` for "not
//! configured"). A malformed value fails the start, naming its variable.
//!
//! # Layout
//! - [`FromEnv`]: read a settings type, list its variables; [`required`] for a variable without
//!   a default.
//! - [`Millis`], [`MillisOrZero`], [`Flag`], [`Count`]: the value types.
//! - [`composite!`](crate::composite): a function's settings made of groups.
//! - `EnvValue`: one variable's text as serde reads it.

use serde::de::{self, DeserializeOwned, Deserializer, IntoDeserializer, Visitor};
use serde::Deserialize;
use std::time::Duration;

/// A setting is missing or malformed.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {name} is required: {hint}")]
    Missing { name: String, hint: &'static str },
    #[error("environment variable {name}: {reason}")]
    Invalid { name: String, reason: String },
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
        _ => "see docs/operations.md",
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

    /// Checks across fields, and [`required`] variables, after each field has parsed.
    ///
    /// # Errors
    /// [`ConfigError`] naming the variable.
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

    /// Read from `vars` (name, value); empty values count as unset, and only this type's
    /// variables are looked at.
    ///
    /// # Errors
    /// As [`FromEnv::from_env`].
    fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> Result<Self, ConfigError> {
        let wanted = Self::variables();
        let set: Vec<(String, EnvValue)> = vars
            .into_iter()
            .filter(|(name, value)| !value.trim().is_empty() && wanted.contains(name))
            .map(|(name, value)| (name.to_ascii_lowercase(), EnvValue(value)))
            .collect();
        let map = de::value::MapDeserializer::<_, de::value::Error>::new(set.into_iter());
        let settings: Self = serde_path_to_error::deserialize(map).map_err(|e| {
            let name = e.path().to_string().to_ascii_uppercase();
            let reason = e.into_inner().to_string();
            match reason.strip_prefix("missing field `") {
                Some(field) => {
                    let name = field.trim_end_matches('`').to_ascii_uppercase();
                    ConfigError::Missing {
                        hint: hint(&name),
                        name,
                    }
                }
                None => ConfigError::Invalid { name, reason },
            }
        })?;
        settings.check()?;
        Ok(settings)
    }
}

/// A [`ConfigError::Invalid`] for one named variable (cross-field checks).
pub fn invalid(name: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        name: name.to_owned(),
        reason: reason.into(),
    }
}

/// A variable without a default (its field's default is empty): [`ConfigError::Missing`] when
/// unset, for [`FromEnv::check`].
///
/// # Errors
/// When `value` is empty.
pub fn required(name: &str, value: &str) -> Result<(), ConfigError> {
    if value.trim().is_empty() {
        return Err(ConfigError::Missing {
            name: name.to_owned(),
            hint: hint(name),
        });
    }
    Ok(())
}

/// A count within `1..=max`, for [`FromEnv::check`].
///
/// # Errors
/// [`ConfigError::Invalid`] naming `name`.
pub fn at_most(name: &str, n: Count, max: usize) -> Result<(), ConfigError> {
    if n.get() > max {
        return Err(invalid(
            name,
            format!("{} is above the maximum of {max}", n.get()),
        ));
    }
    Ok(())
}

/// A positive number of milliseconds (a `…_MS` variable).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Millis(Duration);

impl Millis {
    /// `ms` milliseconds, for defaults tables and tests (only a variable is refused zero).
    pub const fn ms(ms: u64) -> Self {
        Self(Duration::from_millis(ms))
    }

    /// `s` seconds.
    pub const fn secs(s: u64) -> Self {
        Self(Duration::from_secs(s))
    }

    pub const fn get(self) -> Duration {
        self.0
    }
}

impl From<Duration> for Millis {
    fn from(d: Duration) -> Self {
        Self(d)
    }
}

impl<'de> Deserialize<'de> for Millis {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match u64::deserialize(d)? {
            0 => Err(de::Error::custom(
                "0 is not a positive number of milliseconds",
            )),
            n => Ok(Self(Duration::from_millis(n))),
        }
    }
}

/// A number of milliseconds where 0 means "off" (a `…_MS` variable).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MillisOrZero(Duration);

impl MillisOrZero {
    pub const fn ms(ms: u64) -> Self {
        Self(Duration::from_millis(ms))
    }

    pub const fn get(self) -> Duration {
        self.0
    }
}

impl From<Duration> for MillisOrZero {
    fn from(d: Duration) -> Self {
        Self(d)
    }
}

impl<'de> Deserialize<'de> for MillisOrZero {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        u64::deserialize(d).map(|n| Self(Duration::from_millis(n)))
    }
}

/// A boolean flag: `1/true/yes/on` or `0/false/no/off`, any case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flag(pub bool);

impl Flag {
    pub const fn get(self) -> bool {
        self.0
    }
}

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = String::deserialize(d)?;
        match v.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(Self(true)),
            "0" | "false" | "no" | "off" => Ok(Self(false)),
            _ => Err(de::Error::custom(format!(
                "{v:?} is not a flag: expected true or false"
            ))),
        }
    }
}

/// A count of at least one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Count(usize);

impl Count {
    /// `n`, at least one; for defaults tables.
    pub const fn of(n: usize) -> Self {
        assert!(n > 0, "a count is at least 1");
        Self(n)
    }

    pub const fn get(self) -> usize {
        self.0
    }
}

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match usize::deserialize(d)? {
            0 => Err(de::Error::custom("0 is not a count of at least 1")),
            n => Ok(Self(n)),
        }
    }
}

/// One variable's text, as serde reads it: numbers and booleans parsed from it, an unset variable
/// is `None` (`Option` fields), anything else the text itself.
///
/// Written here rather than with `envy`: envy cannot say which variable a value type refused
/// (its errors name only the values it parses itself), and the map of variables it builds is
/// the same few lines as this.
struct EnvValue(String);

impl<'de> IntoDeserializer<'de, de::value::Error> for EnvValue {
    type Deserializer = Self;

    fn into_deserializer(self) -> Self {
        self
    }
}

macro_rules! parse_as {
    ($($method:ident => $visit:ident),* $(,)?) => {
        $(fn $method<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
            let parsed = self.0.trim().parse().map_err(|e| {
                de::Error::custom(format!("{:?} is not valid here ({e})", self.0))
            })?;
            v.$visit(parsed)
        })*
    };
}

impl<'de> Deserializer<'de> for EnvValue {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        v.visit_string(self.0)
    }

    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        v.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        v: V,
    ) -> Result<V::Value, Self::Error> {
        v.visit_newtype_struct(self)
    }

    parse_as! {
        deserialize_bool => visit_bool,
        deserialize_u8 => visit_u8,
        deserialize_u16 => visit_u16,
        deserialize_u32 => visit_u32,
        deserialize_u64 => visit_u64,
        deserialize_i8 => visit_i8,
        deserialize_i16 => visit_i16,
        deserialize_i32 => visit_i32,
        deserialize_i64 => visit_i64,
        deserialize_f32 => visit_f32,
        deserialize_f64 => visit_f64,
    }

    serde::forward_to_deserialize_any! {
        i128 u128 char str string bytes byte_buf unit unit_struct seq tuple tuple_struct map
        struct enum identifier ignored_any
    }
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
            /// The first group's [`ConfigError`]($crate::ConfigError).
            pub fn from_env() -> Result<Self, $crate::ConfigError> {
                Ok(Self { $($field: <$ty as $crate::FromEnv>::from_env()?),* })
            }

            /// Every variable the groups read, in order, each once.
            pub fn variables() -> Vec<String> {
                let mut all: Vec<String> = Vec::new();
                $(for v in <$ty as $crate::FromEnv>::variables() {
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
    #[serde(default)]
    struct Sample {
        sample_url: String,
        sample_timeout_ms: Millis,
        sample_enabled: Flag,
        sample_file: Option<String>,
        sample_workers: Count,
    }

    impl Default for Sample {
        fn default() -> Self {
            Self {
                sample_url: String::new(),
                sample_timeout_ms: Millis::ms(10),
                sample_enabled: Flag(false),
                sample_file: None,
                sample_workers: Count::of(2),
            }
        }
    }

    impl FromEnv for Sample {
        fn check(&self) -> Result<(), ConfigError> {
            required("SAMPLE_URL", &self.sample_url)
        }
    }

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
                "SAMPLE_FILE",
                "SAMPLE_WORKERS"
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
        assert_eq!(s.sample_timeout_ms.get(), Duration::from_millis(10));
        assert_eq!(s.sample_file, None, "empty counts as unset");
        assert!(s.sample_enabled.get());
        assert_eq!(s.sample_workers.get(), 2);
        let s = Sample::from_vars(vars(&[
            ("SAMPLE_URL", "x"),
            ("SAMPLE_ENABLED", "0"),
            ("SAMPLE_FILE", "f"),
            ("SAMPLE_TIMEOUT_MS", "250"),
        ]))
        .unwrap();
        assert!(!s.sample_enabled.get());
        assert_eq!(s.sample_file.as_deref(), Some("f"));
        assert_eq!(s.sample_timeout_ms, Millis::ms(250));
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
    fn a_malformed_value_is_refused_naming_its_variable() {
        for (var, value) in [
            ("SAMPLE_TIMEOUT_MS", "0"),
            ("SAMPLE_TIMEOUT_MS", "soon"),
            ("SAMPLE_ENABLED", "maybe"),
            ("SAMPLE_WORKERS", "0"),
            ("SAMPLE_WORKERS", "-1"),
        ] {
            let e = Sample::from_vars(vars(&[("SAMPLE_URL", "x"), (var, value)])).unwrap_err();
            assert!(
                matches!(&e, ConfigError::Invalid { name, .. } if name == var),
                "{var}={value}: {e}"
            );
        }
    }
}
