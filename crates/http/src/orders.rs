//! `GET /orders/{order_id}` (buyers) and `GET /admin/orders/{order_id}` (operators): an order's
//! status. Settled orders come from the status store (DynamoDB); reserved, unsettled ones from
//! the outbox. `GET /sales/{sale_id}` (anyone): what the storefront shows, from Redis.

use super::extract::{no_store, OrderPath, SalePath};
use super::identity::{caller, Caller};
use super::{json, ApiError, Route};
use axum::extract::State;
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use flashflow::domain::{OrderState, OrderStatus};
use flashflow::ports::{LiveSales, PendingOrders, StatusStore};
use std::sync::Arc;

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
    Route {
        method: "GET",
        path: "/sales/{sale_id}",
    },
    Route {
        method: "GET",
        path: "/openapi.json",
    },
];

/// The API's OpenAPI document, as committed (`make openapi` writes it from the code; a test
/// keeps the two equal). Served as it is: no Lambda links the generator.
pub const OPENAPI_JSON: &str = include_str!("../../../docs/openapi.json");

/// Who may ask: `TRUST_USER_HEADER` (false) and `OPERATOR_TOKEN` (unset).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default)]
pub struct OrdersSettings {
    /// Accept `X-User-Id` as the buyer (local use only).
    pub trust_user_header: flashflow_settings::Flag,
    /// When set, `Authorization: Bearer <token>` identifies an operator (besides IAM).
    pub operator_token: Option<secrecy::SecretString>,
}

impl flashflow_settings::FromEnv for OrdersSettings {}

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
pub fn routes<T: StatusStore, S: PendingOrders + LiveSales>(state: OrdersState<T, S>) -> Router {
    Router::new()
        .route(ROUTES[0].path, get(order::<T, S>))
        .route(ROUTES[1].path, get(admin_order::<T, S>))
        .route(ROUTES[2].path, get(public_sale::<T, S>))
        .route(ROUTES[3].path, get(openapi))
        .with_state(Arc::new(state))
}

#[utoipa::path(
    get, path = "/openapi.json", tag = "public",
    summary = "This document",
    responses((status = 200, description = "the OpenAPI 3.1 document of every route",
        content_type = "application/json", body = Object)),
)]
async fn openapi() -> Response {
    let mut resp = axum::response::IntoResponse::into_response(OPENAPI_JSON);
    resp.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    resp
}

/// A sale as its storefront shows it, refreshed while the page is open.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct PublicSale {
    pub id: String,
    pub name: Option<String>,
    pub stock: i64,
    pub remaining: i64,
    pub per_user_limit: Option<i64>,
    #[schema(format = DateTime)]
    pub opens_at: Option<String>,
    #[schema(format = DateTime)]
    pub closes_at: Option<String>,
    /// A checkout sale's unit price (minor units), currency and hold.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub price: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hold_seconds: Option<u32>,
    /// The currency's minor-unit digits: the price shown is `price / 10^currency_exponent`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub currency_exponent: Option<u32>,
    /// The server's clock (ms since the epoch), so a page counts down by it, not by the device's.
    pub now_ms: i64,
    /// The sale's waiting room: buyers join its queue (`POST /sales/{sale_id}/queue`) and buy
    /// once admitted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting_room: Option<PublicWaitingRoom>,
}

/// A waiting room as anyone may see it.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct PublicWaitingRoom {
    /// When joining opens (the draw is at the sale's `opens_at`).
    #[schema(format = DateTime)]
    pub opens_at: String,
    /// Who may join: the claims a joiner's identity must carry, one place per value of
    /// `one_per` (absent: any buyer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entry: Option<flashflow::domain::waiting_room::entry::Entry>,
}

#[utoipa::path(
    get, path = "/sales/{sale_id}", tag = "public",
    summary = "A sale as its storefront shows it",
    params(("sale_id" = flashflow::domain::SaleId, Path, description = "the sale")),
    responses(
        (status = 200, description = "the sale now (not cached)", body = PublicSale),
        super::openapi::errors::PublicSaleErrors,
    ),
)]
async fn public_sale<T: StatusStore, S: PendingOrders + LiveSales>(
    State(state): State<Arc<OrdersState<T, S>>>,
    SalePath(id): SalePath,
) -> Result<Response, ApiError> {
    let live = state
        .store
        .live_sale(&id)
        .await?
        .ok_or(ApiError::Refused(flashflow::domain::Refusal::UnknownSale))?;
    let shown = live.shown.unwrap_or(flashflow::domain::sale::ShownSale {
        name: String::new(),
        price: None,
        currency: None,
        hold_seconds: None,
        currency_exponent: None,
    });
    let view = PublicSale {
        id: id.to_string(),
        name: (!shown.name.is_empty()).then_some(shown.name),
        stock: live.stock,
        remaining: live.remaining.max(0),
        per_user_limit: live.per_user_limit,
        opens_at: live
            .opens_at
            .map(|t| flashflow::domain::timefmt::format_ms(t.get())),
        closes_at: live
            .closes_at
            .map(|t| flashflow::domain::timefmt::format_ms(t.get())),
        price: shown.price,
        currency: shown.currency,
        hold_seconds: shown.hold_seconds,
        currency_exponent: shown.currency_exponent,
        now_ms: flashflow::domain::EpochMs::now().get(),
        waiting_room: live.queue_opens_at.map(|t| PublicWaitingRoom {
            opens_at: flashflow::domain::timefmt::format_ms(t.get()),
            entry: live.entry.clone(),
        }),
    };
    Ok(no_store(json(StatusCode::OK, &view)))
}

#[utoipa::path(
    get, path = "/orders/{order_id}", tag = "orders",
    summary = "One of the buyer's orders",
    description = "Where the order stands: PENDING (reserved, settling), then CONFIRMED, \
        REJECTED or DUPLICATE; a checkout order HELD until paid, then CONFIRMED, EXPIRED, \
        CANCELLED or REFUNDED. Someone else's order is 404, as an unknown one is.",
    params(("order_id" = Uuid, Path, description = "the order")),
    responses(
        (status = 200, description = "the order", body = OrderView),
        super::openapi::errors::OrderErrors,
    ),
    security(("buyer_jwt" = []), ("buyer_header" = [])),
)]
async fn order<T: StatusStore, S: PendingOrders>(
    State(state): State<Arc<OrdersState<T, S>>>,
    OrderPath(order_id): OrderPath,
    parts: Parts,
) -> Result<Response, ApiError> {
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

#[utoipa::path(
    get, path = "/admin/orders/{order_id}", tag = "operator",
    summary = "Any order (operators)",
    params(("order_id" = Uuid, Path, description = "the order")),
    responses(
        (status = 200, description = "the order", body = OrderView),
        super::openapi::errors::OrderErrors,
    ),
    security(("operator_iam" = []), ("operator_token" = [])),
)]
async fn admin_order<T: StatusStore, S: PendingOrders>(
    state: State<Arc<OrdersState<T, S>>>,
    OrderPath(order_id): OrderPath,
    parts: Parts,
) -> Result<Response, ApiError> {
    order(state, OrderPath(order_id), parts).await
}

/// An order as the API shows it: its status, and a checkout order's `pay_by` (RFC 3339).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct OrderView<'a> {
    #[serde(flatten)]
    pub status: &'a OrderStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub pay_by: Option<String>,
}

/// [`OrderView`] of `status`.
pub fn view(status: &OrderStatus) -> OrderView<'_> {
    OrderView {
        status,
        pay_by: status.pay_by_ms.map(flashflow::domain::timefmt::format_ms),
    }
}
