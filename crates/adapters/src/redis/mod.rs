//! The Redis adapter: the reservation script, the outbox and the sale as the script sees it.
//!
//! All keys of one sale share the hash tag `{sale_id}` so that the scripts, which touch several of
//! them at once, run on Redis Cluster / ElastiCache cluster mode as well. Every script is a `.lua`
//! file in `lua/`, called by SHA with a reload on `NOSCRIPT`.
//!
//! # Layout
//! - this file: settings, the connection (TLS, AUTH, reconnects), the keys, errors.
//! - [`reservations`]: the hot path, `reserve.lua` ([`ReservationStore`](flashflow::ports::ReservationStore)).
//! - [`outbox`]: find, mark, remove and sweep entries ([`Outbox`](flashflow::ports::Outbox)).
//! - [`sales`]: load, rehydrate, reset, retire and the registry of sales ([`SaleCache`](flashflow::ports::SaleCache)).
//! - [`fast_path`]: the sold-out fast path's snapshot and invalidations (`CLIENT TRACKING`).
//! - [`returns`]: checkout's ended holds' units back, `return_stock.lua` ([`ReturnStock`](flashflow::ports::ReturnStock)).
//! - [`waiting_room`]: a sale's queue, the `queue_*.lua` scripts ([`WaitingRooms`](flashflow::ports::WaitingRooms)).
//! - [`durable`]: promised writes held back until a replica has them (`REDIS_WAIT_REPLICAS`).

mod durable;
mod fast_path;
mod outbox;
mod reservations;
mod returns;
mod sales;
pub mod sold_out;
mod waiting_room;

pub use fast_path::{FastPathSettings, MAX_SNAPSHOT_KEYS, WAKE_PREFIX};
pub use sales::SALES_KEY;

use crate::secrets::{Credentials, SecretError};
use flashflow::domain::SaleId;
use flashflow::ports::StoreError;
use flashflow_settings::Millis;
use fred::prelude::*;
use fred::types::config::{TlsConfig, TlsConnector, TlsHostMapping};
use fred::types::scripts::Script;
use secrecy::ExposeSecret;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub(crate) const RESERVE_LUA: &str = include_str!("lua/reserve.lua");
const REHYDRATE_LUA: &str = include_str!("lua/rehydrate.lua");
const BEGIN_RESET_LUA: &str = include_str!("lua/begin_reset.lua");
const FINISH_RESET_LUA: &str = include_str!("lua/finish_reset.lua");
const RETIRE_LUA: &str = include_str!("lua/retire.lua");
const FAILOVER_PAUSED_LUA: &str = include_str!("lua/failover_paused.lua");
const SETTLED_LUA: &str = include_str!("lua/settled.lua");
const RETURN_STOCK_LUA: &str = include_str!("lua/return_stock.lua");
const QUEUE_LOAD_LUA: &str = include_str!("lua/queue_load.lua");
const QUEUE_JOIN_LUA: &str = include_str!("lua/queue_join.lua");
const QUEUE_STEP_LUA: &str = include_str!("lua/queue_step.lua");
const QUEUE_FINALIZE_LUA: &str = include_str!("lua/queue_finalize.lua");
const QUEUE_CLAIM_DRAW_LUA: &str = include_str!("lua/queue_claim_draw.lua");
const QUEUE_CONTROL_LUA: &str = include_str!("lua/queue_control.lua");

/// The Redis keys of one sale.
#[derive(Debug, Clone)]
pub struct SaleKeys {
    pub sale: String,
    pub buyers: String,
    pub idem: String,
    pub outbox: String,
    pub outbox_at: String,
    /// Each buyer's attempts in the current minute (sales that limit them).
    pub attempts: String,
    /// The outbox moved aside by a reset under way (`begin_reset.lua`).
    pub stash: String,
}

impl SaleKeys {
    pub fn new(sale: &SaleId) -> Self {
        let tag = format!("ff:{{{sale}}}");
        Self {
            sale: format!("{tag}:sale"),
            buyers: format!("{tag}:buyers"),
            idem: format!("{tag}:idem"),
            outbox: format!("{tag}:outbox"),
            outbox_at: format!("{tag}:outbox_at"),
            attempts: format!("{tag}:attempts"),
            stash: format!("{tag}:reset_stash"),
        }
    }

    /// The key that remembers what one order's reservation answered (`reserve.lua`'s KEYS[7]).
    pub fn order(&self, order_id: uuid::Uuid) -> String {
        // `sale` is `ff:{id}:sale`: the order key shares its hash tag.
        let tag = self.sale.strip_suffix(":sale").unwrap_or(&self.sale);
        format!("{tag}:order:{order_id}")
    }

    /// Counts for the live view (`sold_out`: answers the buy processes counted).
    pub fn stats(&self) -> String {
        let tag = self.sale.strip_suffix(":sale").unwrap_or(&self.sale);
        format!("{tag}:stats")
    }

    /// Checkout's ended holds whose units came back (`return_stock.lua`): order id -> round.
    pub fn returned(&self) -> String {
        let tag = self.sale.strip_suffix(":sale").unwrap_or(&self.sale);
        format!("{tag}:returned")
    }

    /// The sale's waiting room: its terms, counters and inlet (`queue_step.lua`).
    pub fn room(&self) -> String {
        format!("{}:wr", self.tag())
    }

    /// The waiting room's places: buyer -> join index.
    pub fn room_places(&self) -> String {
        format!("{}:wr:places", self.tag())
    }

    /// The proof-of-work challenges used to join, until they expire (a sorted set; the key's
    /// name changed with its type).
    pub fn room_challenges(&self) -> String {
        format!("{}:wr:challenges_at", self.tag())
    }

    /// Each buyer's joins in the current minute.
    pub fn room_joins(&self) -> String {
        format!("{}:wr:joins", self.tag())
    }

    /// Admissions spent: join index -> the order that spent it (`reserve.lua`).
    pub fn room_spent(&self) -> String {
        format!("{}:wr:spent", self.tag())
    }

    /// Admissions spent in all (`reserve.lua` counts, `queue_step.lua` reads).
    pub fn room_used(&self) -> String {
        format!("{}:wr:used", self.tag())
    }

    /// Who entered under each value of the entry policy's `one_per` claim: a keyed hash of the
    /// value -> the buyer (`queue_join.lua`).
    pub fn room_entries(&self) -> String {
        format!("{}:wr:entries", self.tag())
    }

    /// The draw's seed until the draw (only the queue function's user may read it).
    pub fn room_seed(&self) -> String {
        format!("{}:wr:seed", self.tag())
    }

    /// The final draw's join list: its leaves, 32 bytes each in join index order
    /// (`queue_finalize.lua` writes it once).
    pub fn room_leaves(&self) -> String {
        format!("{}:wr:leaves", self.tag())
    }

    /// Every key of the sale's waiting room, its hash first (the seed's key aside: it lives only
    /// until the draw).
    pub fn room_all(&self) -> Vec<String> {
        vec![
            self.room(),
            self.room_places(),
            self.room_challenges(),
            self.room_batches(),
            self.room_batch_uses(),
            self.room_joins(),
            self.room_spent(),
            self.room_used(),
            self.room_entries(),
            self.room_leaves(),
        ]
    }

    /// A checkout sale's open holds: order id -> pay_by ms (`reserve.lua` adds, `return_stock.lua`
    /// takes out).
    pub fn holds(&self) -> String {
        format!("{}:holds", self.tag())
    }

    /// The inlet's batches whose admissions may still be used.
    pub fn room_batches(&self) -> String {
        format!("{}:wr:batches", self.tag())
    }

    /// Admissions used, per batch (`reserve.lua` counts, `queue_step.lua` totals them).
    pub fn room_batch_uses(&self) -> String {
        format!("{}:wr:batch_uses", self.tag())
    }

    fn tag(&self) -> &str {
        self.sale.strip_suffix(":sale").unwrap_or(&self.sale)
    }

    /// Written by the durability barrier after a promised write of this sale ([`durable`]).
    pub fn durable(&self) -> String {
        format!("{}:durable", self.tag())
    }

    /// Written by every script that can make a sold-out or closed sale buyable again; its
    /// invalidation tells buy processes to forget the sale (see [`fast_path`]).
    pub fn wake(&self) -> String {
        let tag = self.sale.strip_suffix(":sale").unwrap_or(&self.sale);
        let tag = tag.strip_prefix("ff:").unwrap_or(tag);
        format!("{WAKE_PREFIX}{tag}")
    }

    pub(crate) fn all(&self) -> Vec<String> {
        vec![
            self.sale.clone(),
            self.buyers.clone(),
            self.idem.clone(),
            self.outbox.clone(),
            self.outbox_at.clone(),
            self.attempts.clone(),
        ]
    }
}

/// Redis' error as the port says it: whether the command may have run decides the kind.
pub(crate) fn store_error(e: fred::error::Error) -> StoreError {
    use fred::error::ErrorKind::*;
    match e.kind() {
        // Sent, perhaps, and no answer: the command may have run.
        IO | Timeout | Canceled => StoreError::InDoubt(Box::new(e)),
        // Refused before it was sent.
        Backpressure | Cluster | Routing => StoreError::Unavailable(Box::new(e)),
        _ if refused_by_server_state(e.details()) => StoreError::Unavailable(Box::new(e)),
        _ => StoreError::Failed(Box::new(e)),
    }
}

/// `?` on a fred result, as a [`StoreError`] (the port's error is not this crate's, so no `From`).
pub(crate) trait OrStoreError<T> {
    fn or_store(self) -> Result<T, StoreError>;
}

impl<T> OrStoreError<T> for Result<T, fred::error::Error> {
    fn or_store(self) -> Result<T, StoreError> {
        self.map_err(store_error)
    }
}

/// Whether Redis' error reply says it refused the command because of its own state (loading,
/// out of memory, a replica, busy with a script, a cluster without quorum), not because of the
/// command: nothing ran (a script that meets it stops at its first write, and every script here
/// writes only after its checks), and the same command may succeed later. The reply's first word
/// is its error code; fred passes these on as text, so the code is read from there.
fn refused_by_server_state(reply: &str) -> bool {
    matches!(
        reply.split_whitespace().next().unwrap_or(""),
        "OOM"
            | "READONLY"
            | "LOADING"
            | "BUSY"
            | "MASTERDOWN"
            | "TRYAGAIN"
            | "CLUSTERDOWN"
            | "MISCONF"
            | "NOREPLICAS"
    )
}

/// A store error for an answer this code does not understand.
pub(crate) fn failed(message: String) -> StoreError {
    StoreError::Failed(message.into())
}

/// Redis adapter: one multiplexed connection, scripts by SHA with reload on `NOSCRIPT`.
#[derive(Clone)]
pub struct RedisStore {
    client: Client,
    /// Connections made so far (fred's reconnect events), to tell a command that was never
    /// written from one that may have run (see [`RedisStore::outcome_of`]).
    connections: Arc<AtomicU64>,
    reserve: Script,
    rehydrate: Script,
    begin_reset: Script,
    finish_reset: Script,
    retire: Script,
    failover_paused: Script,
    settled: Script,
    return_stock: Script,
    queue_load: Script,
    queue_join: Script,
    queue_step: Script,
    queue_finalize: Script,
    queue_claim_draw: Script,
    queue_control: Script,
    /// The sold-out fast path, when this process buys ([`RedisStore::with_fast_path`]).
    fast_path: Option<Arc<fast_path::FastPath>>,
    /// Promised writes wait for replicas ([`durable`]), when `REDIS_WAIT_REPLICAS` > 0.
    barrier: Option<Arc<durable::Barrier>>,
    /// Whether `reserve.lua` looks for a failover since the sale was rebuilt (`REDIS_PAUSE_ON_FAILOVER`).
    pause_on_failover: bool,
}

/// Settings for [`RedisStore::connect`], from `REDIS_URL`, `REDIS_COMMAND_TIMEOUT_MS` (1000),
/// `REDIS_CA_FILE`, `REDIS_SECRET_ARN`, `REDIS_WAIT_REPLICAS` (0), `REDIS_WAIT_TIMEOUT_MS` (500),
/// `REDIS_WAIT_SHARED` (true) and `REDIS_PAUSE_ON_FAILOVER` (false).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default)]
pub struct RedisSettings {
    /// `redis://host:port[/db]`, `rediss://…` (TLS), `redis-cluster://…` / `rediss-cluster://…`
    /// (cluster mode, TLS with the configuration endpoint's name checked on every node).
    /// Required.
    #[serde(rename = "redis_url")]
    pub url: String,
    /// A command not answered within this is failed, so a buyer gets a 503 instead of a hang.
    #[serde(rename = "redis_command_timeout_ms")]
    pub command_timeout: Millis,
    /// PEM file of the CA that signed the server's certificate (`rediss` only); the system roots
    /// otherwise, as ElastiCache needs.
    #[serde(rename = "redis_ca_file")]
    pub ca_file: Option<String>,
    /// Secrets Manager id of the AUTH credentials, read by [`RedisSettings::with_secret`].
    #[serde(rename = "redis_secret_arn")]
    pub secret: Option<String>,
    /// AUTH credentials (they replace any in the URL).
    #[serde(skip)]
    pub auth: Option<Credentials>,
    /// Replicas that must hold a promised write (an order, a place, a unit back) before it is
    /// answered (`WAIT`, [`durable`]). 0: answered once the primary has it, as ElastiCache for
    /// Valkey with `Durability: sync` may (its log is the replica), and a single Redis must.
    #[serde(rename = "redis_wait_replicas")]
    pub wait_replicas: u32,
    /// How long a promised write waits for its replicas; past it the answer is "in doubt" (buy
    /// asks again with the same order until its deadline, then `503 outcome_unknown`).
    #[serde(rename = "redis_wait_timeout_ms")]
    pub wait_timeout: Millis,
    /// Replies waiting at once share one wait (a group commit, [`durable`]). Off, each reply
    /// waits on its own: only to measure what sharing wins back (`make bench-wait`).
    #[serde(rename = "redis_wait_shared")]
    pub wait_shared: flashflow_settings::Flag,
    /// Buys of a sale pause (`503`, nothing taken) once a replica was promoted since the sale's
    /// counts were last rebuilt, until the operator's rehydrate rebuilds them from the ledger: for
    /// a Redis with replicas and neither durability nor `REDIS_WAIT_REPLICAS`, whose promoted
    /// replica may lack the last decrements. Costs one `INFO replication` inside each reservation.
    #[serde(rename = "redis_pause_on_failover")]
    pub pause_on_failover: flashflow_settings::Flag,
}

impl flashflow_settings::FromEnv for RedisSettings {
    fn check(&self) -> Result<(), flashflow_settings::ConfigError> {
        flashflow_settings::required("REDIS_URL", &self.url)
    }
}

impl Default for RedisSettings {
    fn default() -> Self {
        Self {
            url: String::new(),
            command_timeout: Millis::secs(1),
            ca_file: None,
            secret: None,
            auth: None,
            wait_replicas: 0,
            wait_timeout: Millis::ms(500),
            wait_shared: flashflow_settings::Flag(true),
            pause_on_failover: flashflow_settings::Flag(false),
        }
    }
}

impl RedisSettings {
    /// Fill [`RedisSettings::auth`] from the configured secret, if any.
    ///
    /// # Errors
    /// [`SecretError`] when the secret cannot be read or parsed.
    pub async fn with_secret(mut self, sdk: &aws_config::SdkConfig) -> Result<Self, SecretError> {
        if let Some(auth) = crate::secrets::read_optional(sdk, self.secret.as_deref()).await? {
            self.auth = Some(auth);
        }
        Ok(self)
    }
}

/// fred's client configuration for `settings`: TLS from our roots whenever the URL says `rediss`
/// (never plaintext then), refused when a CA file is given for a plaintext URL.
fn client_config(settings: &RedisSettings) -> Result<Config, StoreError> {
    // fred builds its own default TLS setup while parsing a `rediss` URL; give it a provider.
    super::tls::provider();
    let mut config =
        Config::from_url(&settings.url).map_err(|e| failed(format!("invalid REDIS_URL: {e}")))?;
    if config.uses_tls() {
        let roots =
            super::tls::roots("REDIS_CA_FILE", settings.ca_file.as_deref()).map_err(failed)?;
        let tls = super::tls::verifying(roots).map_err(failed)?;
        config.tls = Some(TlsConfig {
            connector: TlsConnector::from(tls),
            // Cluster nodes announce IPs; the certificate names the configuration endpoint.
            hostnames: if config.server.is_clustered() {
                TlsHostMapping::DefaultHost
            } else {
                TlsHostMapping::None
            },
        });
    } else if settings.ca_file.is_some() {
        return Err(failed(
            "REDIS_CA_FILE is set but REDIS_URL is not rediss:// (TLS); refusing plaintext".into(),
        ));
    }
    if let Some(auth) = &settings.auth {
        config.username = auth.username.clone();
        config.password = Some(auth.password.expose_secret().to_owned());
    }
    config.fail_fast = false;
    Ok(config)
}

/// A client for `config` with the settings' timeouts, `TCP_NODELAY` and [`reconnect_policy`];
/// not yet connecting.
fn build_client(config: Config, settings: &RedisSettings) -> Result<Client, StoreError> {
    Builder::from_config(config)
        .with_performance_config(|p| p.default_command_timeout = settings.command_timeout.get())
        .with_connection_config(|c| {
            c.connection_timeout = settings.command_timeout.get();
            c.tcp.nodelay = Some(true);
        })
        .set_policy(reconnect_policy())
        .build()
        .map_err(|e| StoreError::Failed(Box::new(e)))
}

/// Reconnect forever, 2 ms doubling to 2 s, plus up to 10 ms of jitter. With `fail_fast` off the
/// first connection waits this policy's first delay too: fred's defaults (50 ms + up to 100 ms of
/// jitter) added that much to every cold start.
fn reconnect_policy() -> ReconnectPolicy {
    let mut policy = ReconnectPolicy::new_exponential(0, 2, 2_000, 2);
    policy.set_jitter(10);
    policy
}

impl RedisStore {
    /// Build the client and start connecting. Does not wait for the connection: commands wait up to
    /// the command timeout for it, so a process can start while Redis is briefly away.
    ///
    /// # Errors
    /// When the URL is invalid, a CA file is given for a plaintext URL, or the CA file or the
    /// system roots cannot be loaded.
    pub fn connect(settings: &RedisSettings) -> Result<Self, StoreError> {
        let config = client_config(settings)?;
        let barrier = match settings.wait_replicas {
            0 => None,
            n => {
                let client = build_client(config.clone(), settings)?;
                client.connect();
                Some(durable::Barrier::new(
                    client,
                    n,
                    settings.wait_timeout.get(),
                    settings.wait_shared.get(),
                ))
            }
        };
        let client = build_client(config, settings)?;
        let connections = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&connections);
        let _listener = client.on_reconnect(move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
            async { Ok(()) }
        });
        client.connect();
        Ok(Self {
            client,
            connections,
            reserve: Script::from_lua(RESERVE_LUA),
            rehydrate: Script::from_lua(REHYDRATE_LUA),
            begin_reset: Script::from_lua(BEGIN_RESET_LUA),
            finish_reset: Script::from_lua(FINISH_RESET_LUA),
            retire: Script::from_lua(RETIRE_LUA),
            failover_paused: Script::from_lua(FAILOVER_PAUSED_LUA),
            settled: Script::from_lua(SETTLED_LUA),
            return_stock: Script::from_lua(RETURN_STOCK_LUA),
            queue_load: Script::from_lua(QUEUE_LOAD_LUA),
            queue_join: Script::from_lua(QUEUE_JOIN_LUA),
            queue_step: Script::from_lua(QUEUE_STEP_LUA),
            queue_finalize: Script::from_lua(QUEUE_FINALIZE_LUA),
            queue_claim_draw: Script::from_lua(QUEUE_CLAIM_DRAW_LUA),
            queue_control: Script::from_lua(QUEUE_CONTROL_LUA),
            fast_path: None,
            barrier,
            pause_on_failover: settings.pause_on_failover.get(),
        })
    }

    /// Wait until connected, for at most `timeout`, and load the scripts so the first buy does not
    /// pay for a `NOSCRIPT` round trip.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when Redis cannot be reached in time.
    pub async fn ready(&self, timeout: Duration) -> Result<(), StoreError> {
        match tokio::time::timeout(timeout, self.client.wait_for_connect()).await {
            Ok(res) => res.or_store()?,
            Err(_) => {
                return Err(StoreError::Unavailable(
                    "timed out connecting to redis".into(),
                ))
            }
        }
        for script in [
            &self.reserve,
            &self.rehydrate,
            &self.begin_reset,
            &self.finish_reset,
            &self.retire,
            &self.settled,
        ] {
            script.load(&self.client).await.or_store()?;
        }
        self.fast_path_listening(timeout).await;
        Ok(())
    }

    /// After a script whose reply promises a write of `keys`' sale: wait until the replicas
    /// hold it, when so configured ([`durable`]).
    ///
    /// # Errors
    /// [`StoreError::InDoubt`] when they did not confirm in time.
    pub(crate) async fn durable(&self, keys: &SaleKeys) -> Result<(), StoreError> {
        match &self.barrier {
            None => Ok(()),
            Some(barrier) => barrier.confirm(keys.durable()).await,
        }
    }

    /// Where a command stands before it is sent: whether connected, and how many connections
    /// were made so far. Hand it to [`RedisStore::outcome_of`] with the command's error.
    pub(crate) fn before_sending(&self) -> (bool, u64) {
        (
            self.client.is_connected(),
            self.connections.load(Ordering::SeqCst),
        )
    }

    /// `e` as a [`StoreError`], knowing where the command stood before it was sent: fred holds
    /// commands while it has no connection (`fail_fast` off), so a command that got no answer,
    /// with no connection before it, none after it, and none made in between, was never written
    /// to Redis: nothing ran, not "in doubt".
    pub(crate) fn outcome_of(&self, e: fred::error::Error, before: (bool, u64)) -> StoreError {
        match store_error(e) {
            StoreError::InDoubt(source)
                if !before.0
                    && !self.client.is_connected()
                    && self.connections.load(Ordering::SeqCst) == before.1 =>
            {
                StoreError::Unavailable(source)
            }
            other => other,
        }
    }

    /// The underlying client, for tests and tools.
    pub fn client(&self) -> &Client {
        &self.client
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_of_a_sale_carries_the_same_hash_tag() {
        let keys = SaleKeys::new(&SaleId::parse("drop-1").unwrap());
        for k in keys.all().into_iter().chain([keys.stash.clone()]) {
            assert!(k.starts_with("ff:{drop-1}:"), "{k}");
        }
        assert!(keys
            .order(uuid::Uuid::nil())
            .starts_with("ff:{drop-1}:order:"));
    }

    #[test]
    fn replies_that_say_redis_refused_because_of_its_state_are_unavailable_not_failures() {
        use fred::error::{Error, ErrorKind};
        let unavailable = |reply: &str| {
            matches!(
                store_error(Error::new(ErrorKind::Unknown, reply.to_owned())),
                StoreError::Unavailable(_)
            )
        };
        for reply in [
            "OOM command not allowed when used memory > 'maxmemory'.",
            "READONLY You can't write against a read only replica.",
            "LOADING Redis is loading the dataset in memory",
            "BUSY Redis is busy running a script.",
        ] {
            assert!(unavailable(reply), "{reply}");
        }
        assert!(!unavailable("ERR wrong number of arguments"));
        assert!(matches!(
            store_error(Error::new(ErrorKind::Timeout, "Request timed out.")),
            StoreError::InDoubt(_)
        ));
    }
}
