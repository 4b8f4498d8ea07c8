//! The payment provider in memory: intents, cancels and refunds as a provider answers them
//! (Stripe's rules: an idempotency key is for one request, a paid intent cannot be cancelled, a
//! payment is refunded once), and webhooks signed with an HMAC of their own, so checkout's rules
//! can be tested without a network. Its events are its own small JSON, not any provider's.

use super::{lock, switched_off};
use flashflow::ports::payments::{
    CancelIntent, Cancelled, CreateIntent, EventKind, Intent, IntentState, NewIntent, PaymentError,
    PaymentEvent, ReadIntent, Refund, RefundPayment, RefundState, VerifyWebhook, WebhookError,
};
use hmac::{Hmac, KeyInit, Mac};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// How old a webhook may be when it is read (as providers allow, against replays).
const TOLERANCE_S: i64 = 300;

/// The webhook secret of [`MemoryPayments::default`].
pub const MEMORY_WEBHOOK_SECRET: &str = "whsec_memory_payments";

#[derive(Default)]
struct State {
    intents: HashMap<String, Intent>,
    /// Idempotency key -> the intent it created, and the parameters it was created with.
    created: HashMap<String, (String, String)>,
    /// Idempotency key -> the refund it made.
    refunds: HashMap<String, Refund>,
    /// Intent -> refunds made for it (a second refund of one payment is refused).
    refunded: HashMap<String, u32>,
    /// Keys answered `InProgress` once (as a provider answers two concurrent requests with one key).
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

    /// The buyer pays the intent (what the provider's page and the bank do): it succeeds unless
    /// it was cancelled. Returns its state after.
    pub fn pay(&self, id: &str) -> Option<IntentState> {
        let mut s = lock(&self.state);
        let intent = s.intents.get_mut(id)?;
        if intent.state != IntentState::Canceled {
            intent.state = IntentState::Paid;
        }
        Some(intent.state)
    }

    /// A payment on the intent is under way (a bank transfer, 3-D Secure): it cannot be
    /// cancelled until it ends.
    pub fn set_processing(&self, id: &str) {
        if let Some(i) = lock(&self.state).intents.get_mut(id) {
            i.state = IntentState::Processing;
        }
    }

    /// The next create with `key` answers [`PaymentError::InProgress`] (another request with the
    /// same key is running), then works.
    pub fn busy_once(&self, key: &str) {
        lock(&self.state).in_progress_once.push(key.to_owned());
    }

    /// Every intent, as the provider holds it.
    pub fn intents(&self) -> Vec<Intent> {
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

    /// A webhook of this provider saying `intent` succeeded, and its signature at `t` (unix
    /// seconds), signed with [`MEMORY_WEBHOOK_SECRET`].
    pub fn signed_success(&self, intent: &str, t: i64) -> (Vec<u8>, String) {
        self.signed_event("payment_succeeded", intent, t)
    }

    /// A webhook of `kind` about `intent` (with its order, when the provider has the intent) and
    /// its signature at `t`.
    pub fn signed_event(&self, kind: &str, intent: &str, t: i64) -> (Vec<u8>, String) {
        let order_id = lock(&self.state)
            .intents
            .get(intent)
            .and_then(|i| i.order_id);
        let body = serde_json::json!({
            "id": format!("evt_mem_{}", uuid::Uuid::new_v4().simple()),
            "kind": kind,
            "intent": intent,
            "order_id": order_id,
        })
        .to_string()
        .into_bytes();
        let header = format!("t={t},hmac={}", mac(t, &body));
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
        intent: &NewIntent<'_>,
        idempotency_key: &str,
    ) -> Result<Intent, PaymentError> {
        let mut s = self.call()?;
        if let Some(at) = s.in_progress_once.iter().position(|k| k == idempotency_key) {
            s.in_progress_once.remove(at);
            return Err(PaymentError::InProgress);
        }
        let params = format!("{intent:?}");
        if let Some((id, first)) = s.created.get(idempotency_key) {
            if *first != params {
                // A key is for one request, whatever is sent with it later.
                return Err(PaymentError::Refused {
                    status: 400,
                    code: None,
                    message: "idempotency key reused with other parameters".into(),
                });
            }
            return Ok(s.intents[id].clone());
        }
        let id = format!("pi_mem_{}", uuid::Uuid::new_v4().simple());
        let created = Intent {
            id: id.clone(),
            state: IntentState::AwaitingBuyer,
            amount: intent.amount,
            currency: intent.currency.to_owned(),
            client_secret: Some(format!("{id}_secret")),
            order_id: Some(intent.order_id),
        };
        s.created
            .insert(idempotency_key.to_owned(), (id.clone(), params));
        s.intents.insert(id, created.clone());
        Ok(created)
    }
}

impl ReadIntent for MemoryPayments {
    async fn intent(&self, id: &str) -> Result<Intent, PaymentError> {
        let s = self.call()?;
        s.intents.get(id).cloned().ok_or_else(|| not_found(id))
    }
}

impl CancelIntent for MemoryPayments {
    async fn cancel_intent(&self, id: &str) -> Result<Cancelled, PaymentError> {
        let mut s = self.call()?;
        let intent = s.intents.get_mut(id).ok_or_else(|| not_found(id))?;
        Ok(match intent.state {
            IntentState::Paid | IntentState::Processing => {
                Cancelled::NotCancellable(intent.clone())
            }
            _ => {
                intent.state = IntentState::Canceled;
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
        if paid.state != IntentState::Paid || s.refunded.contains_key(intent) {
            return Err(PaymentError::Refused {
                status: 400,
                code: Some("charge_already_refunded".into()),
                message: format!("nothing left to refund on {intent}"),
            });
        }
        let refund = Refund {
            id: format!("re_mem_{}", uuid::Uuid::new_v4().simple()),
            state: RefundState::Succeeded,
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
        let bad = |why: &str| WebhookError::Signature(why.to_owned());
        let header = header.ok_or_else(|| bad("no signature"))?;
        let (t, given) = header
            .strip_prefix("t=")
            .and_then(|rest| rest.split_once(",hmac="))
            .ok_or_else(|| bad("malformed signature"))?;
        let t: i64 = t.parse().map_err(|_| bad("malformed timestamp"))?;
        if (now_s - t).abs() > TOLERANCE_S {
            return Err(bad("stale signature"));
        }
        let expected = mac(t, body);
        if !bool::from(subtle::ConstantTimeEq::ct_eq(
            expected.as_bytes(),
            given.as_bytes(),
        )) {
            return Err(bad("wrong signature"));
        }
        #[derive(serde::Deserialize)]
        struct Event {
            id: String,
            kind: String,
            intent: Option<String>,
            order_id: Option<uuid::Uuid>,
        }
        let e: Event = serde_json::from_slice(body).map_err(|_| WebhookError::NotAnEvent)?;
        Ok(PaymentEvent {
            id: e.id,
            kind: match e.kind.as_str() {
                "payment_succeeded" => EventKind::PaymentSucceeded,
                _ => EventKind::Other(e.kind),
            },
            intent: e.intent,
            order_id: e.order_id,
        })
    }
}

/// The signature of a webhook sent at `t`: HMAC-SHA256 of `t.body` with the secret, hex.
fn mac(t: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(MEMORY_WEBHOOK_SECRET.as_bytes())
        .expect("HMAC takes any key");
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}
