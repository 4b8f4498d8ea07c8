//! Buy, the hottest use case: admit, reserve until the outcome is known, hand the order to the
//! settlement queue, answer. The HTTP handler (`flashflow-http`'s `buy`) only translates.
//!
//! The steps, in the order they run:
//! 1. A sale with a waiting room: the admission token is checked in the process (an HMAC: no
//!    store asked). A process learns which sales need one from the reservation script's refusal.
//! 2. A sale this process knows to be sold out or closed is answered from memory, before an order
//!    id or a task is made: most of a drop's requests end here.
//! 3. The order is signed (settle confirms only what buy signed) and reserved, in a task of its
//!    own: a client that goes away must not cut a buy between the reservation and the answer.
//!    When no answer comes, the same order is asked again while the deadline allows.
//! 4. The order message goes to the queue (a failed send is the sweeper's to deliver); once sent,
//!    the outbox entry is marked, off the buyer's path.
//!
//! # Layout
//! - [`Buy`]: the use case; [`BuyOrder`] what the buyer asked; [`Bought`] and [`BuyError`] the
//!   outcome; [`BuySettings`] its timing.
//! - [`tally`]: sold-out answers counted per process for the live view.

pub mod tally;

use crate::metrics::{Count, Metrics};
use crate::waiting_room::gate::AdmissionGate;
use flashflow::domain::signing::Signer;
use flashflow::domain::{
    BuyerId, EpochMs, IdempotencyKey, OrderState, Quantity, Refusal, Reservation, ReserveRequest,
    SaleId,
};
use flashflow::ports::{
    AnswerTally, BoxError, Delivery, OrderPublisher, ReservationStore, SentMarks, StoreError,
};
use flashflow_settings::Millis;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use tally::SoldOutTally;
use tracing::{info, warn};
use uuid::Uuid;

/// Buy's timing: `OUTBOX_IN_QUEUE_MS` (the queue's retention, 4 days), `BUY_DEADLINE_MS` (3000).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct BuySettings {
    /// How long a sent message may stay in the queue unsettled (the queue's retention): until
    /// then the sweeper does not re-send the order.
    #[serde(rename = "outbox_in_queue_ms")]
    pub in_queue_for: Millis,
    /// How long a buy keeps asking the store again, with the same order id, when an answer did
    /// not come (a timeout or a broken connection). Past it the buyer gets `503 outcome_unknown`
    /// naming the order. A call already sent still ends within the store's command timeout.
    #[serde(rename = "buy_deadline_ms")]
    pub deadline: Millis,
}

impl flashflow_settings::FromEnv for BuySettings {}

impl Default for BuySettings {
    fn default() -> Self {
        Self {
            in_queue_for: flashflow::ports::IN_QUEUE_FOR.into(),
            // Three tries at Redis' default 1 s command timeout.
            deadline: Millis::secs(3),
        }
    }
}

/// What a buyer asked for, as the entry point read it.
#[derive(Debug, Clone)]
pub struct BuyOrder {
    pub sale: SaleId,
    pub buyer: BuyerId,
    pub quantity: Quantity,
    pub idempotency_key: Option<IdempotencyKey>,
    /// The `Admission-Token` the buyer sent, unchecked.
    pub admission_token: Option<String>,
}

/// What a buy did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bought {
    /// Stock was taken now: the order is pending until settled; a checkout sale's hold ends at
    /// `pay_by_ms`.
    Reserved {
        order_id: Uuid,
        pay_by_ms: Option<i64>,
    },
    /// A retry of an order reserved before (its Idempotency-Key): nothing more was taken.
    /// `state` is where it stands once settled, `None` while it is pending.
    Replayed {
        order_id: Uuid,
        state: Option<OrderState>,
    },
}

/// Why a buy took nothing, or may have.
#[derive(Debug, thiserror::Error)]
pub enum BuyError {
    /// Nothing was taken, for this reason (sold out, the buyer's limit, not admitted, …).
    #[error("refused: {0:?}")]
    Refused(Refusal),
    /// The store refused before running anything: nothing was reserved; retry.
    #[error("not reserved: {0}")]
    NotReserved(#[source] BoxError),
    /// The reservation may or may not have happened: the order is named, so the buyer can look
    /// it up (or retry with the same Idempotency-Key).
    #[error("outcome of order {order_id} unknown: {source}")]
    OutcomeUnknown {
        order_id: Uuid,
        #[source]
        source: BoxError,
    },
    /// The store answered something this code does not understand: a bug, logged.
    #[error(transparent)]
    Failed(StoreError),
    /// The buy's task ended without an answer (a panic): a bug, logged.
    #[error("buy task: {0}")]
    Internal(#[source] BoxError),
}

/// The buy use case of one process: its store, its queue, the key it signs orders with, its
/// admission gate and its memory of sold-out answers.
pub struct Buy<S, P> {
    store: S,
    publisher: P,
    signer: Signer,
    gate: AdmissionGate,
    metrics: Metrics,
    settings: BuySettings,
    tally: SoldOutTally,
}

impl<S: ReservationStore + SentMarks + AnswerTally, P: OrderPublisher> Buy<S, P> {
    /// Buys on `store` and `publisher`, each order signed with `signer`, admissions checked by
    /// `gate`, outcomes counted into `metrics` (the caller flushes them).
    pub fn new(
        store: S,
        publisher: P,
        signer: Signer,
        gate: AdmissionGate,
        metrics: Metrics,
    ) -> Self {
        Self {
            store,
            publisher,
            signer,
            gate,
            metrics,
            settings: BuySettings::default(),
            tally: SoldOutTally::default(),
        }
    }

    /// With `settings` instead of the defaults.
    #[must_use]
    pub fn with_settings(mut self, settings: BuySettings) -> Self {
        self.settings = settings;
        self
    }

    /// The metrics this use case counts into.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Buy: the answer says what happened, and only [`BuyError::OutcomeUnknown`] leaves it open
    /// (it names the order).
    ///
    /// # Errors
    /// [`BuyError`].
    pub async fn buy(self: &Arc<Self>, order: BuyOrder) -> Result<Bought, BuyError> {
        let admission = match self.gate.check(
            &order.sale,
            &order.buyer,
            order.admission_token.as_deref(),
            order.idempotency_key.is_some(),
            EpochMs::now().get(),
        ) {
            Ok(admission) => admission,
            Err(why) => {
                self.metrics.add(Count::NotAdmitted, 1);
                info!(sale = %order.sale, reason = %why, "not admitted");
                return Err(BuyError::Refused(Refusal::NotAdmitted));
            }
        };
        if let Some(refusal) = self.store.refusal_from_memory(
            &order.sale,
            &order.buyer,
            order.idempotency_key.as_ref(),
        ) {
            return Err(self.refused(&order.sale, refusal));
        }
        let mut request = ReserveRequest {
            order_id: Uuid::now_v7(),
            sale: order.sale,
            buyer: order.buyer,
            quantity: order.quantity,
            idempotency_key: order.idempotency_key,
            admission,
            signature: None,
        };
        request.signature = Some(self.signer.sign_order(&request));
        let this = Arc::clone(self);
        tokio::spawn(async move { this.reserve_and_deliver(request).await })
            .await
            .map_err(|e| BuyError::Internal(Box::new(e)))?
    }

    async fn reserve_and_deliver(
        self: Arc<Self>,
        request: ReserveRequest,
    ) -> Result<Bought, BuyError> {
        let reservation = match self.reserve_until_known(&request).await {
            Ok(r) => r,
            Err(e) => {
                if matches!(
                    e,
                    BuyError::NotReserved(_) | BuyError::OutcomeUnknown { .. }
                ) {
                    self.metrics.add(Count::Unavailable, 1);
                }
                return Err(e);
            }
        };
        match reservation {
            Reservation::Reserved {
                order_id,
                message,
                pay_by_ms,
            } => {
                self.metrics.add(Count::Accepted, 1);
                if request.admission.is_some() {
                    self.metrics.add(Count::AdmissionUsed, 1);
                }
                self.deliver(&request.sale, order_id, &message).await;
                info!(sale = %request.sale, order = %order_id, quantity = request.quantity.get(), "reserved");
                Ok(Bought::Reserved {
                    order_id,
                    pay_by_ms,
                })
            }
            Reservation::Duplicate { order_id, state } => {
                info!(sale = %request.sale, order = %order_id, "idempotent replay");
                Ok(Bought::Replayed { order_id, state })
            }
            Reservation::Refused(r) => Err(self.refused(&request.sale, r)),
        }
    }

    /// Reserve, and when no answer came (the script may or may not have run), ask again with the
    /// same order id while the deadline allows: the store answers a second run of an order with
    /// the first run's result, so asking again is safe and tells what happened.
    async fn reserve_until_known(&self, request: &ReserveRequest) -> Result<Reservation, BuyError> {
        let until = tokio::time::Instant::now() + self.settings.deadline.get();
        let mut in_doubt = false;
        loop {
            match self.store.reserve(request).await {
                Ok(r) => return Ok(r),
                Err(e @ StoreError::Failed(_)) if !in_doubt => return Err(BuyError::Failed(e)),
                Err(StoreError::Unavailable(e)) if !in_doubt => {
                    return Err(BuyError::NotReserved(e))
                }
                Err(e) => {
                    in_doubt = true;
                    if tokio::time::Instant::now() >= until {
                        warn!(sale = %request.sale, order = %request.order_id, error = %e,
                            "reservation outcome unknown at the deadline");
                        return Err(BuyError::OutcomeUnknown {
                            order_id: request.order_id,
                            source: Box::new(e),
                        });
                    }
                    warn!(sale = %request.sale, order = %request.order_id, error = %e,
                        "no answer from the store: asking again for the same order");
                    // A short pause: a store that refuses at once is not asked in a tight loop.
                    tokio::time::sleep(RETRY_PAUSE.min(until - tokio::time::Instant::now())).await;
                }
            }
        }
    }

    /// Hand the order to the queue. A failed send is not the buyer's problem: the reservation is
    /// in the outbox and the sweeper delivers it.
    async fn deliver(self: &Arc<Self>, sale: &SaleId, order_id: Uuid, message: &str) {
        match self.publisher.publish_order(sale, order_id, message).await {
            // The relay marks what it sends itself.
            Ok(Delivery::Relayed) => {}
            Ok(Delivery::Sent) => {
                // Tell the sweeper the message is in the queue, off the buyer's path: if this
                // mark is lost, the sweeper re-sends once after its grace, which settle absorbs.
                let (this, sale) = (Arc::clone(self), sale.clone());
                tokio::spawn(async move {
                    let until = EpochMs::now().plus(this.settings.in_queue_for.get());
                    if let Err(e) = this.store.mark_sent(&sale, &[order_id], until).await {
                        warn!(sale = %sale, order = %order_id, error = %e, "could not mark as sent");
                    }
                });
            }
            Err(e) => {
                warn!(sale = %sale, order = %order_id, error = %e, "send failed, left in outbox");
            }
        }
    }

    /// A refusal, counted (and a sold-out one tallied for the live view).
    fn refused(self: &Arc<Self>, sale: &SaleId, refusal: Refusal) -> BuyError {
        match refusal {
            Refusal::SoldOut => {
                self.metrics.add(Count::SoldOut, 1);
                if let Some(batch) = self.tally.count(sale) {
                    let this = Arc::clone(self);
                    tokio::spawn(async move {
                        if let Err(e) = this.store.add_sold_out(&batch).await {
                            warn!(error = %e, "sold-out tally lost (it feeds the live view only)");
                        }
                    });
                }
            }
            Refusal::LimitReached { .. } => self.metrics.add(Count::LimitReached, 1),
            Refusal::NotAdmitted | Refusal::AdmissionUsed { .. } => {
                // The script knows the sale has a waiting room: from now on this process does too.
                self.gate.learn(sale);
                self.metrics.add(Count::NotAdmitted, 1);
            }
            _ => {}
        }
        BuyError::Refused(refusal)
    }
}

/// The pause between two asks of `reserve_until_known`.
const RETRY_PAUSE: Duration = Duration::from_millis(50);

#[cfg(test)]
mod tests {
    use super::*;
    use flashflow::domain::{OrderMessage, SaleDefinition};
    use flashflow_adapters::contract::fresh_sale_id;
    use flashflow_adapters::memory::{MemoryQueue, MemoryStore};

    fn signer() -> Signer {
        Signer::new(b"buy-use-case-tests-signing-key-0123456").unwrap()
    }

    fn order(sale: &SaleId, buyer: &str, token: Option<&str>) -> BuyOrder {
        BuyOrder {
            sale: sale.clone(),
            buyer: BuyerId::parse(buyer).unwrap(),
            quantity: Quantity::default(),
            idempotency_key: None,
            admission_token: token.map(str::to_owned),
        }
    }

    fn buy_on(store: &MemoryStore, queue: &MemoryQueue) -> Arc<Buy<MemoryStore, MemoryQueue>> {
        Arc::new(Buy::new(
            store.clone(),
            queue.clone(),
            signer(),
            AdmissionGate::default(),
            Metrics::new("buy"),
        ))
    }

    #[tokio::test]
    async fn the_order_sent_to_the_queue_carries_buys_signature_of_it() {
        let (store, queue) = (MemoryStore::default(), MemoryQueue::default());
        let def = SaleDefinition::new(fresh_sale_id(), 5);
        store.load_sale_now(&def, 5);
        let bought = buy_on(&store, &queue)
            .buy(order(&def.id, "ann", None))
            .await;
        assert!(matches!(bought, Ok(Bought::Reserved { .. })), "{bought:?}");
        let sent = OrderMessage::parse(&queue.sent()[0]).unwrap();
        assert!(
            signer().verifies_order(&sent),
            "signed once, by the use case"
        );
        let other = Signer::new(b"another-key-that-settle-does-not-hold").unwrap();
        assert!(!other.verifies_order(&sent));
    }

    #[tokio::test]
    async fn a_forged_admission_token_is_refused_before_the_store_is_asked() {
        let (store, queue) = (MemoryStore::default(), MemoryQueue::default());
        let def = SaleDefinition::new(fresh_sale_id(), 5);
        store.load_sale_now(&def, 5);
        // Were the store asked, it would answer unavailable.
        store.set_unavailable(true);
        let bought = buy_on(&store, &queue)
            .buy(order(&def.id, "ann", Some("forged")))
            .await;
        assert!(
            matches!(bought, Err(BuyError::Refused(Refusal::NotAdmitted))),
            "{bought:?}"
        );
    }

    #[tokio::test]
    async fn once_the_store_says_a_sale_needs_an_admission_the_process_refuses_tokenless_buys_itself(
    ) {
        let (store, queue) = (MemoryStore::default(), MemoryQueue::default());
        let now = EpochMs::now().get();
        let def = SaleDefinition::new(fresh_sale_id(), 5).with_waiting_room(
            flashflow::domain::waiting_room::WaitingRoom {
                opens_at_ms: now - 60_000,
                admission_seconds: 60,
                admit_per_second: None,
                pow_bits: 0,
                entry: None,
            },
        );
        store.load_sale_now(&def, 5);
        let buy = buy_on(&store, &queue);
        let first = buy.buy(order(&def.id, "ann", None)).await;
        assert!(matches!(
            first,
            Err(BuyError::Refused(Refusal::NotAdmitted))
        ));
        store.set_unavailable(true);
        let second = buy.buy(order(&def.id, "bob", None)).await;
        assert!(
            matches!(second, Err(BuyError::Refused(Refusal::NotAdmitted))),
            "learned: the store is not asked again ({second:?})"
        );
    }
}
