//! The Stripe adapter against localstripe (`make up` runs it on loopback): what the payments
//! contract does not cover (`contract.rs` runs that on localstripe), and the helpers that play
//! the buyer's browser.

use flashflow::ports::{PaymentError, ReadIntent};
use flashflow_adapters::stripe::{Stripe, StripeSettings};
use std::process::Command;
use std::time::Duration;

/// localstripe's address (`make up` runs it).
pub(crate) fn base() -> String {
    std::env::var("STRIPE_API_BASE").unwrap_or_else(|_| "http://127.0.0.1:8420".into())
}

/// The webhook secret of [`stripe_at`]'s client.
pub(crate) const WHSEC: &str = "whsec_test_checkout";

/// A Stripe client on `base` with a test key, taking webhooks signed with [`WHSEC`].
pub(crate) fn stripe_at(base: &str) -> Stripe {
    Stripe::new(&StripeSettings {
        api_base: base.into(),
        secret_key: Some("sk_test_flashflow".to_owned().into()),
        secret_key_arn: None,
        webhook_secret: Some(WHSEC.to_owned().into()),
        webhook_secret_arn: None,
        timeout: Duration::from_secs(5).into(),
    })
    .unwrap()
}

/// What the buyer's browser does with Stripe.js: a card, then confirm the intent with it.
pub(crate) fn pay_at_stripe(intent: &str, card: &str) -> String {
    let post = |path: &str, form: &[&str]| -> serde_json::Value {
        let mut cmd = Command::new("curl");
        cmd.args([
            "-s",
            "-X",
            "POST",
            "-u",
            "sk_test_flashflow:",
            &format!("{}{path}", base()),
        ]);
        for f in form {
            cmd.args(["-d", f]);
        }
        serde_json::from_slice(&cmd.output().expect("curl").stdout).expect("a JSON answer")
    };
    let number = format!("card[number]={card}");
    let pm = post(
        "/v1/payment_methods",
        &[
            "type=card",
            &number,
            "card[exp_month]=12",
            "card[exp_year]=2031",
            "card[cvc]=123",
        ],
    );
    let pm = format!("payment_method={}", pm["id"].as_str().unwrap());
    // localstripe takes the method on an update, then a bare confirm (as Stripe.js may do).
    post(&format!("/v1/payment_intents/{intent}"), &[&pm]);
    let confirmed = post(&format!("/v1/payment_intents/{intent}/confirm"), &[]);
    confirmed["status"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn stripe_unreachable_is_unavailable_and_an_unknown_intent_is_refused() {
    let down = stripe_at("http://127.0.0.1:9");
    assert!(matches!(
        down.intent("pi_x").await,
        Err(PaymentError::Unavailable(_))
    ));
    let stripe = stripe_at(&base());
    assert!(matches!(
        stripe.intent("pi_does_not_exist").await,
        Err(PaymentError::Refused { status: 404, .. })
    ));
}
