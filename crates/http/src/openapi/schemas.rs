//! Schemas the derives cannot say: the ids (strings with a pattern), and the request bodies,
//! whose limits are the domain's constants (utoipa's `#[schema(maximum = …)]` takes only
//! literals, and a second copy of each limit would drift from the validator).

use flashflow::domain::ids::MAX_QUANTITY;
use flashflow::domain::money::{Currency, MAX_AMOUNT};
use flashflow::domain::sale::{HOLD_SECONDS, MAX_ATTEMPTS_PER_MINUTE, MAX_NAME_LEN, MAX_STOCK};
use flashflow::domain::waiting_room::entry::{
    CLAIM_NAME_PATTERN, MAX_CLAIM_VALUE_LEN, MAX_REQUIRED_CLAIMS,
};
use flashflow::domain::waiting_room::tokens::MAX_NONCE_LEN;
use flashflow::domain::waiting_room::{ADMISSION_SECONDS, ADMIT_PER_SECOND, MAX_POW_BITS};
use serde_json::json;
use utoipa::openapi::{RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

pub use flashflow::domain::schema::{from_json, sale_id_pattern};

/// The body of `POST /sales/{sale_id}/buy` (optional: no body buys one).
pub struct BuyRequest;

impl PartialSchema for BuyRequest {
    fn schema() -> RefOr<Schema> {
        RefOr::T(from_json(json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "quantity": {
                    "type": ["integer", "null"], "minimum": 1, "maximum": MAX_QUANTITY,
                    "description": "how many (default 1); at most the sale's per-buyer limit",
                },
            },
        })))
    }
}

impl ToSchema for BuyRequest {}

/// The body of `POST /admin/sales`.
pub struct NewSale;

impl PartialSchema for NewSale {
    fn schema() -> RefOr<Schema> {
        let currencies: Vec<&str> = Currency::codes().collect();
        RefOr::T(from_json(json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["id", "name", "stock", "per_user_limit"],
            "properties": {
                "id": {"type": "string", "pattern": sale_id_pattern()},
                "name": {
                    "type": "string", "minLength": 1, "maxLength": MAX_NAME_LEN,
                    "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$",
                    "description": "shown on the storefront; no control characters",
                },
                "stock": {"type": "integer", "minimum": 0, "maximum": MAX_STOCK},
                "per_user_limit": {"type": "integer", "minimum": 1, "maximum": MAX_QUANTITY},
                "opens_at": {
                    "type": ["string", "null"], "format": "date-time",
                    "description": "RFC 3339; buys before it are refused (403 sale_not_open)",
                },
                "closes_at": {
                    "type": ["string", "null"], "format": "date-time",
                    "description": "RFC 3339, after opens_at; buys from it on are refused",
                },
                "attempts_per_minute": {
                    "type": ["integer", "null"], "minimum": 1, "maximum": MAX_ATTEMPTS_PER_MINUTE,
                    "description": "buy attempts one buyer may make per minute (429 past it)",
                },
                "waiting_room": {
                    "oneOf": [{"type": "null"}, {
                        "type": "object",
                        "additionalProperties": false,
                        "required": ["opens_at", "admission_seconds"],
                        "description": "a queue in front of the opening: buys need an admission \
                            token; the sale must have an opens_at, after the queue's",
                        "properties": {
                            "opens_at": {"type": "string", "format": "date-time",
                                "description": "joining opens; before the sale's opens_at"},
                            "admission_seconds": {
                                "type": "integer",
                                "minimum": ADMISSION_SECONDS.start(), "maximum": ADMISSION_SECONDS.end(),
                                "description": "how long an admission may be used",
                            },
                            "admit_per_second": {
                                "type": ["integer", "null"],
                                "minimum": ADMIT_PER_SECOND.start(), "maximum": ADMIT_PER_SECOND.end(),
                                "description": "the inlet's pace (absent: as fast as the stock allows)",
                            },
                            "pow_bits": {
                                "type": ["integer", "null"], "minimum": 0, "maximum": MAX_POW_BITS,
                                "description": "proof of work asked of a joiner, in leading zero bits",
                            },
                            "entry": entry_schema(),
                        },
                    }],
                },
                "checkout": {
                    "oneOf": [{"type": "null"}, {
                        "type": "object",
                        "additionalProperties": false,
                        "required": ["hold_seconds", "price", "currency"],
                        "description": "a checkout sale: each order is held until paid through \
                            Stripe or hold_seconds ran out",
                        "properties": {
                            "hold_seconds": {"type": "integer",
                                "minimum": HOLD_SECONDS.start(), "maximum": HOLD_SECONDS.end()},
                            "price": {
                                "type": "integer", "minimum": 1, "maximum": MAX_AMOUNT,
                                "description": "one unit's price in the currency's minor units; \
                                    at least the currency's minimum charge, and price × \
                                    per_user_limit at most 99,999,999 (400 invalid_price)",
                            },
                            "currency": {"type": "string", "enum": currencies},
                        },
                    }],
                },
            },
        })))
    }
}

impl ToSchema for NewSale {}

/// `waiting_room.entry` of `POST /admin/sales` (apart: one `json!` of the whole body is past the
/// macro's recursion limit).
fn entry_schema() -> serde_json::Value {
    json!({
        "oneOf": [{"type": "null"}, {
            "type": "object",
            "additionalProperties": false,
            "description": "who may join: claims the joiner's identity \
                (the JWT) must carry, and one place per value of a \
                claim; only a keyed hash of that value is stored",
            "properties": {
                "require_claims": {
                    "type": ["object", "null"],
                    "maxProperties": MAX_REQUIRED_CLAIMS,
                    "propertyNames": {"type": "string", "pattern": CLAIM_NAME_PATTERN},
                    "additionalProperties": {
                        "oneOf": [
                            {"type": "string", "minLength": 1,
                             "maxLength": MAX_CLAIM_VALUE_LEN},
                            {"type": "boolean"},
                            {"type": "number"},
                        ],
                    },
                    "description": "claim -> the value it must have \
                        (403 entry_not_allowed otherwise)",
                },
                "one_per": {
                    "type": ["string", "null"],
                    "pattern": CLAIM_NAME_PATTERN,
                    "description": "a claim whose value holds one place \
                        (409 already_entered for a second identity)",
                },
            },
        }],
    })
}

/// The body of `POST /sales/{sale_id}/queue`: a proof of work, when the sale asks for one.
pub struct JoinRequest;

impl PartialSchema for JoinRequest {
    fn schema() -> RefOr<Schema> {
        // Both or neither: an empty object, or a challenge with its nonce.
        RefOr::T(from_json(json!({
            "anyOf": [
                {"type": "object", "additionalProperties": false, "maxProperties": 0,
                 "description": "no proof of work (a sale that asks for none)"},
                {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["challenge", "nonce"],
                    "properties": {
                        "challenge": {"type": "string", "description": "from GET /sales/{sale_id}/queue/challenge"},
                        "nonce": {
                            "type": "string", "minLength": 1, "maxLength": MAX_NONCE_LEN,
                            "description": "SHA-256(challenge ‖ nonce) starts with the challenge's bits zero bits",
                        },
                    },
                },
            ],
        })))
    }
}

impl ToSchema for JoinRequest {}

/// The body of `POST /admin/sales/{sale_id}/queue`.
pub struct QueueControlRequest;

impl PartialSchema for QueueControlRequest {
    fn schema() -> RefOr<Schema> {
        RefOr::T(from_json(json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "paused": {"type": "boolean", "description": "stop or resume admitting"},
                "admit_per_second": {
                    "type": ["integer", "null"],
                    "minimum": ADMIT_PER_SECOND.start(), "maximum": ADMIT_PER_SECOND.end(),
                    "description": "the inlet's pace; null: as fast as the stock allows",
                },
            },
        })))
    }
}

impl ToSchema for QueueControlRequest {}

/// The body of `POST /admin/sales/{sale_id}/reset` (optional).
pub struct ResetRequest;

impl PartialSchema for ResetRequest {
    fn schema() -> RefOr<Schema> {
        RefOr::T(from_json(json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "stock": {
                    "type": ["integer", "null"], "minimum": 0, "maximum": MAX_STOCK,
                    "description": "the next round's stock (default: the sale's)",
                },
                "force": {
                    "type": "boolean", "default": false,
                    "description": "record reserved, unsettled orders as rejected",
                },
            },
        })))
    }
}

impl ToSchema for ResetRequest {}

/// The body of `POST /admin/sales/{sale_id}/rehydrate` (optional).
pub struct RehydrateRequest;

impl PartialSchema for RehydrateRequest {
    fn schema() -> RefOr<Schema> {
        RefOr::T(from_json(json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "force": {
                    "type": "boolean", "default": false,
                    "description": "rebuild a sale a failover paused although the orders queue \
                        is not empty (orders still in it are not counted)",
                },
            },
        })))
    }
}

impl ToSchema for RehydrateRequest {}

/// A Stripe event as Stripe sends it; only a signed one is read.
pub struct StripeEvent;

impl PartialSchema for StripeEvent {
    fn schema() -> RefOr<Schema> {
        RefOr::T(from_json(json!({
            "type": "object",
            "description": "https://docs.stripe.com/api/events/object: checkout reads \
                payment_intent.succeeded (data.object is the PaymentIntent, its \
                metadata.order_id the order) and answers every other event 200 unread",
            "required": ["id", "type", "data"],
            "properties": {
                "id": {"type": "string"},
                "type": {"type": "string", "examples": ["payment_intent.succeeded"]},
                "data": {
                    "type": "object",
                    "required": ["object"],
                    "properties": {"object": {"type": "object", "description": "the event's object"}},
                },
            },
        })))
    }
}

impl ToSchema for StripeEvent {}

/// The webhook's answer to an event it took.
pub struct Received;

impl PartialSchema for Received {
    fn schema() -> RefOr<Schema> {
        RefOr::T(from_json(json!({
            "type": "object",
            "required": ["received"],
            "properties": {"received": {"type": "boolean", "const": true}},
        })))
    }
}

impl ToSchema for Received {}
