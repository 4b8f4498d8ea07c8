//! What every route reads the same way, written once: the sale and the order named in the path
//! (each a specific `400` when malformed, before the handler runs), and the `Cache-Control` of an
//! answer that must never be kept.

use super::ApiError;
use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue};
use axum::response::Response;
use flashflow::domain::{InvalidInput, SaleId};
use uuid::Uuid;

/// The `{sale_id}` of the path, validated: `400 invalid_sale_id` otherwise.
#[derive(Debug, Clone)]
pub struct SalePath(pub SaleId);

/// The `{order_id}` of the path, a UUID: `400 invalid_order_id` otherwise.
#[derive(Debug, Clone, Copy)]
pub struct OrderPath(pub Uuid);

/// The path parameter `name`, or `code` when the path could not be decoded (invalid UTF-8 after
/// percent-decoding) or has no such parameter.
pub(crate) async fn path_param<S: Send + Sync>(
    parts: &mut Parts,
    state: &S,
    name: &str,
    code: &'static str,
) -> Result<String, ApiError> {
    let undecodable = || InvalidInput::new(code, "the path parameter could not be decoded");
    let params = RawPathParams::from_request_parts(parts, state)
        .await
        .map_err(|_| undecodable())?;
    params
        .iter()
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
        .ok_or_else(|| undecodable().into())
}

impl<S: Send + Sync> FromRequestParts<S> for SalePath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let text = path_param(parts, state, "sale_id", "invalid_sale_id").await?;
        Ok(Self(SaleId::parse(&text)?))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for OrderPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let text = path_param(parts, state, "order_id", "invalid_order_id").await?;
        Uuid::parse_str(&text)
            .map(Self)
            .map_err(|_| InvalidInput::new("invalid_order_id", "order id must be a UUID").into())
    }
}

/// A whole-path parameter as text (a file name), or `code` when it could not be decoded.
pub(crate) fn decoded(
    path: Result<axum::extract::Path<String>, axum::extract::rejection::PathRejection>,
    code: &'static str,
) -> Result<String, ApiError> {
    path.map(|p| p.0)
        .map_err(|_| InvalidInput::new(code, "the path parameter could not be decoded").into())
}

/// `resp`, never to be kept by a cache: it changes (a place, a count) or is its caller's own (a
/// token, an order).
pub fn no_store(mut resp: Response) -> Response {
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}
