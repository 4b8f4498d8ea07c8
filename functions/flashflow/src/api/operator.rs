//! The operator API: create, show, rehydrate and reset sales. Postgres holds the sale; Redis gets
//! a copy of what the buy script needs, rebuilt from Postgres and the outbox on every load.
//!
//! In AWS the routes sit behind IAM authorization; the handlers also accept a bearer token when
//! `OPERATOR_TOKEN` is set (the local stack uses that).

use super::{json, json_body, parse_json, path_param, ApiError, Route};
use crate::adapters::dynamodb::DynamoStatusStore;
use crate::adapters::postgres::{CreateOutcome, Db};
use crate::adapters::redis::RedisStore;
use crate::admin::{self, AdminError, Rehydrated, Reset};
use crate::domain::sale::{valid_stock, NewSale};
use crate::domain::{InvalidInput, SaleId};
use crate::timefmt::format_ms;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
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
];

const MAX_OPERATOR_BODY: usize = 16 * 1024;

/// What the operator routes need.
pub struct OperatorState {
    pub db: Db,
    pub store: RedisStore,
    /// Where cancelled orders' statuses go (a forced reset).
    pub status: DynamoStatusStore,
    /// When set, `Authorization: Bearer <token>` also authorizes a request (besides IAM).
    pub token: Option<String>,
    /// Whether `POST /admin/sales/{id}/reset` may run (`SALE_RESET_ENABLED`, off by default in
    /// `template.yaml`): it ends a sale's round, which a production sale rarely wants.
    pub allow_reset: bool,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ResetSale {
    stock: Option<i64>,
    /// Reset even with reserved, unsettled orders: they are recorded as rejected.
    #[serde(default)]
    force: bool,
}

/// A sale as the operator sees it.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SaleView {
    pub id: String,
    pub name: String,
    pub stock: u32,
    pub per_user_limit: u32,
    pub opens_at: Option<String>,
    pub closes_at: Option<String>,
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
    /// Incremented by every reset; earlier rounds' orders are kept in the archive.
    pub round: u32,
    /// What the last rehydration (or the load of this call) did, when this call did one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rehydrated: Option<Rehydrated>,
    /// What the reset of this call did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset: Option<Reset>,
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Settled {
    pub confirmed_quantity: u32,
    pub confirmed_orders: u64,
    pub rejected_orders: u64,
    pub duplicate_orders: u64,
}

type Shared = State<Arc<OperatorState>>;
type SalePath = Result<Path<String>, PathRejection>;

/// The operator function's routes, without the shared fallbacks (see [`super::app`]).
pub fn routes(state: OperatorState) -> Router {
    Router::new()
        .route(ROUTES[0].path, post(create))
        .route(ROUTES[1].path, get(show))
        .route(ROUTES[2].path, post(reset))
        .route(ROUTES[3].path, post(rehydrate))
        .with_state(Arc::new(state))
}

fn authorize(state: &OperatorState, parts: &Parts) -> Result<(), ApiError> {
    super::identity::operator(parts, state.token.as_deref())
}

fn sale_id(path: SalePath) -> Result<SaleId, ApiError> {
    Ok(SaleId::parse(&path_param(path, "invalid_sale_id")?)?)
}

async fn create(State(state): Shared, req: Request) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    authorize(&state, &parts)?;
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
    let (_, done) = admin::rehydrate(&state.db, &state.store, &def.id).await?;
    info!(sale = %def.id, stock = def.stock, existed = record.is_some(), "sale created");
    let mut view = view(&state, &def.id).await?;
    view.rehydrated = Some(done);
    Ok(json(status, &view))
}

async fn rehydrate(State(state): Shared, id: SalePath, parts: Parts) -> Result<Response, ApiError> {
    authorize(&state, &parts)?;
    let id = sale_id(id)?;
    let (_, done) = admin::rehydrate(&state.db, &state.store, &id).await?;
    let mut view = view(&state, &id).await?;
    view.rehydrated = Some(done);
    Ok(json(StatusCode::OK, &view))
}

async fn show(State(state): Shared, id: SalePath, parts: Parts) -> Result<Response, ApiError> {
    authorize(&state, &parts)?;
    let id = sale_id(id)?;
    Ok(json(StatusCode::OK, &view(&state, &id).await?))
}

async fn reset(State(state): Shared, id: SalePath, req: Request) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    authorize(&state, &parts)?;
    let id = sale_id(id)?;
    if !state.allow_reset {
        return Err(ApiError::Forbidden);
    }
    let body = match json_body(&parts.headers, body, MAX_OPERATOR_BODY).await? {
        None => ResetSale::default(),
        Some(bytes) => parse_json::<ResetSale>(&bytes, "invalid_body")?,
    };
    let stock = body.stock.map(valid_stock).transpose()?;
    let (_, done) = admin::reset(
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

async fn view(state: &OperatorState, id: &SaleId) -> Result<SaleView, ApiError> {
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
        round: record.round,
        rehydrated: None,
        reset: None,
    })
}
