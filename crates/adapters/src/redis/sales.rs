//! The sale as `reserve.lua` sees it: loaded and rebuilt from the ledger (`rehydrate.lua`), reset
//! to a new round (`begin_reset.lua`, `finish_reset.lua`), retired when finished (`retire.lua`),
//! found paused by a failover (`failover_paused.lua`), and the registry of the sales Redis holds.

use super::OrStoreError;
use super::{failed, RedisStore, SaleKeys};
use flashflow::domain::rehydrate::Plan;
use flashflow::domain::EpochMs;
use flashflow::domain::{SaleDefinition, SaleId};
use flashflow::ports::{
    FailoverPauses, LiveSale, LiveSales, ResetStart, SaleLoader, SaleResets, SaleRetirement,
    StoreError, HOLDS_END_WITHIN,
};
use fred::prelude::*;
use std::time::Duration;

/// Entries per `rehydrate.lua` call, so rebuilding a large sale never blocks Redis for long.
const REHYDRATE_CHUNK: usize = 500;

/// The set of sales Redis holds, for the sweeper and for finding pending orders. It belongs to no
/// sale's hash tag, so no script touches it: the operator's load and reset add a sale, the
/// sweeper removes finished ones (and puts one back if a reload raced it).
pub const SALES_KEY: &str = "ff:sales";

impl SaleLoader for RedisStore {
    async fn rehydrate(&self, def: &SaleDefinition, plan: &Plan) -> Result<bool, StoreError> {
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
                .await
                .or_store()?;
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
                .await
                .or_store()?;
        }
        for chunk in plan.holds.chunks(REHYDRATE_CHUNK) {
            let mut args = vec!["holds".to_owned()];
            for (order, pay_by) in chunk {
                args.push(order.to_string());
                args.push(pay_by.to_string());
            }
            let _: i64 = self
                .rehydrate
                .evalsha_with_reload(&self.client, vec![keys.holds(), keys.returned()], args)
                .await
                .or_store()?;
        }
        // The gate first: from the moment the sale can be bought, its waiting room is up.
        self.load_room(def, plan.draw_seed.as_ref()).await?;
        let holds_until = plan.holds.iter().map(|(_, pay_by)| pay_by).max();
        let fresh: i64 = self
            .rehydrate
            .evalsha_with_reload(
                &self.client,
                [keys.all(), vec![keys.wake(), keys.returned(), keys.holds()]].concat(),
                [
                    vec![
                        "sale".to_owned(),
                        plan.remaining.to_string(),
                        plan.round.to_string(),
                    ],
                    sale_args(def),
                    vec![
                        holds_until.map(ToString::to_string).unwrap_or_default(),
                        plan.remaining_if_new.to_string(),
                    ],
                    plan.returned.iter().map(ToString::to_string).collect(),
                ]
                .concat(),
            )
            .await
            .or_store()?;
        self.register_sale(&def.id).await?;
        Ok(fresh == 1)
    }
}

impl SaleResets for RedisStore {
    async fn begin_reset(
        &self,
        sale: &SaleId,
        round: u32,
        force: bool,
    ) -> Result<ResetStart, StoreError> {
        let k = SaleKeys::new(sale);
        let reply: Vec<String> = self
            .begin_reset
            .evalsha_with_reload(
                &self.client,
                vec![k.sale, k.outbox, k.outbox_at, k.stash],
                vec![round.to_string(), if force { "1" } else { "0" }.to_owned()],
            )
            .await
            .or_store()?;
        let mut reply = reply.into_iter();
        let (status, detail) = (reply.next().unwrap_or_default(), reply.next());
        let number = |d: Option<String>| -> Result<i64, StoreError> {
            d.as_deref()
                .and_then(|d| d.parse().ok())
                .ok_or_else(|| failed(format!("begin_reset.lua: bad number {d:?}")))
        };
        Ok(match status.as_str() {
            "PENDING" => ResetStart::Pending(number(detail)?),
            "FROZEN" | "NO_SALE" => ResetStart::Frozen {
                round: number(detail)? as u32,
                dropped: reply.collect(),
            },
            other => return Err(failed(format!("begin_reset.lua: unknown status {other:?}"))),
        })
    }

    async fn finish_reset(&self, def: &SaleDefinition, round: u32) -> Result<(), StoreError> {
        let k = SaleKeys::new(&def.id);
        let mut keys = k.all();
        keys.push(k.stash.clone());
        keys.push(k.wake());
        keys.push(k.returned());
        keys.push(k.holds());
        let done: i64 = self
            .finish_reset
            .evalsha_with_reload(
                &self.client,
                keys,
                [vec![round.to_string()], sale_args(def)].concat(),
            )
            .await
            .or_store()?;
        if done < 0 {
            return Err(failed(format!(
                "sale {}: a reset to another round than {round} is under way",
                def.id
            )));
        }
        self.register_sale(&def.id).await
    }
}

impl LiveSales for RedisStore {
    async fn live_sale(&self, sale: &SaleId) -> Result<Option<LiveSale>, StoreError> {
        let keys = SaleKeys::new(sale);
        type Fields = (
            Option<i64>,
            Option<i64>,
            Option<i64>,
            Option<i64>,
            Option<i64>,
            Option<String>,
        );
        let (stock, remaining, limit, opens, closes, info): Fields = self
            .client
            .hmget(
                &keys.sale,
                vec![
                    "stock",
                    "remaining",
                    "limit",
                    "opens_ms",
                    "closes_ms",
                    "info",
                ],
            )
            .await
            .or_store()?;
        let pending: i64 = self.client.hlen(&keys.outbox).await.or_store()?;
        let (queue_opens, entry): (Option<i64>, Option<String>) = self
            .client
            .hmget(keys.room(), vec!["opens_ms", "entry"])
            .await
            .or_store()?;
        let sold_out: Option<i64> = self
            .client
            .hget(keys.stats(), "sold_out")
            .await
            .or_store()?;
        Ok(match (stock, remaining) {
            (Some(stock), Some(remaining)) => Some(LiveSale {
                stock,
                remaining,
                pending,
                per_user_limit: limit,
                opens_at: opens.map(EpochMs),
                closes_at: closes.map(EpochMs),
                shown: info.and_then(|i| serde_json::from_str(&i).ok()),
                sold_out_answers: sold_out.unwrap_or(0),
                queue_opens_at: queue_opens.map(EpochMs),
                // A policy that does not parse is not shown; the queue function still applies it.
                entry: entry.and_then(|e| serde_json::from_str(&e).ok()),
            }),
            _ => None,
        })
    }

    /// Ids that no longer parse are skipped.
    async fn sales(&self) -> Result<Vec<SaleId>, StoreError> {
        let ids: Vec<String> = self.client.smembers(SALES_KEY).await.or_store()?;
        Ok(ids.iter().filter_map(|s| SaleId::parse(s).ok()).collect())
    }
}

impl SaleRetirement for RedisStore {
    /// A reload or reset re-registers the sale; the re-check after the removal puts it back if
    /// one ran in between.
    async fn retire_if_finished(
        &self,
        sale: &SaleId,
        now: EpochMs,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let keys = SaleKeys::new(sale);
        let args = vec![
            now.to_string(),
            ttl.as_secs().max(1).to_string(),
            HOLDS_END_WITHIN.as_millis().to_string(),
        ];
        let mut expiring = keys.all();
        expiring.extend([keys.returned(), keys.stats(), keys.holds()]);
        expiring.extend(keys.room_all());
        let retired: i64 = self
            .retire
            .evalsha_with_reload(&self.client, expiring, args)
            .await
            .or_store()?;
        if retired == 0 {
            return Ok(false);
        }
        let _: i64 = self
            .client
            .srem(SALES_KEY, sale.as_str())
            .await
            .or_store()?;
        let exists: i64 = self.client.exists(&keys.sale).await.or_store()?;
        let ttl_left: i64 = self.client.ttl(&keys.sale).await.or_store()?;
        if exists == 1 && ttl_left == -1 {
            // Reloaded in between (the reload removed the expiry): keep it registered.
            self.register_sale(sale).await?;
            return Ok(false);
        }
        Ok(true)
    }
}

impl FailoverPauses for RedisStore {
    /// Asked on the node that holds the sale (a script: `INFO` on any other node would tell of
    /// that node); nothing is asked when pausing is off.
    async fn paused_by_failover(&self, sale: &SaleId) -> Result<bool, StoreError> {
        if !self.pause_on_failover {
            return Ok(false);
        }
        let paused: i64 = self
            .failover_paused
            .evalsha_with_reload(&self.client, vec![SaleKeys::new(sale).sale], ())
            .await
            .or_store()?;
        Ok(paused == 1)
    }
}

/// Written with the first sale Redis is given and never removed: when it is missing, Redis has
/// lost its data (or never held a sale), so a sale it does not know may still be one the ledger
/// has. On Redis Cluster it lives on one node and tells only of that node.
pub const LOADED_KEY: &str = "ff:loaded";

impl RedisStore {
    /// Record that Redis holds this sale.
    pub(super) async fn register_sale(&self, sale: &SaleId) -> Result<(), StoreError> {
        let _: i64 = self
            .client
            .sadd(SALES_KEY, sale.as_str())
            .await
            .or_store()?;
        let _: () = self
            .client
            .set(LOADED_KEY, 1, None, None, false)
            .await
            .or_store()?;
        Ok(())
    }

    /// Whether Redis still holds what it was given (see [`LOADED_KEY`]).
    pub(super) async fn holds_sales(&self) -> Result<bool, StoreError> {
        let n: i64 = self.client.exists(LOADED_KEY).await.or_store()?;
        Ok(n == 1)
    }
}

/// The sale's definition as the scripts that write it take it (`rehydrate.lua`,
/// `finish_reset.lua`), in this order: stock, limit, opens_ms, closes_ms, attempts per minute, a
/// checkout sale's hold in ms, the storefront's info (JSON); `''` for what the sale does not have.
fn sale_args(def: &SaleDefinition) -> Vec<String> {
    let opt = |v: Option<String>| v.unwrap_or_default();
    vec![
        def.stock.to_string(),
        def.per_user_limit.to_string(),
        opt(def.opens_at_ms.map(|v| v.to_string())),
        opt(def.closes_at_ms.map(|v| v.to_string())),
        opt(def.attempts_per_minute.map(|v| v.to_string())),
        opt(def.checkout.as_ref().map(|c| c.hold_ms().to_string())),
        flashflow::domain::sale::ShownSale::of(def).to_json(),
    ]
}

impl flashflow::ports::AnswerTally for RedisStore {
    async fn add_sold_out(&self, counts: &[(SaleId, u64)]) -> Result<(), StoreError> {
        for (sale, n) in counts {
            let _: i64 = self
                .client
                .hincrby(SaleKeys::new(sale).stats(), "sold_out", *n as i64)
                .await
                .or_store()?;
        }
        Ok(())
    }
}
