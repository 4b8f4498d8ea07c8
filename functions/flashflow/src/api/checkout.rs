//! The checkout function's routes: `POST /orders/{order_id}/payment` and
//! `POST /orders/{order_id}/cancel` (the order's buyer), and `POST /webhooks/stripe` (Stripe;
//! its signature is its authentication, so it sits outside the JWT authorizer).

use super::identity::buyer;
use super::{json, path_param, ApiError, Route};
use crate::adapters::stripe::signature::{verify, DEFAULT_TOLERANCE};
use crate::checkout::{Checkout, CheckoutError, StripeEvent};
use crate::domain::checkout::Refusal;
use crate::domain::InvalidInput;
use crate::ports::{Holds, Outbox, ReturnStock, StatusStore};
use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use secrecy::SecretString;
use serde::Deserialize;
use std::sync::Arc;
use tracing::warn;
use uuid::Uuid;

/// The checkout function's routes (also declared in `template.yaml`).
pub const ROUTES: &[Route] = &[
    Route {
        method: "POST",
        path: "/orders/{order_id}/payment",
    },
    Route {
        method: "POST",
        path: "/orders/{order_id}/cancel",
    },
    Route {
        method: "POST",
        path: "/webhooks/stripe",
    },
];

/// Largest webhook body taken (Stripe's events are a few kB).
const MAX_WEBHOOK_BODY: usize = 256 * 1024;

/// The checkout routes' settings: `TRUST_USER_HEADER` (false) and the webhook's signing secrets
/// (`STRIPE_WEBHOOK_SECRET_ARN`, a Secrets Manager secret, as in AWS; or `STRIPE_WEBHOOK_SECRET`
/// itself, as locally; either may list several, comma-separated, while a secret is rotated).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CheckoutSettings {
    #[serde(default, deserialize_with = "crate::settings::flag")]
    pub trust_user_header: bool,
    #[serde(rename = "stripe_webhook_secret")]
    pub webhook_secret: Option<SecretString>,
    #[serde(rename = "stripe_webhook_secret_arn")]
    pub webhook_secret_arn: Option<String>,
}

impl crate::settings::FromEnv for CheckoutSettings {}

impl CheckoutSettings {
    /// The settings with the webhook secret read from Secrets Manager when an id is configured.
    ///
    /// # Errors
    /// [`crate::secrets::SecretError`] when the secret cannot be read.
    pub async fn with_secret(
        mut self,
        sdk: &aws_config::SdkConfig,
    ) -> Result<Self, crate::secrets::SecretError> {
        let arn = self.webhook_secret_arn.as_deref();
        if let Some(c) = crate::secrets::read_optional(sdk, arn).await? {
            self.webhook_secret = Some(c.password);
        }
        Ok(self)
    }

    /// Every configured webhook secret.
    pub fn webhook_secrets(&self) -> Vec<SecretString> {
        use secrecy::ExposeSecret;
        self.webhook_secret
            .as_ref()
            .map(|s| {
                s.expose_secret()
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| SecretString::from(s.to_owned()))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// What the checkout routes need.
pub struct CheckoutState<H, R, S> {
    pub checkout: Checkout<H, R, S>,
    pub trust_user_header: bool,
    /// The webhook's signing secrets; none: every webhook is refused.
    pub webhook_secrets: Vec<SecretString>,
}

type Shared<H, R, S> = State<Arc<CheckoutState<H, R, S>>>;

/// The checkout function's routes, without the shared fallbacks (see [`super::app`]).
pub fn routes<H: Holds, R: ReturnStock + Outbox, S: StatusStore>(
    state: Arc<CheckoutState<H, R, S>>,
) -> Router {
    Router::new()
        .route(ROUTES[0].path, post(pay::<H, R, S>))
        .route(ROUTES[1].path, post(cancel::<H, R, S>))
        .route(ROUTES[2].path, post(webhook::<H, R, S>))
        .with_state(state)
}

async fn pay<H: Holds, R: ReturnStock + Outbox, S: StatusStore>(
    State(state): Shared<H, R, S>,
    order_id: Result<Path<String>, PathRejection>,
    parts: Parts,
) -> Result<Response, ApiError> {
    let order_id = order_id_of(order_id)?;
    let buyer = buyer(&parts, state.trust_user_header)?;
    let payment = state.checkout.pay(order_id, &buyer).await?;
    Ok(json(StatusCode::OK, &payment))
}

async fn cancel<H: Holds, R: ReturnStock + Outbox, S: StatusStore>(
    State(state): Shared<H, R, S>,
    order_id: Result<Path<String>, PathRejection>,
    parts: Parts,
) -> Result<Response, ApiError> {
    let order_id = order_id_of(order_id)?;
    let buyer = buyer(&parts, state.trust_user_header)?;
    let cancelled = state.checkout.cancel(order_id, &buyer).await?;
    Ok(json(
        StatusCode::OK,
        &super::orders::view(&cancelled.status),
    ))
}

/// Nothing in the body is read before the signature checks out; a bad one changes nothing.
async fn webhook<H: Holds, R: ReturnStock + Outbox, S: StatusStore>(
    State(state): Shared<H, R, S>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    if body.len() > MAX_WEBHOOK_BODY {
        return Err(ApiError::BodyTooLarge {
            limit: MAX_WEBHOOK_BODY,
        });
    }
    let signature = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok());
    let now_s = crate::clock::EpochMs::now().get() / 1000;
    if let Err(e) = verify(
        &body,
        signature,
        &state.webhook_secrets,
        now_s,
        DEFAULT_TOLERANCE,
    ) {
        warn!(error = %e, "webhook refused");
        return Err(InvalidInput::new("invalid_signature", e.to_string()).into());
    }
    let event: StripeEvent = serde_json::from_slice(&body)
        .map_err(|_| InvalidInput::new("invalid_event", "not a Stripe event"))?;
    state.checkout.on_event(&event).await?;
    Ok(json(StatusCode::OK, &serde_json::json!({"received": true})))
}

fn order_id_of(p: Result<Path<String>, PathRejection>) -> Result<Uuid, ApiError> {
    Uuid::parse_str(&path_param(p, "invalid_order_id")?)
        .map_err(|_| InvalidInput::new("invalid_order_id", "order id must be a UUID").into())
}

impl From<CheckoutError> for ApiError {
    fn from(e: CheckoutError) -> Self {
        let conflict = |code, message: &str| ApiError::Conflict {
            code,
            message: message.into(),
        };
        match e {
            CheckoutError::NotFound => ApiError::NotFound {
                code: "order_not_found",
                message: "no such order for this caller".into(),
            },
            CheckoutError::Pending => conflict(
                "order_pending",
                "the order is not recorded yet; retry in a moment",
            ),
            CheckoutError::Refused(Refusal::AlreadyPaid) => {
                conflict("already_paid", "the order is paid")
            }
            CheckoutError::Refused(Refusal::HoldExpired) => conflict(
                "hold_expired",
                "the hold ended before payment; its units went back on sale",
            ),
            CheckoutError::OrderCancelled => conflict("order_cancelled", "the order was cancelled"),
            CheckoutError::NotAccepted => conflict(
                "order_not_accepted",
                "the order was not accepted (sold out, over the limit, or a duplicate)",
            ),
            CheckoutError::PaymentProcessing => conflict(
                "payment_processing",
                "a payment for this order is being processed; retry in a moment",
            ),
            CheckoutError::Stripe(crate::adapters::stripe::StripeError::Unavailable(e)) => {
                ApiError::Unavailable(e)
            }
            CheckoutError::Stripe(e) => ApiError::Internal(Box::new(e)),
            CheckoutError::Db(e) => e.into(),
            CheckoutError::Store(e) => e.into(),
        }
    }
}
