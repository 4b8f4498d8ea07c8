//! Who is calling: a buyer (JWT `sub`, or the local `X-User-Id`) or an operator (IAM, or the
//! operator bearer token).

use super::{single_header, ApiError};
use axum::http::request::Parts;
use flashflow::domain::waiting_room::entry::Claims;
use flashflow::domain::BuyerId;
use lambda_http::request::RequestContext;
use lambda_http::RequestExt;

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
pub fn buyer(req: &Parts, trust_user_header: bool) -> Result<BuyerId, ApiError> {
    if let Some(sub) = jwt_sub(req) {
        return Ok(BuyerId::parse(sub)?);
    }
    if trust_user_header {
        if let Some(user) = single_header(&req.headers, "x-user-id", "invalid_buyer")? {
            return Ok(BuyerId::parse(user)?);
        }
    }
    Err(ApiError::Unauthenticated)
}

/// API Gateway's authorizer context, which `lambda_http` puts in the request's extensions (absent
/// on the local server).
fn api_gateway_authorizer(
    req: &Parts,
) -> Option<&lambda_http::aws_lambda_events::apigw::ApiGatewayRequestAuthorizer> {
    match req.extensions.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.authorizer.as_ref(),
        _ => None,
    }
}

fn jwt_sub(req: &Parts) -> Option<&str> {
    api_gateway_authorizer(req)?
        .jwt
        .as_ref()?
        .claims
        .get("sub")
        .map(String::as_str)
}

/// The claims of the identity API Gateway's JWT authorizer verified, as it passes them on (every
/// value a string); empty without one (the local `X-User-Id` carries no claims).
pub fn claims(req: &Parts) -> Claims {
    api_gateway_authorizer(req)
        .and_then(|a| a.jwt.as_ref())
        .map(|jwt| {
            jwt.claims
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default()
}

fn iam_authorized(req: &Parts) -> bool {
    api_gateway_authorizer(req).is_some_and(|a| a.iam.is_some())
}

/// IAM-authorized by API Gateway, or the configured operator bearer token.
///
/// # Errors
/// `unauthenticated` without credentials, `forbidden` with a wrong token.
pub fn operator(req: &Parts, token: Option<&str>) -> Result<(), ApiError> {
    if iam_authorized(req) {
        return Ok(());
    }
    let Some(expected) = token else {
        return Err(ApiError::Unauthenticated);
    };
    let given = single_header(&req.headers, "authorization", "invalid_authorization")?
        .and_then(|h| h.strip_prefix("Bearer "))
        .ok_or(ApiError::Unauthenticated)?;
    if constant_time_eq(given.as_bytes(), expected.as_bytes()) {
        Ok(())
    } else {
        Err(ApiError::Forbidden)
    }
}

/// The operator token of [`operators_only`] (`None`: IAM alone authorizes).
pub type OperatorToken = Option<std::sync::Arc<secrecy::SecretString>>;

/// A route layer for the operator's routes: a request goes on to its handler only when
/// [`operator`] says an operator sent it (IAM, or the bearer `token`); otherwise it is answered
/// `401`/`403` here, so no operator handler can forget to ask.
///
/// Use as `router.route_layer(axum::middleware::from_fn_with_state(token, operators_only))`.
///
/// # Errors
/// As [`operator`].
pub async fn operators_only(
    axum::extract::State(token): axum::extract::State<OperatorToken>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Result<axum::response::Response, ApiError> {
    let (parts, body) = req.into_parts();
    operator(
        &parts,
        token.as_deref().map(secrecy::ExposeSecret::expose_secret),
    )?;
    Ok(next
        .run(axum::extract::Request::from_parts(parts, body))
        .await)
}

/// A buyer when API Gateway's JWT authorizer vouched for one (API Gateway forwards the buyer's
/// `Authorization: Bearer <jwt>` too, which must not be read as an operator token); else an
/// operator when IAM or an operator bearer token is present; else a buyer by `X-User-Id`.
///
/// # Errors
/// As [`operator`] when operator credentials are presented, else as [`buyer`].
pub fn caller(
    req: &Parts,
    trust_user_header: bool,
    token: Option<&str>,
) -> Result<Caller, ApiError> {
    if let Some(sub) = jwt_sub(req) {
        return Ok(Caller::Buyer(BuyerId::parse(sub)?));
    }
    let bearer = req
        .headers
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        .is_some_and(|h| h.starts_with("Bearer "));
    if iam_authorized(req) || (token.is_some() && bearer) {
        operator(req, token).map(|()| Caller::Operator)
    } else {
        buyer(req, trust_user_header).map(Caller::Buyer)
    }
}

/// Equal in time independent of where the inputs differ (`subtle`); the length is not secret.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
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
