//! The Redis side of the sold-out fast path ([`crate::redis::sold_out`]): the snapshot script, and the
//! invalidations that tell a buy process at once when a sale may be buyable again.
//!
//! Every script that can make a sold-out or closed sale buyable again (`return_stock.lua`,
//! `rehydrate.lua`, `begin_reset.lua`, `finish_reset.lua`) also writes the sale's wake key
//! `ffw:{sale}`. A second connection, in RESP3, asks Redis for `CLIENT TRACKING ON BCAST PREFIX
//! ffw:`: Redis then pushes an invalidation naming the key after every such write, and the
//! process forgets that sale. BCAST with one prefix keeps Redis' tracking table empty (nothing is
//! remembered per key or per client) and costs the hot path nothing: `reserve.lua` never writes
//! the wake key.
//!
//! - Redis Cluster: tracking is per node, so every primary is asked (and again on each
//!   reconnect); fred's own `start_tracking` asks one node only in BCAST mode.
//! - A reconnect may have lost pushes: tracking is asked again, then the cache is cleared. A
//!   lagged push stream clears it too.
//! - Without tracking (`REDIS_TRACKING=false`, for ElastiCache Serverless, which has no `CLIENT
//!   TRACKING`, or when Redis refuses it) the entries live by their age bound alone.

use super::OrStoreError;
use super::{build_client, client_config, failed, RedisSettings, RedisStore, SaleKeys};
use crate::redis::sold_out::{Learning, Snapshot, SoldOutCache};
use flashflow::domain::{Refusal, SaleId};
use flashflow::ports::StoreError;
use flashflow_settings::{Flag, MillisOrZero};
use fred::interfaces::{ClientInterface, EventInterface, TrackingInterface};
use fred::prelude::*;
use fred::types::scripts::Script;
use fred::types::RespVersion;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};

/// The prefix of every sale's wake key (`ffw:{sale}`: the hash tag keeps it in its sale's slot).
pub const WAKE_PREFIX: &str = "ffw:";

const SNAPSHOT_LUA: &str = include_str!("lua/sold_out_state.lua");

/// The most idempotency fields a snapshot carries. A sold-out sale holds at most one per keyed
/// order, so a drop of a few thousand units fits; past this, keyed requests go to the script.
pub const MAX_SNAPSHOT_KEYS: usize = 20_000;

/// Settings of the sold-out fast path: `SOLD_OUT_CACHE_MS` (1000; 0 turns it off, above 1000
/// counts as 1000) and `REDIS_TRACKING` (true; false where Redis has no `CLIENT TRACKING`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct FastPathSettings {
    /// How long a process may answer a sale as sold out or closed from memory, at most.
    #[serde(rename = "sold_out_cache_ms")]
    pub max_age: MillisOrZero,
    /// Learn at once when stock comes back, through Redis' `CLIENT TRACKING` (RESP3).
    #[serde(rename = "redis_tracking")]
    pub tracking: Flag,
}

impl flashflow_settings::FromEnv for FastPathSettings {}

impl Default for FastPathSettings {
    fn default() -> Self {
        Self {
            max_age: MillisOrZero::ms(crate::redis::sold_out::MAX_AGE_LIMIT.as_millis() as u64),
            tracking: Flag(true),
        }
    }
}

/// The cache, its snapshot script, and the tracking connection that keeps it honest.
pub(super) struct FastPath {
    pub(super) cache: Arc<SoldOutCache>,
    snapshot: Script,
    /// Kept so the connection lives as long as the store.
    _tracking: Option<Client>,
    /// `true` once the tracking connection asked for its pushes (and forgot what came before).
    listening: tokio::sync::watch::Receiver<bool>,
}

impl RedisStore {
    /// This store with the sold-out fast path: `reserve` answers a sale learned sold out or
    /// closed from memory (see [`crate::redis::sold_out`]). With tracking on, opens a second connection
    /// for the invalidations; a Redis that refuses tracking leaves the age bound alone.
    ///
    /// # Errors
    /// When the tracking connection's configuration is invalid (as [`RedisStore::connect`]).
    pub fn with_fast_path(
        mut self,
        fast: &FastPathSettings,
        redis: &RedisSettings,
    ) -> Result<Self, StoreError> {
        if fast.max_age.get().is_zero() {
            return Ok(self);
        }
        let cache = Arc::new(SoldOutCache::new(fast.max_age.get()));
        let (heard, listening) = tokio::sync::watch::channel(!fast.tracking.get());
        let tracking = if fast.tracking.get() {
            Some(track(redis, Arc::clone(&cache), heard)?)
        } else {
            None
        };
        self.fast_path = Some(Arc::new(FastPath {
            cache,
            snapshot: Script::from_lua(SNAPSHOT_LUA),
            _tracking: tracking,
            listening,
        }));
        Ok(self)
    }

    /// Wait (at most `timeout`) until the tracking connection listens: its first connection
    /// forgets what the cache learned before it, so a sale learned sooner is learned again.
    pub(super) async fn fast_path_listening(&self, timeout: Duration) {
        let Some(fast) = &self.fast_path else { return };
        let mut listening = fast.listening.clone();
        if tokio::time::timeout(timeout, listening.wait_for(|l| *l))
            .await
            .is_err()
        {
            warn!("sold-out cache: the tracking connection is not up yet");
        }
    }

    /// The fast path's memory, when it is on (tests and counts).
    pub fn sold_out_cache(&self) -> Option<&SoldOutCache> {
        self.fast_path.as_deref().map(|f| f.cache.as_ref())
    }

    /// After the script refused `sale` as sold out or closed: read its snapshot in the
    /// background, once per sale at a time, off the buyer's path.
    pub(super) fn learn_later(&self, sale: &SaleId, refusal: &Refusal) {
        let Some(fast) = &self.fast_path else { return };
        if !matches!(refusal, Refusal::SoldOut | Refusal::Closed { .. }) {
            return;
        }
        if let Some(learning) = fast.cache.begin(sale) {
            self.read_snapshot(fast, learning);
        }
    }

    /// An entry still answering is past half its age: read the sale again in the background.
    pub(super) fn refresh_later(&self, sale: &SaleId) {
        let Some(fast) = &self.fast_path else { return };
        if let Some(learning) = fast.cache.refresh(sale) {
            self.read_snapshot(fast, learning);
        }
    }

    fn read_snapshot(&self, fast: &Arc<FastPath>, learning: Learning) {
        let (store, fast) = (self.clone(), Arc::clone(fast));
        tokio::spawn(async move {
            let snapshot = match store.snapshot(&fast, &learning).await {
                Ok(s) => s,
                Err(e) => {
                    warn!(sale = %learning.sale(), error = %e, "sold-out snapshot failed");
                    None
                }
            };
            fast.cache.learned(learning, snapshot);
        });
    }

    async fn snapshot(
        &self,
        fast: &FastPath,
        learning: &Learning,
    ) -> Result<Option<Snapshot>, StoreError> {
        let keys = SaleKeys::new(learning.sale());
        let reply: Vec<String> = fast
            .snapshot
            .evalsha_with_reload(
                &self.client,
                vec![keys.sale, keys.idem],
                vec![MAX_SNAPSHOT_KEYS.to_string()],
            )
            .await
            .or_store()?;
        parse_snapshot(reply)
    }
}

/// `sold_out_state.lua`'s answer.
fn parse_snapshot(reply: Vec<String>) -> Result<Option<Snapshot>, StoreError> {
    let mut reply = reply.into_iter();
    let refusal = match reply.next().as_deref() {
        Some("BUYABLE") => return Ok(None),
        Some("SOLD_OUT") => Refusal::SoldOut,
        Some("CLOSED") => {
            let closes = reply.next().unwrap_or_default();
            Refusal::Closed {
                closes_at_ms: closes
                    .parse()
                    .map_err(|_| failed(format!("sold_out_state.lua: bad closes {closes:?}")))?,
            }
        }
        other => {
            return Err(failed(format!(
                "sold_out_state.lua: unknown state {other:?}"
            )))
        }
    };
    if matches!(refusal, Refusal::SoldOut) {
        reply.next(); // closes_ms: not part of a sold-out answer
    }
    let seen_keys = match reply.next().as_deref() {
        Some("KEYS") => Some(reply.collect()),
        Some("TOO_MANY_KEYS") => None,
        other => {
            return Err(failed(format!(
                "sold_out_state.lua: unknown key list {other:?}"
            )))
        }
    };
    Ok(Some(Snapshot { refusal, seen_keys }))
}

/// The tracking connection: RESP3, BCAST on [`WAKE_PREFIX`], each push forgetting its sale.
fn track(
    redis: &RedisSettings,
    cache: Arc<SoldOutCache>,
    heard: tokio::sync::watch::Sender<bool>,
) -> Result<Client, StoreError> {
    let mut config = client_config(redis)?;
    config.version = RespVersion::RESP3;
    let client = build_client(config, redis)?;

    let mut pushes = client.invalidation_rx();
    let on_push = Arc::clone(&cache);
    tokio::spawn(async move {
        use tokio::sync::broadcast::error::RecvError;
        loop {
            match pushes.recv().await {
                Ok(push) => forget(&on_push, &push.keys),
                // Pushes were dropped: any sale may have woken.
                Err(RecvError::Lagged(_)) => on_push.clear(),
                Err(RecvError::Closed) => break,
            }
        }
    });

    // Every connection (the first and each reconnect) asks for tracking, then forgets what it
    // learned without it. A failure leaves the cache on its age bound.
    let asker = client.clone();
    // The listener runs as long as the client; its handle is not needed.
    let heard = Arc::new(heard);
    drop(client.on_reconnect(move |server| {
        let (client, cache, heard) = (asker.clone(), Arc::clone(&cache), Arc::clone(&heard));
        async move {
            match enable(&client, &server).await {
                Ok(()) => info!(server = %server, "sold-out cache: tracking on"),
                Err(e) => warn!(server = %server, error = %e,
                    "sold-out cache: no tracking, entries live by their age bound alone"),
            }
            cache.clear();
            heard.send_replace(true);
            Ok(())
        }
    }));
    client.connect();
    Ok(client)
}

/// Ask `server` to push an invalidation for every write of a wake key.
async fn enable(client: &Client, server: &fred::types::config::Server) -> Result<(), Error> {
    if client.is_clustered() {
        client
            .with_cluster_node(server)
            .client_tracking::<(), _, _>("on", None, WAKE_PREFIX, true, false, false, false)
            .await
    } else {
        client
            .start_tracking(WAKE_PREFIX, true, false, false, false)
            .await
    }
}

/// Forget the sales named by a push; a push without keys (a flush) forgets all.
fn forget(cache: &SoldOutCache, keys: &[fred::types::Key]) {
    if keys.is_empty() {
        cache.clear();
        return;
    }
    for key in keys {
        let sale = key
            .as_str()
            .and_then(|k| k.strip_prefix(WAKE_PREFIX))
            .and_then(|k| k.strip_prefix('{'))
            .and_then(|k| k.strip_suffix('}'))
            .and_then(|id| SaleId::parse(id).ok());
        match sale {
            Some(sale) => cache.invalidate(&sale),
            None => cache.clear(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_read_as_sold_out_closed_or_buyable() {
        let s = |v: &[&str]| parse_snapshot(v.iter().map(|s| s.to_string()).collect());
        assert_eq!(s(&["BUYABLE"]).unwrap(), None);
        let sold = s(&["SOLD_OUT", "", "KEYS", "ada\nk"]).unwrap().unwrap();
        assert_eq!(sold.refusal, Refusal::SoldOut);
        assert_eq!(sold.seen_keys.unwrap().len(), 1);
        let closed = s(&["CLOSED", "42", "TOO_MANY_KEYS"]).unwrap().unwrap();
        assert_eq!(closed.refusal, Refusal::Closed { closes_at_ms: 42 });
        assert!(closed.seen_keys.is_none());
        assert!(s(&["WHAT"]).is_err());
        assert!(s(&["SOLD_OUT", "", "MAYBE"]).is_err());
    }

    #[test]
    fn a_push_forgets_its_sale_and_a_keyless_or_foreign_push_forgets_all() {
        let cache = SoldOutCache::new(std::time::Duration::from_secs(1));
        let install = |id: &str| {
            let l = cache.begin(&SaleId::parse(id).unwrap()).unwrap();
            cache.learned(
                l,
                Some(Snapshot {
                    refusal: Refusal::SoldOut,
                    seen_keys: None,
                }),
            );
        };
        install("a");
        install("b");
        forget(&cache, &["ffw:{a}".into()]);
        assert!(!cache.has_fresh(&SaleId::parse("a").unwrap()));
        assert!(cache.has_fresh(&SaleId::parse("b").unwrap()));
        forget(&cache, &[]);
        assert!(!cache.has_fresh(&SaleId::parse("b").unwrap()));
        install("a");
        forget(&cache, &["something-else".into()]);
        assert!(!cache.has_fresh(&SaleId::parse("a").unwrap()));
    }
}
