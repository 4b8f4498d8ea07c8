//! `POST /sales/{sale_id}/buy`: reserve, hand the order to the queue, answer `202`.

use super::{json, json_body, parse_json, path_param, single_header, ApiError, Route};
use crate::clock::EpochMs;
use crate::domain::{
    IdempotencyKey, OrderState, Quantity, Refusal, Reservation, ReserveRequest, SaleId,
};
use crate::metrics::{Count, Metrics};
use crate::ports::{
    AnswerTally, Delivery, OrderPublisher, ReservationStore, SentMarks, StoreError,
};
use crate::settings::{Flag, Millis};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tracing::{info, warn};
use uuid::Uuid;

/// The buy function's routes (also declared in `template.yaml`; a test keeps the two equal).
pub const ROUTES: &[Route] = &[Route {
    method: "POST",
    path: "/sales/{sale_id}/buy",
}];

/// A buy body is `{"quantity": n}` at most; anything much larger is not a buy.
pub const MAX_BUY_BODY: usize = 1024;

/// Settings of the buy handler: `TRUST_USER_HEADER` (false), `OUTBOX_IN_QUEUE_MS` (the queue's
/// retention, 4 days), `BUY_DEADLINE_MS` (3000).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct BuySettings {
    /// Accept the buyer from the `X-User-Id` header when no JWT claim is present. For local use
    /// only: in AWS the API Gateway JWT authorizer supplies the buyer.
    pub trust_user_header: Flag,
    /// How long a sent message may stay in the queue unsettled (the queue's retention): until
    /// then the sweeper does not re-send the order.
    #[serde(rename = "outbox_in_queue_ms")]
    pub in_queue_for: Millis,
    /// How long a buy keeps asking the store again, with the same order id, when an answer did
    /// not come (a timeout or a broken connection). Past it the buyer gets `503 outcome_unknown`
    /// naming the order. A call already sent still ends within the store's command timeout.
    #[serde(rename = "buy_deadline_ms")]
    pub deadline: Millis,
}

impl crate::settings::FromEnv for BuySettings {}

impl Default for BuySettings {
    fn default() -> Self {
        Self {
            trust_user_header: Flag(false),
            in_queue_for: crate::ports::IN_QUEUE_FOR,
            // Three tries at Redis' default 1 s command timeout.
            deadline: Millis::secs(3),
        }
    }
}

/// What the buy routes need: the reservation store and the order queue.
pub struct BuyState<S, P> {
    pub store: S,
    pub publisher: P,
    pub settings: BuySettings,
    /// Admission tokens of sales with a waiting room, checked in the process.
    pub gate: crate::app::waiting_room::gate::AdmissionGate,
    /// Outcome counts (EMF); the Lambda flushes after each request, the local server on a timer.
    pub metrics: Metrics,
}

/// The answer to a buy: `202` with `PENDING`, or for a replay of a settled order `200` with its
/// state.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Accepted {
    pub order_id: Uuid,
    pub sale_id: SaleId,
    pub status: OrderState,
    /// A checkout sale's order: pay before this (RFC 3339), or the hold ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub pay_by: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BuyBody {
    #[serde(default, deserialize_with = "crate::domain::integer::optional")]
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
#[cfg_attr(feature = "openapi", utoipa::path(
    post, path = "/sales/{sale_id}/buy", tag = "buy",
    summary = "Reserve units of a sale",
    description = "Takes stock at once and answers 202 with the order, which settles \
        (CONFIRMED, or HELD until paid in a checkout sale) within seconds. Send an \
        Idempotency-Key: a retry with it gets the same order and takes nothing more.",
    params(
        ("sale_id" = SaleId, Path, description = "the sale"),
        ("Idempotency-Key" = Option<crate::domain::IdempotencyKey>, Header,
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
))]
async fn buy<S: ReservationStore + SentMarks + AnswerTally, P: OrderPublisher>(
    State(state): State<Arc<BuyState<S, P>>>,
    sale: Result<Path<String>, PathRejection>,
    req: Request,
) -> Result<Response, ApiError> {
    let sale = SaleId::parse(&path_param(sale, "invalid_sale_id")?)?;
    let (parts, body) = req.into_parts();
    let buyer = super::identity::buyer(&parts, state.settings.trust_user_header.get())?;
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
    // A sale with a waiting room: the admission token is checked here, no store asked.
    let token = single_header(&parts.headers, "admission-token", "invalid_admission_token")?;
    let admission = match state.gate.check(&sale, &buyer, token, EpochMs::now().get()) {
        Ok(admission) => admission,
        Err(why) => {
            state.metrics.add(Count::NotAdmitted, 1);
            info!(sale = %sale, reason = %why, "not admitted");
            return Err(ApiError::Refused(Refusal::NotAdmitted));
        }
    };

    // A sale this process knows to be sold out or closed is answered here, before an order id
    // or a task is made: most of a drop's requests end on this line.
    if let Some(refusal) = state
        .store
        .refusal_from_memory(&sale, &buyer, idempotency_key.as_ref())
    {
        return Err(refused(&state, &sale, refusal));
    }
    let request = ReserveRequest {
        order_id: Uuid::now_v7(),
        sale,
        buyer,
        quantity,
        idempotency_key,
        admission,
    };
    // From here on the buy runs to its answer in a task of its own: a client that goes away (or
    // a server deadline) must not cut it between the reservation and the answer.
    let task = tokio::spawn(reserve_and_answer(state, request));
    task.await.map_err(|e| ApiError::Internal(Box::new(e)))?
}

async fn reserve_and_answer<S: ReservationStore + SentMarks + AnswerTally, P: OrderPublisher>(
    state: Arc<BuyState<S, P>>,
    request: ReserveRequest,
) -> Result<Response, ApiError> {
    let quantity = request.quantity;
    let reservation =
        match reserve_until_known(&state.store, &request, state.settings.deadline.get()).await {
            Ok(r) => r,
            Err(e) => {
                if !matches!(e, ApiError::Internal(_)) {
                    state.metrics.add(Count::Unavailable, 1);
                }
                return Err(e);
            }
        };
    let mut pay_by = None;
    let order_id = match reservation {
        Reservation::Reserved {
            order_id,
            message,
            pay_by_ms,
        } => {
            pay_by = pay_by_ms.map(crate::domain::timefmt::format_ms);
            state.metrics.add(Count::Accepted, 1);
            if request.admission.is_some() {
                state.metrics.add(Count::AdmissionUsed, 1);
            }
            // A failed send is not the buyer's problem: the reservation is in the outbox and
            // the sweeper delivers it.
            match state
                .publisher
                .publish_order(&request.sale, order_id, &message)
                .await
            {
                // The relay marks what it sends itself.
                Ok(Delivery::Relayed) => {}
                Ok(Delivery::Sent) => {
                    // Tell the sweeper the message is in the queue, off the buyer's path: if this
                    // mark is lost, the sweeper re-sends once after its grace, which settle absorbs.
                    let (state, sale) = (Arc::clone(&state), request.sale.clone());
                    tokio::spawn(async move {
                        let until = EpochMs::now().plus(state.settings.in_queue_for.get());
                        if let Err(e) = state.store.mark_sent(&sale, &[order_id], until).await {
                            warn!(sale = %sale, order = %order_id, error = %e, "could not mark as sent");
                        }
                    });
                }
                Err(e) => {
                    warn!(sale = %request.sale, order = %order_id, error = %e, "send failed, left in outbox");
                }
            }
            info!(sale = %request.sale, order = %order_id, quantity = quantity.get(), "reserved");
            order_id
        }
        Reservation::Duplicate { order_id, state } => {
            info!(sale = %request.sale, order = %order_id, "idempotent replay");
            // A replay answers where the order stands now: 202 while pending, 200 once settled.
            if let Some(state) = state {
                return Ok(json(
                    StatusCode::OK,
                    &Accepted {
                        order_id,
                        sale_id: request.sale,
                        status: state,
                        pay_by: None,
                    },
                ));
            }
            order_id
        }
        Reservation::Refused(r) => return Err(refused(&state, &request.sale, r)),
    };
    Ok(json(
        StatusCode::ACCEPTED,
        &Accepted {
            order_id,
            sale_id: request.sale,
            status: OrderState::Pending,
            pay_by,
        },
    ))
}

/// A refusal's answer, counted (and a sold-out one tallied for the live view).
fn refused<S: ReservationStore + SentMarks + AnswerTally, P: OrderPublisher>(
    state: &Arc<BuyState<S, P>>,
    sale: &SaleId,
    refusal: Refusal,
) -> ApiError {
    match refusal {
        Refusal::SoldOut => {
            state.metrics.add(Count::SoldOut, 1);
            if let Some(batch) = tally_sold_out(sale) {
                let state = Arc::clone(state);
                tokio::spawn(async move {
                    if let Err(e) = state.store.add_sold_out(&batch).await {
                        warn!(error = %e, "sold-out tally lost (it feeds the live view only)");
                    }
                });
            }
        }
        Refusal::LimitReached { .. } => state.metrics.add(Count::LimitReached, 1),
        Refusal::NotAdmitted => {
            // The script knows the sale has a waiting room: from now on this process does too.
            state.gate.learn(sale);
            state.metrics.add(Count::NotAdmitted, 1);
        }
        _ => {}
    }
    ApiError::Refused(refusal)
}

/// Reserve, and when no answer came (the script may or may not have run), ask again with the same
/// order id while `deadline` allows: the script answers a second run of an order with the first
/// run's result, so asking again is safe and tells what happened.
///
/// # Errors
/// [`ApiError::NotReserved`] when the store refused before running anything;
/// [`ApiError::OutcomeUnknown`] when the last answer still leaves the reservation in doubt.
async fn reserve_until_known<S: ReservationStore>(
    store: &S,
    request: &ReserveRequest,
    deadline: std::time::Duration,
) -> Result<Reservation, ApiError> {
    let until = tokio::time::Instant::now() + deadline;
    let mut in_doubt = false;
    loop {
        match store.reserve(request).await {
            Ok(r) => return Ok(r),
            Err(e @ StoreError::Failed(_)) if !in_doubt => return Err(e.into()),
            Err(StoreError::Unavailable(e)) if !in_doubt => return Err(ApiError::NotReserved(e)),
            Err(e) => {
                in_doubt = true;
                if tokio::time::Instant::now() >= until {
                    warn!(sale = %request.sale, order = %request.order_id, error = %e,
                        "reservation outcome unknown at the deadline");
                    return Err(ApiError::OutcomeUnknown {
                        order_id: request.order_id,
                        source: Box::new(e),
                    });
                }
                warn!(sale = %request.sale, order = %request.order_id, error = %e,
                    "no answer from the store: asking again for the same order");
                // A short pause: a store that refuses at once is not asked in a tight loop.
                tokio::time::sleep(RETRY_PAUSE.min(until - tokio::time::Instant::now())).await;
            }
        }
    }
}

/// Sold-out answers per sale since the last flush, for the live view. One per process (a Lambda
/// instance, the local server); each sale's count is flushed to the store at most once a second,
/// off the answer's path. The hot path takes a shared read lock and adds to an atomic: sold-out
/// answers on every core do not queue behind one another. A frozen instance keeps up to a second
/// of counts until its next sold-out answer.
static TALLY: std::sync::LazyLock<std::sync::RwLock<HashMap<SaleId, SaleTally>>> =
    std::sync::LazyLock::new(Default::default);

/// The clock the tally's flushes are timed by (milliseconds since the first tally).
static TALLY_START: std::sync::LazyLock<std::time::Instant> =
    std::sync::LazyLock::new(std::time::Instant::now);

struct SaleTally {
    count: AtomicU64,
    /// When the count was last taken ([`TALLY_START`] ms); [`NEVER_FLUSHED`] at first, so that a view
    /// watching a new sale sees it move at once.
    flushed_ms: AtomicU64,
}

const NEVER_FLUSHED: u64 = u64::MAX;

/// Count one sold-out answer for `sale`; at most once a second, the count to flush.
fn tally_sold_out(sale: &SaleId) -> Option<Vec<(SaleId, u64)>> {
    let now = TALLY_START.elapsed().as_millis() as u64;
    let due = |t: &SaleTally| -> Option<Vec<(SaleId, u64)>> {
        t.count.fetch_add(1, Ordering::Relaxed);
        let last = t.flushed_ms.load(Ordering::Relaxed);
        if last != NEVER_FLUSHED && now.saturating_sub(last) < 1_000 {
            return None;
        }
        // One answer takes the count; the others that saw it due lose the exchange.
        t.flushed_ms
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .ok()?;
        Some(vec![(sale.clone(), t.count.swap(0, Ordering::Relaxed))])
    };
    // A poisoned lock only means a panic while inserting; the map is still whole.
    if let Some(t) = TALLY
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(sale)
    {
        return due(t);
    }
    let mut map = TALLY
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let t = map.entry(sale.clone()).or_insert_with(|| SaleTally {
        count: AtomicU64::new(0),
        flushed_ms: AtomicU64::new(NEVER_FLUSHED),
    });
    due(t)
}

/// The pause between two asks of [`reserve_until_known`].
const RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(50);
