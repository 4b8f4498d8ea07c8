//! The local stand-ins for the shop's identity issuer and API Gateway's JWT authorizer.
//!
//! In AWS, API Gateway's JWT authorizer checks a buyer's `Authorization: Bearer <jwt>` (issuer,
//! audience, expiry, signature against the issuer's keys) and hands the function the token's
//! claims in the request context, every value a string. Locally nothing stands in front of the
//! API, so [`authorize`] does the same for tokens of the local issuer: a verified token's claims
//! go into the request's extensions exactly where `lambda_http` puts the authorizer's, and the
//! routers read them the one way they do in AWS (`flashflow_http::identity`). A bearer value
//! that is not a JWT (the local operator token) passes through untouched; a JWT that does not
//! verify is answered `401`, as API Gateway answers it.
//!
//! The local issuer signs with HS256 under `LOCAL_JWT_SECRET` (a local-only value, like the
//! other keys of `infra/local/env.sh`); a real issuer signs with a private key and publishes its
//! public keys (JWKS), which API Gateway fetches. `flashflow-local jwt` prints a token.
//!
//! # Layout
//! - [`IssuerSettings`]: the issuer's secret, name and audience.
//! - [`LocalIssuer`]: signs and verifies tokens.
//! - [`authorized`]: an app behind the layer that plays the authorizer ([`authorize`]).
//! - [`authorizer_claims`]: a token's claims as the authorizer hands them over (strings).

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use lambda_http::aws_lambda_events::apigw::{
    ApiGatewayRequestAuthorizer, ApiGatewayRequestAuthorizerJwtDescription,
    ApiGatewayV2httpRequestContext,
};
use lambda_http::request::RequestContext;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The local issuer: `LOCAL_JWT_SECRET` (a local-only value: at least 32 bytes),
/// `LOCAL_JWT_ISSUER` (`http://127.0.0.1:3080/local-issuer`), `LOCAL_JWT_AUDIENCE` (`flashflow`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct IssuerSettings {
    pub local_jwt_secret: String,
    pub local_jwt_issuer: String,
    pub local_jwt_audience: String,
}

impl Default for IssuerSettings {
    fn default() -> Self {
        Self {
            local_jwt_secret: "local-jwt-secret-not-a-secret-0000000001".into(),
            local_jwt_issuer: "http://127.0.0.1:3080/local-issuer".into(),
            local_jwt_audience: "flashflow".into(),
        }
    }
}

impl flashflow_settings::FromEnv for IssuerSettings {
    fn check(&self) -> Result<(), flashflow_settings::ConfigError> {
        if self.local_jwt_secret.len() < 32 {
            return Err(flashflow_settings::invalid(
                "LOCAL_JWT_SECRET",
                "at least 32 bytes",
            ));
        }
        Ok(())
    }
}

/// Why a token was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("the token does not verify: {0}")]
    Invalid(#[from] jsonwebtoken::errors::Error),
    #[error("the token has no sub claim")]
    NoSubject,
}

/// Signs and verifies the local issuer's tokens.
pub struct LocalIssuer {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    audience: String,
}

impl LocalIssuer {
    pub fn new(settings: &IssuerSettings) -> Self {
        let secret = settings.local_jwt_secret.as_bytes();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[&settings.local_jwt_issuer]);
        validation.set_audience(&[&settings.local_jwt_audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        // API Gateway allows no clock skew either.
        validation.leeway = 0;
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            issuer: settings.local_jwt_issuer.clone(),
            audience: settings.local_jwt_audience.clone(),
        }
    }

    /// A token for `sub` with `claims` besides the registered ones, valid for `ttl`.
    ///
    /// # Errors
    /// Signing failed (it does not with an HMAC key).
    pub fn sign(
        &self,
        sub: &str,
        claims: Map<String, Value>,
        ttl: Duration,
    ) -> Result<String, TokenError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let mut body = claims;
        body.insert("sub".into(), sub.into());
        body.insert("iss".into(), self.issuer.clone().into());
        body.insert("aud".into(), self.audience.clone().into());
        body.insert("iat".into(), now.into());
        body.insert("exp".into(), (now + ttl.as_secs()).into());
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &body,
            &self.encoding,
        )?)
    }

    /// `token`'s claims as the authorizer hands them over, once it verified.
    ///
    /// # Errors
    /// [`TokenError`]: a bad signature, issuer, audience or expiry, or no `sub`.
    pub fn verify(&self, token: &str) -> Result<HashMap<String, String>, TokenError> {
        let data = jsonwebtoken::decode::<Map<String, Value>>(
            token.as_bytes(),
            &self.decoding,
            &self.validation,
        )?;
        let claims = authorizer_claims(&data.claims);
        if claims.get("sub").is_none_or(String::is_empty) {
            return Err(TokenError::NoSubject);
        }
        Ok(claims)
    }
}

/// A token's claims as API Gateway's JWT authorizer passes them to a function: strings as they
/// are, numbers and booleans as their JSON text, arrays as `[a b]` (its documented form), objects
/// as JSON.
pub fn authorizer_claims(claims: &Map<String, Value>) -> HashMap<String, String> {
    fn text(v: &Value) -> String {
        match v {
            Value::String(s) => s.clone(),
            Value::Array(items) => {
                let inner: Vec<String> = items.iter().map(text).collect();
                format!("[{}]", inner.join(" "))
            }
            other => other.to_string(),
        }
    }
    claims.iter().map(|(k, v)| (k.clone(), text(v))).collect()
}

/// A bearer value shaped like a JWT (three base64url parts, a JSON header): the operator's token
/// is not one, and passes through.
fn looks_like_jwt(value: &str) -> bool {
    value.starts_with("eyJ") && value.split('.').count() == 3
}

/// `app` behind the layer that plays API Gateway's JWT authorizer for `issuer`'s tokens.
pub fn authorized(app: axum::Router, issuer: Arc<LocalIssuer>) -> axum::Router {
    app.layer(axum::middleware::from_fn_with_state(issuer, authorize))
}

/// The layer of [`authorized`].
pub async fn authorize(
    State(issuer): State<Arc<LocalIssuer>>,
    mut req: Request,
    next: Next,
) -> Response {
    let bearer = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .filter(|t| looks_like_jwt(t));
    if let Some(token) = bearer {
        match issuer.verify(token) {
            Ok(claims) => {
                let mut jwt = ApiGatewayRequestAuthorizerJwtDescription::default();
                jwt.claims = claims;
                let mut authorizer = ApiGatewayRequestAuthorizer::default();
                authorizer.jwt = Some(jwt);
                let mut context = ApiGatewayV2httpRequestContext::default();
                context.authorizer = Some(authorizer);
                req.extensions_mut()
                    .insert(RequestContext::ApiGatewayV2(context));
            }
            Err(e) => {
                tracing::debug!(error = %e, "a bearer token refused");
                return flashflow_http::ApiError::Unauthenticated.into_response();
            }
        }
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issuer() -> LocalIssuer {
        LocalIssuer::new(&IssuerSettings::default())
    }

    fn phone_claims() -> Map<String, Value> {
        serde_json::from_str(r#"{"phone_number":"+44 1","phone_number_verified":true,"n":3}"#)
            .unwrap()
    }

    #[test]
    fn a_signed_tokens_claims_come_back_as_the_authorizer_passes_them() {
        let i = issuer();
        let token = i
            .sign("ann", phone_claims(), Duration::from_secs(60))
            .unwrap();
        let claims = i.verify(&token).unwrap();
        assert_eq!(claims["sub"], "ann");
        assert_eq!(claims["phone_number_verified"], "true");
        assert_eq!(claims["n"], "3");
        assert_eq!(claims["phone_number"], "+44 1");
    }

    #[test]
    fn a_token_of_another_key_issuer_or_audience_does_not_verify() {
        let token = issuer()
            .sign("ann", Map::new(), Duration::from_secs(60))
            .unwrap();
        for other in [
            IssuerSettings {
                local_jwt_secret: "another-secret-another-secret-0000001".into(),
                ..IssuerSettings::default()
            },
            IssuerSettings {
                local_jwt_issuer: "https://elsewhere".into(),
                ..IssuerSettings::default()
            },
            IssuerSettings {
                local_jwt_audience: "someone-else".into(),
                ..IssuerSettings::default()
            },
        ] {
            assert!(
                LocalIssuer::new(&other).verify(&token).is_err(),
                "{other:?}"
            );
        }
    }

    #[test]
    fn an_expired_token_does_not_verify() {
        let i = issuer();
        let token = i.sign("ann", Map::new(), Duration::ZERO).unwrap();
        std::thread::sleep(Duration::from_millis(1100));
        assert!(i.verify(&token).is_err());
    }

    #[test]
    fn arrays_and_objects_arrive_in_the_authorizers_text_form() {
        let claims: Map<String, Value> =
            serde_json::from_str(r#"{"groups":["a","b"],"o":{"k":1},"f":false}"#).unwrap();
        let text = authorizer_claims(&claims);
        assert_eq!(text["groups"], "[a b]");
        assert_eq!(text["o"], r#"{"k":1}"#);
        assert_eq!(text["f"], "false");
    }

    #[test]
    fn the_operator_token_is_not_taken_for_a_jwt() {
        assert!(!looks_like_jwt("local-operator-token"));
        let token = issuer()
            .sign("ann", Map::new(), Duration::from_secs(60))
            .unwrap();
        assert!(looks_like_jwt(&token));
    }
}
