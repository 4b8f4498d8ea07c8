//! Domain types. Every constructor validates, so a value of these types is always safe to use as a
//! Redis key part, a Postgres value and a JSON field.

use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

/// Why a piece of client input was refused. The message is meant for the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct InvalidInput {
    /// Stable, machine-readable error code, e.g. `invalid_sale_id`.
    pub code: &'static str,
    /// Human-readable explanation.
    pub message: String,
}

impl InvalidInput {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// The longest sale id accepted.
pub const MAX_ID_LEN: usize = 64;
/// The longest buyer id accepted.
pub const MAX_BUYER_LEN: usize = 128;
/// The longest idempotency key accepted (UUIDs and ULIDs fit easily).
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 128;
/// The largest quantity one request may ask for; the sale's per-user limit applies on top.
pub const MAX_QUANTITY: u32 = 100;

/// A sale id: 1–64 of `[A-Za-z0-9_-]`. The charset keeps `{}` out, so the id can be used as a
/// Redis Cluster hash tag.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct SaleId(String);

impl SaleId {
    /// # Errors
    /// `invalid_sale_id` when empty, too long or outside `[A-Za-z0-9_-]`.
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        let ok = !raw.is_empty()
            && raw.len() <= MAX_ID_LEN
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(InvalidInput::new(
                "invalid_sale_id",
                format!("sale id must be 1-{MAX_ID_LEN} characters of A-Z, a-z, 0-9, '-' or '_'"),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SaleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SaleId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        SaleId::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// Printable, non-space ASCII of bounded length: what a header value or a JWT `sub` should be.
fn printable(raw: &str, max: usize) -> bool {
    !raw.is_empty() && raw.len() <= max && raw.bytes().all(|b| b.is_ascii_graphic())
}

/// The authenticated buyer (the JWT `sub`, or the local `X-User-Id`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BuyerId(String);

impl BuyerId {
    /// # Errors
    /// `invalid_buyer` when empty, longer than 128 bytes, or not printable ASCII without spaces.
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        if printable(raw, MAX_BUYER_LEN) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(InvalidInput::new(
                "invalid_buyer",
                "buyer identity must be 1-128 printable ASCII characters without spaces",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A client-chosen key that makes a retried buy return the original order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// # Errors
    /// `invalid_idempotency_key` when empty, longer than 128 bytes, or not printable ASCII.
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        if printable(raw, MAX_IDEMPOTENCY_KEY_LEN) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(InvalidInput::new(
                "invalid_idempotency_key",
                format!(
                    "Idempotency-Key must be 1-{MAX_IDEMPOTENCY_KEY_LEN} printable ASCII characters without spaces"
                ),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// How many items one buy asks for: 1..=[`MAX_QUANTITY`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantity(u32);

impl Quantity {
    /// # Errors
    /// `invalid_quantity` outside 1..=[`MAX_QUANTITY`].
    pub fn new(n: i64) -> Result<Self, InvalidInput> {
        if (1..=i64::from(MAX_QUANTITY)).contains(&n) {
            Ok(Self(n as u32))
        } else {
            Err(InvalidInput::new(
                "invalid_quantity",
                format!("quantity must be an integer from 1 to {MAX_QUANTITY}"),
            ))
        }
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

impl Default for Quantity {
    fn default() -> Self {
        Self(1)
    }
}

/// Version of [`OrderMessage`] this code writes.
pub const ORDER_MESSAGE_VERSION: u32 = 1;

/// The order as reserved in Redis, kept in the outbox and sent to SQS. Written by `reserve.lua`,
/// so field names here and there must match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderMessage {
    /// Message schema version; readers refuse versions they do not know.
    pub v: u32,
    pub order_id: Uuid,
    pub sale_id: SaleId,
    pub buyer: BuyerId,
    pub quantity: u32,
    /// Milliseconds since the Unix epoch, by Redis' clock.
    pub reserved_at_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

impl OrderMessage {
    /// Parse and validate a message body (from SQS or the outbox).
    ///
    /// # Errors
    /// `invalid_message` when the JSON does not parse, the version is unknown or a field is out of range.
    pub fn parse(body: &str) -> Result<Self, InvalidInput> {
        let msg: OrderMessage = serde_json::from_str(body)
            .map_err(|e| InvalidInput::new("invalid_message", format!("order message: {e}")))?;
        if msg.v != ORDER_MESSAGE_VERSION {
            return Err(InvalidInput::new(
                "invalid_message",
                format!("order message version {} is not supported", msg.v),
            ));
        }
        Quantity::new(i64::from(msg.quantity))
            .map_err(|e| InvalidInput::new("invalid_message", e.message))?;
        Ok(msg)
    }
}

/// A sale as the operator defines it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SaleDefinition {
    pub id: SaleId,
    pub name: String,
    pub stock: u32,
    pub per_user_limit: u32,
    /// Milliseconds since the Unix epoch; buys before it are refused.
    pub opens_at_ms: Option<i64>,
    /// Milliseconds since the Unix epoch; buys from it on are refused.
    pub closes_at_ms: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sale_ids_that_could_break_the_hash_tag_are_refused() {
        for bad in ["", "a{b", "a}b", "a b", "ä", &"x".repeat(65)] {
            assert_eq!(
                SaleId::parse(bad).unwrap_err().code,
                "invalid_sale_id",
                "{bad:?}"
            );
        }
        assert_eq!(
            SaleId::parse("drop-2026_A").unwrap().as_str(),
            "drop-2026_A"
        );
    }

    #[test]
    fn quantity_outside_one_to_max_is_refused() {
        assert!(Quantity::new(0).is_err());
        assert!(Quantity::new(-1).is_err());
        assert!(Quantity::new(i64::from(MAX_QUANTITY) + 1).is_err());
        assert_eq!(Quantity::new(3).unwrap().get(), 3);
    }

    #[test]
    fn idempotency_keys_with_spaces_or_control_characters_are_refused() {
        assert!(IdempotencyKey::parse("a b").is_err());
        assert!(IdempotencyKey::parse("a\u{7}").is_err());
        assert!(IdempotencyKey::parse(&"k".repeat(129)).is_err());
        assert!(IdempotencyKey::parse("0190f3a2-retry-1").is_ok());
    }

    #[test]
    fn order_message_of_an_unknown_version_is_refused() {
        let body = r#"{"v":2,"order_id":"0190f3a2-6c1e-7cc0-9b1e-3a6c2f0e8d11","sale_id":"s","buyer":"b","quantity":1,"reserved_at_ms":1}"#;
        assert_eq!(
            OrderMessage::parse(body).unwrap_err().code,
            "invalid_message"
        );
        let ok = body.replace("\"v\":2", "\"v\":1");
        assert_eq!(OrderMessage::parse(&ok).unwrap().quantity, 1);
    }
}
