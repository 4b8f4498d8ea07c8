//! The order message: what `reserve.lua` writes into the outbox, what goes to SQS and what settle
//! reads. This is its one definition; the script takes the version from here (see the adapter) and
//! a test checks that the script writes exactly these fields.

use super::{BuyerId, IdempotencyKey, InvalidInput, Quantity, SaleId};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Version of [`OrderMessage`] this code writes and reads. Version 2 carries buy's signature
/// (`sig`) inside the message; version 1 (signed in an SQS attribute by whoever sent it) is
/// refused.
pub const ORDER_MESSAGE_VERSION: u32 = 2;

/// Reservation times outside this range (2020-01-01 .. 2100-01-01 in ms) are not Redis' clock.
const RESERVED_AT_RANGE: std::ops::Range<i64> = 1_577_836_800_000..4_102_444_800_000;

/// One reserved order. Every field is validated on parse with the same types the API uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderMessage {
    /// Message schema version; readers refuse versions they do not know.
    pub v: u32,
    pub order_id: Uuid,
    pub sale_id: SaleId,
    pub buyer: BuyerId,
    pub quantity: Quantity,
    /// Milliseconds since the Unix epoch, by Redis' clock.
    pub reserved_at_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<IdempotencyKey>,
    /// The sale's round when it was reserved (a reset starts the next one); messages written
    /// before rounds existed are of the first.
    #[serde(default = "first_round")]
    pub round: u32,
    /// A checkout sale's order: when its hold ends (reserved_at_ms + the sale's hold).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pay_by_ms: Option<i64>,
    /// Buy's signature of the order (`crate::domain::signing::Signer::sign_order`), written by the
    /// reservation script with the order: settle confirms nothing else. Whoever forwards the
    /// message (the sweeper, a redrive) needs no key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sig: Option<String>,
}

fn first_round() -> u32 {
    1
}

impl OrderMessage {
    /// Parse and validate a message body (from SQS or the outbox).
    ///
    /// # Errors
    /// `invalid_message` when the JSON does not parse, has unknown fields, the version is unknown
    /// or a field is out of range.
    pub fn parse(body: &str) -> Result<Self, InvalidInput> {
        let msg: OrderMessage = serde_json::from_str(body)
            .map_err(|e| InvalidInput::new("invalid_message", format!("order message: {e}")))?;
        if msg.v != ORDER_MESSAGE_VERSION {
            return Err(InvalidInput::new(
                "invalid_message",
                format!("order message version {} is not supported", msg.v),
            ));
        }
        if !RESERVED_AT_RANGE.contains(&msg.reserved_at_ms) {
            return Err(InvalidInput::new(
                "invalid_message",
                format!("reserved_at_ms {} is out of range", msg.reserved_at_ms),
            ));
        }
        Ok(msg)
    }

    /// The message body as JSON.
    pub fn to_json(&self) -> String {
        // A struct of strings and numbers always serializes.
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"v":2,"order_id":"0190f3a2-6c1e-7cc0-9b1e-3a6c2f0e8d11","sale_id":"s","buyer":"b","quantity":1,"reserved_at_ms":1764000000000,"round":1}"#;

    #[test]
    fn a_valid_message_parses_and_serializes_back_to_the_same_fields() {
        let msg = OrderMessage::parse(GOOD).unwrap();
        assert_eq!(msg.quantity.get(), 1);
        let back: serde_json::Value = serde_json::from_str(&msg.to_json()).unwrap();
        assert_eq!(
            back,
            serde_json::from_str::<serde_json::Value>(GOOD).unwrap()
        );
    }

    #[test]
    fn a_message_written_before_rounds_existed_is_of_the_first_round() {
        let old = GOOD.replace(r#","round":1"#, "");
        assert_eq!(OrderMessage::parse(&old).unwrap().round, 1);
    }

    #[test]
    fn order_message_of_an_unknown_version_is_refused() {
        for v in ["1", "3"] {
            let other = GOOD.replace("\"v\":2", &format!("\"v\":{v}"));
            assert_eq!(
                OrderMessage::parse(&other).unwrap_err().code,
                "invalid_message",
                "version {v}"
            );
        }
    }

    #[test]
    fn every_field_is_validated_as_the_api_validates_it() {
        for (from, to) in [
            (r#""buyer":"b""#, r#""buyer":"a b""#),
            (
                r#""buyer":"b""#,
                &format!(r#""buyer":"{}""#, "b".repeat(10_000)),
            ),
            (r#""sale_id":"s""#, r#""sale_id":"s{x}""#),
            (r#""quantity":1"#, r#""quantity":0"#),
            (r#""quantity":1"#, r#""quantity":101"#),
            (
                r#""reserved_at_ms":1764000000000"#,
                r#""reserved_at_ms":-300000000000000"#,
            ),
            (
                r#""reserved_at_ms":1764000000000"#,
                r#""reserved_at_ms":1764000000000,"idempotency_key":"k\u0000""#,
            ),
            (r#""v":2"#, r#""v":2,"extra":true"#),
        ] {
            let body = GOOD.replace(from, to);
            assert_eq!(
                OrderMessage::parse(&body).unwrap_err().code,
                "invalid_message",
                "{body}"
            );
        }
    }
}
