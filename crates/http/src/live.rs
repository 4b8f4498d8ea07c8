//! `GET /admin/sales/{sale_id}/live` (operators): one snapshot of a sale for the live view, from
//! Redis (remaining, pending, the oldest pending order, sold-out answers), Postgres (held, paid,
//! expired, cancelled, refunded) and SQS (the queue and DLQ depths). The view turns the
//! counters into rates.

use super::extract::{no_store, SalePath};
use super::identity::operators_only;
use super::{json, ApiError, Route};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use flashflow::domain::{OrderMessage, SaleId};
use flashflow::ports::{LiveSales, PendingOrders, QueueDepths, QueueSteps, SaleLedger};
use serde::Serialize;
use std::sync::Arc;

/// The live view's route (also declared in `template.yaml`).
pub const ROUTES: &[Route] = &[Route {
    method: "GET",
    path: "/admin/sales/{sale_id}/live",
}];

/// Above this many pending orders the settlement lag is not computed (it reads each one).
const LAG_READ_LIMIT: i64 = 10_000;

/// What the live view needs.
pub struct LiveState<L, C, Q> {
    pub db: L,
    pub store: C,
    pub queues: Q,
    /// When set, `Authorization: Bearer <token>` identifies an operator (besides IAM).
    pub token: Option<secrecy::SecretString>,
}

/// One snapshot of a sale.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Snapshot {
    pub at_ms: i64,
    pub stock: i64,
    pub remaining: i64,
    /// Taken in Redis (stock - remaining).
    pub reserved: i64,
    /// Reserved, not yet settled.
    pub pending: i64,
    /// The oldest pending order's reservation time (the settlement lag is `at_ms` minus it).
    pub oldest_pending_ms: Option<i64>,
    /// Buys answered 202 so far in this round (settled orders of every state, and pending ones).
    pub accepted: u64,
    /// Buys answered sold out so far, as the buy processes counted them (flushed each second).
    pub sold_out_answers: i64,
    pub held: u64,
    pub paid: u64,
    pub expired: u64,
    pub cancelled: u64,
    pub refunded: u64,
    pub rejected: u64,
    pub queue_depth: Option<i64>,
    pub dlq_depth: Option<i64>,
    /// The sale's waiting room now (absent for a sale without one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting_room: Option<flashflow_app::waiting_room::QueueView>,
}

/// The live view's routes.
pub fn routes<L: SaleLedger, C: LiveSales + PendingOrders + QueueSteps, Q: QueueDepths>(
    state: LiveState<L, C, Q>,
) -> Router {
    let token = state.token.clone().map(Arc::new);
    Router::new()
        .route(ROUTES[0].path, get(snapshot::<L, C, Q>))
        .with_state(Arc::new(state))
        .route_layer(axum::middleware::from_fn_with_state(token, operators_only))
}

#[utoipa::path(
    get, path = "/admin/sales/{sale_id}/live", tag = "operator",
    summary = "One snapshot of a sale for the live view",
    params(("sale_id" = SaleId, Path, description = "the sale")),
    responses(
        (status = 200, description = "the sale now (not cached)", body = Snapshot),
        super::openapi::errors::OperatorErrors,
    ),
    security(("operator_iam" = []), ("operator_token" = [])),
)]
async fn snapshot<L: SaleLedger, C: LiveSales + PendingOrders + QueueSteps, Q: QueueDepths>(
    State(state): State<Arc<LiveState<L, C, Q>>>,
    SalePath(id): SalePath,
) -> Result<Response, ApiError> {
    let (record, live, (queue_depth, dlq_depth), room) = tokio::join!(
        state.db.sale(&id),
        state.store.live_sale(&id),
        state.queues.depths(),
        flashflow_app::waiting_room::operator_view(&state.store, &id)
    );
    let record = record?.ok_or_else(|| ApiError::NotFound {
        code: "sale_not_found",
        message: format!("no sale {id}"),
    })?;
    let live = live?;
    let pending = live.as_ref().map_or(0, |l| l.pending);
    let oldest_pending_ms = if pending > 0 && pending <= LAG_READ_LIMIT {
        state
            .store
            .entries(&id)
            .await?
            .iter()
            .filter_map(|(_, m)| OrderMessage::parse(m).ok())
            .map(|o| o.reserved_at_ms)
            .min()
    } else {
        None
    };
    let c = &record.checkout;
    let settled = record.confirmed_orders
        + record.rejected_orders
        + record.duplicate_orders
        + c.held_orders
        + c.expired_orders
        + c.cancelled_orders
        + c.refunded_orders;
    let snap = Snapshot {
        at_ms: flashflow::domain::EpochMs::now().get(),
        stock: i64::from(record.definition.stock),
        remaining: live.as_ref().map_or(0, |l| l.remaining),
        reserved: live.as_ref().map_or(0, |l| l.stock - l.remaining),
        pending,
        oldest_pending_ms,
        accepted: settled + pending as u64,
        sold_out_answers: live.as_ref().map_or(0, |l| l.sold_out_answers),
        held: c.held_orders,
        paid: record.confirmed_orders,
        expired: c.expired_orders,
        cancelled: c.cancelled_orders,
        refunded: c.refunded_orders,
        rejected: record.rejected_orders,
        queue_depth,
        dlq_depth,
        waiting_room: room?,
    };
    Ok(no_store(json(StatusCode::OK, &snap)))
}
