//! Durable writes on a Redis whose replication is asynchronous: a reply that promises something (a
//! `202`, a place in a queue, a unit back) is given only once `REDIS_WAIT_REPLICAS` replicas hold
//! the write, so a failover to one of them forgets nothing that was promised.
//!
//! Off (0 replicas) by default: a single Redis has no replica to wait for, and ElastiCache for
//! Valkey with `Durability: sync` stores each write in its Multi-AZ log before it answers, which
//! makes this wait redundant there (docs/operations.md).
//!
//! Why a connection of its own: `WAIT` counts the writes of the connection it is sent on and
//! blocks that connection while it waits, so on the shared multiplexed connection every `WAIT`
//! would stall every other command. Here a second connection writes one small key of the sale
//! after the script's reply came and waits for that: the replication stream is one ordered log, so
//! the key's write lies past the script's, and replicas that have it have the script's too. One
//! such barrier covers every reply that came before it was sent, so callers waiting at once share
//! it (a group commit): the cost is one round trip to the replica per batch, not per order.
//!
//! # Layout
//! - [`Barrier`]: the second connection, the callers waiting, and the loop that serves them.
//! - [`Barrier::confirm`]: what a caller awaits after a script's reply.
//! - `run` / `wait_for`: one batch at a time; per sale's shard in cluster mode.

use super::store_error;
use flashflow::ports::StoreError;
use fred::prelude::*;
use fred::types::{ClusterHash, CustomCommand, Expiration};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

/// How long a barrier key lives: long enough for any wait, short enough to leave nothing behind.
const BARRIER_KEY_TTL_MS: i64 = 60_000;

/// Replicas that must hold a promised write before it is answered, and the connection that asks.
pub(crate) struct Barrier {
    client: Client,
    replicas: i64,
    timeout: Duration,
    /// Whether callers waiting at once share a wait (off only to measure what that wins).
    shared: bool,
    pending: Mutex<Pending>,
}

#[derive(Default)]
struct Pending {
    /// Whether a loop is serving the callers (one at a time, so their waits are shared).
    running: bool,
    /// Callers whose script answered, by the barrier key of their sale.
    waiters: Vec<(String, oneshot::Sender<Result<(), String>>)>,
}

impl Barrier {
    /// A barrier on `client` (a connection of its own, already connecting); `shared`: callers
    /// waiting at once share one wait.
    pub(crate) fn new(client: Client, replicas: u32, timeout: Duration, shared: bool) -> Arc<Self> {
        Arc::new(Self {
            client,
            replicas: i64::from(replicas),
            timeout,
            shared,
            pending: Mutex::new(Pending::default()),
        })
    }

    /// Wait until the replicas hold every write whose reply came before this call. `key` is the
    /// sale's barrier key (the same shard as the script's keys).
    ///
    /// # Errors
    /// [`StoreError::InDoubt`] when not enough replicas confirmed in time, or the barrier's own
    /// connection failed: the write happened on the primary and may not survive a failover, so
    /// the answer it would have given is not given (asking again with the same order tells).
    pub(crate) async fn confirm(self: &Arc<Self>, key: String) -> Result<(), StoreError> {
        if !self.shared {
            return self
                .wait_for(&key)
                .await
                .map_err(|why| StoreError::InDoubt(why.into()));
        }
        let (tx, rx) = oneshot::channel();
        let start = {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            pending.waiters.push((key, tx));
            !std::mem::replace(&mut pending.running, true)
        };
        if start {
            tokio::spawn(Arc::clone(self).run());
        }
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(why)) => Err(StoreError::InDoubt(why.into())),
            Err(_) => Err(StoreError::InDoubt("the durability barrier stopped".into())),
        }
    }

    /// Serve the callers batch by batch until none waits.
    async fn run(self: Arc<Self>) {
        loop {
            let batch = {
                let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
                if pending.waiters.is_empty() {
                    pending.running = false;
                    return;
                }
                std::mem::take(&mut pending.waiters)
            };
            // One Redis: one barrier covers all. A cluster: one per shard the batch wrote to
            // (per sale here: a batch rarely spans many sales).
            let mut groups: HashMap<String, Vec<oneshot::Sender<Result<(), String>>>> =
                HashMap::new();
            let single = !self.client.is_clustered();
            for (key, tx) in batch {
                let key = if single {
                    groups.keys().next().cloned().unwrap_or(key)
                } else {
                    key
                };
                groups.entry(key).or_default().push(tx);
            }
            let mut waits = tokio::task::JoinSet::new();
            for (key, senders) in groups {
                let this = Arc::clone(&self);
                waits.spawn(async move {
                    let outcome = this.wait_for(&key).await;
                    for tx in senders {
                        let _ = tx.send(outcome.clone());
                    }
                });
            }
            while waits.join_next().await.is_some() {}
        }
    }

    /// Write `key` on this connection and `WAIT` for the replicas to have it.
    async fn wait_for(&self, key: &str) -> Result<(), String> {
        let slot = fred::util::redis_keyslot(key.as_bytes());
        let wait = CustomCommand::new_static("WAIT", ClusterHash::Custom(slot), false);
        let pipe = self.client.pipeline();
        let timeout_ms = i64::try_from(self.timeout.as_millis()).unwrap_or(i64::MAX);
        let queued: Result<(), Error> = async {
            pipe.set::<(), _, _>(
                key,
                1,
                Some(Expiration::PX(BARRIER_KEY_TTL_MS)),
                None,
                false,
            )
            .await?;
            pipe.custom::<(), _>(wait, vec![self.replicas, timeout_ms])
                .await
        }
        .await;
        let replies: Result<(Value, i64), Error> = match queued {
            Ok(()) => pipe.all().await,
            Err(e) => Err(e),
        };
        match replies {
            Ok((_, acked)) if acked >= self.replicas => Ok(()),
            Ok((_, acked)) => Err(format!(
                "{acked} of {} replicas confirmed the write within {} ms",
                self.replicas, timeout_ms
            )),
            Err(e) => Err(store_error(e).to_string()),
        }
    }
}
