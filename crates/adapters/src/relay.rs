//! The outbox relay of a long-running buy server: buyers are answered once their reservation is
//! in the outbox (what a `202` already promises when the queue is down), and the relay streams the
//! messages to the queue in `SendMessageBatch` calls of up to ten, several in flight, then marks
//! them sent.
//!
//! Nothing is lost when the relay is: every message it holds is also in the Redis outbox, unmarked,
//! so the sweeper re-sends it after its grace period (a process death, a full buffer, a queue
//! outage). Batches form by themselves under load: the worker takes whatever has arrived since the
//! last batch, so an idle server sends a lone order at once and a busy one sends tens at a time.
//!
//! The Lambda keeps sending before it answers: a frozen instance cannot relay.

use flashflow::domain::EpochMs;
use flashflow::domain::SaleId;
use flashflow::ports::{Delivery, OrderPublisher, PublishError, SentMarks};
use flashflow_settings::{Count, Millis};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Semaphore};
use uuid::Uuid;

/// SQS takes at most ten messages per `SendMessageBatch`.
const BATCH: usize = 10;

/// How the relay runs: `RELAY_CAPACITY` (100000, at most 10,000,000), `RELAY_IN_FLIGHT` (16, at
/// most 1000), `OUTBOX_IN_QUEUE_MS` (4 days).
#[derive(Debug, Clone, Copy, serde::Deserialize)]
#[serde(default)]
pub struct RelaySettings {
    /// Messages held at most; more are refused (left to the sweeper) rather than held in memory.
    #[serde(rename = "relay_capacity")]
    pub capacity: Count,
    /// Batches being sent at once.
    #[serde(rename = "relay_in_flight")]
    pub in_flight: Count,
    /// How long a sent message may stay in the queue unsettled (see `mark_sent`).
    #[serde(rename = "outbox_in_queue_ms")]
    pub in_queue_for: Millis,
}

impl flashflow_settings::FromEnv for RelaySettings {
    fn check(&self) -> Result<(), flashflow_settings::ConfigError> {
        flashflow_settings::at_most("RELAY_CAPACITY", self.capacity, 10_000_000)?;
        flashflow_settings::at_most("RELAY_IN_FLIGHT", self.in_flight, 1_000)
    }
}

impl Default for RelaySettings {
    fn default() -> Self {
        Self {
            capacity: Count::of(100_000),
            in_flight: Count::of(16),
            in_queue_for: flashflow::ports::IN_QUEUE_FOR.into(),
        }
    }
}

/// Counters of a relay's work.
#[derive(Debug, Default)]
pub struct RelayStats {
    /// Messages accepted by the queue.
    pub sent: AtomicU64,
    /// `SendMessageBatch` calls made.
    pub batches: AtomicU64,
    /// Messages the queue refused (left in the outbox for the sweeper).
    pub failed: AtomicU64,
    /// Messages refused because the buffer was full (left in the outbox for the sweeper).
    pub overflow: AtomicU64,
}

struct Pending {
    sale: SaleId,
    order_id: Uuid,
    body: String,
}

/// An [`OrderPublisher`] that relays orders in the background; other sends go straight through.
pub struct Relay<P> {
    inner: Arc<P>,
    tx: mpsc::Sender<Pending>,
    stats: Arc<RelayStats>,
}

impl<P: OrderPublisher> Relay<P> {
    /// Start the relay's worker on the current Tokio runtime. It runs until every [`Relay`]
    /// handle is dropped and its buffer is drained; the returned handle finishes then.
    pub fn start<S: SentMarks>(
        publisher: P,
        store: S,
        settings: RelaySettings,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(settings.capacity.get());
        let inner = Arc::new(publisher);
        let stats = Arc::new(RelayStats::default());
        let worker = tokio::spawn(run(
            Arc::clone(&inner),
            Arc::new(store),
            rx,
            settings,
            Arc::clone(&stats),
        ));
        (Self { inner, tx, stats }, worker)
    }

    /// The relay's counters.
    pub fn stats(&self) -> Arc<RelayStats> {
        Arc::clone(&self.stats)
    }
}

async fn run<P: OrderPublisher, S: SentMarks>(
    publisher: Arc<P>,
    store: Arc<S>,
    mut rx: mpsc::Receiver<Pending>,
    settings: RelaySettings,
    stats: Arc<RelayStats>,
) {
    let slots = Arc::new(Semaphore::new(settings.in_flight.get()));
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
            break;
        };
        let work = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
        let (publisher, store, stats) = (
            Arc::clone(&publisher),
            Arc::clone(&store),
            Arc::clone(&stats),
        );
        tokio::spawn(async move {
            send(
                &*publisher,
                &*store,
                work,
                settings.in_queue_for.get(),
                &stats,
            )
            .await;
            drop(permit);
        });
    }
    // Wait for the batches still in flight.
    let _ = slots.acquire_many(settings.in_flight.get() as u32).await;
}

async fn send<P: OrderPublisher, S: SentMarks>(
    publisher: &P,
    store: &S,
    work: Vec<Pending>,
    in_queue_for: Duration,
    stats: &RelayStats,
) {
    let bodies: Vec<String> = work.iter().map(|p| p.body.clone()).collect();
    let failed = publisher.publish_many(&bodies).await;
    stats.batches.fetch_add(1, Ordering::Relaxed);
    stats
        .sent
        .fetch_add((work.len() - failed.len()) as u64, Ordering::Relaxed);
    stats
        .failed
        .fetch_add(failed.len() as u64, Ordering::Relaxed);
    if !failed.is_empty() {
        tracing::warn!(
            failed = failed.len(),
            "relay: the queue refused messages, left in the outbox for the sweeper"
        );
    }
    let mut by_sale: HashMap<&SaleId, Vec<Uuid>> = HashMap::new();
    for (i, p) in work.iter().enumerate() {
        if !failed.contains(&i) {
            by_sale.entry(&p.sale).or_default().push(p.order_id);
        }
    }
    let until = EpochMs::now().plus(in_queue_for);
    for (sale, ids) in by_sale {
        // A lost mark only means one duplicate send by the sweeper, which settle absorbs.
        if let Err(e) = store.mark_sent(sale, &ids, until).await {
            tracing::warn!(sale = %sale, error = %e, "relay: could not mark as sent");
        }
    }
}

impl<P: OrderPublisher> OrderPublisher for Relay<P> {
    async fn publish(&self, message: &str) -> Result<(), PublishError> {
        self.inner.publish(message).await
    }

    async fn publish_later(&self, messages: &[String], delay: Duration) -> Vec<usize> {
        self.inner.publish_later(messages, delay).await
    }

    async fn publish_many(&self, messages: &[String]) -> Vec<usize> {
        self.inner.publish_many(messages).await
    }

    async fn publish_order(
        &self,
        sale: &SaleId,
        order_id: Uuid,
        message: &str,
    ) -> Result<Delivery, PublishError> {
        let pending = Pending {
            sale: sale.clone(),
            order_id,
            body: message.to_owned(),
        };
        match self.tx.try_send(pending) {
            Ok(()) => Ok(Delivery::Relayed),
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.stats.overflow.fetch_add(1, Ordering::Relaxed);
                Err(PublishError("relay buffer full".into()))
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(PublishError("relay stopped".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{MemoryQueue, MemoryStore};

    fn sale() -> SaleId {
        SaleId::parse("relay-sale").unwrap()
    }

    #[tokio::test]
    async fn relayed_orders_reach_the_queue_and_are_marked_sent() {
        let (queue, store) = (MemoryQueue::default(), MemoryStore::default());
        let (relay, worker) = Relay::start(queue.clone(), store.clone(), RelaySettings::default());
        let ids: Vec<Uuid> = (0..25).map(|_| Uuid::now_v7()).collect();
        for (i, id) in ids.iter().enumerate() {
            let d = relay.publish_order(&sale(), *id, &format!("m{i}")).await;
            assert_eq!(d.unwrap(), Delivery::Relayed);
        }
        let stats = relay.stats();
        drop(relay);
        worker.await.unwrap();
        assert_eq!(queue.sent().len(), 25);
        assert_eq!(stats.sent.load(Ordering::Relaxed), 25);
        for id in ids {
            assert!(store.marked_until(id).is_some(), "{id} marked sent");
        }
    }

    #[tokio::test]
    async fn what_the_queue_refuses_stays_unmarked_for_the_sweeper() {
        let (queue, store) = (MemoryQueue::default(), MemoryStore::default());
        queue.set_unavailable(true);
        let (relay, worker) = Relay::start(queue.clone(), store.clone(), RelaySettings::default());
        let id = Uuid::now_v7();
        relay.publish_order(&sale(), id, "m").await.unwrap();
        let stats = relay.stats();
        drop(relay);
        worker.await.unwrap();
        assert_eq!(stats.failed.load(Ordering::Relaxed), 1);
        assert!(store.marked_until(id).is_none());
    }

    #[tokio::test]
    async fn a_full_buffer_refuses_instead_of_growing() {
        let (queue, store) = (MemoryQueue::default(), MemoryStore::default());
        queue.set_unavailable(true);
        let settings = RelaySettings {
            capacity: Count::of(1),
            in_flight: Count::of(1),
            ..RelaySettings::default()
        };
        let (relay, _worker) = Relay::start(queue, store, settings);
        let mut refused = 0;
        for i in 0..1_000 {
            if relay
                .publish_order(&sale(), Uuid::now_v7(), &format!("m{i}"))
                .await
                .is_err()
            {
                refused += 1;
            }
        }
        assert!(refused > 0);
        assert_eq!(relay.stats().overflow.load(Ordering::Relaxed), refused);
    }
}
