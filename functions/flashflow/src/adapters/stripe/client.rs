//! A thin typed client of Stripe's REST API: the calls checkout needs (PaymentIntents: create,
//! retrieve, cancel; Refunds: create), form-encoded as Stripe takes them, against
//! `STRIPE_API_BASE`.
//!
//! Written on hyper-util and hyper-rustls, which the AWS SDK already links into every function:
//! a Stripe crate (async-stripe) or reqwest would bring a second HTTP and TLS stack, and code for
//! hundreds of endpoints, into a bootstrap that needs four.

use bytes::Bytes;
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
pub struct StripeSettings {
    #[serde(rename = "stripe_api_base", default = "default_api_base")]
    pub api_base: String,
    #[serde(rename = "stripe_secret_key")]
    pub secret_key: Option<SecretString>,
    /// Secrets Manager id of the API key, read by [`StripeSettings::with_secret`].
    #[serde(rename = "stripe_secret_key_secret_arn")]
    pub secret_key_arn: Option<String>,
    /// A call not answered within this is failed as [`StripeError::Unavailable`].
    #[serde(
        rename = "stripe_timeout_ms",
        default = "default_timeout",
        deserialize_with = "crate::settings::millis"
    )]
    pub timeout: Duration,
}

impl crate::settings::FromEnv for StripeSettings {}

impl StripeSettings {
    /// The settings with the API key read from Secrets Manager when an id is configured.
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
        Ok(self)
    }
}

fn default_api_base() -> String {
    "https://api.stripe.com".into()
}

fn default_timeout() -> Duration {
    Duration::from_secs(5)
}

/// Why a call to Stripe did not give its answer.
#[derive(Debug, thiserror::Error)]
pub enum StripeError {
    /// Stripe could not be reached, did not answer in time, or answered 429 or 5xx. A create or
    /// refund may have happened: repeat it with the same idempotency key.
    #[error("stripe unavailable: {0}")]
    Unavailable(#[source] crate::ports::BoxError),
    /// Stripe answered that it will not do this (4xx), with its error code and message.
    #[error("stripe refused ({status}): {message}")]
    Refused {
        status: u16,
        code: Option<String>,
        message: String,
    },
    /// The settings are unusable, or the answer could not be read.
    #[error("stripe client: {0}")]
    Failed(#[source] crate::ports::BoxError),
}

/// A PaymentIntent's state, as Stripe names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
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
#[derive(Debug, Clone, Deserialize)]
pub struct PaymentIntent {
    pub id: String,
    pub status: IntentStatus,
    pub amount: i64,
    pub currency: String,
    pub client_secret: Option<String>,
    #[serde(default)]
    pub metadata: HashMap<String, String>,
}

/// A refund.
#[derive(Debug, Clone, Deserialize)]
pub struct Refund {
    pub id: String,
    pub status: String,
    pub amount: i64,
}

/// What [`Stripe::cancel_payment_intent`] found.
#[derive(Debug, Clone)]
pub enum Cancelled {
    /// The intent is canceled: no payment can complete any more.
    Canceled(PaymentIntent),
    /// Stripe would not cancel it; here it is as Stripe holds it now (`Succeeded`: it was paid).
    NotCancellable(PaymentIntent),
}

/// A new PaymentIntent: `amount` in minor units of `currency`, with `metadata`.
#[derive(Debug, Clone)]
pub struct NewPaymentIntent<'a> {
    pub amount: i64,
    pub currency: &'a str,
    pub metadata: &'a [(&'a str, &'a str)],
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
}

impl Stripe {
    /// A client for `settings`: TLS verified against the system roots; plain HTTP only when
    /// `STRIPE_API_BASE` says `http://` (a local stand-in).
    ///
    /// # Errors
    /// [`StripeError::Failed`] when the roots cannot be loaded or the key is not a header value.
    pub fn new(settings: &StripeSettings) -> Result<Self, StripeError> {
        let failed = |e: String| StripeError::Failed(e.into());
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
            .map_err(|e| StripeError::Failed(Box::new(e)))?;
        auth.set_sensitive(true);
        Ok(Self {
            http: Client::builder(TokioExecutor::new()).build(https),
            base: settings.api_base.trim_end_matches('/').to_owned(),
            auth,
            timeout: settings.timeout,
        })
    }

    /// Create a PaymentIntent, once per `idempotency_key` (Stripe answers a repeat with the first
    /// intent).
    ///
    /// # Errors
    /// [`StripeError`]; after `Unavailable` the intent may exist: repeat with the same key.
    pub async fn create_payment_intent(
        &self,
        intent: &NewPaymentIntent<'_>,
        idempotency_key: &str,
    ) -> Result<PaymentIntent, StripeError> {
        let mut form = vec![
            ("amount".to_owned(), intent.amount.to_string()),
            ("currency".to_owned(), intent.currency.to_owned()),
        ];
        form.extend(
            intent
                .metadata
                .iter()
                .map(|(k, v)| (format!("metadata[{k}]"), (*v).to_owned())),
        );
        self.call(
            Method::POST,
            "/v1/payment_intents",
            Some(&form),
            Some(idempotency_key),
        )
        .await
    }

    /// The PaymentIntent as Stripe holds it now.
    ///
    /// # Errors
    /// [`StripeError`].
    pub async fn payment_intent(&self, id: &str) -> Result<PaymentIntent, StripeError> {
        self.call(
            Method::GET,
            &format!("/v1/payment_intents/{id}"),
            None,
            None,
        )
        .await
    }

    /// Cancel the intent so that no payment can complete; when Stripe refuses (it was paid, or is
    /// being processed), the intent read back tells what it is.
    ///
    /// # Errors
    /// [`StripeError`] when Stripe cannot be asked, or refuses and the intent cannot be read.
    pub async fn cancel_payment_intent(&self, id: &str) -> Result<Cancelled, StripeError> {
        let path = format!("/v1/payment_intents/{id}/cancel");
        match self.call(Method::POST, &path, Some(&[]), None).await {
            Ok(intent) => Ok(Cancelled::Canceled(intent)),
            Err(StripeError::Refused { .. }) => {
                let now = self.payment_intent(id).await?;
                Ok(match now.status {
                    IntentStatus::Canceled => Cancelled::Canceled(now),
                    _ => Cancelled::NotCancellable(now),
                })
            }
            Err(e) => Err(e),
        }
    }

    /// Refund what was paid on `payment_intent`, once per `idempotency_key`.
    ///
    /// # Errors
    /// [`StripeError`]; after `Unavailable` the refund may exist: repeat with the same key.
    pub async fn refund(
        &self,
        payment_intent: &str,
        idempotency_key: &str,
    ) -> Result<Refund, StripeError> {
        let form = [("payment_intent".to_owned(), payment_intent.to_owned())];
        self.call(
            Method::POST,
            "/v1/refunds",
            Some(&form),
            Some(idempotency_key),
        )
        .await
    }

    /// One call: the form (if any) as the body, the key as a bearer token, Stripe's
    /// `Idempotency-Key` when given; the answer's JSON as `T`, or Stripe's error.
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        form: Option<&[(String, String)]>,
        idempotency_key: Option<&str>,
    ) -> Result<T, StripeError> {
        let body = match form {
            Some(pairs) => {
                serde_urlencoded::to_string(pairs).map_err(|e| StripeError::Failed(Box::new(e)))?
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
            .map_err(|e| StripeError::Failed(Box::new(e)))?;
        let answer = async {
            let resp = self.http.request(req).await?;
            let status = resp.status();
            let bytes = resp.into_body().collect().await?.to_bytes();
            Ok::<_, crate::ports::BoxError>((status, bytes))
        };
        let (status, bytes) = tokio::time::timeout(self.timeout, answer)
            .await
            .map_err(|_| StripeError::Unavailable("stripe did not answer in time".into()))?
            .map_err(StripeError::Unavailable)?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| StripeError::Failed(Box::new(e)));
        }
        if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            return Err(StripeError::Unavailable(
                format!("stripe answered {status}").into(),
            ));
        }
        let detail = serde_json::from_slice::<ErrorBody>(&bytes).ok();
        Err(StripeError::Refused {
            status: status.as_u16(),
            code: detail.as_ref().and_then(|d| d.error.code.clone()),
            message: detail
                .and_then(|d| d.error.message)
                .unwrap_or_else(|| format!("HTTP {status}")),
        })
    }
}
