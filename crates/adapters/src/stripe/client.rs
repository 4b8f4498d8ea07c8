//! A thin typed client of Stripe's REST API behind the [`Payments`](flashflow::ports::Payments) port:
//! the calls checkout needs (PaymentIntents: create, retrieve, cancel; Refunds: create),
//! form-encoded as Stripe takes them, against `STRIPE_API_BASE`; and the webhook's check (its
//! signature, then the event read as the port's [`PaymentEvent`]).
//!
//! Written on hyper-util and hyper-rustls, which the AWS SDK already links into every function:
//! a Stripe crate (async-stripe) or reqwest would bring a second HTTP and TLS stack, and code for
//! hundreds of endpoints, into a bootstrap that needs four.

use bytes::Bytes;
use flashflow::ports::payments::{
    CancelIntent, Cancelled, CreateIntent, EventKind, Intent, IntentState, NewIntent, PaymentError,
    PaymentEvent, ReadIntent, Refund, RefundPayment, RefundState, VerifyWebhook, WebhookError,
};
use http::{header, HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::collections::HashMap;
use std::time::Duration;

/// Where Stripe is and how to reach it: `STRIPE_API_BASE` (Stripe's own), the API key
/// (`STRIPE_SECRET_KEY_SECRET_ARN`, a Secrets Manager secret holding it as a bare string, as in
/// AWS; or `STRIPE_SECRET_KEY` itself, as locally), `STRIPE_TIMEOUT_MS` (5000).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct StripeSettings {
    #[serde(rename = "stripe_api_base")]
    pub api_base: String,
    #[serde(rename = "stripe_secret_key")]
    pub secret_key: Option<SecretString>,
    /// Secrets Manager id of the API key, read by [`StripeSettings::with_secret`].
    #[serde(rename = "stripe_secret_key_secret_arn")]
    pub secret_key_arn: Option<String>,
    /// The webhook endpoint's signing secrets (`STRIPE_WEBHOOK_SECRET_ARN`, a Secrets Manager
    /// secret, as in AWS; or `STRIPE_WEBHOOK_SECRET` itself, as locally); either may list several,
    /// comma-separated, while a secret is rotated. None: every webhook is refused.
    #[serde(rename = "stripe_webhook_secret")]
    pub webhook_secret: Option<SecretString>,
    #[serde(rename = "stripe_webhook_secret_arn")]
    pub webhook_secret_arn: Option<String>,
    /// A call not answered within this is failed as [`PaymentError::Unavailable`].
    #[serde(rename = "stripe_timeout_ms")]
    pub timeout: flashflow_settings::Millis,
}

impl flashflow_settings::FromEnv for StripeSettings {}

impl StripeSettings {
    /// The settings with the API key and the webhook secrets read from Secrets Manager when their
    /// ids are configured.
    ///
    /// # Errors
    /// [`crate::secrets::SecretError`] when the secret cannot be read.
    pub async fn with_secret(
        mut self,
        sdk: &aws_config::SdkConfig,
    ) -> Result<Self, crate::secrets::SecretError> {
        if let Some(c) = crate::secrets::read_optional(sdk, self.secret_key_arn.as_deref()).await? {
            self.secret_key = Some(c.password);
        }
        let arn = self.webhook_secret_arn.as_deref();
        if let Some(c) = crate::secrets::read_optional(sdk, arn).await? {
            self.webhook_secret = Some(c.password);
        }
        Ok(self)
    }
}

impl StripeSettings {
    /// Every configured webhook secret (the setting may list several, comma-separated).
    pub fn webhook_secrets(&self) -> Vec<SecretString> {
        let Some(all) = &self.webhook_secret else {
            return Vec::new();
        };
        all.expose_secret()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| SecretString::from(s.to_owned()))
            .collect()
    }
}

impl Default for StripeSettings {
    fn default() -> Self {
        Self {
            api_base: "https://api.stripe.com".into(),
            secret_key: None,
            secret_key_arn: None,
            webhook_secret: None,
            webhook_secret_arn: None,
            timeout: flashflow_settings::Millis::secs(5),
        }
    }
}

/// A PaymentIntent's status, as Stripe names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum IntentStatus {
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

impl IntentStatus {
    /// The port's word for it: what checkout decides by.
    fn state(self) -> IntentState {
        match self {
            Self::RequiresPaymentMethod | Self::RequiresConfirmation | Self::RequiresAction => {
                IntentState::AwaitingBuyer
            }
            Self::Succeeded => IntentState::Paid,
            Self::Canceled => IntentState::Canceled,
            // Being processed or captured, or a status this code does not know: decide later.
            Self::Processing | Self::RequiresCapture | Self::Other => IntentState::Processing,
        }
    }
}

/// The fields of a PaymentIntent checkout reads, as Stripe sends them.
#[derive(Debug, Clone, Deserialize)]
struct PaymentIntent {
    id: String,
    status: IntentStatus,
    amount: i64,
    currency: String,
    client_secret: Option<String>,
    #[serde(default)]
    metadata: HashMap<String, String>,
}

impl From<PaymentIntent> for Intent {
    fn from(i: PaymentIntent) -> Self {
        Self {
            order_id: i
                .metadata
                .get("order_id")
                .and_then(|o| uuid::Uuid::parse_str(o).ok()),
            id: i.id,
            state: i.status.state(),
            amount: i.amount,
            currency: i.currency,
            client_secret: i.client_secret,
        }
    }
}

/// A refund as Stripe sends it.
#[derive(Debug, Clone, Deserialize)]
struct StripeRefund {
    id: String,
    status: String,
    amount: i64,
}

/// Stripe's error body: `{"error": {"code", "message", "type"}}`.
#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    code: Option<String>,
    message: Option<String>,
}

type Https = hyper_rustls::HttpsConnector<HttpConnector>;

/// Stripe's API, one client per process (it keeps connections).
#[derive(Clone)]
pub struct Stripe {
    http: Client<Https, Full<Bytes>>,
    base: String,
    auth: HeaderValue,
    timeout: Duration,
    webhook_secrets: Vec<SecretString>,
}

impl Stripe {
    /// A client for `settings`: TLS verified against the system roots; plain HTTP only when
    /// `STRIPE_API_BASE` says `http://` (a local stand-in).
    ///
    /// # Errors
    /// [`PaymentError::Failed`] when the roots cannot be loaded or the key is not a header value.
    pub fn new(settings: &StripeSettings) -> Result<Self, PaymentError> {
        let failed = |e: String| PaymentError::Failed(e.into());
        let tls = super::super::tls::verifying(
            super::super::tls::roots("STRIPE_CA_FILE", None).map_err(failed)?,
        )
        .map_err(failed)?;
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        let key = settings.secret_key.as_ref().ok_or_else(|| {
            failed(
                "no Stripe API key: set STRIPE_SECRET_KEY_SECRET_ARN or STRIPE_SECRET_KEY".into(),
            )
        })?;
        let mut auth = HeaderValue::from_str(&format!("Bearer {}", key.expose_secret()))
            .map_err(|e| PaymentError::Failed(Box::new(e)))?;
        auth.set_sensitive(true);
        Ok(Self {
            http: Client::builder(TokioExecutor::new()).build(https),
            base: settings.api_base.trim_end_matches('/').to_owned(),
            auth,
            timeout: settings.timeout.get(),
            webhook_secrets: settings.webhook_secrets(),
        })
    }

    /// Create a PaymentIntent, once per `idempotency_key` (Stripe answers a repeat with the first
    /// intent); the order and the sale go into its metadata, where its events carry them back.
    async fn create(
        &self,
        intent: &NewIntent<'_>,
        idempotency_key: &str,
    ) -> Result<PaymentIntent, PaymentError> {
        let form = vec![
            ("amount".to_owned(), intent.amount.to_string()),
            ("currency".to_owned(), intent.currency.to_owned()),
            ("metadata[order_id]".to_owned(), intent.order_id.to_string()),
            ("metadata[sale_id]".to_owned(), intent.sale.to_string()),
        ];
        let path = "/v1/payment_intents";
        self.call(Method::POST, path, Some(&form), Some(idempotency_key))
            .await
    }

    async fn read(&self, id: &str) -> Result<PaymentIntent, PaymentError> {
        let path = format!("/v1/payment_intents/{id}");
        self.call(Method::GET, &path, None, None).await
    }

    /// One call: the form (if any) as the body, the key as a bearer token, Stripe's
    /// `Idempotency-Key` when given; the answer's JSON as `T`, or Stripe's error.
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        form: Option<&[(String, String)]>,
        idempotency_key: Option<&str>,
    ) -> Result<T, PaymentError> {
        let body = match form {
            Some(pairs) => {
                serde_urlencoded::to_string(pairs).map_err(|e| PaymentError::Failed(Box::new(e)))?
            }
            None => String::new(),
        };
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header(header::AUTHORIZATION, self.auth.clone());
        if form.is_some() {
            req = req.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        }
        if let Some(key) = idempotency_key {
            req = req.header("idempotency-key", key);
        }
        let req = req
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| PaymentError::Failed(Box::new(e)))?;
        let answer = async {
            let resp = self.http.request(req).await?;
            let status = resp.status();
            let bytes = resp.into_body().collect().await?.to_bytes();
            Ok::<_, flashflow::ports::BoxError>((status, bytes))
        };
        let (status, bytes) = tokio::time::timeout(self.timeout, answer)
            .await
            .map_err(|_| PaymentError::Unavailable("stripe did not answer in time".into()))?
            .map_err(PaymentError::Unavailable)?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| PaymentError::Failed(Box::new(e)));
        }
        if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            return Err(PaymentError::Unavailable(
                format!("stripe answered {status}").into(),
            ));
        }
        let detail = serde_json::from_slice::<ErrorBody>(&bytes).ok();
        let code = detail.as_ref().and_then(|d| d.error.code.as_deref());
        if status == StatusCode::CONFLICT && code == Some("idempotency_key_in_use") {
            return Err(PaymentError::InProgress);
        }
        Err(PaymentError::Refused {
            status: status.as_u16(),
            code: detail.as_ref().and_then(|d| d.error.code.clone()),
            message: detail
                .and_then(|d| d.error.message)
                .unwrap_or_else(|| format!("HTTP {status}")),
        })
    }
}

impl CreateIntent for Stripe {
    async fn create_intent(
        &self,
        intent: &NewIntent<'_>,
        idempotency_key: &str,
    ) -> Result<Intent, PaymentError> {
        self.create(intent, idempotency_key).await.map(Intent::from)
    }
}

impl ReadIntent for Stripe {
    async fn intent(&self, id: &str) -> Result<Intent, PaymentError> {
        self.read(id).await.map(Intent::from)
    }
}

impl CancelIntent for Stripe {
    /// Stripe refuses to cancel an intent that succeeded or is processing (or was cancelled
    /// before); the intent read back tells which.
    async fn cancel_intent(&self, id: &str) -> Result<Cancelled, PaymentError> {
        let path = format!("/v1/payment_intents/{id}/cancel");
        match self
            .call::<PaymentIntent>(Method::POST, &path, Some(&[]), None)
            .await
        {
            Ok(intent) => Ok(Cancelled::Canceled(intent.into())),
            Err(PaymentError::Refused { .. }) => {
                let now = self.read(id).await?;
                Ok(match now.status {
                    IntentStatus::Canceled => Cancelled::Canceled(now.into()),
                    _ => Cancelled::NotCancellable(now.into()),
                })
            }
            Err(e) => Err(e),
        }
    }
}

impl RefundPayment for Stripe {
    async fn refund(&self, intent: &str, idempotency_key: &str) -> Result<Refund, PaymentError> {
        let form = [("payment_intent".to_owned(), intent.to_owned())];
        let path = "/v1/refunds";
        let refund: StripeRefund = self
            .call(Method::POST, path, Some(&form), Some(idempotency_key))
            .await?;
        Ok(Refund {
            id: refund.id,
            state: match refund.status.as_str() {
                "succeeded" => RefundState::Succeeded,
                "failed" | "canceled" => RefundState::Failed,
                _ => RefundState::Pending,
            },
            amount: refund.amount,
        })
    }
}

impl VerifyWebhook for Stripe {
    fn verify_event(
        &self,
        body: &[u8],
        signature: Option<&str>,
        now_s: i64,
    ) -> Result<PaymentEvent, WebhookError> {
        let tolerance = super::signature::DEFAULT_TOLERANCE;
        super::signature::verify(body, signature, &self.webhook_secrets, now_s, tolerance)
            .map_err(|e| WebhookError::Signature(e.to_string()))?;
        event(body)
    }
}

/// A Stripe event as checkout reads it: its type, and the PaymentIntent it carries.
#[derive(Deserialize)]
struct StripeEvent {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    data: EventData,
}

#[derive(Deserialize)]
struct EventData {
    /// Always an object in Stripe's events (the document says so too): anything else is not one.
    object: serde_json::Map<String, serde_json::Value>,
}

/// A verified body as the port's event: the intent is `data.object` for `payment_intent.*`
/// events, its order the intent's `metadata.order_id`.
fn event(body: &[u8]) -> Result<PaymentEvent, WebhookError> {
    let event: StripeEvent = serde_json::from_slice(body).map_err(|_| WebhookError::NotAnEvent)?;
    let object = &event.data.object;
    let is_intent = event.kind.starts_with("payment_intent.");
    let intent = object
        .get("id")
        .and_then(|v| v.as_str())
        .filter(|_| is_intent)
        .map(str::to_owned);
    let order_id = object
        .get("metadata")
        .and_then(|m| m.get("order_id"))
        .and_then(|v| v.as_str())
        .and_then(|s| uuid::Uuid::parse_str(s).ok())
        .filter(|_| is_intent);
    let kind = match event.kind.as_str() {
        "payment_intent.succeeded" => EventKind::PaymentSucceeded,
        _ => EventKind::Other(event.kind),
    };
    Ok(PaymentEvent {
        id: event.id,
        kind,
        intent,
        order_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_succeeded_event_names_its_intent_and_the_order_in_its_metadata() {
        let order = uuid::Uuid::now_v7();
        let body = serde_json::json!({
            "id": "evt_1", "type": "payment_intent.succeeded",
            "data": {"object": {"id": "pi_1", "metadata": {"order_id": order.to_string()}}}
        });
        let e = event(body.to_string().as_bytes()).unwrap();
        assert_eq!(e.kind, EventKind::PaymentSucceeded);
        assert_eq!(
            (e.intent.as_deref(), e.order_id),
            (Some("pi_1"), Some(order))
        );
    }

    #[test]
    fn other_events_and_bodies_that_are_not_events_are_told_apart() {
        let body = br#"{"id":"evt_2","type":"charge.refunded","data":{"object":{"id":"ch_1"}}}"#;
        let e = event(body).unwrap();
        assert_eq!(e.kind, EventKind::Other("charge.refunded".into()));
        assert_eq!(e.intent, None, "a charge is not an intent");
        assert_eq!(event(b"[]"), Err(WebhookError::NotAnEvent));
    }

    /// Found by schemathesis: an event whose `data.object` is not an object was taken (200).
    #[test]
    fn an_event_whose_object_is_not_an_object_is_not_an_event() {
        for object in ["[null, null]", "null", "\"pi_1\"", "7"] {
            let body = format!(
                r#"{{"id":"evt_3","type":"payment_intent.succeeded","data":{{"object":{object}}}}}"#
            );
            assert_eq!(
                event(body.as_bytes()),
                Err(WebhookError::NotAnEvent),
                "{object}"
            );
        }
    }
}
