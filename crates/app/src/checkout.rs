//! Checkout: paying for a held order through the payment provider, cancelling it, expiring it,
//! and carrying each change everywhere (units back in Redis, the status in the read model)
//! exactly once.
//!
//! The rules are [`flashflow::domain::checkout::on`]; the ledger ([`Holds`]) makes each change once,
//! whoever asks first; the provider ([`Payments`], Stripe in production) says whether a payment
//! happened (a signed webhook, or the intent as it holds it when it is cancelled), never the
//! client.
//!
//! # Layout
//! - [`Checkout::pay`]: the order's one PaymentIntent (created once, whatever the retries).
//! - [`Checkout::cancel`] and [`Checkout::expire_due`]: end a hold, the intent cancelled first.
//! - [`Checkout::on_event`]: a verified provider event (`payment_intent.succeeded`).
//! - [`Checkout::finish`] and [`Checkout::finish_unfinished`]: what follows a change (units back
//!   in Redis, the status written); the expiry job finishes what a crash left half done.

use crate::metrics::{Count, Metrics};
use flashflow::domain::checkout::{on, Effect, Event, Hold, HoldRefusal, IntentCancel, Outcome};
use flashflow::domain::{BuyerId, EpochMs, OrderState};
use flashflow::ports::{
    Attached, Cancelled, DbError, EventKind, HoldRecord, Holds, Intent, IntentState, NewIntent,
    PaymentError, PaymentEvent, Payments, PendingOrders, ReturnStock, Returned, StatusStore,
    StoreError,
};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};
use uuid::Uuid;

/// How many times a change is tried when another one got to the order first (re-read, decide
/// again): each try sees a later state, and a hold has at most three.
const TRIES: usize = 3;
/// Orders one expiry read takes, per kind of work.
const PAGE: usize = 200;
/// Pages one expiry run works through at most, per kind of work (a run in Lambda must end well
/// within its timeout; the next run, a minute later, goes on).
const PAGES_PER_RUN: usize = 25;
/// How long an order whose expiry or follow-up could not be done now waits before it is tried
/// again, out of the way of the others.
pub const RETRY_AFTER_MS: i64 = 60_000;
/// A hold still held this long past its `pay_by` is overdue: the expiry job (every minute)
/// should have ended it; counted as `HoldsOverdue`, which raises an alarm.
pub const OVERDUE_AFTER_MS: i64 = 120_000;

/// Why a checkout request was not done. Each maps to one HTTP answer in `api::checkout`.
#[derive(Debug, thiserror::Error)]
pub enum CheckoutError {
    /// No such checkout order for this buyer (someone else's looks the same).
    #[error("no such order")]
    NotFound,
    /// Reserved, but settlement has not recorded the hold yet: ask again shortly.
    #[error("the order is not recorded yet")]
    Pending,
    /// The order stands where this cannot be done.
    #[error("refused: {0:?}")]
    Refused(HoldRefusal),
    /// The buyer cancelled the order.
    #[error("the order was cancelled")]
    OrderCancelled,
    /// Settlement refused the order (past the stock or the limit), or it is a duplicate.
    #[error("the order was not accepted")]
    NotAccepted,
    /// The provider is processing a payment for it: its outcome decides; ask again shortly.
    #[error("a payment is being processed")]
    PaymentProcessing,
    #[error(transparent)]
    Payment(#[from] PaymentError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// `POST /orders/{id}/payment`'s answer: what the buyer's page needs to pay.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Payment {
    pub order_id: Uuid,
    pub payment_intent: String,
    pub client_secret: String,
    /// Minor units: the sale's price × the order's quantity.
    pub amount: i64,
    pub currency: String,
    /// RFC 3339.
    #[schema(format = DateTime)]
    pub pay_by: String,
}

/// What one expiry run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ExpiryReport {
    pub expired: usize,
    /// Found paid at the provider (the webhook had not arrived): confirmed.
    pub confirmed: usize,
    /// Tried and left for a later run (the provider unreachable, a payment being processed): each
    /// waits [`RETRY_AFTER_MS`] out of the way of the others.
    pub deferred: usize,
    /// Changes carried out that a crash had left half done.
    pub finished: usize,
    /// Holds still held [`OVERDUE_AFTER_MS`] past their `pay_by` after this run.
    pub overdue: u64,
}

/// What [`Checkout::end`] did to a hold.
enum Ended {
    /// This call moved it; here it is after.
    Moved(HoldRecord),
    /// The payment provider cannot say yet whether it was paid (a payment is processing): it
    /// stays held, and is decided later.
    Undecided,
    /// It already stood elsewhere (someone else moved it first): nothing done.
    Stands(HoldRecord),
}

/// Checkout's work, on the ledger's holds (`H`), the reservation store (`R`: returns, and the
/// outbox to tell a pending order), the status read model (`S`) and the payment provider (`P`).
pub struct Checkout<H, R, S, P> {
    pub holds: H,
    pub store: R,
    pub status: S,
    pub payments: P,
    pub metrics: Metrics,
}

impl<H: Holds, R: ReturnStock + PendingOrders, S: StatusStore, P: Payments> Checkout<H, R, S, P> {
    /// The buyer's held order's one intent: created on the first call (the provider's own
    /// idempotency key is derived from the order id), the same one on every later call.
    ///
    /// # Errors
    /// [`CheckoutError`]: not the buyer's, not recorded yet, not held any more, or a dependency
    /// failed (nothing changed that a retry does not find).
    pub async fn pay(&self, order_id: Uuid, buyer: &BuyerId) -> Result<Payment, CheckoutError> {
        let hold = self.buyers_hold(order_id, buyer).await?;
        self.still_payable(&hold)?;
        let intent = match &hold.payment_intent {
            Some(pi) => self.payments.intent(pi).await?,
            None => {
                let created = self.create_intent_once(&hold).await?;
                match self.holds.attach_intent(order_id, &created.id).await? {
                    Attached::Held(pi) if pi == created.id => created,
                    Attached::Held(pi) => {
                        // Another request attached its intent first: that one is the order's.
                        self.cancel_stray(&created.id).await;
                        self.payments.intent(&pi).await?
                    }
                    Attached::NotHeld(now) => {
                        // The hold ended meanwhile (expired, cancelled): nothing may be paid.
                        self.cancel_stray(&created.id).await;
                        self.still_payable(&now)?;
                        return Err(CheckoutError::Refused(HoldRefusal::HoldExpired));
                    }
                }
            }
        };
        Ok(Payment {
            order_id,
            client_secret: intent.client_secret.unwrap_or_default(),
            payment_intent: intent.id,
            amount: intent.amount,
            currency: intent.currency,
            pay_by: flashflow::domain::timefmt::format_ms(
                hold.status.pay_by_ms.unwrap_or_default(),
            ),
        })
    }

    /// The buyer cancels their held order: its intent is cancelled at the provider first, then the
    /// order is `CANCELLED` and its units go back at once. Cancelling again answers the same.
    ///
    /// # Errors
    /// [`CheckoutError`]: `Refused(AlreadyPaid)` when the provider says it was paid (it is confirmed
    /// then), `Refused(HoldExpired)`, or a dependency failed (nothing ended).
    pub async fn cancel(
        &self,
        order_id: Uuid,
        buyer: &BuyerId,
    ) -> Result<HoldRecord, CheckoutError> {
        let hold = self.buyers_hold(order_id, buyer).await?;
        let ended = match self.end(hold, OrderState::Cancelled).await? {
            Ended::Undecided => return Err(CheckoutError::PaymentProcessing),
            Ended::Moved(h) | Ended::Stands(h) => h,
        };
        match ended.status.status {
            OrderState::Cancelled => Ok(ended),
            OrderState::Confirmed | OrderState::Refunded => {
                Err(CheckoutError::Refused(HoldRefusal::AlreadyPaid))
            }
            OrderState::Expired => Err(CheckoutError::Refused(HoldRefusal::HoldExpired)),
            OrderState::Held => Err(CheckoutError::PaymentProcessing),
            _ => Err(CheckoutError::NotAccepted),
        }
    }

    /// The expiry job's run at `now`: every hold past `pay_by` ends (its intent cancelled at
    /// the provider first; found paid, it is confirmed instead), and every change a crash left
    /// half done is finished. Two runs at once do each change once. A hold that cannot be ended
    /// now (the provider unreachable, a payment processing) is counted, and waits
    /// [`RETRY_AFTER_MS`] out of the way, so however many are stuck the others still end.
    ///
    /// # Errors
    /// [`DbError`] when the ledger cannot be read; per-order failures are deferred, not errors.
    pub async fn expire_due(&self, now: EpochMs) -> Result<ExpiryReport, DbError> {
        let mut report = ExpiryReport::default();
        for _ in 0..PAGES_PER_RUN {
            let due = self.holds.due(now, PAGE).await?;
            let last_page = due.len() < PAGE;
            for hold in due {
                let id = hold.status.order_id;
                match self.end(hold, OrderState::Expired).await {
                    Ok(Ended::Moved(h)) if h.status.status == OrderState::Expired => {
                        report.expired += 1
                    }
                    Ok(Ended::Moved(_)) => report.confirmed += 1,
                    // Another run (or the buyer, or the webhook) moved it first.
                    Ok(Ended::Stands(_)) => {}
                    Ok(Ended::Undecided) => self.defer(id, now, &mut report).await,
                    Err(e) => {
                        warn!(order = %id, error = %e, "expiry deferred");
                        self.defer(id, now, &mut report).await;
                    }
                }
            }
            if last_page {
                break;
            }
        }
        self.metrics
            .add(Count::ExpiryDeferred, report.deferred as u64);
        report.finished = self.finish_unfinished(now).await?;
        report.overdue = self
            .holds
            .overdue(EpochMs(now.get() - OVERDUE_AFTER_MS))
            .await?;
        self.metrics.add(Count::HoldsOverdue, report.overdue);
        if report != ExpiryReport::default() {
            info!(
                expired = report.expired,
                confirmed = report.confirmed,
                deferred = report.deferred,
                finished = report.finished,
                overdue = report.overdue,
                "expiry run"
            );
        }
        Ok(report)
    }

    /// Count a hold that could not be ended now and move it out of the way until
    /// [`RETRY_AFTER_MS`] from `now`. Should the mark fail, the next run tries it first again:
    /// it was counted, and the alarm on overdue holds says so if it lasts.
    async fn defer(&self, id: Uuid, now: EpochMs, report: &mut ExpiryReport) {
        report.deferred += 1;
        if let Err(e) = self
            .holds
            .defer(id, EpochMs(now.get() + RETRY_AFTER_MS))
            .await
        {
            warn!(order = %id, error = %e, "could not defer the hold");
        }
    }

    /// A verified provider event. `payment_intent.succeeded` confirms the order it pays for while
    /// held; after its hold ended (or for an intent that is not the order's one) the payment is
    /// refunded and the order, if it ended, is `REFUNDED`. Other events change nothing
    /// (`payment_intent.payment_failed` leaves the hold: the buyer may try again).
    ///
    /// # Errors
    /// [`CheckoutError`] when a dependency failed: the sender should deliver the event again.
    pub async fn on_event(&self, event: &PaymentEvent) -> Result<(), CheckoutError> {
        if let EventKind::Other(kind) = &event.kind {
            info!(event = %event.id, kind = %kind, "payment event: nothing to do");
            return Ok(());
        }
        let Some(pi) = event.intent.as_deref() else {
            warn!(event = %event.id, "payment_intent.succeeded without an intent id");
            return Ok(());
        };
        let Some(order_id) = event.order_id else {
            info!(event = %event.id, intent = pi, "a payment that is not for an order: ignored");
            return Ok(());
        };
        for _ in 0..TRIES {
            let Some(hold) = self.holds.hold(order_id).await? else {
                // Not an order of this ledger (another environment on the same provider account
                // sees the same events): not ours to refund.
                info!(order = %order_id, intent = pi, "payment for an order not here: ignored");
                return Ok(());
            };
            let Some(now) = as_hold(hold.status.status) else {
                return self.refund_stray(order_id, pi).await;
            };
            let ours = hold.payment_intent.as_deref() == Some(pi);
            if !ours && matches!(now, Hold::Held | Hold::Confirmed | Hold::Refunded) {
                // Not the order's one intent (one a lost race created): the buyer must not keep
                // a second charge; the order goes on with its own.
                return self.refund_stray(order_id, pi).await;
            }
            let (to, refund) = match on(now, Event::PaymentSucceeded) {
                Outcome::Move { to, effect } => (to, effect == Some(Effect::Refund)),
                // Already done (a repeated event): make sure the read model shows it.
                Outcome::Stay | Outcome::Refuse(_) => {
                    if !hold.status_written {
                        self.finish(&hold).await;
                    }
                    return Ok(());
                }
            };
            if refund {
                // Paid after the hold ended: the units went to someone else; the money goes back.
                self.payments.refund(pi, &refund_key(pi)).await?;
            }
            let moved = self
                .holds
                .move_order(
                    order_id,
                    hold.status.status,
                    state_of(to),
                    hold.payment_intent.as_deref(),
                    Some(pi),
                )
                .await?;
            if let Some(moved) = moved {
                self.count(moved.status.status);
                info!(order = %order_id, intent = pi, status = moved.status.status.as_str(), "payment recorded");
                self.finish(&moved).await;
                return Ok(());
            }
        }
        Err(DbError::Raced {
            what: format!("order {order_id}"),
        }
        .into())
    }

    /// Refund a payment for an order that cannot take it (none here, or paid through another
    /// intent than the order's): once per payment (the provider's idempotency key).
    async fn refund_stray(&self, order_id: Uuid, pi: &str) -> Result<(), CheckoutError> {
        warn!(order = %order_id, intent = pi, "payment for no held order: refunded");
        self.payments.refund(pi, &refund_key(pi)).await?;
        self.metrics.add(Count::Refunded, 1);
        Ok(())
    }

    /// Carry a change everywhere: an ended hold's units back in Redis (once: the script keeps
    /// which orders came back), then the status in the read model. What fails stays marked in the
    /// ledger for the next expiry run.
    pub async fn finish(&self, hold: &HoldRecord) {
        let id = hold.status.order_id;
        let mut returned = hold.stock_returned;
        if !returned {
            match self.store.return_stock(hold).await {
                Ok(Returned::Now | Returned::Before) => returned = true,
                Ok(Returned::NotLoaded) => {
                    warn!(order = %id, sale = %hold.status.sale_id, "sale not in redis: return deferred")
                }
                Err(e) => warn!(order = %id, error = %e, "return deferred"),
            }
        }
        let written = match self.status.put_newer(&hold.status).await {
            Ok(()) => Some(hold.status.status),
            Err(e) => {
                warn!(order = %id, error = %e, "status write deferred");
                None
            }
        };
        if returned != hold.stock_returned || written.is_some() {
            if let Err(e) = self.holds.finished(id, returned, written).await {
                // Done twice at worst next time: both steps are idempotent.
                warn!(order = %id, error = %e, "could not record the follow-up as done");
            }
        }
        if !returned || written.is_none() {
            // Out of the way of the others until then: a sale Redis lost, a store away.
            let later = EpochMs(EpochMs::now().get() + RETRY_AFTER_MS);
            if let Err(e) = self.holds.defer(id, later).await {
                warn!(order = %id, error = %e, "could not defer the follow-up");
            }
        }
    }

    /// Finish every change a crash (or an outage) left half done, as of `now`; returns how
    /// many were seen.
    ///
    /// # Errors
    /// [`DbError`] when the ledger cannot be read.
    pub async fn finish_unfinished(&self, now: EpochMs) -> Result<usize, DbError> {
        let mut seen = 0;
        for _ in 0..PAGES_PER_RUN {
            let todo = self.holds.unfinished(now, PAGE).await?;
            for hold in &todo {
                self.finish(hold).await;
            }
            seen += todo.len();
            if todo.len() < PAGE {
                break;
            }
        }
        Ok(seen)
    }

    /// End a hold (`ended`: `CANCELLED` or `EXPIRED`): cancel its intent at the provider, then
    /// move it as [`on`] says, and carry the move out.
    async fn end(&self, mut hold: HoldRecord, ended: OrderState) -> Result<Ended, CheckoutError> {
        for _ in 0..TRIES {
            let Some(now) = as_hold(hold.status.status) else {
                return Err(CheckoutError::NotAccepted);
            };
            let intent = if now == Hold::Held {
                self.cancel_intent(hold.payment_intent.as_deref()).await?
            } else {
                IntentCancel::None
            };
            let event = if ended == OrderState::Cancelled {
                Event::BuyerCancels { intent }
            } else {
                Event::HoldRanOut { intent }
            };
            let to = match on(now, event) {
                Outcome::Move { to, .. } => to,
                Outcome::Stay if intent == IntentCancel::Unknown => return Ok(Ended::Undecided),
                Outcome::Stay | Outcome::Refuse(_) => return Ok(Ended::Stands(hold)),
            };
            let id = hold.status.order_id;
            match self
                .holds
                .move_order(
                    id,
                    hold.status.status,
                    state_of(to),
                    hold.payment_intent.as_deref(),
                    None,
                )
                .await?
            {
                Some(moved) => {
                    self.count(moved.status.status);
                    info!(order = %id, status = moved.status.status.as_str(), "hold ended");
                    self.finish(&moved).await;
                    return Ok(Ended::Moved(moved));
                }
                // Moved meanwhile, or an intent was attached: look again.
                None => {
                    hold = self.holds.hold(id).await?.ok_or(CheckoutError::NotFound)?;
                }
            }
        }
        Ok(Ended::Stands(hold))
    }

    /// Cancel the order's intent at the provider and say what that means for the order.
    async fn cancel_intent(&self, intent: Option<&str>) -> Result<IntentCancel, CheckoutError> {
        let Some(pi) = intent else {
            return Ok(IntentCancel::None);
        };
        Ok(match self.payments.cancel_intent(pi).await? {
            Cancelled::Canceled(_) => IntentCancel::Cancelled,
            Cancelled::NotCancellable(i) if i.state == IntentState::Paid => IntentCancel::Succeeded,
            Cancelled::NotCancellable(_) => IntentCancel::Unknown,
        })
    }

    /// The buyer's checkout order, or why there is none to act on.
    async fn buyers_hold(
        &self,
        order_id: Uuid,
        buyer: &BuyerId,
    ) -> Result<HoldRecord, CheckoutError> {
        match self.holds.hold(order_id).await? {
            Some(h) if &h.status.buyer == buyer => Ok(h),
            Some(_) => Err(CheckoutError::NotFound),
            None => match self.store.find_pending(order_id).await? {
                Some(o) if &o.buyer == buyer && o.pay_by_ms.is_some() => {
                    Err(CheckoutError::Pending)
                }
                _ => Err(CheckoutError::NotFound),
            },
        }
    }

    /// Whether the order may still be paid: held and before `pay_by`.
    fn still_payable(&self, hold: &HoldRecord) -> Result<(), CheckoutError> {
        match hold.status.status {
            OrderState::Held
                if hold.status.pay_by_ms.unwrap_or_default()
                    > flashflow::domain::EpochMs::now().get() =>
            {
                Ok(())
            }
            OrderState::Held | OrderState::Expired => {
                Err(CheckoutError::Refused(HoldRefusal::HoldExpired))
            }
            OrderState::Confirmed | OrderState::Refunded => {
                Err(CheckoutError::Refused(HoldRefusal::AlreadyPaid))
            }
            OrderState::Cancelled => Err(CheckoutError::OrderCancelled),
            _ => Err(CheckoutError::NotAccepted),
        }
    }

    /// [`Checkout::create_intent`], waiting out another request for the same order that is
    /// creating it right now (the provider answers `InProgress` for the same idempotency key):
    /// once it is done, asking again answers that request's intent, so concurrent payments of one
    /// order get one intent. Past about a second, `PaymentProcessing` (the client retries).
    async fn create_intent_once(&self, hold: &HoldRecord) -> Result<Intent, CheckoutError> {
        let mut pause = std::time::Duration::from_millis(25);
        for _ in 0..6 {
            match self.create_intent(hold).await {
                Err(CheckoutError::Payment(PaymentError::InProgress)) => {
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
                other => return other,
            }
        }
        Err(CheckoutError::PaymentProcessing)
    }

    async fn create_intent(&self, hold: &HoldRecord) -> Result<Intent, CheckoutError> {
        let o = &hold.status;
        let intent = NewIntent {
            amount: (hold.price * u64::from(o.quantity)) as i64,
            currency: &hold.currency,
            order_id: o.order_id,
            sale: &o.sale_id,
        };
        Ok(self
            .payments
            .create_intent(&intent, &format!("ff-intent-{}", o.order_id))
            .await?)
    }

    /// Cancel an intent that is not the order's (best effort: nobody has its client secret, so
    /// nobody can pay it; a payment on it would be refunded by [`Checkout::on_event`]).
    async fn cancel_stray(&self, pi: &str) {
        if let Err(e) = self.payments.cancel_intent(pi).await {
            warn!(intent = pi, error = %e, "could not cancel a stray intent");
        }
    }

    fn count(&self, state: OrderState) {
        let c = match state {
            OrderState::Confirmed => Count::Paid,
            OrderState::Expired => Count::Expired,
            OrderState::Cancelled => Count::Cancelled,
            OrderState::Refunded => Count::Refunded,
            _ => return,
        };
        self.metrics.add(c, 1);
    }
}

/// The refund's idempotency key: one refund per payment.
fn refund_key(pi: &str) -> String {
    format!("ff-refund-{pi}")
}

/// The checkout rules' view of an order state (`None`: not a checkout state).
fn as_hold(s: OrderState) -> Option<Hold> {
    Some(match s {
        OrderState::Held => Hold::Held,
        OrderState::Confirmed => Hold::Confirmed,
        OrderState::Expired => Hold::Expired,
        OrderState::Cancelled => Hold::Cancelled,
        OrderState::Refunded => Hold::Refunded,
        _ => return None,
    })
}

fn state_of(h: Hold) -> OrderState {
    match h {
        Hold::Held => OrderState::Held,
        Hold::Confirmed => OrderState::Confirmed,
        Hold::Expired => OrderState::Expired,
        Hold::Cancelled => OrderState::Cancelled,
        Hold::Refunded => OrderState::Refunded,
    }
}

#[cfg(test)]
#[path = "checkout_tests.rs"]
mod tests;
