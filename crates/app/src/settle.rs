//! Settlement: an SQS batch of order messages into the ledger, then the status into the status
//! store and the reservation out of the outbox.
//!
//! Each step of a batch runs in a `tracing` span named `settle.<step>` ([`STEPS`]): how long
//! each took is measured by whoever listens (`flashflow-bench settle` adds up the spans' times),
//! not by the flow itself.

use crate::metrics::{Count, Metrics};
use flashflow::domain::rehydrate::KeyHolder;
use flashflow::domain::settlement::replay_answer;
use flashflow::domain::signing::Signer;
use flashflow::domain::{OrderMessage, OrderState, OrderStatus, SaleId, Settled};
use flashflow::ports::{Ledger, OrderPublisher, SettledOrders, StatusStore};
use std::collections::{BTreeMap, HashMap, HashSet};
use tracing::{error, info, info_span, warn, Instrument};
use uuid::Uuid;

/// The settle handler: one per function instance (it owns the instance's Postgres connection).
pub struct Settler<L, S, R, Q> {
    ledger: L,
    status: S,
    store: R,
    queue: Q,
    signer: Signer,
    retry_delay: std::time::Duration,
    metrics: Metrics,
}

/// The spans of a batch's steps in [`Settler::settle`], in the order they run, with what each
/// does.
pub const STEPS: &[(&str, &str)] = &[
    ("settle.verify", "verify signatures"),
    ("settle.ledger", "ledger (Postgres)"),
    ("settle.requeue_waiting", "re-queue what waits"),
    ("settle.statuses", "statuses (DynamoDB)"),
    ("settle.outbox", "outbox cleanup (Redis)"),
    ("settle.requeue_unwritten", "re-queue unwritten"),
];

/// The settle handler's own setting: `SETTLE_RETRY_DELAY_MS` (60000), how long a batch that met
/// an unavailable or busy ledger waits before it is delivered again.
#[derive(Debug, Clone, Copy, serde::Deserialize)]
#[serde(default)]
pub struct SettleSettings {
    #[serde(rename = "settle_retry_delay_ms")]
    pub retry_delay: flashflow_settings::Millis,
}

impl flashflow_settings::FromEnv for SettleSettings {}

impl Default for SettleSettings {
    fn default() -> Self {
        Self {
            retry_delay: flashflow_settings::Millis::secs(60),
        }
    }
}

/// A message as the queue delivered it: its id (what a failure is reported by) and its body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delivered {
    pub id: String,
    pub body: Option<String>,
}

/// What one batch did, for logs and tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BatchReport {
    pub confirmed: usize,
    /// Checkout orders recorded as held (waiting for payment).
    pub held: usize,
    pub rejected: usize,
    /// Retries of an earlier order that Redis did not recognise (see [`OrderState::Duplicate`]).
    pub duplicates: usize,
    /// Orders sent back to the queue for later because the ledger was unavailable or busy, or
    /// because their status could not be written.
    pub requeued: usize,
    /// Message ids reported back to the queue as failed.
    pub failed: Vec<String>,
}

impl<L: Ledger, S: StatusStore, R: SettledOrders, Q: OrderPublisher> Settler<L, S, R, Q> {
    /// `signer` checks that buy signed each order (see [`flashflow::domain::signing`]);
    /// `queue` takes back, for later, orders the ledger could not take now.
    pub fn new(ledger: L, status: S, store: R, queue: Q, signer: Signer) -> Self {
        Self {
            ledger,
            status,
            store,
            queue,
            signer,
            retry_delay: SettleSettings::default().retry_delay.get(),
            metrics: Metrics::new("settle"),
        }
    }

    /// Count outcomes into `metrics` (the caller flushes them: after each invocation in Lambda).
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// The metrics this settler counts into.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Wait `delay` before a batch that met an unavailable ledger is delivered again.
    pub fn with_retry_delay(mut self, delay: std::time::Duration) -> Self {
        self.retry_delay = delay;
        self
    }

    /// Settle one batch as the queue delivered it, counting the outcomes into the metrics. Never
    /// fails as a whole: every problem is a failed message id, so the queue redelivers exactly
    /// those (and its redrive policy moves poison messages to the DLQ).
    pub async fn run(&self, batch: Vec<Delivered>) -> BatchReport {
        let started = std::time::Instant::now();
        let report = self.settle(batch).await;
        self.metrics.add(Count::Confirmed, report.confirmed as u64);
        self.metrics.add(Count::Held, report.held as u64);
        self.metrics.add(Count::Rejected, report.rejected as u64);
        self.metrics.add(Count::Failed, report.failed.len() as u64);
        self.metrics.batch_duration(started.elapsed());
        report
    }

    /// [`Settler::run`] without the counts. The steps, in the order they run: verify each
    /// message, record the orders in the ledger, re-queue what the ledger could not take now,
    /// write the statuses, clean the outbox, report.
    pub async fn settle(&self, batch: Vec<Delivered>) -> BatchReport {
        let mut report = BatchReport::default();
        let verified = info_span!("settle.verify").in_scope(|| self.verify(batch));
        report.failed.extend(verified.refused);
        if verified.orders.is_empty() {
            return report;
        }
        let recorded = self
            .record(&verified.orders)
            .instrument(info_span!("settle.ledger"))
            .await;
        report.failed.extend(recorded.refused.iter().cloned());
        let requeued = self
            .requeue(&verified.orders, &recorded.transient)
            .instrument(info_span!("settle.requeue_waiting"))
            .await;
        report.requeued = requeued.requeued;
        report.failed.extend(requeued.failed);
        let orders: Vec<(String, OrderMessage)> = verified
            .orders
            .into_iter()
            .filter(|(id, _)| !recorded.refused.contains(id) && !recorded.transient.contains(id))
            .collect();
        let statuses = self
            .write_statuses(&orders, &recorded.outcome)
            .instrument(info_span!("settle.statuses"))
            .await;
        (
            report.confirmed,
            report.held,
            report.rejected,
            report.duplicates,
        ) = (
            statuses.confirmed,
            statuses.held,
            statuses.rejected,
            statuses.duplicates,
        );
        let unsettled = self
            .clean_outbox(&orders, &recorded.outcome, &statuses)
            .instrument(info_span!("settle.outbox"))
            .await;
        report.failed.extend(unsettled.failed);
        // Recorded, but the status store did not take the status, or the outbox kept the entry
        // (which the sweeper leaves alone while it is marked in the queue): the order is fine, so
        // it must not use up its receives (and reach the DLQ) while a store is away. It comes
        // back later, is found recorded, and its status and cleanup are done then.
        let unwritten: HashSet<String> = orders
            .iter()
            .filter(|(_, o)| {
                statuses.failed.contains(&o.order_id) || unsettled.uncleaned.contains(&o.order_id)
            })
            .map(|(id, _)| id.clone())
            .collect();
        let again = self
            .requeue(&orders, &unwritten)
            .instrument(info_span!("settle.requeue_unwritten"))
            .await;
        report.requeued += again.requeued;
        report.failed.extend(again.failed);
        info!(
            confirmed = report.confirmed,
            held = report.held,
            rejected = report.rejected,
            duplicates = report.duplicates,
            requeued = report.requeued,
            failed = report.failed.len(),
            "batch settled"
        );
        report
    }

    /// Parse each message on its own and check that buy signed the order it carries, so one bad
    /// message fails alone. A message anyone else made (a made-up order, an outbox entry copied
    /// under another id or buyer) is never confirmed and takes no stock: it goes back, and on to
    /// the DLQ.
    fn verify(&self, batch: Vec<Delivered>) -> Verified {
        let mut verified = Verified::default();
        for message in batch {
            let id = message.id;
            let Some(body) = message.body.as_deref() else {
                warn!(message_id = %id, "message without a body");
                verified.refused.push(id);
                continue;
            };
            match OrderMessage::parse(body) {
                Ok(order) if self.signer.verifies_order(&order) => {
                    verified.orders.push((id, order));
                }
                Ok(order) => {
                    warn!(message_id = %id, order = %order.order_id, sale = %order.sale_id,
                        signed = order.sig.is_some(), "order not signed by buy: refused");
                    verified.refused.push(id);
                }
                Err(e) => {
                    warn!(message_id = %id, error = %e, "poison message");
                    verified.refused.push(id);
                }
            }
        }
        verified
    }

    /// Record `orders` in the ledger, isolating what the ledger refuses: the whole batch first
    /// (the common case: one transaction), and when a statement fails because of the data, each
    /// half on its own, down to the single messages at fault, so good orders settle in this very
    /// invocation and only the offenders are reported failed. When the ledger is unavailable or
    /// busy, nothing can be isolated: every message not yet recorded waits, to be re-queued.
    async fn record(&self, orders: &[(String, OrderMessage)]) -> Recorded {
        let mut recorded = Recorded::default();
        let mut todo: Vec<&[(String, OrderMessage)]> = vec![orders];
        while let Some(part) = todo.pop() {
            let messages: Vec<OrderMessage> = part.iter().map(|(_, o)| o.clone()).collect();
            match self.ledger.settle_orders(&messages).await {
                Ok(settled) => recorded.outcome.extend(settled),
                Err(e) if e.is_transient() => {
                    error!(error = %e, batch = part.len(), "the ledger is unavailable, retrying later");
                    for rest in std::iter::once(part).chain(todo.drain(..)) {
                        recorded
                            .transient
                            .extend(rest.iter().map(|(id, _)| id.clone()));
                    }
                }
                Err(e) if part.len() == 1 => {
                    let (id, o) = &part[0];
                    warn!(message_id = %id, order = %o.order_id, error = %e, "the ledger refuses this order");
                    recorded.refused.insert(id.clone());
                }
                Err(e) => {
                    warn!(error = %e, batch = part.len(), "the ledger refused a batch: isolating");
                    let (a, b) = part.split_at(part.len() / 2);
                    todo.push(b);
                    todo.push(a);
                }
            }
        }
        recorded
    }

    /// Send the orders whose message ids are in `which` back to the queue, delayed, so their
    /// messages can be deleted now: waiting out an outage must not use up their receives (which
    /// would carry good orders to the DLQ), and the queue keeps one message per order. Those the
    /// queue does not take are reported failed and come back the usual way.
    async fn requeue(
        &self,
        orders: &[(String, OrderMessage)],
        which: &HashSet<String>,
    ) -> Requeued {
        let mut requeued = Requeued::default();
        if which.is_empty() {
            return requeued;
        }
        let (ids, bodies): (Vec<&String>, Vec<String>) = orders
            .iter()
            .filter(|(id, _)| which.contains(id))
            .map(|(id, o)| (id, o.to_json()))
            .unzip();
        let refused = self.queue.publish_later(&bodies, self.retry_delay).await;
        for (i, id) in ids.into_iter().enumerate() {
            if refused.contains(&i) {
                requeued.failed.push(id.clone());
            } else {
                requeued.requeued += 1;
            }
        }
        requeued
    }

    /// Write each recorded order's status once (as the ledger recorded it, never from the
    /// message alone), and gather, per sale, the orders to take out of the outbox and the keys
    /// whose replays must now answer the order that counts.
    async fn write_statuses(
        &self,
        orders: &[(String, OrderMessage)],
        outcome: &HashMap<Uuid, Settled>,
    ) -> Statuses {
        let mut statuses = Statuses::default();
        let mut items = Vec::new();
        let mut written: HashSet<Uuid> = HashSet::new();
        for (_, o) in orders {
            let Some(status) = recorded_status(outcome, o.order_id) else {
                continue;
            };
            if !written.insert(o.order_id) {
                continue;
            }
            match status.status {
                OrderState::Confirmed => statuses.confirmed += 1,
                OrderState::Held => statuses.held += 1,
                OrderState::Duplicate => statuses.duplicates += 1,
                OrderState::Rejected => statuses.rejected += 1,
                // Recorded before and changed since (paid, ended): counted when it was settled.
                _ => {}
            }
            items.push(status.clone());
            let sale = statuses.by_sale.entry(o.sale_id.clone()).or_default();
            sale.orders.push(o.order_id);
            let answer = replay_answer(status, |id| recorded_status(outcome, id));
            if let (Some(key), Some(answer)) = (&o.idempotency_key, answer) {
                sale.keys.push((
                    o.order_id,
                    KeyHolder {
                        buyer: o.buyer.clone(),
                        key: key.clone(),
                        order_id: answer.order_id,
                        quantity: answer.quantity,
                        state: answer.status,
                        round: o.round,
                    },
                ));
            }
        }
        statuses.failed = self.status.put_all(&items).await.into_iter().collect();
        statuses
    }

    /// Take the settled orders out of their outboxes (those whose status write failed stay until
    /// it is written: they are re-queued), and the orders of sales the ledger does not know too:
    /// their messages go to the DLQ (a redrive settles them once the sale exists), and the
    /// sweeper must not keep sending them back. Returns the message ids that failed, and the
    /// orders whose entries stayed because the store failed (re-queued, so cleanup is tried again).
    async fn clean_outbox(
        &self,
        orders: &[(String, OrderMessage)],
        outcome: &HashMap<Uuid, Settled>,
        statuses: &Statuses,
    ) -> Unsettled {
        let mut unsettled = Unsettled::default();
        for (sale, settled) in &statuses.by_sale {
            let done: Vec<Uuid> = settled
                .orders
                .iter()
                .filter(|id| !statuses.failed.contains(id))
                .copied()
                .collect();
            let answers: Vec<KeyHolder> = settled
                .keys
                .iter()
                .filter(|(id, _)| !statuses.failed.contains(id))
                .map(|(_, k)| k.clone())
                .collect();
            if let Err(e) = self.store.remove_settled(sale, &done, &answers).await {
                // Not a failure of the message: it comes back later and cleans up then. The
                // sweeper would not: buy marked the entry as in the queue for days.
                warn!(sale = %sale, error = %e, "outbox cleanup failed: re-queued");
                unsettled.uncleaned.extend(done);
            }
        }
        let mut unknown: BTreeMap<&SaleId, Vec<Uuid>> = BTreeMap::new();
        for (id, o) in orders {
            if recorded_status(outcome, o.order_id).is_none() {
                warn!(message_id = %id, sale = %o.sale_id, order = %o.order_id,
                    "order for a sale Postgres does not know: to the DLQ");
                unsettled.failed.push(id.clone());
                unknown.entry(&o.sale_id).or_default().push(o.order_id);
            }
        }
        for (sale, ids) in unknown {
            if let Err(e) = self.store.remove_settled(sale, &ids, &[]).await {
                warn!(sale = %sale, error = %e, "outbox cleanup failed");
            }
        }
        unsettled
    }
}

/// The order as the ledger recorded it, if it did.
fn recorded_status(outcome: &HashMap<Uuid, Settled>, id: Uuid) -> Option<&OrderStatus> {
    match outcome.get(&id) {
        Some(Settled::Recorded(status)) => Some(status),
        _ => None,
    }
}

/// [`Settler::verify`]'s result: the signed orders (message id → order) and the refused ids.
#[derive(Default)]
struct Verified {
    orders: Vec<(String, OrderMessage)>,
    refused: Vec<String>,
}

/// [`Settler::record`]'s result.
#[derive(Default)]
struct Recorded {
    /// What the ledger holds for each order it took.
    outcome: HashMap<Uuid, Settled>,
    /// Message ids the ledger refused (bad in themselves).
    refused: HashSet<String>,
    /// Message ids it could not take now (unavailable or busy).
    transient: HashSet<String>,
}

/// [`Settler::requeue`]'s result.
#[derive(Default)]
struct Requeued {
    requeued: usize,
    /// Message ids the queue did not take back.
    failed: Vec<String>,
}

/// One sale's part of [`Statuses`]: orders to take out of the outbox, keys to answer replays.
#[derive(Default)]
struct SaleSettled {
    orders: Vec<Uuid>,
    keys: Vec<(Uuid, KeyHolder)>,
}

/// [`Settler::write_statuses`]'s result.
#[derive(Default)]
struct Statuses {
    confirmed: usize,
    held: usize,
    rejected: usize,
    duplicates: usize,
    by_sale: BTreeMap<SaleId, SaleSettled>,
    /// Orders whose status could not be written.
    failed: HashSet<Uuid>,
}

/// [`Settler::clean_outbox`]'s result.
#[derive(Default)]
struct Unsettled {
    /// Message ids failed for an unknown sale.
    failed: Vec<String>,
    /// Orders recorded whose outbox entries stayed (the store failed).
    uncleaned: HashSet<Uuid>,
}

#[cfg(test)]
#[path = "settle_tests.rs"]
mod tests;
