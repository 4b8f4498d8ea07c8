//! `GET /orders/{order_id}` (buyers) and `GET /admin/orders/{order_id}` (operators): an order's
//! status. Settled orders come from the status store (DynamoDB); reserved, unsettled ones from
//! the outbox.

use super::identity::{caller, Caller};
use super::{json, path_param, ApiError, Route};
use crate::domain::{InvalidInput, OrderState, OrderStatus};
use crate::ports::{Outbox, StatusStore};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use std::sync::Arc;
use uuid::Uuid;

/// The order-status function's routes (also declared in `template.yaml`).
pub const ROUTES: &[Route] = &[
    Route {
        method: "GET",
        path: "/orders/{order_id}",
    },
    Route {
        method: "GET",
        path: "/admin/orders/{order_id}",
    },
];

/// Who may ask: `TRUST_USER_HEADER` (false) and `OPERATOR_TOKEN` (unset).
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct OrdersSettings {
    /// Accept `X-User-Id` as the buyer (local use only).
    #[serde(default, deserialize_with = "crate::settings::flag")]
    pub trust_user_header: bool,
    /// When set, `Authorization: Bearer <token>` identifies an operator (besides IAM).
    pub operator_token: Option<secrecy::SecretString>,
}

impl crate::settings::FromEnv for OrdersSettings {}

/// What the order-status routes need.
pub struct OrdersState<T, S> {
    pub status: T,
    pub store: S,
    /// Accept `X-User-Id` as the buyer (local use only).
    pub trust_user_header: bool,
    /// When set, `Authorization: Bearer <token>` identifies an operator (besides IAM).
    pub operator_token: Option<secrecy::SecretString>,
}

/// The order-status function's routes, without the shared fallbacks (see [`super::app`]).
pub fn routes<T: StatusStore, S: Outbox>(state: OrdersState<T, S>) -> Router {
    let handler = get(order::<T, S>);
    Router::new()
        .route(ROUTES[0].path, handler.clone())
        .route(ROUTES[1].path, handler)
        .with_state(Arc::new(state))
}

async fn order<T: StatusStore, S: Outbox>(
    State(state): State<Arc<OrdersState<T, S>>>,
    order_id: Result<Path<String>, PathRejection>,
    parts: Parts,
) -> Result<Response, ApiError> {
    let order_id = Uuid::parse_str(&path_param(order_id, "invalid_order_id")?)
        .map_err(|_| InvalidInput::new("invalid_order_id", "order id must be a UUID"))?;
    let who = caller(
        &parts,
        state.trust_user_header,
        state
            .operator_token
            .as_ref()
            .map(secrecy::ExposeSecret::expose_secret),
    )?;
    let found = match state
        .status
        .get(order_id)
        .await
        .map_err(|e| ApiError::Unavailable(Box::new(e)))?
    {
        Some(settled) => Some(settled),
        None => state
            .store
            .find_pending(order_id)
            .await?
            .map(|o| OrderStatus::of(&o, OrderState::Pending)),
    };
    match (found, who) {
        (Some(s), Caller::Operator) => Ok(json(StatusCode::OK, &view(&s))),
        (Some(s), Caller::Buyer(b)) if s.buyer == b => Ok(json(StatusCode::OK, &view(&s))),
        // Someone else's order looks exactly like no order: ids are not an oracle.
        _ => Err(ApiError::NotFound {
            code: "order_not_found",
            message: format!("no order {order_id} for this caller"),
        }),
    }
}

/// An order as the API shows it: its status, and a checkout order's `pay_by` (RFC 3339).
#[derive(Debug, serde::Serialize)]
pub struct OrderView<'a> {
    #[serde(flatten)]
    pub status: &'a OrderStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pay_by: Option<String>,
}

/// [`OrderView`] of `status`.
pub fn view(status: &OrderStatus) -> OrderView<'_> {
    OrderView {
        status,
        pay_by: status.pay_by_ms.map(crate::timefmt::format_ms),
    }
}
