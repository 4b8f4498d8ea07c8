//! The operator API: create, show, rehydrate and reset sales. Postgres holds the sale; Redis gets
//! a copy of what the buy script needs, rebuilt from Postgres and the outbox on every load.
//!
//! In AWS the routes sit behind IAM authorization; the handlers also accept a bearer token when
//! `OPERATOR_TOKEN` is set (the local stack uses that).

use super::extract::SalePath;
use super::identity::operators_only;
use super::{json, json_body, parse_json, ApiError, Route};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::from_fn_with_state;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use flashflow::domain::sale::{valid_stock, NewSale};
use flashflow::domain::timefmt::format_ms;
use flashflow::domain::{InvalidInput, SaleId};
use flashflow::ports::{
    CreateOutcome, FailoverPauses, PendingOrders, QueueDepths, SaleCache, SaleLedger, StatusStore,
    WaitingRooms,
};
use flashflow_app::admin::{self, AdminError, Rehydrated, Reset};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tracing::info;

/// The operator function's routes (also declared in `template.yaml`).
pub const ROUTES: &[Route] = &[
    Route {
        method: "POST",
        path: "/admin/sales",
    },
    Route {
        method: "GET",
        path: "/admin/sales/{sale_id}",
    },
    Route {
        method: "POST",
        path: "/admin/sales/{sale_id}/reset",
    },
    Route {
        method: "POST",
        path: "/admin/sales/{sale_id}/rehydrate",
    },
    Route {
        method: "POST",
        path: "/admin/sales/{sale_id}/queue",
    },
];

const MAX_OPERATOR_BODY: usize = 16 * 1024;

/// The operator API's settings: `OPERATOR_TOKEN` (unset) and `SALE_RESET_ENABLED` (false).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct OperatorSettings {
    #[serde(rename = "operator_token")]
    pub token: Option<secrecy::SecretString>,
    #[serde(rename = "sale_reset_enabled")]
    pub allow_reset: flashflow_settings::Flag,
}

impl flashflow_settings::FromEnv for OperatorSettings {}

/// What the operator routes need: the ledger, the sale cache (with its outbox), the status
/// store and the orders queue's depth.
pub struct OperatorState<L, C, S, Q> {
    pub db: L,
    pub store: C,
    /// Where cancelled orders' statuses go (a forced reset).
    pub status: S,
    /// A sale a failover paused is rebuilt once the orders queue is empty ([`admin::rebuild`]).
    pub queues: Q,
    /// When set, `Authorization: Bearer <token>` also authorizes a request (besides IAM).
    pub token: Option<secrecy::SecretString>,
    /// Whether `POST /admin/sales/{id}/reset` may run (`SALE_RESET_ENABLED`, off by default in
    /// `template.yaml`): it ends a sale's round, which a production sale rarely wants.
    pub allow_reset: bool,
}

/// `POST /admin/sales/{sale_id}/rehydrate`'s body (optional).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RehydrateSale {
    /// Rebuild a sale a failover paused although the orders queue is not empty: orders still in
    /// it are not counted, and may end `REJECTED` after their `202`.
    #[serde(default)]
    force: bool,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ResetSale {
    #[serde(default, deserialize_with = "flashflow::domain::integer::optional")]
    stock: Option<i64>,
    /// Reset even with reserved, unsettled orders: they are recorded as rejected.
    #[serde(default)]
    force: bool,
}

/// A sale as the operator sees it.
#[derive(Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct SaleView {
    pub id: String,
    pub name: String,
    pub stock: u32,
    pub per_user_limit: u32,
    #[schema(format = DateTime)]
    pub opens_at: Option<String>,
    #[schema(format = DateTime)]
    pub closes_at: Option<String>,
    /// Buy attempts one buyer may make per minute (absent: not limited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts_per_minute: Option<u32>,
    /// Whether Redis holds the sale (false after Redis lost its data, until it is loaded again).
    pub loaded: bool,
    /// Stock Redis can still hand out.
    pub remaining: Option<i64>,
    /// Quantity reserved in Redis so far (stock - remaining).
    pub reserved: Option<i64>,
    /// Reservations not yet settled.
    pub pending: Option<i64>,
    /// Settled in Postgres (this round).
    pub settled: Settled,
    /// A checkout sale's terms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkout: Option<flashflow::domain::sale::Checkout>,
    /// A checkout sale's holds in Postgres (this round): held, expired, cancelled, refunded
    /// (`settled.confirmed_*` are the paid ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holds: Option<flashflow::ports::CheckoutCounts>,
    /// Incremented by every reset; earlier rounds' orders are kept in the archive.
    pub round: u32,
    /// What the last rehydration (or the load of this call) did, when this call did one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rehydrated: Option<Rehydrated>,
    /// What the reset of this call did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset: Option<Reset>,
    /// The sale's waiting room: its terms and its queue now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_room: Option<WaitingRoomView>,
}

/// A waiting room as the operator sees it.
#[derive(Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct WaitingRoomView {
    #[schema(format = DateTime)]
    pub opens_at: String,
    pub admission_seconds: u32,
    /// The pace of the terms (`null`: as fast as the stock allows); the queue's `admit_per_second`
    /// is the one in force.
    pub admit_per_second: Option<u32>,
    pub pow_bits: u8,
    /// The queue now (`null` while Redis does not hold the sale).
    #[serde(skip_deserializing)]
    pub queue: Option<flashflow_app::waiting_room::QueueView>,
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Settled {
    pub confirmed_quantity: u32,
    pub confirmed_orders: u64,
    pub rejected_orders: u64,
    pub duplicate_orders: u64,
}

/// What the operator routes need of the sale cache: the sale, its outbox, its waiting room, and
/// whether a failover paused it.
pub trait OperatorCache: SaleCache + PendingOrders + WaitingRooms + FailoverPauses {}

impl<T: SaleCache + PendingOrders + WaitingRooms + FailoverPauses> OperatorCache for T {}

type Shared<L, C, S, Q> = State<Arc<OperatorState<L, C, S, Q>>>;

/// The operator function's routes, without the shared fallbacks (see [`super::app`]).
pub fn routes<L: SaleLedger, C: OperatorCache, S: StatusStore, Q: QueueDepths>(
    state: OperatorState<L, C, S, Q>,
) -> Router {
    let token = state.token.clone().map(Arc::new);
    Router::new()
        .route(ROUTES[0].path, post(create::<L, C, S, Q>))
        .route(ROUTES[1].path, get(show::<L, C, S, Q>))
        .route(ROUTES[2].path, post(reset::<L, C, S, Q>))
        .route(ROUTES[3].path, post(rehydrate::<L, C, S, Q>))
        .route(ROUTES[4].path, post(queue::<L, C, S, Q>))
        .with_state(Arc::new(state))
        .route_layer(from_fn_with_state(token, operators_only))
}

#[utoipa::path(
    post, path = "/admin/sales", tag = "operator",
    summary = "Create a sale",
    description = "Records the sale in Postgres and loads it into Redis. Creating the same sale \
        again answers 200 with it (and loads it again if Redis lost it); another sale with the \
        same id is 409 sale_exists.",
    request_body(content = super::openapi::schemas::NewSale, content_type = "application/json"),
    responses(
        (status = 201, description = "created", body = SaleView),
        (status = 200, description = "this same sale existed", body = SaleView),
        super::openapi::errors::OperatorBodyErrors,
    ),
    security(("operator_iam" = []), ("operator_token" = [])),
)]
async fn create<L: SaleLedger, C: OperatorCache, S: StatusStore, Q: QueueDepths>(
    State(state): Shared<L, C, S, Q>,
    req: Request,
) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    let bytes = json_body(&parts.headers, body, MAX_OPERATOR_BODY)
        .await?
        .ok_or_else(|| InvalidInput::new("invalid_body", "body must be a JSON sale definition"))?;
    let def = parse_json::<NewSale>(&bytes, "invalid_body")?.validate()?;
    let (status, record) = match state.db.create_sale(&def).await? {
        CreateOutcome::Created => (StatusCode::CREATED, None),
        CreateOutcome::AlreadyExists(existing) => (StatusCode::OK, Some(existing)),
        CreateOutcome::Conflict(_) => {
            return Err(ApiError::Conflict {
                code: "sale_exists",
                message: format!("a different sale with id {} already exists", def.id),
            })
        }
    };
    // Loading after the insert: a retry of a create whose Redis load failed finishes the job,
    // and a create of a sale Redis lost rebuilds it from the ledger and the outbox.
    let done = admin::rebuild(&state.db, &state.store, &state.queues, &def.id, false).await?;
    info!(sale = %def.id, stock = def.stock, existed = record.is_some(), "sale created");
    let mut view = view(&state, &def.id).await?;
    view.rehydrated = Some(done);
    Ok(json(status, &view))
}

#[utoipa::path(
    post, path = "/admin/sales/{sale_id}/rehydrate", tag = "operator",
    summary = "Rebuild a sale in Redis from Postgres and the outbox",
    description = "Safe on a live sale: it never raises the remaining stock and never lowers a \
        buyer's count. A sale a Redis failover paused (REDIS_PAUSE_ON_FAILOVER) is rebuilt only \
        once the orders queue is empty (else 409 queue_not_drained; ask again, or force).",
    params(("sale_id" = SaleId, Path, description = "the sale")),
    request_body(content = Option<super::openapi::schemas::RehydrateRequest>,
        content_type = "application/json", description = "optional"),
    responses(
        (status = 200, description = "the sale, with what the rebuild did", body = SaleView),
        super::openapi::errors::OperatorBodyErrors,
    ),
    security(("operator_iam" = []), ("operator_token" = [])),
)]
async fn rehydrate<L: SaleLedger, C: OperatorCache, S: StatusStore, Q: QueueDepths>(
    State(state): Shared<L, C, S, Q>,
    SalePath(id): SalePath,
    req: Request,
) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    let body = match json_body(&parts.headers, body, MAX_OPERATOR_BODY).await? {
        None => RehydrateSale::default(),
        Some(bytes) => parse_json::<RehydrateSale>(&bytes, "invalid_body")?,
    };
    let done = admin::rebuild(&state.db, &state.store, &state.queues, &id, body.force).await?;
    let mut view = view(&state, &id).await?;
    view.rehydrated = Some(done);
    Ok(json(StatusCode::OK, &view))
}

#[utoipa::path(
    get, path = "/admin/sales/{sale_id}", tag = "operator",
    summary = "A sale: its terms, Redis' and Postgres' counts",
    params(("sale_id" = SaleId, Path, description = "the sale")),
    responses(
        (status = 200, description = "the sale", body = SaleView),
        super::openapi::errors::OperatorErrors,
    ),
    security(("operator_iam" = []), ("operator_token" = [])),
)]
async fn show<L: SaleLedger, C: OperatorCache, S: StatusStore, Q: QueueDepths>(
    State(state): Shared<L, C, S, Q>,
    SalePath(id): SalePath,
) -> Result<Response, ApiError> {
    Ok(json(StatusCode::OK, &view(&state, &id).await?))
}

#[utoipa::path(
    post, path = "/admin/sales/{sale_id}/reset", tag = "operator",
    summary = "Start a sale's next round",
    description = "Only where SALE_RESET_ENABLED (off in AWS; else 403 forbidden). Refused while \
        orders are reserved and unsettled (unless force) or held for payment.",
    params(("sale_id" = SaleId, Path, description = "the sale")),
    request_body(content = Option<super::openapi::schemas::ResetRequest>,
        content_type = "application/json", description = "optional"),
    responses(
        (status = 200, description = "the sale's new round", body = SaleView),
        super::openapi::errors::OperatorBodyErrors,
    ),
    security(("operator_iam" = []), ("operator_token" = [])),
)]
async fn reset<L: SaleLedger, C: OperatorCache, S: StatusStore, Q: QueueDepths>(
    State(state): Shared<L, C, S, Q>,
    SalePath(id): SalePath,
    req: Request,
) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    if !state.allow_reset {
        return Err(ApiError::Forbidden);
    }
    let body = match json_body(&parts.headers, body, MAX_OPERATOR_BODY).await? {
        None => ResetSale::default(),
        Some(bytes) => parse_json::<ResetSale>(&bytes, "invalid_body")?,
    };
    let stock = body.stock.map(valid_stock).transpose()?;
    let done = admin::reset(
        &state.db,
        &state.store,
        &state.status,
        &id,
        stock,
        body.force,
    )
    .await?;
    let mut view = view(&state, &id).await?;
    view.reset = Some(done);
    Ok(json(StatusCode::OK, &view))
}

/// `POST /admin/sales/{sale_id}/queue`'s body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QueueControl {
    paused: Option<bool>,
    /// Absent: unchanged; `null`: as fast as the stock allows.
    #[serde(default, deserialize_with = "some_integer")]
    admit_per_second: Option<Option<i64>>,
}

/// A present field, `null` or an integer, as `Some`: absent stays `None` (`#[serde(default)]`).
fn some_integer<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<i64>>, D::Error> {
    flashflow::domain::integer::optional(d).map(Some)
}

#[utoipa::path(
    post, path = "/admin/sales/{sale_id}/queue", tag = "operator",
    summary = "Pause or resume a waiting room's inlet, or set its pace",
    params(("sale_id" = SaleId, Path, description = "the sale")),
    request_body(content = super::openapi::schemas::QueueControlRequest,
        content_type = "application/json"),
    responses(
        (status = 200, description = "the queue now", body = flashflow_app::waiting_room::QueueView),
        super::openapi::errors::OperatorBodyErrors,
    ),
    security(("operator_iam" = []), ("operator_token" = [])),
)]
async fn queue<L: SaleLedger, C: OperatorCache, S: StatusStore, Q: QueueDepths>(
    State(state): Shared<L, C, S, Q>,
    SalePath(id): SalePath,
    req: Request,
) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    let bytes = json_body(&parts.headers, body, MAX_OPERATOR_BODY)
        .await?
        .ok_or_else(|| InvalidInput::new("invalid_body", "body must be a JSON object"))?;
    let control = parse_json::<QueueControl>(&bytes, "invalid_body")?;
    let pace = match control.admit_per_second {
        None => None,
        Some(None) => Some(None),
        Some(Some(n)) => Some(Some(u32::try_from(n).map_err(|_| {
            InvalidInput::new(
                "invalid_admit_per_second",
                "admit_per_second must be an integer from 1 to 100000, or null",
            )
        })?)),
    };
    let view = flashflow_app::waiting_room::control(&state.store, &id, control.paused, pace)
        .await?
        .ok_or(flashflow_app::waiting_room::QueueError::NoQueue)?;
    Ok(json(StatusCode::OK, &view))
}

impl From<AdminError> for ApiError {
    fn from(e: AdminError) -> Self {
        match e {
            AdminError::NotFound(id) => not_found(&id),
            AdminError::Pending { sale, pending } => ApiError::Conflict {
                code: "sale_has_pending_orders",
                message: format!(
                    "sale {sale} has {pending} reserved orders not settled yet; retry once \
                     they settle, or send {{\"force\": true}} to record them as rejected"
                ),
            },
            AdminError::Held { sale, held } => ApiError::Conflict {
                code: "sale_has_held_orders",
                message: format!(
                    "sale {sale} has {held} orders held for payment; a reset waits until they are \
                     paid, cancelled or expired (force does not apply: their buyers may still pay)"
                ),
            },
            AdminError::ResetWaits { sale, in_play } => ApiError::Incomplete {
                code: "reset_incomplete",
                message: format!(
                    "the reset of sale {sale} began and waits for {in_play} orders still in play \
                     (held for payment, or a return or status being written); the sale is paused \
                     (buys answer 503, nothing is taken) until the reset is run again after they end"
                ),
            },
            AdminError::WaitingRoom(sale) => ApiError::Conflict {
                code: "sale_has_waiting_room",
                message: format!(
                    "sale {sale} has a waiting room: its draw is this round's, so it is not reset"
                ),
            },
            AdminError::QueueNotDrained { sale, in_queue } => ApiError::Conflict {
                code: "queue_not_drained",
                message: format!(
                    "a Redis failover paused sale {sale}, and the orders queue holds {} messages: \
                     orders answered before the failover may be among them, so the rebuild \
                     waits until settle has drained it; ask again then, or send \
                     {{\"force\": true}} to rebuild without them",
                    in_queue.map_or_else(|| "an unknown number of".to_owned(), |n| n.to_string())
                ),
            },
            AdminError::Store(e) => e.into(),
            AdminError::Db(e) => e.into(),
        }
    }
}

fn not_found(id: &SaleId) -> ApiError {
    ApiError::NotFound {
        code: "sale_not_found",
        message: format!("no sale with id {id}"),
    }
}

async fn view<L: SaleLedger, C: OperatorCache, S: StatusStore, Q: QueueDepths>(
    state: &OperatorState<L, C, S, Q>,
    id: &SaleId,
) -> Result<SaleView, ApiError> {
    let record = state.db.sale(id).await?.ok_or_else(|| not_found(id))?;
    let live = state.store.live_sale(id).await?;
    let d = &record.definition;
    Ok(SaleView {
        id: d.id.to_string(),
        name: d.name.clone(),
        stock: d.stock,
        per_user_limit: d.per_user_limit,
        opens_at: d.opens_at_ms.map(format_ms),
        closes_at: d.closes_at_ms.map(format_ms),
        attempts_per_minute: d.attempts_per_minute,
        loaded: live.is_some(),
        remaining: live.as_ref().map(|l| l.remaining),
        reserved: live.as_ref().map(|l| l.stock - l.remaining),
        pending: live.as_ref().map(|l| l.pending),
        settled: Settled {
            confirmed_quantity: record.confirmed_quantity,
            confirmed_orders: record.confirmed_orders,
            rejected_orders: record.rejected_orders,
            duplicate_orders: record.duplicate_orders,
        },
        checkout: d.checkout.clone(),
        holds: d.checkout.as_ref().map(|_| record.checkout.clone()),
        round: record.round,
        rehydrated: None,
        reset: None,
        waiting_room: match &d.waiting_room {
            None => None,
            Some(w) => Some(WaitingRoomView {
                opens_at: format_ms(w.opens_at_ms),
                admission_seconds: w.admission_seconds,
                admit_per_second: w.admit_per_second,
                pow_bits: w.pow_bits,
                queue: flashflow_app::waiting_room::operator_view(&state.store, id).await?,
            }),
        },
    })
}
