//! The Redis adapter: the reservation script, the outbox and the sale's live counters.
//!
//! All keys of one sale share the hash tag `{sale_id}` so that the scripts, which touch several of
//! them at once, run on Redis Cluster / ElastiCache cluster mode as well.

use crate::domain::{
    OrderMessage, Refusal, Reservation, ReserveRequest, SaleDefinition, SaleId,
    ORDER_MESSAGE_VERSION,
};
use crate::ports::{ReservationStore, StoreError};
use fred::prelude::*;
use fred::types::scripts::Script;
use std::time::Duration;
use uuid::Uuid;

const RESERVE_LUA: &str = include_str!("lua/reserve.lua");
const LOAD_SALE_LUA: &str = include_str!("lua/load_sale.lua");
const RESET_SALE_LUA: &str = include_str!("lua/reset_sale.lua");

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
    load_sale: Script,
    reset_sale: Script,
}

/// Settings for [`RedisStore::connect`].
#[derive(Debug, Clone)]
pub struct RedisSettings {
    /// `redis://host:port` (or `rediss://`, `redis-cluster://`).
    pub url: String,
    /// A command not answered within this is failed, so a buyer gets a 503 instead of a hang.
    pub command_timeout: Duration,
}

impl RedisStore {
    /// Build the client and start connecting. Does not wait for the connection: commands wait up to
    /// the command timeout for it, so a process can start while Redis is briefly away.
    ///
    /// # Errors
    /// When the URL is invalid.
    pub fn connect(settings: &RedisSettings) -> Result<Self, StoreError> {
        let config = Config::from_url(&settings.url)
            .map_err(|e| StoreError::Failed(format!("invalid REDIS_URL: {e}")))?;
        let mut config = config;
        config.fail_fast = false;
        let client = Builder::from_config(config)
            .with_performance_config(|p| p.default_command_timeout = settings.command_timeout)
            .with_connection_config(|c| {
                c.connection_timeout = settings.command_timeout;
                c.tcp.nodelay = Some(true);
            })
            .set_policy(ReconnectPolicy::new_exponential(0, 50, 2_000, 2))
            .build()
            .map_err(|e| StoreError::Failed(e.to_string()))?;
        client.connect();
        Ok(Self {
            client,
            reserve: Script::from_lua(RESERVE_LUA),
            load_sale: Script::from_lua(LOAD_SALE_LUA),
            reset_sale: Script::from_lua(RESET_SALE_LUA),
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
        for script in [&self.reserve, &self.load_sale, &self.reset_sale] {
            script.load(&self.client).await?;
        }
        Ok(())
    }

    /// The underlying client, for tests and tools.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Load (or refresh) a sale's definition. `available` is set as the remaining stock only when the
    /// sale is not in Redis yet. Returns whether it was newly loaded.
    ///
    /// # Errors
    /// [`StoreError`] when Redis fails.
    pub async fn load_sale(
        &self,
        def: &SaleDefinition,
        available: u32,
    ) -> Result<bool, StoreError> {
        let keys = SaleKeys::new(&def.id);
        let fresh: i64 = self
            .load_sale
            .evalsha_with_reload(
                &self.client,
                vec![keys.sale],
                vec![
                    def.stock.to_string(),
                    available.to_string(),
                    def.per_user_limit.to_string(),
                    opt_ms(def.opens_at_ms),
                    opt_ms(def.closes_at_ms),
                ],
            )
            .await?;
        self.register_sale(&def.id).await?;
        Ok(fresh == 1)
    }

    /// Put a sale back to its full stock and forget its buyers, idempotency keys and outbox.
    ///
    /// # Errors
    /// [`StoreError`] when Redis fails.
    pub async fn reset_sale(&self, def: &SaleDefinition) -> Result<(), StoreError> {
        let keys = SaleKeys::new(&def.id);
        let _: i64 = self
            .reset_sale
            .evalsha_with_reload(
                &self.client,
                keys.all(),
                vec![
                    def.stock.to_string(),
                    def.per_user_limit.to_string(),
                    opt_ms(def.opens_at_ms),
                    opt_ms(def.closes_at_ms),
                ],
            )
            .await?;
        self.register_sale(&def.id).await
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

    /// Whether no reservation can be added to `sale` any more (sold out, closed, or gone from
    /// Redis) and none is waiting in its outbox.
    async fn finished(&self, sale: &SaleId, now_ms: i64) -> Result<bool, StoreError> {
        let keys = SaleKeys::new(sale);
        let (remaining, closes): (Option<i64>, Option<i64>) = self
            .client
            .hmget(&keys.sale, vec!["remaining", "closes_ms"])
            .await?;
        let waiting: i64 = self.client.zcard(&keys.outbox_at).await?;
        let no_more = remaining.is_none_or(|r| r <= 0) || closes.is_some_and(|c| now_ms >= c);
        Ok(no_more && waiting == 0)
    }

    /// Drop a finished sale from [`SALES_KEY`], so order lookups and sweeps stop visiting it.
    /// Returns whether it was dropped. A reload or reset re-registers the sale; the re-check after
    /// the removal puts it back if one ran in between.
    ///
    /// # Errors
    /// [`StoreError`] when Redis fails.
    pub async fn retire_if_finished(&self, sale: &SaleId, now_ms: i64) -> Result<bool, StoreError> {
        if !self.finished(sale, now_ms).await? {
            return Ok(false);
        }
        let _: i64 = self.client.srem(SALES_KEY, sale.as_str()).await?;
        if !self.finished(sale, now_ms).await? {
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

    async fn remove_from_outbox(
        &self,
        sale: &SaleId,
        order_ids: &[Uuid],
    ) -> Result<(), StoreError> {
        if order_ids.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = order_ids.iter().map(Uuid::to_string).collect();
        let keys = SaleKeys::new(sale);
        let pipeline = self.client.pipeline();
        let _: () = pipeline.hdel(&keys.outbox, ids.clone()).await?;
        let _: () = pipeline.zrem(&keys.outbox_at, ids).await?;
        let _: Vec<Value> = pipeline.all().await?;
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
        "DUPLICATE" => Reservation::Duplicate {
            order_id: detail
                .parse()
                .map_err(|_| StoreError::Failed(format!("reserve.lua: bad order id {detail:?}")))?,
        },
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
