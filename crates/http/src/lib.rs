//! The HTTP layer: one `axum::Router` per function, the one place where errors become HTTP
//! status codes and JSON bodies, the OpenAPI document and the pages. It depends on the use
//! cases (`flashflow-app`) and the ports, never on an adapter: the compiler refuses a router
//! that names one, and each function's crate hands its router the real clients.
//!
//! Each function module declares its [`Route`]s once (`ROUTES`, checked against `template.yaml` by
//! a test) and builds its routes from them (`buy::routes`, `orders::routes`, `operator::routes`).
//! [`app`] adds what every function shares: the JSON 404 and 405 fallbacks. A Lambda runs
//! `app(x::routes(state))` with `lambda_http::run`; the local runner merges the routes of every
//! function into one `app` and serves it with `axum::serve`.
//!
//! # Layout
//! - this file: [`ApiError`] and its one mapping to HTTP, the JSON helpers.
//! - [`buy`], [`orders`], [`operator`], [`live`], [`checkout`], [`queue`], [`pages`]: one
//!   module per function's routes (the live view is the operator's, the pages the orders').
//! - [`extract`]: the path's ids and the caller's headers, read once for every route.
//! - [`identity`]: who calls: the buyer from API Gateway's JWT claims, the operator's token.
//! - [`body_deadline`]: a request body must arrive whole in time.
//! - [`openapi`]: the document, derived from the handlers and the types they serialize.
//! - `testing` (feature): calling a router in tests.

pub mod body_deadline;
pub mod buy;
pub mod checkout;
pub mod extract;
pub mod identity;
pub mod live;
pub mod openapi;
pub mod operator;
pub mod orders;
pub mod pages;
pub mod queue;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use flashflow::domain::{InvalidInput, Refusal};
use flashflow::ports::{DbError, StoreError};
use serde::Serialize;
use tracing::{error, warn};

/// One route of a function: an HTTP method and an API Gateway / axum path pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
}

/// A function's routes with the shared fallbacks: an unknown path is `404 route_not_found`, a
/// known path with another method `405 method_not_allowed` (axum adds the `Allow` header).
pub fn app(routes: Router) -> Router {
    routes
        .fallback(|| async { ApiError::RouteNotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
}

/// `app` writing its metrics after every response: a Lambda instance is frozen between requests
/// and may never run again, so nothing counted may wait for a timer.
pub fn flushing_metrics(app: Router, metrics: flashflow_app::metrics::Metrics) -> Router {
    app.layer(axum::middleware::map_response(
        move |res: axum::response::Response| {
            let metrics = metrics.clone();
            async move {
                metrics.flush();
                res
            }
        },
    ))
}

/// Everything a handler can answer other than success. [`IntoResponse`] is the only mapping to
/// HTTP; internal details are logged there and never sent.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
    #[error("no authenticated identity")]
    Unauthenticated,
    #[error("not allowed")]
    Forbidden,
    /// An authenticated caller this resource does not let in, and why (`403`).
    #[error("{message}")]
    Denied { code: &'static str, message: String },
    #[error("{message}")]
    NotFound { code: &'static str, message: String },
    #[error("no such route")]
    RouteNotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("body larger than {limit} bytes")]
    BodyTooLarge { limit: usize },
    /// The request body did not arrive whole by the server's deadline.
    #[error("request body timed out")]
    RequestTimeout,
    #[error("unsupported content type")]
    UnsupportedMediaType,
    #[error("refused: {0:?}")]
    Refused(Refusal),
    /// A buyer joined a waiting room too often this minute; nothing was stored.
    #[error("too many joins")]
    TooManyJoins { retry_after_s: u32 },
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// Work that began and stopped half-way, to be resumed by sending the same request again;
    /// the message says what state it left.
    #[error("{message}")]
    Incomplete { code: &'static str, message: String },
    /// A dependency is down; the client may retry. The detail is logged, not sent.
    #[error("unavailable: {0}")]
    Unavailable(#[source] flashflow::ports::BoxError),
    /// A buy the store refused before running anything: nothing was reserved; retry.
    #[error("not reserved: {0}")]
    NotReserved(#[source] flashflow::ports::BoxError),
    /// A buy whose reservation may or may not have happened: the answer names the order, so the
    /// client can look it up (or retry with the same Idempotency-Key).
    #[error("outcome of order {order_id} unknown: {source}")]
    OutcomeUnknown {
        order_id: uuid::Uuid,
        #[source]
        source: flashflow::ports::BoxError,
    },
    /// A bug or an unexpected answer from a dependency. The detail is logged, not sent.
    #[error("internal: {0}")]
    Internal(#[source] flashflow::ports::BoxError),
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) | StoreError::InDoubt(_) => Self::Unavailable(Box::new(e)),
            StoreError::Failed(_) => Self::Internal(Box::new(e)),
        }
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        // Away, busy (a deadlock, a serialization failure, a lock timeout) or raced: the
        // statement was rolled back, and the same call may succeed when repeated.
        if e.is_transient() {
            Self::Unavailable(Box::new(e))
        } else {
            Self::Internal(Box::new(e))
        }
    }
}

/// The JSON error body: `{"error": "<code>", "message": "<human text>"}`, and the `order_id`
/// when the error is about one (`outcome_unknown`).
#[derive(Debug, Serialize)]
pub struct ErrorBody {
    pub error: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_id: Option<uuid::Uuid>,
}

impl ApiError {
    /// Status, code and client-facing message.
    pub fn parts(&self) -> (StatusCode, &'static str, String) {
        match self {
            Self::Invalid(i) => (StatusCode::BAD_REQUEST, i.code, i.message.clone()),
            Self::Unauthenticated => (
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "this endpoint needs an authenticated caller".into(),
            ),
            Self::Forbidden => (
                StatusCode::FORBIDDEN,
                "forbidden",
                "these credentials may not do this".into(),
            ),
            Self::Denied { code, message } => (StatusCode::FORBIDDEN, code, message.clone()),
            Self::NotFound { code, message } => (StatusCode::NOT_FOUND, code, message.clone()),
            Self::RouteNotFound => (
                StatusCode::NOT_FOUND,
                "route_not_found",
                "no such route: see the API in the README".into(),
            ),
            Self::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this path does not accept this method; the Allow header lists those it does"
                    .into(),
            ),
            Self::BodyTooLarge { limit } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("request body must be at most {limit} bytes"),
            ),
            Self::RequestTimeout => (
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                "the request did not arrive whole in time; nothing was done".into(),
            ),
            Self::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "request body must be JSON (Content-Type: application/json)".into(),
            ),
            Self::Refused(r) => refusal_parts(r),
            Self::TooManyJoins { retry_after_s } => (
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_requests",
                format!(
                    "this buyer joined too often this minute; nothing was stored, retry in \
                     {retry_after_s} s"
                ),
            ),
            Self::Conflict { code, message } => (StatusCode::CONFLICT, code, message.clone()),
            Self::Incomplete { code, message } => {
                (StatusCode::SERVICE_UNAVAILABLE, code, message.clone())
            }
            Self::Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "service_unavailable",
                "the service is temporarily unavailable, retry shortly".into(),
            ),
            Self::NotReserved(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "service_unavailable",
                "the service is temporarily unavailable; nothing was reserved, retry shortly"
                    .into(),
            ),
            Self::OutcomeUnknown { order_id, .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "outcome_unknown",
                format!(
                    "the service did not learn in time whether order {order_id} was reserved; \
                     look it up at GET /orders/{order_id}, or retry with the same Idempotency-Key"
                ),
            ),
            Self::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "internal error".into(),
            ),
        }
    }
}

impl IntoResponse for ApiError {
    /// Server-side failures are logged here with their detail; the client gets only the code.
    fn into_response(self) -> Response {
        match &self {
            Self::Unavailable(detail) | Self::NotReserved(detail) => {
                warn!(detail = %detail, "dependency unavailable")
            }
            Self::OutcomeUnknown { order_id, source } => {
                warn!(order = %order_id, detail = %source, "outcome unknown")
            }
            Self::Internal(detail) => error!(detail = %detail, "internal error"),
            _ => {}
        }
        let (status, code, message) = self.parts();
        let order_id = match &self {
            Self::OutcomeUnknown { order_id, .. } => Some(*order_id),
            _ => None,
        };
        let mut resp = json(
            status,
            &ErrorBody {
                error: code,
                message,
                order_id,
            },
        );
        if status == StatusCode::REQUEST_TIMEOUT {
            // The client is too slow to send a request: it does not get to keep the connection.
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if let Self::Refused(Refusal::TooManyAttempts { retry_after_s })
        | Self::TooManyJoins { retry_after_s } = self
        {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_s));
        }
        if let Self::Conflict {
            code: "order_pending" | "payment_processing",
            ..
        } = self
        {
            // The order is about to change (settlement, the payment provider): asking again soon helps.
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        resp
    }
}

fn refusal_parts(r: &Refusal) -> (StatusCode, &'static str, String) {
    use flashflow::domain::timefmt::format_ms;
    match r {
        Refusal::KeyReused { order_id } => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency_key_reused",
            format!(
                "this Idempotency-Key was used for another request (order {order_id}); \
                 send a new key with a new request"
            ),
        ),
        Refusal::UnknownSale => (
            StatusCode::NOT_FOUND,
            "sale_not_found",
            "no such sale".into(),
        ),
        Refusal::NotOpen { opens_at_ms } => (
            StatusCode::FORBIDDEN,
            "sale_not_open",
            format!("the sale opens at {}", format_ms(*opens_at_ms)),
        ),
        Refusal::Closed { closes_at_ms } => (
            StatusCode::FORBIDDEN,
            "sale_closed",
            format!("the sale closed at {}", format_ms(*closes_at_ms)),
        ),
        Refusal::LimitReached { allowance } => (
            StatusCode::FORBIDDEN,
            "limit_reached",
            format!("the per-buyer limit allows {allowance} more for this buyer"),
        ),
        Refusal::SoldOut => (
            StatusCode::CONFLICT,
            "sold_out",
            "the sale is sold out".into(),
        ),
        Refusal::InsufficientStock { remaining } => (
            StatusCode::CONFLICT,
            "insufficient_stock",
            format!("only {remaining} left"),
        ),
        Refusal::AdmissionUsed { order_id } => (
            StatusCode::FORBIDDEN,
            "admission_used",
            format!(
                "this admission was spent by order {order_id}; one admission buys one order: \
                 to buy again, join the queue again (POST /sales/{{sale_id}}/queue)"
            ),
        ),
        Refusal::NotAdmitted => (
            StatusCode::FORBIDDEN,
            "not_admitted",
            "this sale lets buyers in through its waiting room: join its queue \
             (POST /sales/{sale_id}/queue) and buy with the Admission-Token your place is given"
                .into(),
        ),
        Refusal::TooManyAttempts { retry_after_s } => (
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_requests",
            format!(
                "this buyer tried too often this minute; nothing was reserved, retry in \
                 {retry_after_s} s"
            ),
        ),
    }
}

/// A JSON response with the given status.
pub fn json<T: Serialize>(status: StatusCode, body: &T) -> Response {
    // Serializing these plain structs cannot fail; fall back to an empty object rather than panic.
    let text = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut resp = Response::new(Body::from(text));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// The request body, refused when over `limit` or when it is declared as something other than
/// JSON (a missing content type is accepted). An empty (or whitespace-only) body is `None`.
pub(crate) async fn json_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Option<Bytes>, ApiError> {
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|e| {
        // `to_bytes` wraps an exceeded limit as a `LengthLimitError` somewhere in the source
        // chain; anything else is a client that stopped sending.
        if caused_by::<http_body_util::LengthLimitError>(&e) {
            ApiError::BodyTooLarge { limit }
        } else if caused_by::<body_deadline::BodyTimedOut>(&e) {
            ApiError::RequestTimeout
        } else {
            InvalidInput::new("invalid_body", "the request body could not be read").into()
        }
    })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    if let Some(ct) = headers.get(header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or("").to_ascii_lowercase();
        let essence = ct.split(';').next().unwrap_or("").trim();
        if essence != "application/json" && !essence.ends_with("+json") {
            return Err(ApiError::UnsupportedMediaType);
        }
    }
    Ok(Some(bytes))
}

/// Whether `E` is `e` or anywhere in its chain of sources.
fn caused_by<E: std::error::Error + 'static>(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(e);
    while let Some(err) = next {
        if err.is::<E>() {
            return true;
        }
        next = err.source();
    }
    false
}

/// Parse a JSON object body into `T`, turning serde's message into a client error with `code`.
pub(crate) fn parse_json<'a, T: serde::Deserialize<'a>>(
    bytes: &'a [u8],
    code: &'static str,
) -> Result<T, ApiError> {
    // serde's derive also accepts a struct written as an array (`[1]`); the API only takes objects.
    if bytes.trim_ascii_start().first() != Some(&b'{') {
        return Err(InvalidInput::new(code, "body must be a JSON object").into());
    }
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::Invalid(InvalidInput::new(code, format!("invalid JSON body: {e}"))))
}

/// The single value of header `name`, if present. Repeated or non-ASCII values are refused with `code`.
pub(crate) fn single_header<'a>(
    headers: &'a HeaderMap,
    name: &str,
    code: &'static str,
) -> Result<Option<&'a str>, ApiError> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(InvalidInput::new(code, format!("{name} must be sent once")).into());
    }
    first
        .to_str()
        .map(Some)
        .map_err(|_| InvalidInput::new(code, format!("{name} must be printable ASCII")).into())
}

#[cfg(test)]
mod tests;
