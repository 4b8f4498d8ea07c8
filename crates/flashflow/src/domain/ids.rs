//! Identifiers and amounts. Every constructor validates, so a value of these types is always safe to
//! use as a Redis key part, a Postgres value and a JSON field; deserializing validates the same way.

use super::InvalidInput;
use serde::{Deserialize, Serialize};
use std::fmt;

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
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String")]
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

/// Deserializing validates: a value of a domain type is valid wherever it came from.
macro_rules! parse_on_deserialize {
    ($($t:ty),*) => {$(
        impl TryFrom<String> for $t {
            type Error = InvalidInput;
            fn try_from(raw: String) -> Result<Self, InvalidInput> {
                Self::parse(&raw)
            }
        }
    )*};
}
parse_on_deserialize!(SaleId, BuyerId, IdempotencyKey);

/// Printable, non-space ASCII of bounded length: what a header value or a JWT `sub` should be.
fn printable(raw: &str, max: usize) -> bool {
    !raw.is_empty() && raw.len() <= max && raw.bytes().all(|b| b.is_ascii_graphic())
}

/// The authenticated buyer (the JWT `sub`, or the local `X-User-Id`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String")]
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
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String")]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(into = "u32", try_from = "i64")]
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

impl From<Quantity> for u32 {
    fn from(q: Quantity) -> u32 {
        q.0
    }
}

impl TryFrom<i64> for Quantity {
    type Error = InvalidInput;
    fn try_from(n: i64) -> Result<Self, InvalidInput> {
        Self::new(n)
    }
}

impl Default for Quantity {
    fn default() -> Self {
        Self(1)
    }
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
    fn deserializing_validates_like_parsing() {
        assert!(serde_json::from_str::<BuyerId>(r#""a b""#).is_err());
        assert!(serde_json::from_str::<IdempotencyKey>("\"k\\u0000\"").is_err());
        assert!(serde_json::from_str::<SaleId>(r#""x{y}""#).is_err());
        assert!(serde_json::from_str::<Quantity>("0").is_err());
        assert_eq!(serde_json::from_str::<Quantity>("3").unwrap().get(), 3);
        assert_eq!(
            serde_json::to_string(&Quantity::new(3).unwrap()).unwrap(),
            "3"
        );
    }

    #[test]
    fn idempotency_keys_with_spaces_or_control_characters_are_refused() {
        assert!(IdempotencyKey::parse("a b").is_err());
        assert!(IdempotencyKey::parse("a\u{7}").is_err());
        assert!(IdempotencyKey::parse(&"k".repeat(129)).is_err());
        assert!(IdempotencyKey::parse("0190f3a2-retry-1").is_ok());
    }
}
