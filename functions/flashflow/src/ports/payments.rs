//! Payments: the provider that takes a checkout order's money (Stripe in production, an in-memory
//! one for unit tests). What the provider says is the only word on whether a buyer paid: an
//! intent read back from it, or an event whose signature it vouches for, never the client.
//!
//! Each trait says one thing; [`Payments`] is all of them, for the use case that needs them all
//! (`app::checkout`).

use super::BoxError;
use std::collections::HashMap;
use std::future::Future;
use uuid::Uuid;

/// Why a call to the payment provider did not give its answer.
#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    /// The provider could not be reached, did not answer in time, or answered 429 or 5xx. A
    /// create or refund may have happened: repeat it with the same idempotency key.
    #[error("payment provider unavailable: {0}")]
    Unavailable(#[source] BoxError),
    /// Another request with the same idempotency key is being processed right now (Stripe's
    /// `idempotency_key_in_use`): repeating it shortly answers what that one did.
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

/// A PaymentIntent's state, as Stripe names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntentStatus {
    RequiresPaymentMethod,
    RequiresConfirmation,
    RequiresAction,
    Processing,
    RequiresCapture,
    Canceled,
    Succeeded,
    #[serde(other)]
    Other,
}

/// The fields of a PaymentIntent checkout reads.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct PaymentIntent {
    pub id: String,
    pub status: IntentStatus,
    /// Minor units of `currency`.
    pub amount: i64,
    pub currency: String,
    /// What the buyer's page confirms the payment with; absent when the provider does not say.
    pub client_secret: Option<String>,
    #[serde(default)]
    pub metadata: HashMap<String, String>,
}

/// A new PaymentIntent: `amount` in minor units of `currency`, with `metadata`.
#[derive(Debug, Clone)]
pub struct NewPaymentIntent<'a> {
    pub amount: i64,
    pub currency: &'a str,
    pub metadata: &'a [(&'a str, &'a str)],
}

/// What [`CancelIntent::cancel_intent`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cancelled {
    /// The intent is canceled (now, or before): no payment can complete any more.
    Canceled(PaymentIntent),
    /// The provider would not cancel it; here it is as the provider holds it now (`Succeeded`:
    /// it was paid; `Processing`: a payment is under way).
    NotCancellable(PaymentIntent),
}

/// A refund as the provider recorded it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct Refund {
    pub id: String,
    pub status: String,
    pub amount: i64,
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
    /// `payment_intent.succeeded`: the intent's money was taken.
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

/// Create a PaymentIntent.
pub trait CreateIntent: Send + Sync + 'static {
    /// Create an intent, once per `idempotency_key` (a repeat answers the first intent).
    ///
    /// # Errors
    /// [`PaymentError`]; after `Unavailable` the intent may exist: repeat with the same key.
    fn create_intent(
        &self,
        intent: &NewPaymentIntent<'_>,
        idempotency_key: &str,
    ) -> impl Future<Output = Result<PaymentIntent, PaymentError>> + Send;
}

/// Read a PaymentIntent back.
pub trait ReadIntent: Send + Sync + 'static {
    /// The intent as the provider holds it now.
    ///
    /// # Errors
    /// [`PaymentError`]; `Refused` with status 404 for an intent the provider does not have.
    fn intent(&self, id: &str) -> impl Future<Output = Result<PaymentIntent, PaymentError>> + Send;
}

/// Cancel a PaymentIntent.
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
