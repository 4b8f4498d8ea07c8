//! The payment provider (Stripe, through localstripe; in memory for unit tests).

use flashflow::domain::SaleId;
use flashflow::ports::prelude::*;
use flashflow::ports::{
    Cancelled, EventKind, Intent, IntentState, NewIntent, PaymentError, RefundState,
};
use std::future::Future;
use uuid::Uuid;

/// What the buyer's browser and bank do with an intent, and the webhook the provider sends: the
/// contract needs both to play the provider's other side (each in the provider's own format).
pub trait Provider: Send + Sync {
    /// The buyer pays `intent` with a card that succeeds.
    fn pay(&self, intent: &str) -> impl Future<Output = ()> + Send;
    /// The provider's webhook saying `intent` succeeded, as it would send it at `now_s`: the
    /// body and its signature header.
    fn signed_success(&self, intent: &Intent, now_s: i64) -> (Vec<u8>, String);
}

/// A payments adapter and its provider's other side.
pub struct Provided<P, Q> {
    pub payments: P,
    pub provider: Q,
}

/// Every behaviour of the payments contract as a test of `$make` (an async expression giving
/// [`Provided`]).
#[macro_export]
macro_rules! payments_contract {
    ($make:expr) => {
        $crate::contract_tests!(
            payments,
            $make,
            [
                an_intent_is_created_once_per_idempotency_key,
                an_intent_reads_back_as_created_with_its_order,
                an_unpaid_intent_is_cancelled_and_cancelling_again_finds_it_cancelled,
                a_paid_intent_cannot_be_cancelled_and_says_it_succeeded,
                a_paid_intent_is_refunded_once_per_idempotency_key,
                an_unknown_intent_is_refused_as_not_found,
                a_signed_webhook_is_believed_and_an_altered_one_is_not,
            ]
        );
    };
}

/// A new intent of 129.00 EUR for an order of its own; its idempotency key is the order's.
async fn new_intent<P: Payments, Q: Provider>(t: &Provided<P, Q>) -> Intent {
    intent_for(t, Uuid::now_v7()).await.unwrap()
}

async fn intent_for<P: Payments, Q: Provider>(
    t: &Provided<P, Q>,
    order: Uuid,
) -> Result<Intent, PaymentError> {
    let sale = SaleId::parse("contract").expect("a valid id");
    let intent = NewIntent {
        amount: 12_900,
        currency: "eur",
        order_id: order,
        sale: &sale,
    };
    let key = format!("contract-{order}");
    t.payments.create_intent(&intent, &key).await
}

fn key() -> String {
    format!("contract-{}", Uuid::new_v4().simple())
}

pub async fn an_intent_is_created_once_per_idempotency_key<P: Payments, Q: Provider>(
    t: &Provided<P, Q>,
) {
    let order = Uuid::now_v7();
    let first = intent_for(t, order).await.unwrap();
    let again = intent_for(t, order).await.unwrap();
    assert_eq!(first.id, again.id);
    assert_ne!(new_intent(t).await.id, first.id, "another key");
}

pub async fn an_intent_reads_back_as_created_with_its_order<P: Payments, Q: Provider>(
    t: &Provided<P, Q>,
) {
    let order = Uuid::now_v7();
    let created = intent_for(t, order).await.unwrap();
    assert_eq!(created.state, IntentState::AwaitingBuyer);
    assert!(created.client_secret.is_some());
    let read = t.payments.intent(&created.id).await.unwrap();
    assert_eq!((read.amount, read.currency.as_str()), (12_900, "eur"));
    assert_eq!(read.order_id, Some(order));
    assert_eq!(read.order_id, created.order_id);
}

pub async fn an_unpaid_intent_is_cancelled_and_cancelling_again_finds_it_cancelled<
    P: Payments,
    Q: Provider,
>(
    t: &Provided<P, Q>,
) {
    let intent = new_intent(t).await;
    for _ in 0..2 {
        match t.payments.cancel_intent(&intent.id).await.unwrap() {
            Cancelled::Canceled(i) => assert_eq!(i.state, IntentState::Canceled),
            other => panic!("{other:?}"),
        }
    }
}

pub async fn a_paid_intent_cannot_be_cancelled_and_says_it_succeeded<P: Payments, Q: Provider>(
    t: &Provided<P, Q>,
) {
    let intent = new_intent(t).await;
    t.provider.pay(&intent.id).await;
    match t.payments.cancel_intent(&intent.id).await.unwrap() {
        Cancelled::NotCancellable(now) => assert_eq!(now.state, IntentState::Paid),
        other => panic!("a paid intent was cancelled: {other:?}"),
    }
}

pub async fn a_paid_intent_is_refunded_once_per_idempotency_key<P: Payments, Q: Provider>(
    t: &Provided<P, Q>,
) {
    let intent = new_intent(t).await;
    t.provider.pay(&intent.id).await;
    let k = key();
    let refund = t.payments.refund(&intent.id, &k).await.unwrap();
    assert_eq!(
        (refund.state, refund.amount),
        (RefundState::Succeeded, 12_900)
    );
    let again = t.payments.refund(&intent.id, &k).await.unwrap();
    assert_eq!(again.id, refund.id, "the same key answers the same refund");
}

pub async fn an_unknown_intent_is_refused_as_not_found<P: Payments, Q: Provider>(
    t: &Provided<P, Q>,
) {
    assert!(matches!(
        t.payments.intent("pi_does_not_exist").await,
        Err(PaymentError::Refused { status: 404, .. })
    ));
}

pub async fn a_signed_webhook_is_believed_and_an_altered_one_is_not<P: Payments, Q: Provider>(
    t: &Provided<P, Q>,
) {
    let intent = new_intent(t).await;
    let now = flashflow::domain::EpochMs::now().get() / 1000;
    let (body, sig) = t.provider.signed_success(&intent, now);
    let event = t.payments.verify_event(&body, Some(&sig), now).unwrap();
    assert_eq!(event.kind, EventKind::PaymentSucceeded);
    assert_eq!(event.intent.as_deref(), Some(intent.id.as_str()));
    assert_eq!(event.order_id, intent.order_id);
    let text = String::from_utf8(body.clone()).expect("a JSON body");
    assert!(text.contains("evt_"), "an event id: {text}");
    let altered = text.replacen("evt_", "evt_forged_", 1);
    assert!(t
        .payments
        .verify_event(altered.as_bytes(), Some(&sig), now)
        .is_err());
    assert!(t.payments.verify_event(&body, None, now).is_err());
}

#[cfg(test)]
mod on_memory {
    use super::{Provided, Provider};
    use crate::memory::MemoryPayments;
    use flashflow::ports::Intent;

    impl Provider for MemoryPayments {
        async fn pay(&self, intent: &str) {
            MemoryPayments::pay(self, intent);
        }

        fn signed_success(&self, intent: &Intent, now_s: i64) -> (Vec<u8>, String) {
            MemoryPayments::signed_success(self, &intent.id, now_s)
        }
    }

    crate::payments_contract!(async {
        let payments = MemoryPayments::default();
        Provided {
            provider: payments.clone(),
            payments,
        }
    });
}
