//! The waiting room's routes (the queue function): join a sale's queue, poll one's place, the
//! draw's record (public), a proof-of-work challenge. A poll is answered from the state this
//! process holds: no store round trip per request (see `app::waiting_room::states`).

use super::extract::{no_store, SalePath};
use super::identity::{buyer, claims};
use super::{json, json_body, parse_json, ApiError, Route};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use flashflow::domain::{InvalidInput, SaleId};
use flashflow::ports::{Beacon, WaitingRooms};
use flashflow_app::waiting_room::{Challenge, DrawRecord, Queue, QueueError, TicketView};
use serde::Deserialize;
use std::sync::Arc;

/// The queue function's routes (also declared in `template.yaml`).
pub const ROUTES: &[Route] = &[
    Route {
        method: "POST",
        path: "/sales/{sale_id}/queue",
    },
    Route {
        method: "GET",
        path: "/sales/{sale_id}/queue/{ticket}",
    },
    Route {
        method: "GET",
        path: "/sales/{sale_id}/queue/draw",
    },
    Route {
        method: "GET",
        path: "/sales/{sale_id}/queue/challenge",
    },
];

/// A join's body: `{"challenge", "nonce"}` when the sale asks for a proof of work.
const MAX_JOIN_BODY: usize = 2 * 1024;

/// Who may call the queue: `TRUST_USER_HEADER` (false) accepts `X-User-Id` as the buyer, for
/// local use only.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default)]
pub struct QueueCallers {
    pub trust_user_header: flashflow_settings::Flag,
}

impl flashflow_settings::FromEnv for QueueCallers {}

/// What the queue routes need.
pub struct QueueState<W, B> {
    pub queue: Queue<W, B>,
    /// Accept `X-User-Id` as the buyer (local use only).
    pub trust_user_header: bool,
}

type Shared<W, B> = State<Arc<QueueState<W, B>>>;

/// A join's body: `{}` (or none) without a proof of work.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Proof {
    challenge: Option<String>,
    nonce: Option<String>,
}

/// The queue function's routes, without the shared fallbacks (see [`super::app`]).
pub fn routes<W: WaitingRooms, B: Beacon>(state: QueueState<W, B>) -> Router {
    Router::new()
        .route(ROUTES[0].path, post(join::<W, B>))
        .route(ROUTES[1].path, get(status::<W, B>))
        .route(ROUTES[2].path, get(draw::<W, B>))
        .route(ROUTES[3].path, get(challenge::<W, B>))
        .with_state(Arc::new(state))
}

#[utoipa::path(
    post, path = "/sales/{sale_id}/queue", tag = "waiting room",
    summary = "Join a sale's queue",
    description = "One place per buyer: joining again answers the same ticket (200), unless the \\
        place was admitted and not used in time, when the buyer joins again at the back (201). \\
        Who joins before the sale opens is in the pre-queue, ordered at the opening by the draw. \\
        A sale with an entry policy lets in only identities whose JWT carries its required \\
        claims (403 entry_not_allowed), one place per value of its one_per claim (409 \\
        already_entered).",
    params(("sale_id" = SaleId, Path, description = "the sale")),
    request_body(content = Option<super::openapi::schemas::JoinRequest>,
        content_type = "application/json",
        description = "the proof of work, when the sale asks for one"),
    responses(
        (status = 201, description = "a new place", body = TicketView),
        (status = 200, description = "the buyer's place, taken before", body = TicketView),
        super::openapi::errors::JoinErrors,
    ),
    security(("buyer_jwt" = []), ("buyer_header" = [])),
)]
async fn join<W: WaitingRooms, B: Beacon>(
    State(state): Shared<W, B>,
    SalePath(sale): SalePath,
    req: Request,
) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    let buyer = buyer(&parts, state.trust_user_header)?;
    let proof = match json_body(&parts.headers, body, MAX_JOIN_BODY).await? {
        None => Proof {
            challenge: None,
            nonce: None,
        },
        Some(bytes) => parse_json::<Proof>(&bytes, "invalid_body")?,
    };
    let proof = match (&proof.challenge, &proof.nonce) {
        (Some(c), Some(n)) => Some((c.as_str(), n.as_str())),
        (None, None) => None,
        _ => {
            return Err(InvalidInput::new(
                "invalid_proof",
                "a proof of work is a challenge and a nonce, both",
            )
            .into())
        }
    };
    let (created, view) = state
        .queue
        .join(&sale, &buyer, &claims(&parts), proof)
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(ticket_answer(status, &view))
}

#[utoipa::path(
    get, path = "/sales/{sale_id}/queue/{ticket}", tag = "waiting room",
    summary = "Where one's place stands",
    description = "Answered from the state this process holds (read from the store at most \\
        twice a second): poll it every second or two. Admitted: the admission token, for \\
        POST /sales/{sale_id}/buy's Admission-Token header, and until when it is valid.",
    params(
        ("sale_id" = SaleId, Path, description = "the sale"),
        ("ticket" = String, Path, description = "the ticket the join answered"),
    ),
    responses(
        (status = 200, description = "the place", body = TicketView),
        super::openapi::errors::TicketErrors,
    ),
    security(("buyer_jwt" = []), ("buyer_header" = [])),
)]
async fn status<W: WaitingRooms, B: Beacon>(
    State(state): Shared<W, B>,
    SalePath(sale): SalePath,
    path: Result<Path<(String, String)>, PathRejection>,
    parts: axum::http::request::Parts,
) -> Result<Response, ApiError> {
    let Path((_, ticket)) = path.map_err(|_| {
        InvalidInput::new(
            "invalid_sale_id",
            "the path parameters could not be decoded",
        )
    })?;
    let buyer = buyer(&parts, state.trust_user_header)?;
    let view = state.queue.status(&sale, &buyer, &ticket).await?;
    Ok(ticket_answer(StatusCode::OK, &view))
}

/// A place's answer: never cached, and with `Retry-After` (whole seconds) when the client should
/// ask again, so a crowd polls in proportion to how much its places move.
fn ticket_answer(status: StatusCode, view: &TicketView) -> Response {
    let mut resp = no_store(json(status, view));
    if let Some(ms) = view.retry_after_ms {
        resp.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from(ms.div_ceil(1000)),
        );
    }
    resp
}

#[utoipa::path(
    get, path = "/sales/{sale_id}/queue/draw", tag = "waiting room",
    summary = "The draw's record: check it yourself",
    description = "The commitment (SHA-256 of the seed) and the beacon round the draw will use \\
        from the moment the queue opens; the seed and the pre-queue's size at the sale's opening; \\
        the join list's root and the round's randomness once drawn (a few seconds later, when the \\
        round is out). With the algorithm (ff-draw-v2, docs/api.md) anyone can recompute every \\
        place: a pre-queue ticket's status carries its join_index and join_proof.",
    params(("sale_id" = SaleId, Path, description = "the sale")),
    responses(
        (status = 200, description = "the record", body = DrawRecord),
        super::openapi::errors::PublicQueueErrors,
    ),
)]
async fn draw<W: WaitingRooms, B: Beacon>(
    State(state): Shared<W, B>,
    SalePath(sale): SalePath,
) -> Result<Response, ApiError> {
    let record = state.queue.draw(&sale).await?;
    Ok(no_store(json(StatusCode::OK, &record)))
}

#[utoipa::path(
    get, path = "/sales/{sale_id}/queue/challenge", tag = "waiting room",
    summary = "A proof-of-work challenge to join with",
    description = "Single use, for this buyer and sale, valid 5 minutes: join with a nonce such \\
        that SHA-256(challenge ‖ nonce) starts with `bits` zero bits (bits 0: no work asked).",
    params(("sale_id" = SaleId, Path, description = "the sale")),
    responses(
        (status = 200, description = "the challenge", body = Challenge),
        super::openapi::errors::ChallengeErrors,
    ),
    security(("buyer_jwt" = []), ("buyer_header" = [])),
)]
async fn challenge<W: WaitingRooms, B: Beacon>(
    State(state): Shared<W, B>,
    SalePath(sale): SalePath,
    parts: axum::http::request::Parts,
) -> Result<Response, ApiError> {
    let buyer = buyer(&parts, state.trust_user_header)?;
    let challenge = state.queue.challenge(&sale, &buyer).await?;
    Ok(no_store(json(StatusCode::OK, &challenge)))
}

impl From<QueueError> for ApiError {
    fn from(e: QueueError) -> Self {
        match e {
            QueueError::NoQueue => ApiError::NotFound {
                code: "queue_not_found",
                message: "this sale has no waiting room".into(),
            },
            QueueError::NotOpen { opens_at_ms } => ApiError::Conflict {
                code: "queue_not_open",
                message: format!(
                    "the queue opens at {}",
                    flashflow::domain::timefmt::format_ms(opens_at_ms)
                ),
            },
            QueueError::Closed { closes_at_ms } => {
                ApiError::Refused(flashflow::domain::Refusal::Closed { closes_at_ms })
            }
            QueueError::TooMany { retry_after_s } => ApiError::TooManyJoins { retry_after_s },
            QueueError::EntryNotAllowed(why) => ApiError::Denied {
                code: "entry_not_allowed",
                message: why.to_string(),
            },
            QueueError::AlreadyEntered { claim } => ApiError::Conflict {
                code: "already_entered",
                message: format!(
                    "an identity with the same {claim} holds a place in this sale already: one \
                     place per {claim}"
                ),
            },
            QueueError::InvalidProof(why) => {
                InvalidInput::new("invalid_proof", why.to_string()).into()
            }
            QueueError::TicketNotFound => ApiError::NotFound {
                code: "ticket_not_found",
                message: "no such ticket for this caller".into(),
            },
            QueueError::InvalidControl(why) => {
                InvalidInput::new("invalid_admit_per_second", why).into()
            }
            QueueError::Store(e) => e.into(),
        }
    }
}
