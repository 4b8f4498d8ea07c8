//! Who is calling: a buyer (JWT `sub`, or the local `X-User-Id`) or an operator (IAM, or the
//! operator bearer token).

use super::{single_header, ApiError};
use crate::domain::BuyerId;
use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};

/// The caller, as far as authorization cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Buyer(BuyerId),
    Operator,
}

/// The JWT authorizer's `sub` claim, else (only when `trust_user_header`) `X-User-Id`.
///
/// # Errors
/// `unauthenticated` when neither is there; `invalid_buyer` when the value is malformed.
pub fn buyer(req: &Request, trust_user_header: bool) -> Result<BuyerId, ApiError> {
    if let Some(RequestContext::ApiGatewayV2(ctx)) = req.request_context_ref() {
        let sub = ctx
            .authorizer
            .as_ref()
            .and_then(|a| a.jwt.as_ref())
            .and_then(|j| j.claims.get("sub"));
        if let Some(sub) = sub {
            return Ok(BuyerId::parse(sub)?);
        }
    }
    if trust_user_header {
        if let Some(user) = single_header(req, "x-user-id", "invalid_buyer")? {
            return Ok(BuyerId::parse(user)?);
        }
    }
    Err(ApiError::Unauthenticated)
}

/// IAM-authorized by API Gateway, or the configured operator bearer token.
///
/// # Errors
/// `unauthenticated` without credentials, `forbidden` with a wrong token.
pub fn operator(req: &Request, token: Option<&str>) -> Result<(), ApiError> {
    if let Some(RequestContext::ApiGatewayV2(ctx)) = req.request_context_ref() {
        if ctx.authorizer.as_ref().is_some_and(|a| a.iam.is_some()) {
            return Ok(());
        }
    }
    let Some(expected) = token else {
        return Err(ApiError::Unauthenticated);
    };
    let given = single_header(req, "authorization", "invalid_authorization")?
        .and_then(|h| h.strip_prefix("Bearer "))
        .ok_or(ApiError::Unauthenticated)?;
    if constant_time_eq(given.as_bytes(), expected.as_bytes()) {
        Ok(())
    } else {
        Err(ApiError::Forbidden)
    }
}

/// An operator when operator credentials are present, else a buyer.
///
/// # Errors
/// As [`operator`] when an `Authorization: Bearer` header or IAM context is present, else as [`buyer`].
pub fn caller(
    req: &Request,
    trust_user_header: bool,
    token: Option<&str>,
) -> Result<Caller, ApiError> {
    let has_iam = matches!(req.request_context_ref(), Some(RequestContext::ApiGatewayV2(ctx))
        if ctx.authorizer.as_ref().is_some_and(|a| a.iam.is_some()));
    let has_token = token.is_some()
        && req
            .headers()
            .get("authorization")
            .and_then(|h| h.to_str().ok())
            .is_some_and(|h| h.starts_with("Bearer "));
    if has_iam || has_token {
        operator(req, token).map(|()| Caller::Operator)
    } else {
        buyer(req, trust_user_header).map(Caller::Buyer)
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_equal_only_when_identical() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
