//! The Postgres adapter: the authority for sales and settled orders.
//!
//! # Layout
//! - this file: settings, the instance's one connection (TLS from [`pgtls`], session limits,
//!   statements prepared once per connection), and how Postgres errors map to [`DbError`].
//! - [`migrations`]: the embedded schema migrations, each applied once and checked by checksum.
//! - [`sales`]: sale administration ([`SaleLedger`](flashflow::ports::SaleLedger)).
//! - [`settlement`]: settling a batch in one transaction ([`Ledger`](flashflow::ports::Ledger)).
//! - [`holds`]: checkout's held orders, each change once ([`Holds`](flashflow::ports::Holds)).
//! - [`rows`]: rows to domain types (by column name) and the SQL written once for both.

mod holds;
mod migrations;
pub(crate) mod pgtls;
mod rows;
mod sales;
mod settlement;

pub use settlement::STEPS as LEDGER_STEPS;

use flashflow::ports::DbError;
use flashflow_settings::Millis;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{Mutex, MutexGuard};
use tokio_postgres::{Client, Statement};
use tokio_postgres_rustls::MakeRustlsConnect;
use tracing::error;

/// A Postgres error with the detail worth logging (the SQLSTATE and the server's message); the
/// driver's error stays its source.
#[derive(Debug, thiserror::Error)]
#[error("{detail}")]
pub struct PgError {
    detail: String,
    #[source]
    source: tokio_postgres::Error,
}

/// Postgres' error as the port says it: a broken connection, a busy server or a refused statement.
pub(crate) fn db_error(e: tokio_postgres::Error) -> DbError {
    use tokio_postgres::error::SqlState;
    // Only a broken connection means "unavailable"; a statement that gave up for reasons of
    // time or concurrency is "busy"; any other failed statement is a query error.
    let io = std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>());
    let closed = e.is_closed();
    let code = e.code().cloned();
    let detail = match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => e.to_string(),
    };
    let detail: flashflow::ports::BoxError = Box::new(PgError { detail, source: e });
    let busy = [
        SqlState::LOCK_NOT_AVAILABLE,
        SqlState::QUERY_CANCELED,
        SqlState::T_R_DEADLOCK_DETECTED,
        SqlState::T_R_SERIALIZATION_FAILURE,
        SqlState::TOO_MANY_CONNECTIONS,
        SqlState::ADMIN_SHUTDOWN,
        SqlState::CANNOT_CONNECT_NOW,
    ];
    if closed || io {
        DbError::Unavailable(detail)
    } else if code.is_some_and(|c| busy.contains(&c)) {
        DbError::Busy(detail)
    } else {
        DbError::Query(detail)
    }
}

/// `?` on a tokio-postgres result, as a [`DbError`] (the port's error is not this crate's, so no
/// `From`).
pub(crate) trait OrDbError<T> {
    fn or_db(self) -> Result<T, DbError>;
}

impl<T> OrDbError<T> for Result<T, tokio_postgres::Error> {
    fn or_db(self) -> Result<T, DbError> {
        self.map_err(db_error)
    }
}

/// One Postgres connection per function instance, reused across invocations and replaced when it
/// breaks. Lambda runs one invocation per instance at a time, so a pool buys nothing there; the
/// connection is held exclusively while in use, so transactions are possible.
pub struct Db {
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    client: Mutex<Option<Client>>,
    timeouts: Timeouts,
    /// Counts connections made, so statements prepared on an earlier one are never used.
    generation: AtomicU64,
    /// Statements prepared on connection `.0`.
    statements: std::sync::Mutex<(u64, HashMap<&'static str, Statement>)>,
}

/// Limits set on every session, so a stuck lock or a runaway statement fails cleanly (as
/// [`DbError::Busy`]) instead of holding the caller until its own deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Postgres' `statement_timeout`.
    pub statement: Duration,
    /// Postgres' `lock_timeout`.
    pub lock: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        DatabaseSettings::default().timeouts()
    }
}

/// Exclusive use of the instance's connection.
pub struct Conn<'a>(MutexGuard<'a, Option<Client>>);

impl std::ops::Deref for Conn<'_> {
    type Target = Client;
    fn deref(&self) -> &Client {
        self.0.as_ref().expect("Conn always holds a client")
    }
}

impl std::ops::DerefMut for Conn<'_> {
    fn deref_mut(&mut self) -> &mut Client {
        self.0.as_mut().expect("Conn always holds a client")
    }
}

/// Where and how to reach Postgres: `DATABASE_URL` (its `sslmode` applies; `verify-full` in
/// AWS), `DATABASE_CA_FILE` (the PEM bundle that verifies the server; given, TLS is forced),
/// `DATABASE_SECRET_ARN` (user and password in Secrets Manager), and the session limits
/// `DATABASE_STATEMENT_TIMEOUT_MS` (10000) and `DATABASE_LOCK_TIMEOUT_MS` (3000).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default)]
pub struct DatabaseSettings {
    /// Required.
    #[serde(rename = "database_url")]
    pub url: String,
    #[serde(rename = "database_ca_file")]
    pub ca_file: Option<String>,
    /// Secrets Manager id of the user and password, read by [`DatabaseSettings::with_secret`].
    #[serde(rename = "database_secret_arn")]
    pub secret: Option<String>,
    #[serde(rename = "database_statement_timeout_ms")]
    pub statement_timeout: Millis,
    #[serde(rename = "database_lock_timeout_ms")]
    pub lock_timeout: Millis,
    /// User and password (they replace any in the URL).
    #[serde(skip)]
    pub auth: Option<crate::secrets::Credentials>,
}

impl flashflow_settings::FromEnv for DatabaseSettings {
    fn check(&self) -> Result<(), flashflow_settings::ConfigError> {
        flashflow_settings::required("DATABASE_URL", &self.url)
    }
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: String::new(),
            ca_file: None,
            secret: None,
            statement_timeout: Millis::secs(10),
            lock_timeout: Millis::secs(3),
            auth: None,
        }
    }
}

impl DatabaseSettings {
    /// The session limits these settings ask for.
    pub fn timeouts(&self) -> Timeouts {
        Timeouts {
            statement: self.statement_timeout.get(),
            lock: self.lock_timeout.get(),
        }
    }
}

impl DatabaseSettings {
    /// Fill [`DatabaseSettings::auth`] from the configured secret, if any.
    ///
    /// # Errors
    /// [`crate::secrets::SecretError`] when the secret cannot be read or parsed.
    pub async fn with_secret(
        mut self,
        sdk: &aws_config::SdkConfig,
    ) -> Result<Self, crate::secrets::SecretError> {
        if let Some(auth) = crate::secrets::read_optional(sdk, self.secret.as_deref()).await? {
            self.auth = Some(auth);
        }
        Ok(self)
    }
}

impl Db {
    /// Parse the URL (`postgres://user@host:port/db?sslmode=require&options=-csearch_path%3Dschema`).
    /// Connects lazily. TLS follows the URL's `sslmode` as libpq does (`prefer` by default);
    /// `verify-full`/`verify-ca` force TLS and verify the server against the system roots.
    ///
    /// # Errors
    /// [`DbError::Config`] when the URL does not parse.
    pub fn new(url: &str) -> Result<Self, DbError> {
        Self::with_ca_file(url, None)
    }

    /// As [`Db::new`], and with a `ca_file`: TLS forced, the server's certificate and host name
    /// verified against its PEM certificates (for RDS: its CA bundle).
    ///
    /// # Errors
    /// [`DbError::Config`] when the URL does not parse or the file holds no usable certificate.
    pub fn with_ca_file(url: &str, ca_file: Option<&str>) -> Result<Self, DbError> {
        let policy = pgtls::policy(url, ca_file)?;
        let mut config: tokio_postgres::Config = policy
            .url
            .parse()
            .map_err(|e| DbError::Config(format!("invalid DATABASE_URL: {e}").into()))?;
        if policy.required {
            config.ssl_mode(tokio_postgres::config::SslMode::Require);
        }
        config.connect_timeout(Duration::from_secs(3));
        config.application_name("flashflow");
        Ok(Self {
            config,
            tls: pgtls::connector(policy.verify.as_ref().map(Option::as_deref))?,
            client: Mutex::new(None),
            timeouts: Timeouts::default(),
            generation: AtomicU64::new(0),
            statements: std::sync::Mutex::new((0, HashMap::new())),
        })
    }

    /// [`Db::with_ca_file`] for `settings`, with its credentials.
    ///
    /// # Errors
    /// As [`Db::with_ca_file`].
    pub fn from_settings(settings: &DatabaseSettings) -> Result<Self, DbError> {
        let mut db = Self::with_ca_file(&settings.url, settings.ca_file.as_deref())?;
        if let Some(auth) = &settings.auth {
            if let Some(user) = &auth.username {
                db.config.user(user);
            }
            db.config
                .password(secrecy::ExposeSecret::expose_secret(&auth.password));
        }
        Ok(db.with_timeouts(settings.timeouts()))
    }

    /// Use these session limits for connections made from now on.
    pub fn with_timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// Connect (if needed) and apply pending migrations.
    ///
    /// # Errors
    /// [`DbError`] when the database is unreachable or a migration fails.
    pub async fn migrate(&self) -> Result<(), DbError> {
        let mut conn = self.client().await?;
        migrations::migrate(&mut conn).await
    }

    /// The live connection, held exclusively until dropped: the cached one, or a new one when it
    /// broke.
    ///
    /// # Errors
    /// [`DbError::Unavailable`] when no connection can be made.
    pub async fn client(&self) -> Result<Conn<'_>, DbError> {
        let mut guard = self.client.lock().await;
        if guard.as_ref().is_none_or(Client::is_closed) {
            *guard = Some(self.connect_new().await?);
        }
        Ok(Conn(guard))
    }

    /// `sql` prepared on the current connection (number `generation`), once per connection: a
    /// prepared statement saves a round trip and the planning on every later use.
    pub(crate) async fn prepared(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        generation: u64,
        sql: &'static str,
    ) -> Result<Statement, DbError> {
        {
            let cache = self.statements.lock().unwrap_or_else(|p| p.into_inner());
            if cache.0 == generation {
                if let Some(stmt) = cache.1.get(sql) {
                    return Ok(stmt.clone());
                }
            }
        }
        let stmt = tx.prepare(sql).await.or_db()?;
        let mut cache = self.statements.lock().unwrap_or_else(|p| p.into_inner());
        if cache.0 != generation {
            *cache = (generation, HashMap::new());
        }
        cache.1.insert(sql, stmt.clone());
        Ok(stmt)
    }

    async fn connect_new(&self) -> Result<Client, DbError> {
        let (client, connection) = self
            .config
            .connect(self.tls.clone())
            .await
            .map_err(|e| DbError::Unavailable(Box::new(e)))?;
        self.generation.fetch_add(1, Ordering::AcqRel);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                error!(error = %e, "postgres connection closed");
            }
        });
        // random_page_cost 1.1 (Postgres' default, 4, prices a random read as a spinning disk's):
        // a settle batch looks up its 1,000 order ids by primary key, and on a table whose
        // statistics lag (autovacuum off, as on the CI machine, or behind a burst) the default
        // made the planner read the whole orders table instead, once per batch: measured 16 ms
        // for 186,000 rows against 0.6 ms through the index, a cost that grew with the table.
        client
            .batch_execute(&format!(
                "SET statement_timeout = {}; SET lock_timeout = {}; SET plan_cache_mode = force_custom_plan; SET random_page_cost = 1.1",
                self.timeouts.statement.as_millis(),
                self.timeouts.lock.as_millis()
            ))
            .await.or_db()?;
        Ok(client)
    }

    /// The number of the current connection (see [`Db::prepared`]); read while holding it.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Drop the cached connection, so the next use connects anew.
    pub(crate) async fn forget_connection(&self) {
        *self.client.lock().await = None;
    }
}
