//! Order signatures: buy signs each order it reserves, before the reservation script runs, and
//! the script writes the signature into the order message itself (`OrderMessage::sig`); settle
//! confirms only orders whose signature checks out. A message anyone else made (a made-up order,
//! an outbox entry copied under another order id or buyer) is refused and ends in the DLQ, and
//! whoever forwards a message (the sweeper, a redrive) holds no key and cannot sign one.
//!
//! HMAC-SHA256, hex-encoded, over what identifies the order: its id, sale, buyer, quantity and
//! Idempotency-Key ([`order_text`]). The fields Redis' script adds (the reservation time, the
//! round, a hold's end) are not signed: they order and time an order buy did reserve. The key
//! (`ORDER_SIGNING_KEY`, at least 32 bytes) is shared by buy and settle only.

use super::{BuyerId, IdempotencyKey, OrderMessage, ReserveRequest, SaleId};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use uuid::Uuid;

/// What an order's signature covers, one field a line (none of them can hold a line break).
pub fn order_text(
    order_id: Uuid,
    sale: &SaleId,
    buyer: &BuyerId,
    quantity: u32,
    key: Option<&IdempotencyKey>,
) -> String {
    let key = key.map_or("", |k| k.as_str());
    format!(
        "flashflow-order-v2\n{order_id}\n{sale}\n{}\n{quantity}\n{key}",
        buyer.as_str()
    )
}

/// The shortest key accepted.
pub const MIN_KEY_LEN: usize = 32;

/// Signs and verifies order messages with one key.
#[derive(Clone)]
pub struct Signer {
    keyed: Hmac<Sha256>,
}

/// The key is too short to be a secret.
#[derive(Debug, thiserror::Error)]
#[error("the order signing key must be at least {MIN_KEY_LEN} bytes")]
pub struct WeakKey;

impl Signer {
    /// # Errors
    /// [`WeakKey`] when `key` is shorter than [`MIN_KEY_LEN`].
    pub fn new(key: &[u8]) -> Result<Self, WeakKey> {
        if key.len() < MIN_KEY_LEN {
            return Err(WeakKey);
        }
        Ok(Self {
            keyed: Hmac::<Sha256>::new_from_slice(key).map_err(|_| WeakKey)?,
        })
    }

    /// The signature buy gives the order `req` is about to reserve.
    pub fn sign_order(&self, req: &ReserveRequest) -> String {
        self.sign(&order_text(
            req.order_id,
            &req.sale,
            &req.buyer,
            req.quantity.get(),
            req.idempotency_key.as_ref(),
        ))
    }

    /// `order` with buy's signature of it: for tests and tools that play buy's part.
    pub fn signed(&self, mut order: OrderMessage) -> OrderMessage {
        order.sig = Some(self.sign(&order_text(
            order.order_id,
            &order.sale_id,
            &order.buyer,
            order.quantity.get(),
            order.idempotency_key.as_ref(),
        )));
        order
    }

    /// Whether `order` carries buy's signature of itself.
    pub fn verifies_order(&self, order: &OrderMessage) -> bool {
        let text = order_text(
            order.order_id,
            &order.sale_id,
            &order.buyer,
            order.quantity.get(),
            order.idempotency_key.as_ref(),
        );
        order
            .sig
            .as_deref()
            .is_some_and(|sig| self.verify(&text, sig))
    }

    /// The signature of `body`.
    pub fn sign(&self, body: &str) -> String {
        let mut mac = self.keyed.clone();
        mac.update(body.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// Whether `signature` is this key's signature of `body` (compared in constant time).
    pub fn verify(&self, body: &str, signature: &str) -> bool {
        let Ok(given) = hex::decode(signature) else {
            return false;
        };
        let mut mac = self.keyed.clone();
        mac.update(body.as_bytes());
        mac.verify_slice(&given).is_ok()
    }
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn a_signature_verifies_only_for_the_same_body_and_key() {
        let s = Signer::new(KEY).unwrap();
        let sig = s.sign(r#"{"quantity":1}"#);
        assert!(s.verify(r#"{"quantity":1}"#, &sig));
        assert!(!s.verify(r#"{"quantity":2}"#, &sig));
        assert!(!s.verify(r#"{"quantity":1}"#, "not hex"));
        assert!(!s.verify(r#"{"quantity":1}"#, ""));
        let other = Signer::new(b"another key of thirty-two bytes!").unwrap();
        assert!(!other.verify(r#"{"quantity":1}"#, &sig));
    }

    fn request(buyer: &str, quantity: i64) -> ReserveRequest {
        ReserveRequest {
            admission: None,
            order_id: Uuid::nil(),
            sale: SaleId::parse("s").unwrap(),
            buyer: BuyerId::parse(buyer).unwrap(),
            quantity: super::super::Quantity::new(quantity).unwrap(),
            idempotency_key: None,
            signature: None,
        }
    }

    fn message(req: &ReserveRequest, sig: Option<String>) -> OrderMessage {
        OrderMessage {
            v: super::super::ORDER_MESSAGE_VERSION,
            order_id: req.order_id,
            sale_id: req.sale.clone(),
            buyer: req.buyer.clone(),
            quantity: req.quantity,
            reserved_at_ms: 1_764_000_000_000,
            idempotency_key: None,
            round: 1,
            pay_by_ms: None,
            sig,
        }
    }

    #[test]
    fn an_order_verifies_with_buys_signature_and_not_when_copied_to_another_buyer() {
        let s = Signer::new(KEY).unwrap();
        let req = request("ada", 1);
        let sig = s.sign_order(&req);
        assert!(s.verifies_order(&message(&req, Some(sig.clone()))));
        assert!(!s.verifies_order(&message(&req, None)), "unsigned");
        let copied = message(&request("mallory", 1), Some(sig.clone()));
        assert!(!s.verifies_order(&copied), "another buyer");
        let more = message(&request("ada", 2), Some(sig));
        assert!(!s.verifies_order(&more), "another quantity");
    }

    #[test]
    fn short_keys_are_refused() {
        assert!(Signer::new(b"short").is_err());
    }
}
