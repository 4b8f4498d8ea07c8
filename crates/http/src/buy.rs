//! `POST /sales/{sale_id}/buy`: reserve, hand the order to the queue, answer `202`.

use super::extract::SalePath;
use super::{json, json_body, parse_json, single_header, ApiError, Route};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use flashflow::domain::{IdempotencyKey, OrderState, Quantity, SaleId};
use flashflow::ports::{AnswerTally, OrderPublisher, ReservationStore, SentMarks};
use flashflow_app::buy::{Bought, Buy, BuyError, BuyOrder};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use uuid::Uuid;

/// The buy function's routes (also declared in `template.yaml`; a test keeps the two equal).
pub const ROUTES: &[Route] = &[Route {
    method: "POST",
    path: "/sales/{sale_id}/buy",
}];

/// A buy body is `{"quantity": n}` at most; anything much larger is not a buy.
pub const MAX_BUY_BODY: usize = 1024;

/// Who may call buy: `TRUST_USER_HEADER` (false) accepts the buyer from the `X-User-Id` header
/// when no JWT claim is present, for local use only (in AWS the API Gateway JWT authorizer
/// supplies the buyer).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct BuyCallers {
    pub trust_user_header: flashflow_settings::Flag,
}

impl flashflow_settings::FromEnv for BuyCallers {}

/// What the buy routes need: the use case and who may call it.
pub struct BuyState<S, P> {
    pub buy: Arc<Buy<S, P>>,
    pub callers: BuyCallers,
}

/// The answer to a buy: `202` with `PENDING`, or for a replay of a settled order `200` with its
/// state.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Accepted {
    pub order_id: Uuid,
    pub sale_id: SaleId,
    pub status: OrderState,
    /// A checkout sale's order: pay before this (RFC 3339), or the hold ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub pay_by: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BuyBody {
    #[serde(default, deserialize_with = "flashflow::domain::integer::optional")]
    quantity: Option<i64>,
}

/// The buy function's routes, without the shared fallbacks (see [`super::app`]).
pub fn routes<S: ReservationStore + SentMarks + AnswerTally, P: OrderPublisher>(
    state: BuyState<S, P>,
) -> Router {
    Router::new()
        .route(ROUTES[0].path, post(buy::<S, P>))
        .with_state(Arc::new(state))
}

/// Reserve: the answer says what happened, and only a `503 outcome_unknown` leaves it open (it
/// names the order).
#[utoipa::path(
    post, path = "/sales/{sale_id}/buy", tag = "buy",
    summary = "Reserve units of a sale",
    description = "Takes stock at once and answers 202 with the order, which settles \
        (CONFIRMED, or HELD until paid in a checkout sale) within seconds. Send an \
        Idempotency-Key: a retry with it gets the same order and takes nothing more.",
    params(
        ("sale_id" = SaleId, Path, description = "the sale"),
        ("Idempotency-Key" = Option<flashflow::domain::IdempotencyKey>, Header,
            description = "the buyer's key for this request: a retry with it answers the same order"),
        ("Admission-Token" = Option<String>, Header,
            description = "a sale with a waiting room: the admission token of the buyer's place \
                (GET /sales/{sale_id}/queue/{ticket}); without a valid one, 403 not_admitted"),
    ),
    request_body(content = Option<super::openapi::schemas::BuyRequest>,
        content_type = "application/json", description = "optional: no body buys one"),
    responses(
        (status = 202, description = "reserved: the order is PENDING until settled", body = Accepted,
            links(
                ("GetOrder" = (operation_id = "order",
                    parameters(("order_id" = "$response.body#/order_id")),
                    description = "where the order stands")),
                ("PayOrder" = (operation_id = "pay",
                    parameters(("order_id" = "$response.body#/order_id")),
                    description = "a checkout sale's order: pay before pay_by")),
                ("CancelOrder" = (operation_id = "cancel",
                    parameters(("order_id" = "$response.body#/order_id")),
                    description = "a checkout sale's order: give it up")),
            )),
        (status = 200, description = "a retry of an order already settled: where it stands now",
            body = Accepted),
        super::openapi::errors::BuyErrors,
    ),
    security(("buyer_jwt" = []), ("buyer_header" = [])),
)]
async fn buy<S: ReservationStore + SentMarks + AnswerTally, P: OrderPublisher>(
    State(state): State<Arc<BuyState<S, P>>>,
    SalePath(sale): SalePath,
    req: Request,
) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    let buyer = super::identity::buyer(&parts, state.callers.trust_user_header.get())?;
    let idempotency_key =
        single_header(&parts.headers, "idempotency-key", "invalid_idempotency_key")?
            .map(IdempotencyKey::parse)
            .transpose()?;
    let quantity = match json_body(&parts.headers, body, MAX_BUY_BODY).await? {
        None => Quantity::default(),
        Some(bytes) => match parse_json::<BuyBody>(&bytes, "invalid_body")?.quantity {
            None => Quantity::default(),
            Some(n) => Quantity::new(n)?,
        },
    };
    let admission_token =
        single_header(&parts.headers, "admission-token", "invalid_admission_token")?
            .map(str::to_owned);
    let order = BuyOrder {
        sale: sale.clone(),
        buyer,
        quantity,
        idempotency_key,
        admission_token,
    };
    let (status, order_id, state, pay_by_ms) = match state.buy.buy(order).await? {
        Bought::Reserved {
            order_id,
            pay_by_ms,
        } => (
            StatusCode::ACCEPTED,
            order_id,
            OrderState::Pending,
            pay_by_ms,
        ),
        // A replay answers where the order stands now: 202 while pending, 200 once settled.
        Bought::Replayed {
            order_id,
            state: None,
        } => (StatusCode::ACCEPTED, order_id, OrderState::Pending, None),
        Bought::Replayed {
            order_id,
            state: Some(state),
        } => (StatusCode::OK, order_id, state, None),
    };
    Ok(json(
        status,
        &Accepted {
            order_id,
            sale_id: sale,
            status: state,
            pay_by: pay_by_ms.map(flashflow::domain::timefmt::format_ms),
        },
    ))
}

impl From<BuyError> for ApiError {
    fn from(e: BuyError) -> Self {
        match e {
            BuyError::Refused(r) => Self::Refused(r),
            BuyError::NotReserved(e) => Self::NotReserved(e),
            BuyError::OutcomeUnknown { order_id, source } => {
                Self::OutcomeUnknown { order_id, source }
            }
            BuyError::Failed(e) => Self::Internal(Box::new(e)),
            BuyError::Internal(e) => Self::Internal(e),
        }
    }
}
