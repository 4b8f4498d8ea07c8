//! The payment provider in memory: intents, cancels and refunds as Stripe answers them, and
//! webhooks signed and read as Stripe's (the same `Stripe-Signature` scheme and event shape), so
//! checkout's rules can be tested without a network.

use super::{lock, switched_off};
use crate::adapters::stripe::{client::event, signature};
use crate::ports::payments::{
    CancelIntent, Cancelled, CreateIntent, IntentStatus, NewPaymentIntent, PaymentError,
    PaymentEvent, PaymentIntent, ReadIntent, Refund, RefundPayment, VerifyWebhook, WebhookError,
};
use secrecy::SecretString;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The webhook secret of [`MemoryPayments::default`].
pub const MEMORY_WEBHOOK_SECRET: &str = "whsec_memory_payments";

#[derive(Default)]
struct State {
    intents: HashMap<String, PaymentIntent>,
    /// Idempotency key -> the intent it created, and the parameters it was created with.
    created: HashMap<String, (String, String)>,
    /// Idempotency key -> the refund it made.
    refunds: HashMap<String, Refund>,
    /// Intent -> refunds made for it (a second refund of one payment is refused).
    refunded: HashMap<String, u32>,
    /// Keys answered `InProgress` once (as Stripe answers two concurrent requests with one key).
    in_progress_once: Vec<String>,
    down: bool,
    calls: u64,
}

/// The payment provider in memory. Cloning shares the data.
#[derive(Clone, Default)]
pub struct MemoryPayments {
    state: Arc<Mutex<State>>,
}

impl MemoryPayments {
    /// Fail every call (or work again), as an unreachable provider does.
    pub fn set_unavailable(&self, down: bool) {
        lock(&self.state).down = down;
    }

    /// The buyer pays the intent (what Stripe.js and the bank do): it succeeds unless it was
    /// cancelled. Returns its status after.
    pub fn pay(&self, id: &str) -> Option<IntentStatus> {
        let mut s = lock(&self.state);
        let intent = s.intents.get_mut(id)?;
        if intent.status != IntentStatus::Canceled {
            intent.status = IntentStatus::Succeeded;
        }
        Some(intent.status)
    }

    /// A payment on the intent is under way (a bank transfer, 3-D Secure): it cannot be
    /// cancelled until it ends.
    pub fn set_processing(&self, id: &str) {
        if let Some(i) = lock(&self.state).intents.get_mut(id) {
            i.status = IntentStatus::Processing;
        }
    }

    /// The next create with `key` answers [`PaymentError::InProgress`] (another request with the
    /// same key is running), then works.
    pub fn busy_once(&self, key: &str) {
        lock(&self.state).in_progress_once.push(key.to_owned());
    }

    /// Every intent, as the provider holds it.
    pub fn intents(&self) -> Vec<PaymentIntent> {
        lock(&self.state).intents.values().cloned().collect()
    }

    /// How many refunds were made of `intent`'s payment.
    pub fn refunds_of(&self, intent: &str) -> u32 {
        lock(&self.state).refunded.get(intent).copied().unwrap_or(0)
    }

    /// Calls made so far (every verb).
    pub fn calls(&self) -> u64 {
        lock(&self.state).calls
    }

    /// A webhook body of `kind` about `intent`, as Stripe sends it, and its `Stripe-Signature`
    /// at `t` (unix seconds), signed with [`MEMORY_WEBHOOK_SECRET`].
    pub fn signed_event(&self, kind: &str, intent: &str, t: i64) -> (Vec<u8>, String) {
        let object = lock(&self.state)
            .intents
            .get(intent)
            .map(|i| serde_json::json!({"id": i.id, "metadata": i.metadata}))
            .unwrap_or_else(|| serde_json::json!({"id": intent}));
        let body = serde_json::json!({
            "id": format!("evt_{}", uuid::Uuid::new_v4().simple()),
            "type": kind,
            "data": {"object": object},
        })
        .to_string()
        .into_bytes();
        let header = signature::sign(&body, MEMORY_WEBHOOK_SECRET, t);
        (body, header)
    }

    /// Count a call, failing it when switched off.
    fn call(&self) -> Result<std::sync::MutexGuard<'_, State>, PaymentError> {
        let mut s = lock(&self.state);
        s.calls += 1;
        if s.down {
            return Err(PaymentError::Unavailable(switched_off("memory payments")));
        }
        Ok(s)
    }
}

fn not_found(id: &str) -> PaymentError {
    PaymentError::Refused {
        status: 404,
        code: Some("resource_missing".into()),
        message: format!("No such payment_intent: '{id}'"),
    }
}

impl CreateIntent for MemoryPayments {
    async fn create_intent(
        &self,
        intent: &NewPaymentIntent<'_>,
        idempotency_key: &str,
    ) -> Result<PaymentIntent, PaymentError> {
        let mut s = self.call()?;
        if let Some(at) = s.in_progress_once.iter().position(|k| k == idempotency_key) {
            s.in_progress_once.remove(at);
            return Err(PaymentError::InProgress);
        }
        let params = format!("{intent:?}");
        if let Some((id, first)) = s.created.get(idempotency_key) {
            if *first != params {
                // As Stripe: a key is for one request, whatever is sent with it later.
                return Err(PaymentError::Refused {
                    status: 400,
                    code: None,
                    message: "idempotency key reused with other parameters".into(),
                });
            }
            return Ok(s.intents[id].clone());
        }
        let id = format!("pi_mem_{}", uuid::Uuid::new_v4().simple());
        let created = PaymentIntent {
            id: id.clone(),
            status: IntentStatus::RequiresPaymentMethod,
            amount: intent.amount,
            currency: intent.currency.to_owned(),
            client_secret: Some(format!("{id}_secret")),
            metadata: intent
                .metadata
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        };
        s.created
            .insert(idempotency_key.to_owned(), (id.clone(), params));
        s.intents.insert(id, created.clone());
        Ok(created)
    }
}

impl ReadIntent for MemoryPayments {
    async fn intent(&self, id: &str) -> Result<PaymentIntent, PaymentError> {
        let s = self.call()?;
        s.intents.get(id).cloned().ok_or_else(|| not_found(id))
    }
}

impl CancelIntent for MemoryPayments {
    async fn cancel_intent(&self, id: &str) -> Result<Cancelled, PaymentError> {
        let mut s = self.call()?;
        let intent = s.intents.get_mut(id).ok_or_else(|| not_found(id))?;
        Ok(match intent.status {
            IntentStatus::Succeeded | IntentStatus::Processing => {
                Cancelled::NotCancellable(intent.clone())
            }
            _ => {
                intent.status = IntentStatus::Canceled;
                Cancelled::Canceled(intent.clone())
            }
        })
    }
}

impl RefundPayment for MemoryPayments {
    async fn refund(&self, intent: &str, idempotency_key: &str) -> Result<Refund, PaymentError> {
        let mut s = self.call()?;
        if let Some(r) = s.refunds.get(idempotency_key) {
            return Ok(r.clone());
        }
        let paid = s.intents.get(intent).ok_or_else(|| not_found(intent))?;
        if paid.status != IntentStatus::Succeeded || s.refunded.contains_key(intent) {
            return Err(PaymentError::Refused {
                status: 400,
                code: Some("charge_already_refunded".into()),
                message: format!("nothing left to refund on {intent}"),
            });
        }
        let refund = Refund {
            id: format!("re_mem_{}", uuid::Uuid::new_v4().simple()),
            status: "succeeded".into(),
            amount: paid.amount,
        };
        *s.refunded.entry(intent.to_owned()).or_default() += 1;
        s.refunds.insert(idempotency_key.to_owned(), refund.clone());
        Ok(refund)
    }
}

impl VerifyWebhook for MemoryPayments {
    fn verify_event(
        &self,
        body: &[u8],
        header: Option<&str>,
        now_s: i64,
    ) -> Result<PaymentEvent, WebhookError> {
        let secrets = [SecretString::from(MEMORY_WEBHOOK_SECRET.to_owned())];
        signature::verify(body, header, &secrets, now_s, signature::DEFAULT_TOLERANCE)
            .map_err(|e| WebhookError::Signature(e.to_string()))?;
        event(body)
    }
}
