//! Buy's side of the waiting room: the admission token checked in the process, with no Redis
//! round trip. A token that comes is always checked; a buy without one is refused for the sales
//! this process knows to have a waiting room (learned from the reservation script, which refuses
//! such a buy itself, so the first one a process sees costs one script run and nothing else).

use flashflow::domain::waiting_room::tokens::{Admission, NotAdmitted, TokenKeys};
use flashflow::domain::{BuyerId, SaleId};
use flashflow::per_sale::PerSale;

/// The admission check of one buy process.
#[derive(Debug, Default)]
pub struct AdmissionGate {
    /// The waiting room's key; without it no token checks out.
    keys: Option<TokenKeys>,
    /// Sales known to have a waiting room (bounded: a full process forgets them, and its next
    /// tokenless buy of each costs one script run to learn it again).
    rooms: PerSale<()>,
}

impl AdmissionGate {
    pub fn new(keys: Option<TokenKeys>) -> Self {
        Self {
            keys,
            rooms: PerSale::default(),
        }
    }

    /// The admission `token` gives `buyer` to `sale` at `now_ms` (`None`: no token, for a sale
    /// not known to need one; the reservation script has the last word). A `keyed` buy (one with
    /// an Idempotency-Key) may bring an expired token of its own: it may be the retry of an order
    /// that token bought, which the script answers with that order (and refuses as a new one).
    ///
    /// # Errors
    /// [`NotAdmitted`]: a token that does not check out, or none for a sale that needs one.
    pub fn check(
        &self,
        sale: &SaleId,
        buyer: &BuyerId,
        token: Option<&str>,
        keyed: bool,
        now_ms: i64,
    ) -> Result<Option<Admission>, NotAdmitted> {
        match (token, &self.keys) {
            (Some(_), None) => Err(NotAdmitted::Forged),
            (Some(t), Some(keys)) => match keys.check_admission(Some(t), sale, buyer, now_ms) {
                Err(NotAdmitted::Expired) if keyed => keys.genuine_admission(Some(t), sale, buyer),
                checked => checked,
            }
            .map(Some),
            (None, _) if self.knows(sale) => Err(NotAdmitted::Missing),
            (None, _) => Ok(None),
        }
    }

    /// The store refused a buy of `sale` for want of an admission: it has a waiting room.
    pub fn learn(&self, sale: &SaleId) {
        self.rooms.get_or_insert_with(sale, || ());
    }

    fn knows(&self, sale: &SaleId) -> bool {
        self.rooms.contains(sale)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_796_000_000_000;

    fn ids() -> (SaleId, BuyerId) {
        (
            SaleId::parse("drop").unwrap(),
            BuyerId::parse("alice").unwrap(),
        )
    }

    #[test]
    fn a_buy_without_a_token_passes_until_the_sale_is_known_to_need_one() {
        let gate = AdmissionGate::new(TokenKeys::new(&[1; 32]));
        let (sale, buyer) = ids();
        assert_eq!(gate.check(&sale, &buyer, None, false, NOW), Ok(None));
        gate.learn(&sale);
        assert_eq!(
            gate.check(&sale, &buyer, None, false, NOW),
            Err(NotAdmitted::Missing)
        );
    }

    #[test]
    fn a_token_is_checked_whatever_the_sale() {
        let keys = TokenKeys::new(&[1; 32]).unwrap();
        let gate = AdmissionGate::new(Some(keys.clone()));
        let (sale, buyer) = ids();
        let admission = Admission {
            index: 0,
            batch: 1,
            expires_ms: NOW + 1,
            epoch: 3,
        };
        let token = keys.admission(&sale, &buyer, admission);
        assert_eq!(
            gate.check(&sale, &buyer, Some(&token), false, NOW),
            Ok(Some(admission))
        );
        assert_eq!(
            gate.check(&sale, &buyer, Some("forged"), false, NOW),
            Err(NotAdmitted::Forged)
        );
        let keyless = AdmissionGate::default();
        assert_eq!(
            keyless.check(&sale, &buyer, Some(&token), false, NOW),
            Err(NotAdmitted::Forged)
        );
    }

    #[test]
    fn an_expired_token_passes_only_with_an_idempotency_key_for_the_script_to_answer() {
        let keys = TokenKeys::new(&[1; 32]).unwrap();
        let gate = AdmissionGate::new(Some(keys.clone()));
        let (sale, buyer) = ids();
        let admission = Admission {
            index: 0,
            batch: 1,
            expires_ms: NOW - 1,
            epoch: 3,
        };
        let token = keys.admission(&sale, &buyer, admission);
        assert_eq!(
            gate.check(&sale, &buyer, Some(&token), false, NOW),
            Err(NotAdmitted::Expired)
        );
        assert_eq!(
            gate.check(&sale, &buyer, Some(&token), true, NOW),
            Ok(Some(admission))
        );
        let mallory = BuyerId::parse("mallory").unwrap();
        assert_eq!(
            gate.check(&sale, &mallory, Some(&token), true, NOW),
            Err(NotAdmitted::OtherBuyer),
            "only its own buyer's"
        );
    }
}
