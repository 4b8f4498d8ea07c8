//! The ids' OpenAPI schemas: strings with a pattern made of the domain's own limits (utoipa's
//! `#[schema(pattern = …)]` takes only literals, and a second copy of each limit would drift from
//! the validator). The request bodies' schemas are the HTTP layer's (`flashflow-http`).

use super::ids::{MAX_BUYER_LEN, MAX_IDEMPOTENCY_KEY_LEN, MAX_ID_LEN};
use super::{BuyerId, IdempotencyKey, SaleId};
use serde_json::{json, Value};
use std::borrow::Cow;
use utoipa::openapi::{RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

/// A schema written as JSON. Only this module's own literals come here, so a schema that does not
/// deserialize is a bug in them, caught by every test that builds the document.
pub fn from_json(value: Value) -> Schema {
    serde_json::from_value(value).expect("a valid JSON Schema literal")
}

/// The pattern of a sale id.
pub fn sale_id_pattern() -> String {
    format!("^[A-Za-z0-9_-]{{1,{MAX_ID_LEN}}}$")
}

impl PartialSchema for SaleId {
    fn schema() -> RefOr<Schema> {
        RefOr::T(from_json(json!({
            "type": "string",
            "pattern": sale_id_pattern(),
            "description": "A sale's id: 1-64 of A-Z, a-z, 0-9, '-' and '_'.",
            "examples": ["drop-42"],
        })))
    }
}

impl ToSchema for SaleId {
    fn name() -> Cow<'static, str> {
        "SaleId".into()
    }
}

impl PartialSchema for BuyerId {
    fn schema() -> RefOr<Schema> {
        RefOr::T(from_json(json!({
            "type": "string",
            "pattern": format!("^[!-~]{{1,{MAX_BUYER_LEN}}}$"),
            "description": "The buyer: the JWT's `sub` (locally, X-User-Id).",
        })))
    }
}

impl ToSchema for BuyerId {
    fn name() -> Cow<'static, str> {
        "BuyerId".into()
    }
}

impl PartialSchema for IdempotencyKey {
    fn schema() -> RefOr<Schema> {
        RefOr::T(from_json(json!({
            "type": "string",
            "pattern": format!("^[!-~]{{1,{MAX_IDEMPOTENCY_KEY_LEN}}}$"),
            "description": "1-128 printable ASCII characters without spaces",
        })))
    }
}

impl ToSchema for IdempotencyKey {
    fn name() -> Cow<'static, str> {
        "IdempotencyKey".into()
    }
}
