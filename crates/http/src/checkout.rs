//! The checkout function's routes: `POST /orders/{order_id}/payment` and
//! `POST /orders/{order_id}/cancel` (the order's buyer), and `POST /webhooks/stripe` (Stripe;
//! its signature is its authentication, so it sits outside the JWT authorizer).

use super::extract::OrderPath;
use super::identity::buyer;
use super::{json, ApiError, Route};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use flashflow::domain::checkout::HoldRefusal;
use flashflow::domain::InvalidInput;
use flashflow::ports::{
    Holds, PaymentError, Payments, PendingOrders, ReturnStock, StatusStore, WebhookError,
};
use flashflow_app::checkout::{Checkout, CheckoutError};
use serde::Deserialize;
use std::sync::Arc;
use tracing::warn;

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

/// The checkout routes' settings: `TRUST_USER_HEADER` (false). The webhook's secrets are the
/// payment adapter's (`StripeSettings`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct CheckoutSettings {
    pub trust_user_header: flashflow_settings::Flag,
}

impl flashflow_settings::FromEnv for CheckoutSettings {}

/// What the checkout routes need.
pub struct CheckoutState<H, R, S, P> {
    pub checkout: Checkout<H, R, S, P>,
    pub trust_user_header: bool,
}

type Shared<H, R, S, P> = State<Arc<CheckoutState<H, R, S, P>>>;

/// The checkout function's routes, without the shared fallbacks (see [`super::app`]).
pub fn routes<H: Holds, R: ReturnStock + PendingOrders, S: StatusStore, P: Payments>(
    state: Arc<CheckoutState<H, R, S, P>>,
) -> Router {
    Router::new()
        .route(ROUTES[0].path, post(pay::<H, R, S, P>))
        .route(ROUTES[1].path, post(cancel::<H, R, S, P>))
        .route(ROUTES[2].path, post(webhook::<H, R, S, P>))
        .with_state(state)
}

#[utoipa::path(
    post, path = "/orders/{order_id}/payment", tag = "checkout",
    summary = "Pay for a held order",
    description = "The order's one Stripe PaymentIntent (made on the first call, the same on \
        every later one): the page pays with Stripe.js and the client_secret. The order is \
        CONFIRMED when Stripe says it is paid, never on the client's word.",
    params(("order_id" = Uuid, Path, description = "the order")),
    responses(
        (status = 200, description = "the order's payment", body = flashflow_app::checkout::Payment),
        super::openapi::errors::CheckoutErrors,
    ),
    security(("buyer_jwt" = []), ("buyer_header" = [])),
)]
async fn pay<H: Holds, R: ReturnStock + PendingOrders, S: StatusStore, P: Payments>(
    State(state): Shared<H, R, S, P>,
    OrderPath(order_id): OrderPath,
    parts: Parts,
) -> Result<Response, ApiError> {
    let buyer = buyer(&parts, state.trust_user_header)?;
    let payment = state.checkout.pay(order_id, &buyer).await?;
    Ok(json(StatusCode::OK, &payment))
}

#[utoipa::path(
    post, path = "/orders/{order_id}/cancel", tag = "checkout",
    summary = "Cancel a held order",
    description = "Cancels the order's intent at Stripe, then ends the hold: its units go back \
        on sale at once; cancelling again answers the same. An order Stripe says is paid is \
        confirmed instead (409 already_paid).",
    params(("order_id" = Uuid, Path, description = "the order")),
    responses(
        (status = 200, description = "the order, CANCELLED", body = super::orders::OrderView),
        super::openapi::errors::CheckoutErrors,
    ),
    security(("buyer_jwt" = []), ("buyer_header" = [])),
)]
async fn cancel<H: Holds, R: ReturnStock + PendingOrders, S: StatusStore, P: Payments>(
    State(state): Shared<H, R, S, P>,
    OrderPath(order_id): OrderPath,
    parts: Parts,
) -> Result<Response, ApiError> {
    let buyer = buyer(&parts, state.trust_user_header)?;
    let cancelled = state.checkout.cancel(order_id, &buyer).await?;
    Ok(json(
        StatusCode::OK,
        &super::orders::view(&cancelled.status),
    ))
}

/// Nothing in the body is read before the signature checks out; a bad one changes nothing.
#[utoipa::path(
    post, path = "/webhooks/stripe", tag = "checkout",
    summary = "Stripe's events",
    description = "Only an event whose Stripe-Signature checks out is read (5 minutes of \
        tolerance); payment_intent.succeeded confirms a held order, or refunds a payment that \
        came after its hold ended.",
    request_body(content = super::openapi::schemas::StripeEvent, content_type = "application/json"),
    responses(
        (status = 200, description = "the event was taken", body = super::openapi::schemas::Received),
        super::openapi::errors::WebhookErrors,
    ),
    security(("stripe_signature" = [])),
)]
async fn webhook<H: Holds, R: ReturnStock + PendingOrders, S: StatusStore, P: Payments>(
    State(state): Shared<H, R, S, P>,
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
    let now_s = flashflow::domain::EpochMs::now().get() / 1000;
    let event = match state
        .checkout
        .payments
        .verify_event(&body, signature, now_s)
    {
        Ok(event) => event,
        Err(e @ WebhookError::Signature(_)) => {
            warn!(error = %e, "webhook refused");
            return Err(InvalidInput::new("invalid_signature", e.to_string()).into());
        }
        Err(WebhookError::NotAnEvent) => {
            return Err(InvalidInput::new("invalid_event", "not a Stripe event").into())
        }
    };
    state.checkout.on_event(&event).await?;
    Ok(json(StatusCode::OK, &serde_json::json!({"received": true})))
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
            CheckoutError::Refused(HoldRefusal::AlreadyPaid) => {
                conflict("already_paid", "the order is paid")
            }
            CheckoutError::Refused(HoldRefusal::HoldExpired) => conflict(
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
            CheckoutError::Payment(PaymentError::Unavailable(e)) => ApiError::Unavailable(e),
            CheckoutError::Payment(e) => ApiError::Internal(Box::new(e)),
            CheckoutError::Db(e) => e.into(),
            CheckoutError::Store(e) => e.into(),
        }
    }
}
