//! Settlement: an SQS batch of order messages into the ledger, then the status into the status
//! store and the reservation out of the outbox.
//!
//! Each step of a batch runs in a `tracing` span named `settle.<step>` ([`STEPS`]): how long
//! each took is measured by whoever listens (`flashflow-bench settle` adds up the spans' times),
//! not by the flow itself.

use crate::domain::rehydrate::KeyHolder;
use crate::domain::settlement::replay_answer;
use crate::domain::{OrderMessage, OrderState, OrderStatus, SaleId, Settled};
use crate::metrics::{Count, Metrics};
use crate::ports::{Ledger, OrderPublisher, SettledOrders, StatusStore};
use crate::signing::{Signer, SIGNATURE_ATTRIBUTE};
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
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
    pub retry_delay: crate::settings::Millis,
}

impl crate::settings::FromEnv for SettleSettings {}

impl Default for SettleSettings {
    fn default() -> Self {
        Self {
            retry_delay: crate::settings::Millis::secs(60),
        }
    }
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
    /// Message ids reported back to SQS as failed.
    pub failed: Vec<String>,
}

impl<L: Ledger, S: StatusStore, R: SettledOrders, Q: OrderPublisher> Settler<L, S, R, Q> {
    /// `signer` checks that each message was sent by buy or the sweeper (see [`crate::signing`]);
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

    /// Settle one SQS batch. Never fails as a whole: every problem is a failed message id, so SQS
    /// redelivers exactly those (and its redrive policy moves poison messages to the DLQ).
    pub async fn handle(&self, event: SqsEvent) -> SqsBatchResponse {
        let started = std::time::Instant::now();
        let report = self.settle(event).await;
        self.metrics.add(Count::Confirmed, report.confirmed as u64);
        self.metrics.add(Count::Held, report.held as u64);
        self.metrics.add(Count::Rejected, report.rejected as u64);
        self.metrics.add(Count::Failed, report.failed.len() as u64);
        self.metrics.batch_duration(started.elapsed());
        let mut resp = SqsBatchResponse::default();
        resp.batch_item_failures = report
            .failed
            .into_iter()
            .map(|id| {
                let mut f = BatchItemFailure::default();
                f.item_identifier = id;
                f
            })
            .collect();
        resp
    }

    /// [`Settler::handle`], with the counts. The steps, in the order they run: verify each
    /// message, record the orders in the ledger, re-queue what the ledger could not take now,
    /// write the statuses, clean the outbox, report.
    pub async fn settle(&self, event: SqsEvent) -> BatchReport {
        let mut report = BatchReport::default();
        let verified = info_span!("settle.verify").in_scope(|| self.verify(event));
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

    /// Parse each message on its own and check that buy (or the sweeper) signed it, so one bad
    /// message fails alone. A message anyone else wrote is never confirmed and takes no stock: it
    /// goes back, and on to the DLQ.
    fn verify(&self, event: SqsEvent) -> Verified {
        let mut verified = Verified::default();
        for record in event.records {
            let id = record.message_id.unwrap_or_default();
            let Some(body) = record.body.as_deref() else {
                warn!(message_id = %id, "message without a body");
                verified.refused.push(id);
                continue;
            };
            let signature = record
                .message_attributes
                .get(SIGNATURE_ATTRIBUTE)
                .and_then(|a| a.string_value.as_deref());
            match OrderMessage::parse(body) {
                Ok(order) if signature.is_some_and(|sig| self.signer.verify(body, sig)) => {
                    verified.orders.push((id, order));
                }
                Ok(order) => {
                    warn!(message_id = %id, order = %order.order_id, sale = %order.sale_id,
                        signed = signature.is_some(), "order message not signed by buy: refused");
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
mod tests {
    use super::*;
    use crate::adapters::memory::{
        LedgerCounts, MemoryLedger, MemoryQueue, MemoryStatus, MemoryStore,
    };
    use crate::domain::{BuyerId, Quantity, SaleDefinition, ORDER_MESSAGE_VERSION};
    use aws_lambda_events::event::sqs::SqsMessage;

    const T0: i64 = 1_795_773_600_000;

    struct Fixture {
        settler: Settler<MemoryLedger, MemoryStatus, MemoryStore, MemoryQueue>,
        ledger: MemoryLedger,
        status: MemoryStatus,
        store: MemoryStore,
        queue: MemoryQueue,
        sale: SaleId,
    }

    fn fixture(stock: u32) -> Fixture {
        let def = SaleDefinition {
            id: SaleId::parse("s").unwrap(),
            name: "s".into(),
            stock,
            per_user_limit: 100,
            opens_at_ms: None,
            closes_at_ms: None,
            attempts_per_minute: None,
            checkout: None,
        };
        let (ledger, status) = (MemoryLedger::default(), MemoryStatus::default());
        let (queue, store) = (MemoryQueue::default(), MemoryStore::default());
        ledger.create_sale_now(&def);
        Fixture {
            settler: Settler::new(
                ledger.clone(),
                status.clone(),
                store.clone(),
                queue.clone(),
                signer(),
            ),
            ledger,
            status,
            store,
            queue,
            sale: def.id,
        }
    }

    fn order(sale: &str, at: i64) -> String {
        OrderMessage {
            v: ORDER_MESSAGE_VERSION,
            order_id: Uuid::now_v7(),
            sale_id: SaleId::parse(sale).unwrap(),
            buyer: BuyerId::parse("b").unwrap(),
            quantity: Quantity::default(),
            reserved_at_ms: T0 + at,
            idempotency_key: None,
            round: 1,
            pay_by_ms: None,
        }
        .to_json()
    }

    /// What the ledger should hold: confirmed orders, rejected orders, confirmed quantity.
    fn counts(confirmed: usize, rejected: usize, quantity: u32) -> LedgerCounts {
        LedgerCounts {
            confirmed_orders: confirmed,
            rejected_orders: rejected,
            confirmed_quantity: quantity,
        }
    }

    fn signer() -> Signer {
        Signer::new(b"unit-test-order-signing-key-0123456789").unwrap()
    }

    /// An SQS event of `bodies`, each signed with `signer()`.
    fn event(bodies: &[String]) -> (SqsEvent, Vec<String>) {
        let mut event = SqsEvent::default();
        let ids: Vec<String> = (0..bodies.len()).map(|i| format!("m{i}")).collect();
        for (b, id) in bodies.iter().zip(&ids) {
            let mut m = SqsMessage::default();
            m.message_id = Some(id.clone());
            m.body = Some(b.clone());
            let mut sig = aws_lambda_events::event::sqs::SqsMessageAttribute::default();
            sig.string_value = Some(signer().sign(b));
            sig.data_type = Some("String".into());
            m.message_attributes.insert(SIGNATURE_ATTRIBUTE.into(), sig);
            event.records.push(m);
        }
        (event, ids)
    }

    #[tokio::test]
    async fn a_message_not_signed_by_buy_is_never_confirmed_and_takes_no_stock() {
        let f = fixture(1);
        let (mut ev, ids) = event(&[order("s", 0), order("s", 1), order("s", 2)]);
        // A made-up order, unsigned; one signed with another key; and a signed body altered after.
        ev.records[0].message_attributes.clear();
        let other = Signer::new(b"someone-else's-key-0123456789abcdef").unwrap();
        let body = ev.records[1].body.clone().unwrap();
        ev.records[1]
            .message_attributes
            .get_mut(SIGNATURE_ATTRIBUTE)
            .unwrap()
            .string_value = Some(other.sign(&body));
        let sig = ev.records[2].message_attributes[SIGNATURE_ATTRIBUTE].clone();
        let (mut good, good_ids) = event(&[order("s", 3)]);
        let forged = ev.records[2]
            .body
            .clone()
            .unwrap()
            .replace("\"quantity\":1", "\"quantity\":2");
        ev.records[2].body = Some(forged);
        ev.records[2]
            .message_attributes
            .insert(SIGNATURE_ATTRIBUTE.into(), sig);
        ev.records.append(&mut good.records);
        let report = f.settler.settle(ev).await;
        assert_eq!(report.failed, ids);
        assert_eq!(report.confirmed, 1, "only the signed order of {good_ids:?}");
        assert_eq!(f.ledger.counts(&f.sale), counts(1, 0, 1));
    }

    #[tokio::test]
    async fn the_same_batch_delivered_twice_records_each_order_once() {
        let f = fixture(10);
        let bodies: Vec<String> = (0..5).map(|i| order("s", i)).collect();
        for _ in 0..2 {
            assert!(f.settler.settle(event(&bodies).0).await.failed.is_empty());
        }
        assert_eq!(f.ledger.counts(&f.sale), counts(5, 0, 5));
        assert_eq!(f.status.len(), 5);
    }

    #[tokio::test]
    async fn a_poison_message_fails_alone() {
        let f = fixture(10);
        let mut bodies: Vec<String> = (0..4).map(|i| order("s", i)).collect();
        bodies.insert(2, "not an order".into());
        let (ev, ids) = event(&bodies);
        let report = f.settler.settle(ev).await;
        assert_eq!(report.failed, vec![ids[2].clone()]);
        assert_eq!(report.confirmed, 4);
    }

    #[tokio::test]
    async fn orders_past_the_stock_are_rejected_and_unknown_sales_fail() {
        let f = fixture(1);
        let (ev, ids) = event(&[order("s", 2), order("s", 1), order("other", 0)]);
        let report = f.settler.settle(ev).await;
        assert_eq!((report.confirmed, report.rejected), (1, 1));
        assert_eq!(report.failed, vec![ids[2].clone()]);
        assert_eq!(f.ledger.counts(&f.sale), counts(1, 1, 1));
    }

    fn order_by(buyer: &str, at: i64) -> String {
        order("s", at).replace("\"buyer\":\"b\"", &format!("\"buyer\":\"{buyer}\""))
    }

    #[tokio::test]
    async fn an_order_the_ledger_refuses_fails_alone_and_the_rest_of_its_batch_settles_at_once() {
        let f = fixture(100);
        f.ledger.refuse_buyer("bad");
        let mut bodies: Vec<String> = (0..10).map(|i| order("s", i)).collect();
        bodies[6] = order_by("bad", 6);
        let (ev, ids) = event(&bodies);
        let report = f.settler.settle(ev).await;
        assert_eq!(report.failed, vec![ids[6].clone()]);
        assert_eq!((report.confirmed, report.rejected), (9, 0));
        assert_eq!(f.ledger.counts(&f.sale), counts(9, 0, 9));
        assert!(
            f.ledger.calls() <= 1 + 2 * 4,
            "bisecting 10 takes a few calls, not one per order"
        );
    }

    #[tokio::test]
    async fn two_refused_orders_in_one_batch_fail_and_only_they() {
        let f = fixture(100);
        f.ledger.refuse_buyer("bad");
        let mut bodies: Vec<String> = (0..7).map(|i| order("s", i)).collect();
        bodies[0] = order_by("bad", 0);
        bodies[5] = order_by("bad", 5);
        let (ev, ids) = event(&bodies);
        let mut failed = f.settler.settle(ev).await.failed;
        failed.sort();
        let mut want = vec![ids[0].clone(), ids[5].clone()];
        want.sort();
        assert_eq!(failed, want);
        assert_eq!(f.ledger.counts(&f.sale), counts(5, 0, 5));
    }

    #[tokio::test]
    async fn when_the_ledger_is_down_the_batch_goes_back_to_the_queue_for_later_not_to_the_dlq() {
        let f = fixture(10);
        f.ledger.set_unavailable(true);
        let bodies = [order("s", 0), order("s", 1)];
        let report = f.settler.settle(event(&bodies).0).await;
        assert_eq!((report.failed.len(), report.requeued), (0, 2));
        let later: Vec<String> = f.queue.later().into_iter().map(|(m, _)| m).collect();
        assert_eq!(later, bodies);
        assert!(f.status.is_empty());
        assert_eq!(f.ledger.calls(), 1, "an unavailable ledger is not bisected");
    }

    #[tokio::test]
    async fn when_neither_the_ledger_nor_the_queue_takes_the_batch_every_message_fails() {
        let f = fixture(10);
        f.ledger.set_unavailable(true);
        f.queue.set_unavailable(true);
        let (ev, ids) = event(&[order("s", 0), order("s", 1)]);
        let mut failed = f.settler.settle(ev).await.failed;
        failed.sort();
        assert_eq!(failed, ids);
    }

    #[tokio::test]
    async fn orders_whose_status_could_not_be_written_come_back_later_not_to_the_dlq() {
        let f = fixture(10);
        f.status.set_unavailable(true);
        let bodies = [order("s", 0)];
        let report = f.settler.settle(event(&bodies).0).await;
        assert_eq!((report.failed.len(), report.requeued), (0, 1));
        let later: Vec<String> = f.queue.later().into_iter().map(|(m, _)| m).collect();
        assert_eq!(later, bodies, "sent back for later");
        assert_eq!(
            f.ledger.counts(&f.sale),
            counts(1, 0, 1),
            "recorded once all the same"
        );
        // The store is back: the order comes again, is found recorded, and gets its status.
        f.status.set_unavailable(false);
        let report = f.settler.settle(event(&later).0).await;
        assert_eq!((report.failed.len(), report.requeued), (0, 0));
        assert_eq!(f.ledger.counts(&f.sale), counts(1, 0, 1), "still once");
        assert_eq!(f.status.len(), 1, "the status is written");
    }

    #[tokio::test]
    async fn orders_whose_outbox_entry_could_not_be_removed_come_back_and_are_cleaned_then() {
        use crate::domain::{Reservation, ReserveRequest};
        use crate::ports::ReservationStore;
        let f = fixture(10);
        f.store
            .load_sale_now(&crate::testing::contract::sale(&f.sale, 10), 10);
        let req = ReserveRequest {
            order_id: Uuid::now_v7(),
            sale: f.sale.clone(),
            buyer: BuyerId::parse("b").unwrap(),
            quantity: Quantity::default(),
            idempotency_key: None,
        };
        let Ok(Reservation::Reserved { message, .. }) = f.store.reserve(&req).await else {
            panic!("not reserved");
        };
        f.store.set_unavailable(true);
        let report = f
            .settler
            .settle(event(std::slice::from_ref(&message)).0)
            .await;
        assert_eq!((report.failed.len(), report.requeued), (0, 1));
        let later: Vec<String> = f.queue.later().into_iter().map(|(m, _)| m).collect();
        assert_eq!(later, [message], "sent back for later");
        assert_eq!(f.store.outbox(&f.sale).len(), 1, "the entry stayed");
        f.store.set_unavailable(false);
        let report = f.settler.settle(event(&later).0).await;
        assert_eq!((report.failed.len(), report.requeued), (0, 0));
        assert_eq!(f.ledger.counts(&f.sale), counts(1, 0, 1), "recorded once");
        assert!(
            f.store.outbox(&f.sale).is_empty(),
            "cleaned the second time"
        );
    }

    #[tokio::test]
    async fn when_neither_the_status_store_nor_the_queue_takes_an_order_its_message_fails() {
        let f = fixture(10);
        f.status.set_unavailable(true);
        f.queue.set_unavailable(true);
        let (ev, ids) = event(&[order("s", 0)]);
        assert_eq!(f.settler.settle(ev).await.failed, ids);
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// A valid message with one field replaced by an arbitrary JSON value, or removed.
        fn mutated() -> impl Strategy<Value = String> {
            let fields = prop::sample::select(vec![
                "v",
                "order_id",
                "sale_id",
                "buyer",
                "quantity",
                "reserved_at_ms",
                "idempotency_key",
                "round",
                "extra",
            ]);
            let value = prop_oneof![
                Just(serde_json::Value::Null),
                any::<i64>().prop_map(serde_json::Value::from),
                any::<f64>().prop_map(serde_json::Value::from),
                any::<bool>().prop_map(serde_json::Value::from),
                ".{0,300}".prop_map(serde_json::Value::from),
                Just(serde_json::json!({"nested": [1, 2]})),
            ];
            (fields, prop::option::of(value)).prop_map(|(field, value)| {
                let mut m: serde_json::Value = serde_json::from_str(&order("s", 1)).unwrap();
                match value {
                    Some(v) => m[field] = v,
                    None => {
                        m.as_object_mut().unwrap().remove(field);
                    }
                }
                m.to_string()
            })
        }

        fn body() -> impl Strategy<Value = String> {
            prop_oneof![
                mutated(),
                ".{0,2000}",
                prop::collection::vec(any::<u8>(), 0..512)
                    .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2_000))]

            /// 2,000 cases: whatever a (signed) message holds, it is recorded if it is a valid
            /// order of the sale, fails alone (reported to SQS, nothing recorded) otherwise, and
            /// the good order beside it settles in the same batch either way.
            #[test]
            fn any_message_body_is_settled_or_fails_alone_and_records_nothing(body in body()) {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                let f = fixture(10);
                let good = order("s", 0);
                let good_id = OrderMessage::parse(&good).unwrap().order_id;
                let parsed = OrderMessage::parse(&body);
                let (ev, ids) = event(&[good, body]);
                let report = rt.block_on(f.settler.settle(ev));
                prop_assert!(f.ledger.is_recorded(good_id), "the good order settles");
                match parsed {
                    Ok(order) if order.sale_id.as_str() == "s" => {
                        prop_assert!(report.failed.is_empty(), "{:?}", report.failed);
                        prop_assert!(f.ledger.is_recorded(order.order_id), "{order:?} recorded");
                        prop_assert_eq!(f.status.len(), 2);
                    }
                    _ => {
                        // Not an order, or an order of a sale the ledger does not have.
                        prop_assert_eq!(&report.failed, &vec![ids[1].clone()]);
                        prop_assert_eq!(f.ledger.counts(&f.sale), counts(1, 0, 1));
                        prop_assert_eq!(f.status.len(), 1);
                        prop_assert!(f.queue.later().is_empty());
                    }
                }
            }
        }
    }
}
