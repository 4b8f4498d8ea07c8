//! The API's OpenAPI 3.1 document, generated from the code: each handler carries its operation
//! (`#[utoipa::path]`: parameters, body, every status), the bodies' schemas are derived from the
//! types the handlers serialize, and the errors come from one table of codes.
//!
//! utoipa, because it is maintained, writes OpenAPI 3.1 and supports axum 0.8. Its router
//! (utoipa-axum's `routes!`) needs concrete handler functions, and ours are generic over their
//! ports, so the routers stay as they are and a test holds the document's operations equal to
//! their `ROUTES`, which build them (and which a test holds equal to `template.yaml`).
//!
//! The document is committed as `docs/openapi.json` (`make openapi`) and the functions serve that
//! file at `GET /openapi.json` (see `orders::OPENAPI_JSON`); a test fails when it differs from
//! what the code generates.
//!
//! # Layout
//! - `mod.rs`: the document: its operations, tags and security schemes.
//! - `errors.rs`: every error code, its status, and the error responses.
//! - `schemas.rs`: the ids' and the request bodies' schemas, from the domain's limits.

pub mod errors;
pub mod schemas;

use super::{buy, checkout, live, operator, orders, pages, queue};
use utoipa::openapi::path::{Operation, ParameterIn, PathItem};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "FlashFlow",
        description = "A flash-sale engine: buy answers 202 with an order at once, settlement \
            records it in Postgres within seconds, a checkout sale holds it until paid through \
            Stripe. Every error is {\"error\", \"message\"}; a 4xx changed nothing. What an \
            answer promises and the retries a client should make: docs/api.md.",
        license(name = "MIT"),
    ),
    paths(
        buy::buy,
        orders::order,
        orders::admin_order,
        orders::public_sale,
        orders::openapi,
        checkout::pay,
        checkout::cancel,
        checkout::webhook,
        operator::create,
        operator::show,
        operator::reset,
        operator::rehydrate,
        operator::queue,
        queue::join,
        queue::status,
        queue::draw,
        queue::challenge,
        live::snapshot,
        pages::shop,
        pages::file,
        pages::live,
        pages::draw,
    ),
    components(schemas(flashflow::domain::IdempotencyKey)),
    modifiers(&Finish),
    tags(
        (name = "buy", description = "Reserving units of a sale"),
        (name = "orders", description = "A buyer's orders"),
        (name = "checkout", description = "Paying for, cancelling and confirming held orders"),
        (name = "waiting room", description = "A sale's queue: join, poll, the draw, admission"),
        (name = "public", description = "What anyone may read"),
        (name = "operator", description = "Running sales (IAM in AWS; a bearer token locally)"),
        (name = "pages", description = "The storefront and the live view"),
    ),
)]
struct ApiDoc;

/// What the derive cannot say: the security schemes and the named error responses.
struct Finish;

impl Modify for Finish {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        let header = |name: &str, what: &str| {
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(name, what)))
        };
        let schemes = [
            (
                "buyer_jwt",
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .bearer_format("JWT")
                        .description(Some(
                            "The site's JWT, checked by API Gateway's JWT authorizer; its `sub` \
                             is the buyer.",
                        ))
                        .build(),
                ),
            ),
            (
                "buyer_header",
                header(
                    "X-User-Id",
                    "Local only (TRUST_USER_HEADER, never set in AWS): the buyer's name.",
                ),
            ),
            (
                "operator_iam",
                header(
                    "Authorization",
                    "AWS Signature Version 4 (API Gateway's IAM authorization) of a principal \
                     allowed execute-api:Invoke on /admin/*.",
                ),
            ),
            (
                "operator_token",
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .description(Some("OPERATOR_TOKEN, where it is set (the local stack)."))
                        .build(),
                ),
            ),
            (
                "stripe_signature",
                header(
                    "Stripe-Signature",
                    "Stripe's HMAC-SHA256 of the payload with the endpoint's secret.",
                ),
            ),
        ];
        for (name, scheme) in schemes {
            components.add_security_scheme(name, scheme);
        }
        components.responses.extend(errors::responses());
        for item in doc.paths.paths.values_mut() {
            for op in operations(item) {
                absent_is_not_null(op);
            }
        }
    }
}

/// The operations of a path item.
fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.post,
        &mut item.put,
        &mut item.patch,
        &mut item.delete,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

/// utoipa writes an optional header or body (`Option<T>`) as "T or null", but an optional
/// header or body is one that may be left out: a `null` body is refused like any non-object.
fn absent_is_not_null(op: &mut Operation) {
    for p in op.parameters.iter_mut().flatten() {
        if let RefOr::T(p) = p {
            if matches!(p.parameter_in, ParameterIn::Header) {
                if let Some(schema) = p.schema.as_mut() {
                    drop_null(schema);
                }
            }
        }
    }
    if let Some(RefOr::T(body)) = op.request_body.as_mut() {
        for content in body.content.values_mut() {
            if let RefOr::T(utoipa::openapi::Content {
                schema: Some(schema),
                ..
            }) = content
            {
                drop_null(schema);
            }
        }
    }
}

/// `oneOf: [T, {"type": "null"}]` becomes `T`.
fn drop_null(schema: &mut RefOr<Schema>) {
    let RefOr::T(Schema::OneOf(one_of)) = schema else {
        return;
    };
    let is_null = |s: &RefOr<Schema>| {
        serde_json::to_value(s).ok() == Some(serde_json::json!({"type": "null"}))
    };
    let kept: Vec<RefOr<Schema>> = one_of
        .items
        .iter()
        .filter(|s| !is_null(s))
        .cloned()
        .collect();
    if let [only] = kept.as_slice() {
        *schema = only.clone();
    }
}

/// The document.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The document as committed: pretty JSON and a final newline.
pub fn to_json() -> String {
    let mut text = document()
        .to_pretty_json()
        .expect("the document serializes: it is plain data");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests;
