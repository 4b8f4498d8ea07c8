//! HTTP handlers shared by the Lambda functions and the local server, and the one place where
//! errors become HTTP status codes and JSON bodies.

pub mod buy;
pub mod identity;
pub mod operator;
pub mod orders;

use crate::db::DbError;
use crate::domain::InvalidInput;
use crate::store::{Refusal, StoreError};
use lambda_http::{Body, Request, Response};
use serde::Serialize;
use tracing::{error, warn};

/// Everything a handler can answer other than success. [`ApiError::into_response`] is the only
/// mapping to HTTP; internal details are logged there and never sent.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
    #[error("no authenticated identity")]
    Unauthenticated,
    #[error("not allowed")]
    Forbidden,
    #[error("{message}")]
    NotFound { code: &'static str, message: String },
    #[error("method not allowed")]
    MethodNotAllowed { allow: &'static str },
    #[error("body larger than {limit} bytes")]
    BodyTooLarge { limit: usize },
    #[error("unsupported content type")]
    UnsupportedMediaType,
    #[error("refused: {0:?}")]
    Refused(Refusal),
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// A dependency is down; the client may retry. The detail is logged, not sent.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// A bug or an unexpected answer from a dependency. The detail is logged, not sent.
    #[error("internal: {0}")]
    Internal(String),
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) => Self::Unavailable(e.to_string()),
            StoreError::Failed(_) => Self::Internal(e.to_string()),
        }
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Unavailable(_) => Self::Unavailable(e.to_string()),
            _ => Self::Internal(e.to_string()),
        }
    }
}

/// The JSON error body: `{"error": "<code>", "message": "<human text>"}`.
#[derive(Debug, Serialize)]
pub struct ErrorBody {
    pub error: &'static str,
    pub message: String,
}

impl ApiError {
    /// Status, code and client-facing message.
    pub fn parts(&self) -> (u16, &'static str, String) {
        match self {
            Self::Invalid(i) => (400, i.code, i.message.clone()),
            Self::Unauthenticated => (
                401,
                "unauthenticated",
                "this endpoint needs an authenticated buyer".into(),
            ),
            Self::Forbidden => (403, "forbidden", "these credentials may not do this".into()),
            Self::NotFound { code, message } => (404, code, message.clone()),
            Self::MethodNotAllowed { allow } => (
                405,
                "method_not_allowed",
                format!("this path accepts {allow}"),
            ),
            Self::BodyTooLarge { limit } => (
                413,
                "body_too_large",
                format!("request body must be at most {limit} bytes"),
            ),
            Self::UnsupportedMediaType => (
                415,
                "unsupported_media_type",
                "request body must be JSON (Content-Type: application/json)".into(),
            ),
            Self::Refused(r) => refusal_parts(r),
            Self::Conflict { code, message } => (409, code, message.clone()),
            Self::Unavailable(_) => (
                503,
                "service_unavailable",
                "the service is temporarily unavailable, retry shortly".into(),
            ),
            Self::Internal(_) => (500, "internal_error", "internal error".into()),
        }
    }

    /// The HTTP response for this error. Server-side failures are logged here with their detail.
    pub fn into_response(self) -> Response<Body> {
        match &self {
            Self::Unavailable(detail) => warn!(detail = %detail, "dependency unavailable"),
            Self::Internal(detail) => error!(detail = %detail, "internal error"),
            _ => {}
        }
        let (status, code, message) = self.parts();
        let mut resp = json_response(
            status,
            &ErrorBody {
                error: code,
                message,
            },
        );
        let headers = resp.headers_mut();
        match &self {
            Self::Unavailable(_) => {
                headers.insert("retry-after", http::HeaderValue::from_static("1"));
            }
            Self::MethodNotAllowed { allow } => {
                headers.insert("allow", http::HeaderValue::from_static(allow));
            }
            _ => {}
        }
        resp
    }
}

fn refusal_parts(r: &Refusal) -> (u16, &'static str, String) {
    match r {
        Refusal::UnknownSale => (404, "sale_not_found", "no such sale".into()),
        Refusal::NotOpen { opens_at_ms } => (
            403,
            "sale_not_open",
            format!(
                "the sale opens at {}",
                crate::timefmt::format_ms(*opens_at_ms)
            ),
        ),
        Refusal::Closed { closes_at_ms } => (
            403,
            "sale_closed",
            format!(
                "the sale closed at {}",
                crate::timefmt::format_ms(*closes_at_ms)
            ),
        ),
        Refusal::LimitReached { allowance } => (
            403,
            "limit_reached",
            format!("the per-buyer limit allows {allowance} more for this buyer"),
        ),
        Refusal::SoldOut => (409, "sold_out", "the sale is sold out".into()),
        Refusal::InsufficientStock { remaining } => {
            (409, "insufficient_stock", format!("only {remaining} left"))
        }
    }
}

/// A JSON response with the given status.
pub fn json_response<T: Serialize>(status: u16, body: &T) -> Response<Body> {
    // Serializing these plain structs cannot fail; fall back to an empty object rather than panic.
    let text = serde_json::to_string(body).unwrap_or_else(|_| "{}".into());
    let mut resp = Response::new(Body::Text(text));
    *resp.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK);
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

/// The request body as bytes, refused when over `limit` or when it is not declared as JSON.
/// An empty (or whitespace-only) body is `None`.
pub(crate) fn json_body(req: &Request, limit: usize) -> Result<Option<&[u8]>, ApiError> {
    let bytes: &[u8] = req.body().as_ref();
    if bytes.len() > limit {
        return Err(ApiError::BodyTooLarge { limit });
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    if let Some(ct) = req.headers().get(http::header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or("").to_ascii_lowercase();
        let essence = ct.split(';').next().unwrap_or("").trim();
        if essence != "application/json" && !essence.ends_with("+json") {
            return Err(ApiError::UnsupportedMediaType);
        }
    }
    Ok(Some(bytes))
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
    req: &'a Request,
    name: &str,
    code: &'static str,
) -> Result<Option<&'a str>, ApiError> {
    let mut values = req.headers().get_all(name).iter();
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
