//! What the waiting room hands out: a ticket (a place in the queue), an admission token (leave to
//! buy until it expires) and a proof-of-work challenge. Each is opaque to the client and signed
//! with the waiting room's key (HMAC-SHA256), and each is bound to its sale and buyer, so buy
//! checks an admission in the process, with no Redis round trip.
//!
//! A token is `base64url(payload) "." base64url(mac)`: the payload is JSON, the MAC covers the
//! token's kind and the payload, so one kind never passes for another. Tickets and admissions
//! carry the queue's epoch (a random number the queue got when it was made): a queue rebuilt
//! after a Redis loss has another, so a ticket of the lost queue is told to join again rather
//! than answered with a place that now belongs to someone else.

use crate::domain::{BuyerId, SaleId};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The shortest key accepted.
pub const MIN_KEY_LEN: usize = 32;
/// How long a challenge may be answered in.
pub const CHALLENGE_MS: i64 = 5 * 60 * 1000;
/// The longest proof-of-work nonce taken.
pub const MAX_NONCE_LEN: usize = 64;

#[derive(Clone, Copy)]
enum Kind {
    Ticket,
    Admission,
    Challenge,
    Entry,
}

impl Kind {
    fn label(self) -> &'static [u8] {
        match self {
            Kind::Ticket => b"ff-ticket-v2",
            Kind::Admission => b"ff-admission-v2",
            Kind::Challenge => b"ff-challenge-v1",
            Kind::Entry => b"ff-entry-v1",
        }
    }
}

/// A place in a sale's queue: its buyer, join index (arrival order, 0-based) and queue epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct TicketBody {
    s: String,
    b: String,
    n: u64,
    q: u64,
}

/// Leave to buy: the place it admits (join index `n`, admitted in batch `x` of the queue of
/// epoch `q`) and until when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct AdmissionBody {
    s: String,
    b: String,
    n: u64,
    x: u64,
    e: i64,
    q: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ChallengeBody {
    s: String,
    b: String,
    /// Random, single use: recorded when a join uses it.
    r: String,
    e: i64,
}

/// A checked admission: what buy tells the reservation script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admission {
    /// The admitted place's join index.
    pub index: u64,
    /// The inlet's batch that admitted it.
    pub batch: u64,
    pub expires_ms: i64,
    /// The queue's epoch: an admission of a queue that was lost and rebuilt admits nobody.
    pub epoch: u64,
}

/// A ticket opened: the place's join index in the queue of `epoch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TicketPlace {
    pub index: u64,
    pub epoch: u64,
}

/// Why a buy is not admitted (all answered `403 not_admitted`; the reason is logged and counted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotAdmitted {
    #[error("no admission token")]
    Missing,
    #[error("an admission token not signed by this deployment")]
    Forged,
    #[error("an admission token for another sale")]
    OtherSale,
    #[error("an admission token for another buyer")]
    OtherBuyer,
    #[error("an expired admission token")]
    Expired,
}

/// Why a proof of work is refused (`400 invalid_proof`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidProof {
    #[error("no proof of work: this sale's queue asks for one (GET …/queue/challenge)")]
    Missing,
    #[error("the challenge was not issued here, or not to this buyer for this sale")]
    NotOurs,
    #[error("the challenge expired: ask for a new one")]
    Expired,
    #[error("SHA-256(challenge ‖ nonce) does not have the leading zero bits asked for")]
    TooFewBits,
    #[error("this challenge was answered before: ask for a new one")]
    Reused,
}

/// One sale's key for the entry policy's tags ([`TokenKeys::entry_key`]): made once per sale and
/// state read, so a join pays one HMAC for its tag.
#[derive(Clone)]
pub struct EntryKey(Hmac<Sha256>);

impl std::fmt::Debug for EntryKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EntryKey(…)")
    }
}

impl EntryKey {
    /// The tag a `one_per` claim's `value` is held under: HMAC-SHA256 under the sale's key, so
    /// the store never holds a phone number or an email. 128 bits (hex): ample against collisions
    /// among a sale's entrants, half the memory of 256.
    pub fn tag(&self, value: &str) -> String {
        let mut mac = self.0.clone();
        mac.update(value.as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..16])
    }
}

/// Signs and opens the waiting room's tokens with one key.
#[derive(Clone)]
pub struct TokenKeys {
    keyed: Hmac<Sha256>,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKeys(…)")
    }
}

impl TokenKeys {
    /// Keys from `key`, at least [`MIN_KEY_LEN`] bytes.
    pub fn new(key: &[u8]) -> Option<Self> {
        if key.len() < MIN_KEY_LEN {
            return None;
        }
        Some(Self {
            keyed: Hmac::new_from_slice(key).ok()?,
        })
    }

    fn mac(&self, kind: Kind, payload: &[u8]) -> Hmac<Sha256> {
        let mut mac = self.keyed.clone();
        mac.update(kind.label());
        mac.update(b"\n");
        mac.update(payload);
        mac
    }

    fn seal<T: Serialize>(&self, kind: Kind, body: &T) -> String {
        // Serializing these plain structs cannot fail.
        let payload = serde_json::to_vec(body).unwrap_or_default();
        let tag = self.mac(kind, &payload).finalize().into_bytes();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&payload),
            URL_SAFE_NO_PAD.encode(tag)
        )
    }

    fn open<T: DeserializeOwned>(&self, kind: Kind, token: &str) -> Option<T> {
        let (payload, tag) = token.split_once('.')?;
        let payload = URL_SAFE_NO_PAD.decode(payload).ok()?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        // Constant time: a forger learns nothing from how long a refusal took.
        self.mac(kind, &payload).verify_slice(&tag).ok()?;
        serde_json::from_slice(&payload).ok()
    }

    /// The key of `sale`'s entry tags: the MAC of the sale id under this deployment's key, so
    /// each sale has a key of its own and one person's tags in two sales do not match.
    pub fn entry_key(&self, sale: &SaleId) -> EntryKey {
        let sale_key = self
            .mac(Kind::Entry, sale.as_str().as_bytes())
            .finalize()
            .into_bytes();
        // HMAC takes a key of any length: a 32-byte one cannot be refused.
        EntryKey(
            <Hmac<Sha256> as KeyInit>::new_from_slice(&sale_key)
                .expect("HMAC takes a key of any length"),
        )
    }

    /// [`EntryKey::tag`] under `sale`'s key.
    pub fn entry_tag(&self, sale: &SaleId, value: &str) -> String {
        self.entry_key(sale).tag(value)
    }

    /// The ticket of `buyer`'s place at join index `index` of the queue of `epoch`.
    pub fn ticket(&self, sale: &SaleId, buyer: &BuyerId, place: TicketPlace) -> String {
        self.seal(
            Kind::Ticket,
            &TicketBody {
                s: sale.to_string(),
                b: buyer.as_str().to_owned(),
                n: place.index,
                q: place.epoch,
            },
        )
    }

    /// The place of `ticket`, when it is this sale's and this buyer's.
    pub fn open_ticket(&self, ticket: &str, sale: &SaleId, buyer: &BuyerId) -> Option<TicketPlace> {
        let body: TicketBody = self.open(Kind::Ticket, ticket)?;
        (body.s == sale.as_str() && body.b == buyer.as_str()).then_some(TicketPlace {
            index: body.n,
            epoch: body.q,
        })
    }

    /// An admission token for `buyer`'s place.
    pub fn admission(&self, sale: &SaleId, buyer: &BuyerId, admission: Admission) -> String {
        self.seal(
            Kind::Admission,
            &AdmissionBody {
                s: sale.to_string(),
                b: buyer.as_str().to_owned(),
                n: admission.index,
                x: admission.batch,
                e: admission.expires_ms,
                q: admission.epoch,
            },
        )
    }

    /// `token` checked for a buy of `sale` by `buyer` at `now_ms`.
    ///
    /// # Errors
    /// [`NotAdmitted`] says why not.
    pub fn check_admission(
        &self,
        token: Option<&str>,
        sale: &SaleId,
        buyer: &BuyerId,
        now_ms: i64,
    ) -> Result<Admission, NotAdmitted> {
        let admission = self.genuine_admission(token, sale, buyer)?;
        if now_ms >= admission.expires_ms {
            return Err(NotAdmitted::Expired);
        }
        Ok(admission)
    }

    /// `token`, when this deployment signed it for `sale` and `buyer`, whether or not it has
    /// expired: a retry of an order (its Idempotency-Key) brings the admission it was bought
    /// with, and the reservation script answers that order whatever the time.
    ///
    /// # Errors
    /// [`NotAdmitted`] says why not (never `Expired`).
    pub fn genuine_admission(
        &self,
        token: Option<&str>,
        sale: &SaleId,
        buyer: &BuyerId,
    ) -> Result<Admission, NotAdmitted> {
        let token = token.ok_or(NotAdmitted::Missing)?;
        let body: AdmissionBody = self
            .open(Kind::Admission, token)
            .ok_or(NotAdmitted::Forged)?;
        if body.s != sale.as_str() {
            return Err(NotAdmitted::OtherSale);
        }
        if body.b != buyer.as_str() {
            return Err(NotAdmitted::OtherBuyer);
        }
        Ok(Admission {
            index: body.n,
            batch: body.x,
            expires_ms: body.e,
            epoch: body.q,
        })
    }

    /// A challenge for `buyer` to join `sale`'s queue: `random` makes it single use.
    pub fn challenge(
        &self,
        sale: &SaleId,
        buyer: &BuyerId,
        random: [u8; 16],
        now_ms: i64,
    ) -> String {
        self.seal(
            Kind::Challenge,
            &ChallengeBody {
                s: sale.to_string(),
                b: buyer.as_str().to_owned(),
                r: hex::encode(random),
                e: now_ms + CHALLENGE_MS,
            },
        )
    }

    /// The proof `(challenge, nonce)` checked for `buyer` joining `sale` with `bits` asked for;
    /// the challenge's single-use id, which the join records.
    ///
    /// # Errors
    /// [`InvalidProof`] says why not (a reused one is for the caller to tell).
    pub fn check_proof(
        &self,
        challenge: &str,
        nonce: &str,
        sale: &SaleId,
        buyer: &BuyerId,
        bits: u8,
        now_ms: i64,
    ) -> Result<String, InvalidProof> {
        let body: ChallengeBody = self
            .open(Kind::Challenge, challenge)
            .ok_or(InvalidProof::NotOurs)?;
        if body.s != sale.as_str() || body.b != buyer.as_str() {
            return Err(InvalidProof::NotOurs);
        }
        if now_ms >= body.e {
            return Err(InvalidProof::Expired);
        }
        if nonce.is_empty() || nonce.len() > MAX_NONCE_LEN || !meets(challenge, nonce, bits) {
            return Err(InvalidProof::TooFewBits);
        }
        Ok(body.r)
    }
}

/// Whether SHA-256(challenge ‖ nonce) starts with `bits` zero bits.
pub fn meets(challenge: &str, nonce: &str, bits: u8) -> bool {
    let mut h = Sha256::new();
    h.update(challenge.as_bytes());
    h.update(nonce.as_bytes());
    leading_zero_bits(&h.finalize()) >= u32::from(bits)
}

fn leading_zero_bits(digest: &[u8]) -> u32 {
    let mut bits = 0;
    for byte in digest {
        if *byte == 0 {
            bits += 8;
        } else {
            return bits + byte.leading_zeros();
        }
    }
    bits
}

/// A nonce meeting `bits` for `challenge`, found the way the storefront finds one (counting up):
/// for tests and the benchmark's bot.
pub fn solve(challenge: &str, bits: u8) -> String {
    (0u64..)
        .map(|n| n.to_string())
        .find(|n| meets(challenge, n, bits))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_796_000_000_000;

    fn keys() -> TokenKeys {
        TokenKeys::new(&[7u8; 32]).unwrap()
    }

    fn ids() -> (SaleId, BuyerId) {
        (
            SaleId::parse("drop").unwrap(),
            BuyerId::parse("alice").unwrap(),
        )
    }

    #[test]
    fn an_entry_tag_is_the_same_for_one_value_in_one_sale_and_differs_across_sales() {
        let k = keys();
        let (sale, _) = ids();
        let other = SaleId::parse("other-drop").unwrap();
        let tag = k.entry_tag(&sale, "+44 7700 900123");
        assert_eq!(tag, k.entry_tag(&sale, "+44 7700 900123"));
        assert_eq!(tag.len(), 32);
        assert!(!tag.contains("900123"), "the value is not stored");
        assert_ne!(tag, k.entry_tag(&sale, "+44 7700 900124"));
        assert_ne!(tag, k.entry_tag(&other, "+44 7700 900123"));
        let stranger = TokenKeys::new(&[8u8; 32]).unwrap();
        assert_ne!(tag, stranger.entry_tag(&sale, "+44 7700 900123"));
    }

    fn admitted() -> Admission {
        Admission {
            index: 3,
            batch: 1,
            expires_ms: NOW + 60_000,
            epoch: 7,
        }
    }

    const PLACE: TicketPlace = TicketPlace { index: 3, epoch: 7 };

    #[test]
    fn an_admission_token_admits_its_buyer_to_its_sale_until_it_expires() {
        let (sale, buyer) = ids();
        let token = keys().admission(&sale, &buyer, admitted());
        assert_eq!(
            keys().check_admission(Some(&token), &sale, &buyer, NOW),
            Ok(admitted())
        );
    }

    #[test]
    fn a_missing_forged_altered_expired_or_misdirected_admission_is_refused() {
        let (sale, buyer) = ids();
        let token = keys().admission(&sale, &buyer, admitted());
        let other_key = TokenKeys::new(&[8u8; 32])
            .unwrap()
            .admission(&sale, &buyer, admitted());
        let (payload, mac) = token.split_once('.').unwrap();
        let mut body: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        body["e"] = serde_json::json!(NOW + 3_600_000);
        let altered = format!(
            "{}.{mac}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&body).unwrap())
        );
        let other_buyer = BuyerId::parse("mallory").unwrap();
        let other_sale = SaleId::parse("other").unwrap();
        let k = keys();
        let check = |t: Option<&str>, s: &SaleId, b: &BuyerId, now| k.check_admission(t, s, b, now);
        assert_eq!(check(None, &sale, &buyer, NOW), Err(NotAdmitted::Missing));
        assert_eq!(
            check(Some(&other_key), &sale, &buyer, NOW),
            Err(NotAdmitted::Forged)
        );
        assert_eq!(
            check(Some(&altered), &sale, &buyer, NOW),
            Err(NotAdmitted::Forged)
        );
        assert_eq!(
            check(Some("junk"), &sale, &buyer, NOW),
            Err(NotAdmitted::Forged)
        );
        assert_eq!(
            check(Some(&token), &sale, &buyer, NOW + 60_000),
            Err(NotAdmitted::Expired)
        );
        assert_eq!(
            check(Some(&token), &sale, &other_buyer, NOW),
            Err(NotAdmitted::OtherBuyer)
        );
        assert_eq!(
            check(Some(&token), &other_sale, &buyer, NOW),
            Err(NotAdmitted::OtherSale)
        );
    }

    #[test]
    fn a_ticket_is_no_admission_and_an_admission_no_ticket() {
        let (sale, buyer) = ids();
        let ticket = keys().ticket(&sale, &buyer, PLACE);
        assert_eq!(keys().open_ticket(&ticket, &sale, &buyer), Some(PLACE));
        assert_eq!(
            keys().check_admission(Some(&ticket), &sale, &buyer, NOW),
            Err(NotAdmitted::Forged)
        );
        let admission = keys().admission(&sale, &buyer, admitted());
        assert_eq!(keys().open_ticket(&admission, &sale, &buyer), None);
    }

    #[test]
    fn an_expired_admission_is_still_genuine_for_a_retry_of_its_order() {
        let (sale, buyer) = ids();
        let token = keys().admission(&sale, &buyer, admitted());
        let later = NOW + 120_000;
        assert_eq!(
            keys().check_admission(Some(&token), &sale, &buyer, later),
            Err(NotAdmitted::Expired)
        );
        assert_eq!(
            keys().genuine_admission(Some(&token), &sale, &buyer),
            Ok(admitted())
        );
        let mallory = BuyerId::parse("mallory").unwrap();
        assert_eq!(
            keys().genuine_admission(Some(&token), &sale, &mallory),
            Err(NotAdmitted::OtherBuyer)
        );
    }

    #[test]
    fn a_ticket_opens_only_for_its_owner() {
        let (sale, buyer) = ids();
        let ticket = keys().ticket(&sale, &buyer, PLACE);
        let mallory = BuyerId::parse("mallory").unwrap();
        assert_eq!(keys().open_ticket(&ticket, &sale, &mallory), None);
    }

    #[test]
    fn a_proof_of_work_is_taken_only_when_right_for_its_buyer_and_sale_and_in_time() {
        let (sale, buyer) = ids();
        let k = keys();
        let challenge = k.challenge(&sale, &buyer, [1; 16], NOW);
        let nonce = solve(&challenge, 8);
        let id = k
            .check_proof(&challenge, &nonce, &sale, &buyer, 8, NOW)
            .unwrap();
        assert_eq!(id, hex::encode([1u8; 16]));
        let wrong = (0u64..)
            .map(|n| n.to_string())
            .find(|n| !meets(&challenge, n, 8))
            .unwrap();
        assert_eq!(
            k.check_proof(&challenge, &wrong, &sale, &buyer, 8, NOW),
            Err(InvalidProof::TooFewBits)
        );
        let mallory = BuyerId::parse("mallory").unwrap();
        assert_eq!(
            k.check_proof(&challenge, &nonce, &sale, &mallory, 8, NOW),
            Err(InvalidProof::NotOurs)
        );
        assert_eq!(
            k.check_proof(&challenge, &nonce, &sale, &buyer, 8, NOW + CHALLENGE_MS),
            Err(InvalidProof::Expired)
        );
    }

    #[test]
    fn leading_zero_bits_are_counted_across_bytes() {
        assert_eq!(leading_zero_bits(&[0, 0, 0b0001_0000, 0xff]), 19);
        assert_eq!(leading_zero_bits(&[0xff]), 0);
        assert_eq!(leading_zero_bits(&[0, 0]), 16);
    }

    #[test]
    fn a_key_shorter_than_32_bytes_is_refused() {
        assert!(TokenKeys::new(&[1u8; 31]).is_none());
    }
}
