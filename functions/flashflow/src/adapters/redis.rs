//! The Redis adapter: the reservation script, the outbox and the sale's live counters.
//!
//! All keys of one sale share the hash tag `{sale_id}` so that the scripts, which touch several of
//! them at once, run on Redis Cluster / ElastiCache cluster mode as well.

use crate::domain::rehydrate::{idem_field, idem_value, KeyHolder, Plan};
use crate::domain::{
    OrderMessage, OrderState, Refusal, Reservation, ReserveRequest, SaleDefinition, SaleId,
    ORDER_MESSAGE_VERSION,
};
use crate::ports::{ReservationStore, StoreError};
use crate::secrets::{Credentials, SecretError};
use fred::prelude::*;
use fred::types::config::{TlsConfig, TlsConnector, TlsHostMapping};
use fred::types::scripts::Script;
use std::time::Duration;
use uuid::Uuid;

const RESERVE_LUA: &str = include_str!("lua/reserve.lua");
const REHYDRATE_LUA: &str = include_str!("lua/rehydrate.lua");
const RESET_SALE_LUA: &str = include_str!("lua/reset_sale.lua");
const RETIRE_LUA: &str = include_str!("lua/retire.lua");
const SETTLED_LUA: &str = include_str!("lua/settled.lua");

/// Entries per `rehydrate.lua` call, so rebuilding a large sale never blocks Redis for long.
const REHYDRATE_CHUNK: usize = 500;

/// The Redis keys of one sale.
#[derive(Debug, Clone)]
pub struct SaleKeys {
    pub sale: String,
    pub buyers: String,
    pub idem: String,
    pub outbox: String,
    pub outbox_at: String,
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
        }
    }

    fn all(&self) -> Vec<String> {
        vec![
            self.sale.clone(),
            self.buyers.clone(),
            self.idem.clone(),
            self.outbox.clone(),
            self.outbox_at.clone(),
        ]
    }
}

impl From<fred::error::Error> for StoreError {
    fn from(e: fred::error::Error) -> Self {
        use fred::error::ErrorKind::*;
        match e.kind() {
            IO | Timeout | Canceled | Backpressure | Cluster | Routing => {
                Self::Unavailable(e.to_string())
            }
            _ => Self::Failed(e.to_string()),
        }
    }
}

/// Live counters of a sale as Redis holds them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveSale {
    pub stock: i64,
    pub remaining: i64,
    /// Reservations not yet settled (the outbox).
    pub pending: i64,
}

/// Redis adapter: one multiplexed connection, scripts by SHA with reload on `NOSCRIPT`.
#[derive(Clone)]
pub struct RedisStore {
    client: Client,
    reserve: Script,
    rehydrate: Script,
    reset_sale: Script,
    retire: Script,
    settled: Script,
}

/// Settings for [`RedisStore::connect`].
#[derive(Debug, Clone)]
pub struct RedisSettings {
    /// `redis://host:port[/db]`, `rediss://…` (TLS), `redis-cluster://…` / `rediss-cluster://…`
    /// (cluster mode, TLS with the configuration endpoint's name checked on every node).
    pub url: String,
    /// A command not answered within this is failed, so a buyer gets a 503 instead of a hang.
    pub command_timeout: Duration,
    /// PEM file of the CA that signed the server's certificate (`rediss` only); the system roots
    /// otherwise, as ElastiCache needs.
    pub ca_file: Option<String>,
    /// Secrets Manager id of the AUTH credentials, read by [`RedisSettings::with_secret`].
    pub secret: Option<String>,
    /// AUTH credentials (they replace any in the URL).
    pub auth: Option<Credentials>,
}

impl Default for RedisSettings {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379".into(),
            command_timeout: Duration::from_secs(1),
            ca_file: None,
            secret: None,
            auth: None,
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
    let mut config = Config::from_url(&settings.url)
        .map_err(|e| StoreError::Failed(format!("invalid REDIS_URL: {e}")))?;
    if config.uses_tls() {
        let roots = super::tls::roots("REDIS_CA_FILE", settings.ca_file.as_deref())
            .map_err(StoreError::Failed)?;
        let tls = super::tls::verifying(roots).map_err(StoreError::Failed)?;
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
        return Err(StoreError::Failed(
            "REDIS_CA_FILE is set but REDIS_URL is not rediss:// (TLS); refusing plaintext".into(),
        ));
    }
    if let Some(auth) = &settings.auth {
        config.username = auth.username.clone();
        config.password = Some(auth.password.clone());
    }
    config.fail_fast = false;
    Ok(config)
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
        let client = Builder::from_config(config)
            .with_performance_config(|p| p.default_command_timeout = settings.command_timeout)
            .with_connection_config(|c| {
                c.connection_timeout = settings.command_timeout;
                c.tcp.nodelay = Some(true);
            })
            .set_policy(reconnect_policy())
            .build()
            .map_err(|e| StoreError::Failed(e.to_string()))?;
        client.connect();
        Ok(Self {
            client,
            reserve: Script::from_lua(RESERVE_LUA),
            rehydrate: Script::from_lua(REHYDRATE_LUA),
            reset_sale: Script::from_lua(RESET_SALE_LUA),
            retire: Script::from_lua(RETIRE_LUA),
            settled: Script::from_lua(SETTLED_LUA),
        })
    }

    /// Wait until connected, for at most `timeout`, and load the scripts so the first buy does not
    /// pay for a `NOSCRIPT` round trip.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when Redis cannot be reached in time.
    pub async fn ready(&self, timeout: Duration) -> Result<(), StoreError> {
        match tokio::time::timeout(timeout, self.client.wait_for_connect()).await {
            Ok(res) => res?,
            Err(_) => {
                return Err(StoreError::Unavailable(
                    "timed out connecting to redis".into(),
                ))
            }
        }
        for script in [
            &self.reserve,
            &self.rehydrate,
            &self.reset_sale,
            &self.retire,
            &self.settled,
        ] {
            script.load(&self.client).await?;
        }
        Ok(())
    }

    /// The underlying client, for tests and tools.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Load a new sale (first round, nothing sold): [`RedisStore::rehydrate`] with an empty
    /// ledger and `available` stock. Returns whether it was newly loaded.
    ///
    /// # Errors
    /// [`StoreError`] when Redis fails.
    pub async fn load_sale(
        &self,
        def: &SaleDefinition,
        available: u32,
    ) -> Result<bool, StoreError> {
        let plan = Plan {
            remaining: i64::from(available),
            round: 1,
            buyers: Vec::new(),
            keys: Vec::new(),
        };
        self.rehydrate(def, &plan).await
    }

    /// Make Redis hold the sale as `plan` says (see `rehydrate.lua`): buyers' counts and
    /// idempotency keys first, in chunks, then the sale itself, so buys (refused as an unknown
    /// sale until then) start against the complete state. Returns whether the sale was loaded
    /// anew (it was missing, or from another round).
    ///
    /// # Errors
    /// [`StoreError`] when Redis fails; the call can be repeated.
    pub async fn rehydrate(&self, def: &SaleDefinition, plan: &Plan) -> Result<bool, StoreError> {
        let keys = SaleKeys::new(&def.id);
        for chunk in plan.buyers.chunks(REHYDRATE_CHUNK) {
            let mut args = vec!["entries".to_owned(), chunk.len().to_string()];
            for (buyer, n) in chunk {
                args.push(buyer.clone());
                args.push(n.to_string());
            }
            let _: i64 = self
                .rehydrate
                .evalsha_with_reload(&self.client, keys.all(), args)
                .await?;
        }
        for chunk in plan.keys.chunks(REHYDRATE_CHUNK) {
            let mut args = vec!["entries".to_owned(), "0".to_owned()];
            for (field, value, authoritative) in chunk {
                args.push(field.clone());
                args.push(value.clone());
                args.push(if *authoritative { "1" } else { "0" }.to_owned());
            }
            let _: i64 = self
                .rehydrate
                .evalsha_with_reload(&self.client, keys.all(), args)
                .await?;
        }
        let fresh: i64 = self
            .rehydrate
            .evalsha_with_reload(
                &self.client,
                keys.all(),
                vec![
                    "sale".to_owned(),
                    def.stock.to_string(),
                    plan.remaining.to_string(),
                    def.per_user_limit.to_string(),
                    opt_ms(def.opens_at_ms),
                    opt_ms(def.closes_at_ms),
                    plan.round.to_string(),
                ],
            )
            .await?;
        self.register_sale(&def.id).await?;
        Ok(fresh == 1)
    }

    /// Start the sale's `round` in Redis: full stock, no buyers, keys or outbox. Returns the
    /// outbox's messages as they were, reserved orders the caller must still record.
    ///
    /// # Errors
    /// [`StoreError`] when Redis fails.
    pub async fn reset_sale(
        &self,
        def: &SaleDefinition,
        round: u32,
    ) -> Result<Vec<String>, StoreError> {
        let keys = SaleKeys::new(&def.id);
        let dropped: Vec<String> = self
            .reset_sale
            .evalsha_with_reload(
                &self.client,
                keys.all(),
                vec![
                    def.stock.to_string(),
                    def.per_user_limit.to_string(),
                    opt_ms(def.opens_at_ms),
                    opt_ms(def.closes_at_ms),
                    round.to_string(),
                ],
            )
            .await?;
        self.register_sale(&def.id).await?;
        Ok(dropped)
    }

    /// The sale's live counters, or `None` when Redis does not hold the sale.
    ///
    /// # Errors
    /// [`StoreError`] when Redis fails.
    pub async fn live_sale(&self, sale: &SaleId) -> Result<Option<LiveSale>, StoreError> {
        let keys = SaleKeys::new(sale);
        let (stock, remaining): (Option<i64>, Option<i64>) = self
            .client
            .hmget(&keys.sale, vec!["stock", "remaining"])
            .await?;
        let pending: i64 = self.client.hlen(&keys.outbox).await?;
        Ok(match (stock, remaining) {
            (Some(stock), Some(remaining)) => Some(LiveSale {
                stock,
                remaining,
                pending,
            }),
            _ => None,
        })
    }

    /// Order messages still in the sale's outbox (reserved, not yet settled).
    ///
    /// # Errors
    /// [`StoreError`] when Redis fails.
    pub async fn outbox(&self, sale: &SaleId) -> Result<Vec<(String, String)>, StoreError> {
        let keys = SaleKeys::new(sale);
        let all: std::collections::HashMap<String, String> =
            self.client.hgetall(&keys.outbox).await?;
        Ok(all.into_iter().collect())
    }
}

/// The set of sales Redis holds, for the sweeper and for finding pending orders. It belongs to no
/// sale's hash tag, so no script touches it: the operator's load and reset add a sale, the
/// sweeper removes finished ones (and puts one back if a reload raced it).
pub const SALES_KEY: &str = "ff:sales";

impl RedisStore {
    /// Record that Redis holds this sale.
    ///
    /// # Errors
    /// [`StoreError`] when Redis fails.
    pub async fn register_sale(&self, sale: &SaleId) -> Result<(), StoreError> {
        let _: i64 = self.client.sadd(SALES_KEY, sale.as_str()).await?;
        Ok(())
    }

    /// The sales Redis holds (ids that no longer parse are skipped).
    ///
    /// # Errors
    /// [`StoreError`] when Redis fails.
    pub async fn sales(&self) -> Result<Vec<SaleId>, StoreError> {
        let ids: Vec<String> = self.client.smembers(SALES_KEY).await?;
        Ok(ids.iter().filter_map(|s| SaleId::parse(s).ok()).collect())
    }

    /// Retire a finished sale (sold out or closed, nothing in its outbox): its keys get an
    /// expiry of `ttl` (a later reload makes them persistent again) and it leaves [`SALES_KEY`],
    /// so order lookups and sweeps stop visiting it. Returns whether it was retired. A reload
    /// or reset re-registers the sale; the re-check after the removal puts it back if one ran in
    /// between.
    ///
    /// # Errors
    /// [`StoreError`] when Redis fails.
    pub async fn retire_if_finished(
        &self,
        sale: &SaleId,
        now_ms: i64,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let keys = SaleKeys::new(sale);
        let args = vec![now_ms.to_string(), ttl.as_secs().max(1).to_string()];
        let retired: i64 = self
            .retire
            .evalsha_with_reload(&self.client, keys.all(), args.clone())
            .await?;
        if retired == 0 {
            return Ok(false);
        }
        let _: i64 = self.client.srem(SALES_KEY, sale.as_str()).await?;
        let exists: i64 = self.client.exists(&keys.sale).await?;
        let ttl_left: i64 = self.client.ttl(&keys.sale).await?;
        if exists == 1 && ttl_left == -1 {
            // Reloaded in between (the reload removed the expiry): keep it registered.
            self.register_sale(sale).await?;
            return Ok(false);
        }
        Ok(true)
    }

    /// Outbox entries of `sale` reserved (or last re-sent) before `before_ms`, at most `limit`:
    /// `(order id, message)`; the message is `None` when the entry was settled meanwhile.
    ///
    /// # Errors
    /// [`StoreError`] when Redis fails.
    pub async fn stale_outbox(
        &self,
        sale: &SaleId,
        before_ms: i64,
        limit: usize,
    ) -> Result<Vec<(String, Option<String>)>, StoreError> {
        let keys = SaleKeys::new(sale);
        let ids: Vec<String> = self
            .client
            .zrangebyscore(
                &keys.outbox_at,
                "-inf",
                format!("({before_ms}"),
                false,
                Some((0, limit as i64)),
            )
            .await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let bodies: Vec<Option<String>> = self.client.hmget(&keys.outbox, ids.clone()).await?;
        Ok(ids.into_iter().zip(bodies).collect())
    }

    /// Mark outbox entries as re-sent: the sweeper leaves them until `until_ms` (when their message
    /// can no longer be in the queue); and forget index entries whose message is gone.
    ///
    /// # Errors
    /// [`StoreError`] when Redis fails.
    pub async fn touch_outbox(
        &self,
        sale: &SaleId,
        resent: &[String],
        gone: &[String],
        until_ms: i64,
    ) -> Result<(), StoreError> {
        let keys = SaleKeys::new(sale);
        if !resent.is_empty() {
            let members: Vec<(f64, String)> = resent
                .iter()
                .map(|id| (until_ms as f64, id.clone()))
                .collect();
            let _: i64 = self
                .client
                .zadd(
                    &keys.outbox_at,
                    Some(fred::types::SetOptions::XX),
                    None,
                    false,
                    false,
                    members,
                )
                .await?;
        }
        if !gone.is_empty() {
            let _: i64 = self.client.zrem(&keys.outbox_at, gone.to_vec()).await?;
        }
        Ok(())
    }
}

fn opt_ms(ms: Option<i64>) -> String {
    ms.map(|v| v.to_string()).unwrap_or_default()
}

impl ReservationStore for RedisStore {
    async fn reserve(&self, req: &ReserveRequest) -> Result<Reservation, StoreError> {
        let keys = SaleKeys::new(&req.sale);
        let order_id = req.order_id.to_string();
        let (status, detail): (String, String) = self
            .reserve
            .evalsha_with_reload(
                &self.client,
                keys.all(),
                vec![
                    order_id.as_str(),
                    req.sale.as_str(),
                    req.buyer.as_str(),
                    &req.quantity.get().to_string(),
                    req.idempotency_key.as_ref().map_or("", |k| k.as_str()),
                    &ORDER_MESSAGE_VERSION.to_string(),
                ],
            )
            .await?;
        parse_reply(&status, detail, req.order_id)
    }

    /// Searches every registered sale's outbox in one pipelined round trip.
    async fn find_pending(&self, order_id: Uuid) -> Result<Option<OrderMessage>, StoreError> {
        let sales = self.sales().await?;
        if sales.is_empty() {
            return Ok(None);
        }
        let pipeline = self.client.pipeline();
        for sale in &sales {
            let _: () = pipeline
                .hget(SaleKeys::new(sale).outbox, order_id.to_string())
                .await?;
        }
        let found: Vec<Option<String>> = pipeline.all().await?;
        Ok(found
            .into_iter()
            .flatten()
            .find_map(|body| OrderMessage::parse(&body).ok()))
    }

    async fn mark_sent(
        &self,
        sale: &SaleId,
        order_id: Uuid,
        until_ms: i64,
    ) -> Result<(), StoreError> {
        self.touch_outbox(sale, &[order_id.to_string()], &[], until_ms)
            .await
    }

    async fn mark_sent_many(
        &self,
        sale: &SaleId,
        order_ids: &[Uuid],
        until_ms: i64,
    ) -> Result<(), StoreError> {
        let ids: Vec<String> = order_ids.iter().map(Uuid::to_string).collect();
        self.touch_outbox(sale, &ids, &[], until_ms).await
    }

    async fn remove_from_outbox(
        &self,
        sale: &SaleId,
        order_ids: &[Uuid],
        keys: &[KeyHolder],
    ) -> Result<(), StoreError> {
        if order_ids.is_empty() && keys.is_empty() {
            return Ok(());
        }
        let k = SaleKeys::new(sale);
        let mut args: Vec<String> = Vec::with_capacity(1 + order_ids.len() + 3 * keys.len());
        args.push(order_ids.len().to_string());
        args.extend(order_ids.iter().map(Uuid::to_string));
        for h in keys {
            args.push(idem_field(&h.buyer, &h.key));
            args.push(idem_value(h.order_id, h.quantity, Some(h.state)));
            args.push(h.round.to_string());
        }
        let _: i64 = self
            .settled
            .evalsha_with_reload(
                &self.client,
                vec![k.sale, k.idem, k.outbox, k.outbox_at],
                args,
            )
            .await?;
        Ok(())
    }
}

fn parse_reply(status: &str, detail: String, order_id: Uuid) -> Result<Reservation, StoreError> {
    let num = |d: &str| -> Result<i64, StoreError> {
        d.parse()
            .map_err(|_| StoreError::Failed(format!("reserve.lua: bad number {d:?} for {status}")))
    };
    Ok(match status {
        "RESERVED" => Reservation::Reserved {
            order_id,
            message: detail,
        },
        "DUPLICATE" => {
            let (id, state) = detail.split_once(' ').unwrap_or((detail.as_str(), ""));
            Reservation::Duplicate {
                order_id: id.parse().map_err(|_| {
                    StoreError::Failed(format!("reserve.lua: bad order id {detail:?}"))
                })?,
                state: (!state.is_empty())
                    .then(|| OrderState::parse(state))
                    .transpose()
                    .map_err(StoreError::Failed)?,
            }
        }
        "KEY_REUSED" => Reservation::Refused(Refusal::KeyReused {
            order_id: detail
                .parse()
                .map_err(|_| StoreError::Failed(format!("reserve.lua: bad order id {detail:?}")))?,
        }),
        "NO_SALE" => Reservation::Refused(Refusal::UnknownSale),
        "NOT_OPEN" => Reservation::Refused(Refusal::NotOpen {
            opens_at_ms: num(&detail)?,
        }),
        "CLOSED" => Reservation::Refused(Refusal::Closed {
            closes_at_ms: num(&detail)?,
        }),
        "LIMIT" => Reservation::Refused(Refusal::LimitReached {
            allowance: num(&detail)?.max(0) as u32,
        }),
        "SOLD_OUT" => Reservation::Refused(Refusal::SoldOut),
        "INSUFFICIENT" => Reservation::Refused(Refusal::InsufficientStock {
            remaining: num(&detail)?.max(0) as u32,
        }),
        other => {
            return Err(StoreError::Failed(format!(
                "reserve.lua: unknown status {other:?}"
            )))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_of_a_sale_carries_the_same_hash_tag() {
        let keys = SaleKeys::new(&SaleId::parse("drop-1").unwrap());
        for k in keys.all() {
            assert!(k.starts_with("ff:{drop-1}:"), "{k}");
        }
    }

    #[test]
    fn an_unknown_script_status_is_an_error_not_a_reservation() {
        assert!(parse_reply("WHAT", String::new(), Uuid::nil()).is_err());
        assert!(parse_reply("LIMIT", "x".into(), Uuid::nil()).is_err());
    }
}
