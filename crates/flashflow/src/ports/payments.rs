//! Payments: the provider that takes a checkout order's money (an adapter per provider; one in
//! memory for unit tests). What the provider says is the only word on whether a buyer paid: an
//! intent read back from it, or an event whose signature it vouches for, never the client. The
//! port speaks FlashFlow's terms; each provider's wire format stays in its adapter.
//!
//! Each trait says one thing; [`Payments`] is all of them, for the use case that needs them all
//! (`flashflow_app::checkout`).

use super::BoxError;
use crate::domain::SaleId;
use std::future::Future;
use uuid::Uuid;

/// Why a call to the payment provider did not give its answer.
#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    /// The provider could not be reached, did not answer in time, or answered 429 or 5xx. A
    /// create or refund may have happened: repeat it with the same idempotency key.
    #[error("payment provider unavailable: {0}")]
    Unavailable(#[source] BoxError),
    /// Another request with the same idempotency key is being processed right now: repeating it
    /// shortly answers what that one did.
    #[error("a request with the same idempotency key is in progress")]
    InProgress,
    /// The provider answered that it will not do this, with its error code and message.
    #[error("payment provider refused ({status}): {message}")]
    Refused {
        status: u16,
        code: Option<String>,
        message: String,
    },
    /// The settings are unusable, or the answer could not be read.
    #[error("payment provider client: {0}")]
    Failed(#[source] BoxError),
}

/// Where an intent stands at the provider, in the terms checkout decides by (each adapter maps
/// its provider's own states onto these).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntentState {
    /// Waiting for the buyer: a payment method, a confirmation, an action at their bank.
    AwaitingBuyer,
    /// A payment is under way (being processed, or authorized and being captured), or the
    /// provider says something this code does not know: its outcome decides; ask again later.
    Processing,
    /// The buyer's money was taken.
    Paid,
    /// Cancelled: no payment can complete any more.
    Canceled,
}

/// One payment of one order at the provider (an intent): what checkout reads of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intent {
    /// The provider's id.
    pub id: String,
    pub state: IntentState,
    /// Minor units of `currency`.
    pub amount: i64,
    pub currency: String,
    /// What the buyer's page confirms the payment with; absent when the provider does not say.
    pub client_secret: Option<String>,
    /// The order it was made for, as recorded with it at creation.
    pub order_id: Option<Uuid>,
}

/// A new intent: `amount` in minor units of `currency`, for `order_id` of `sale`.
#[derive(Debug, Clone)]
pub struct NewIntent<'a> {
    pub amount: i64,
    pub currency: &'a str,
    pub order_id: Uuid,
    pub sale: &'a SaleId,
}

/// What [`CancelIntent::cancel_intent`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cancelled {
    /// The intent is canceled (now, or before): no payment can complete any more.
    Canceled(Intent),
    /// The provider would not cancel it; here it is as the provider holds it now (`Paid`: it
    /// was paid; `Processing`: a payment is under way).
    NotCancellable(Intent),
}

/// A refund as the provider recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refund {
    /// The provider's id.
    pub id: String,
    pub state: RefundState,
    /// Minor units given back.
    pub amount: i64,
}

/// Where a refund stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefundState {
    /// The money is on its way back to the buyer.
    Succeeded,
    /// The provider is still working on it (or waits for an action).
    Pending,
    /// The provider could not give the money back (failed, or canceled).
    Failed,
}

/// A provider's event, once its signature checked out: what happened, to which intent, for which
/// order (the intent's `order_id` metadata, when it has one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentEvent {
    /// The provider's event id (for logs).
    pub id: String,
    pub kind: EventKind,
    /// The intent it is about, when it is about one.
    pub intent: Option<String>,
    pub order_id: Option<Uuid>,
}

/// The events checkout acts on; every other kind is [`EventKind::Other`], and changes nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// The intent's money was taken.
    PaymentSucceeded,
    /// Any other event, with the provider's name for it.
    Other(String),
}

/// Why a webhook was not believed. Each is answered `400` and changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// The signature is missing, malformed, stale or wrong.
    #[error("{0}")]
    Signature(String),
    /// Signed, but not an event this code can read.
    #[error("not a payment event")]
    NotAnEvent,
}

/// Create an intent.
pub trait CreateIntent: Send + Sync + 'static {
    /// Create an intent, once per `idempotency_key` (a repeat answers the first intent).
    ///
    /// # Errors
    /// [`PaymentError`]; after `Unavailable` the intent may exist: repeat with the same key.
    fn create_intent(
        &self,
        intent: &NewIntent<'_>,
        idempotency_key: &str,
    ) -> impl Future<Output = Result<Intent, PaymentError>> + Send;
}

/// Read an intent back.
pub trait ReadIntent: Send + Sync + 'static {
    /// The intent as the provider holds it now.
    ///
    /// # Errors
    /// [`PaymentError`]; `Refused` with status 404 for an intent the provider does not have.
    fn intent(&self, id: &str) -> impl Future<Output = Result<Intent, PaymentError>> + Send;
}

/// Cancel an intent.
pub trait CancelIntent: Send + Sync + 'static {
    /// Cancel the intent so that no payment can complete; when the provider will not (it was
    /// paid, or a payment is being processed), the intent as it holds it now says why.
    ///
    /// # Errors
    /// [`PaymentError`] when the provider cannot be asked.
    fn cancel_intent(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Cancelled, PaymentError>> + Send;
}

/// Refund a payment.
pub trait RefundPayment: Send + Sync + 'static {
    /// Refund what was paid on `intent`, once per `idempotency_key`.
    ///
    /// # Errors
    /// [`PaymentError`]; after `Unavailable` the refund may exist: repeat with the same key.
    fn refund(
        &self,
        intent: &str,
        idempotency_key: &str,
    ) -> impl Future<Output = Result<Refund, PaymentError>> + Send;
}

/// Believe a webhook only when the provider signed it.
pub trait VerifyWebhook: Send + Sync + 'static {
    /// The event in `body` when `signature` (the provider's signature header) vouches for it at
    /// `now_s` (unix seconds). Nothing in the body is read before the signature checks out.
    ///
    /// # Errors
    /// [`WebhookError`].
    fn verify_event(
        &self,
        body: &[u8],
        signature: Option<&str>,
        now_s: i64,
    ) -> Result<PaymentEvent, WebhookError>;
}

/// Everything checkout asks of the provider.
pub trait Payments:
    CreateIntent + ReadIntent + CancelIntent + RefundPayment + VerifyWebhook
{
}

impl<T: CreateIntent + ReadIntent + CancelIntent + RefundPayment + VerifyWebhook> Payments for T {}
