//! A buy as the reservation store takes it, the rule that decides it, and its outcomes.
//!
//! The rule runs inside Redis as `reserve.lua` (atomically, next to the data); [`check`] is the
//! same rule in Rust, used by the in-memory store, and a test runs one table of cases through both.

use super::{BuyerId, IdempotencyKey, Quantity, SaleId};
use uuid::Uuid;

/// One buy, validated.
#[derive(Debug, Clone)]
pub struct ReserveRequest {
    /// The id the order gets if this buy reserves stock.
    pub order_id: Uuid,
    pub sale: SaleId,
    pub buyer: BuyerId,
    pub quantity: Quantity,
    pub idempotency_key: Option<IdempotencyKey>,
    /// The buyer's admission through the sale's waiting room, checked by buy (a sale with a
    /// waiting room takes none without one).
    pub admission: Option<super::waiting_room::tokens::Admission>,
    /// Buy's signature of the order ([`Signer::sign_order`](super::signing::Signer::sign_order)),
    /// made by the buy use case before the reservation; the store writes it into the order
    /// message, so whoever forwards the message holds no key. `None`: an unsigned order, which
    /// settle refuses (tests and tools that play neither buy nor settle).
    pub signature: Option<String>,
}

impl ReserveRequest {
    /// This request signed as buy signs it: for tests and tools that play buy's part.
    #[must_use]
    pub fn signed(mut self, signer: &super::signing::Signer) -> Self {
        self.signature = Some(signer.sign_order(&self));
        self
    }
}

/// What the store answered for one buy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reservation {
    /// Stock was taken; `message` is the order message (JSON) now in the outbox.
    /// `pay_by_ms`: a checkout sale's hold ends then.
    Reserved {
        order_id: Uuid,
        message: String,
        pay_by_ms: Option<i64>,
    },
    /// The buyer's idempotency key was seen before: this is the original order, nothing was taken.
    /// `state` is its settled state once settle recorded it (`None` while it is pending).
    Duplicate {
        order_id: Uuid,
        state: Option<super::OrderState>,
    },
    /// Nothing was taken, for this reason.
    Refused(Refusal),
}

/// Why no stock was taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    UnknownSale,
    /// The buyer's idempotency key belongs to an earlier request that asked for something else.
    KeyReused {
        order_id: Uuid,
    },
    NotOpen {
        opens_at_ms: i64,
    },
    Closed {
        closes_at_ms: i64,
    },
    /// `allowance`: how many more this buyer may still buy.
    LimitReached {
        allowance: u32,
    },
    SoldOut,
    InsufficientStock {
        remaining: u32,
    },
    /// The buyer tried more often this minute than the sale allows; `retry_after_s` until the
    /// next minute.
    TooManyAttempts {
        retry_after_s: u32,
    },
    /// The sale has a waiting room and the buy brought no admission of its queue that is valid
    /// now.
    NotAdmitted,
    /// The admission was spent by an earlier reservation (`order_id`): one admission, one order.
    /// Giving the units back does not re-arm it; buying again waits a new turn in the queue.
    AdmissionUsed {
        order_id: Uuid,
    },
}

/// A buyer's attempts in one minute: the minute (since the epoch) and how many.
pub type Attempts = (i64, u32);

/// The attempt rule of a sale that allows `limit` attempts per buyer per minute (Redis' clock):
/// counts this attempt onto `seen` (the buyer's count, if any) and returns the new count, or the
/// refusal with the seconds until the next minute. `reserve.lua` runs the same rule.
///
/// # Errors
/// [`Refusal::TooManyAttempts`] past the limit; then the count stays as it was.
pub fn attempt(seen: Option<Attempts>, limit: u32, now_ms: i64) -> Result<Attempts, Refusal> {
    let minute = now_ms.div_euclid(60_000);
    let count = match seen {
        Some((m, c)) if m == minute => c + 1,
        _ => 1,
    };
    if count > limit {
        return Err(Refusal::TooManyAttempts {
            retry_after_s: (60 - now_ms.rem_euclid(60_000) / 1000) as u32,
        });
    }
    Ok((minute, count))
}

/// What the rule needs to know of a live sale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveRules {
    pub remaining: i64,
    pub per_user_limit: u32,
    pub opens_at_ms: Option<i64>,
    pub closes_at_ms: Option<i64>,
}

/// The refusal of a buy before the sale's opening, if it is before. Asked before the buyer's
/// attempts are counted: refreshing during the countdown must not spend the opening minute's.
pub fn not_open_yet(opens_at_ms: Option<i64>, now_ms: i64) -> Option<Refusal> {
    let opens_at_ms = opens_at_ms.filter(|&o| now_ms < o)?;
    Some(Refusal::NotOpen { opens_at_ms })
}

/// The waiting room's rule for a new order (a retry of an order answered by its key needs
/// none): a sale whose queue has epoch `room_epoch` takes a buy only with an admission of that
/// queue, valid at `now_ms`, and not `spent_by` an earlier order. `None` for a sale without a
/// waiting room, or an admission that passes.
pub fn not_admitted(
    room_epoch: Option<u64>,
    admission: Option<&super::waiting_room::tokens::Admission>,
    spent_by: impl FnOnce(u64) -> Option<Uuid>,
    now_ms: i64,
) -> Option<Refusal> {
    let epoch = room_epoch?;
    let Some(a) = admission.filter(|a| a.epoch == epoch && now_ms < a.expires_ms) else {
        return Some(Refusal::NotAdmitted);
    };
    spent_by(a.index).map(|order_id| Refusal::AdmissionUsed { order_id })
}

/// The reservation rule, for a sale that exists and a request whose idempotency key is new:
/// the window first, then the buyer's limit, then the stock.
///
/// # Errors
/// The [`Refusal`] when the buy may not take stock.
pub fn check(
    sale: &LiveRules,
    already_bought: u32,
    quantity: Quantity,
    now_ms: i64,
) -> Result<(), Refusal> {
    if let Some(opens_at_ms) = sale.opens_at_ms.filter(|&o| now_ms < o) {
        return Err(Refusal::NotOpen { opens_at_ms });
    }
    if let Some(closes_at_ms) = sale.closes_at_ms.filter(|&c| now_ms >= c) {
        return Err(Refusal::Closed { closes_at_ms });
    }
    let q = quantity.get();
    if already_bought + q > sale.per_user_limit {
        return Err(Refusal::LimitReached {
            allowance: sale.per_user_limit.saturating_sub(already_bought),
        });
    }
    if sale.remaining < i64::from(q) {
        return Err(if sale.remaining <= 0 {
            Refusal::SoldOut
        } else {
            Refusal::InsufficientStock {
                remaining: sale.remaining as u32,
            }
        });
    }
    Ok(())
}

/// What the idempotency entry of a buyer's key holds: the order it belongs to, its quantity,
/// and its state once settle recorded it (the value `reserve.lua` and `idem_value` write).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyEntry {
    pub order_id: uuid::Uuid,
    pub quantity: u32,
    pub state: Option<crate::domain::OrderState>,
}

impl KeyEntry {
    /// Parse `order-id quantity[ STATE]`; `None` for anything else.
    pub fn parse(value: &str) -> Option<Self> {
        let mut parts = value.split(' ');
        let order_id = parts.next()?.parse().ok()?;
        let quantity = parts.next()?.parse().ok()?;
        let state = match parts.next() {
            None => None,
            Some(s) => Some(crate::domain::OrderState::parse(s).ok()?),
        };
        parts.next().is_none().then_some(Self {
            order_id,
            quantity,
            state,
        })
    }
}

/// The answer to a request whose idempotency key is already held: the same request again (the
/// same quantity) is a replay of the held order, answered with its state when settled; another
/// quantity under the same key is the client's mistake, not a retry.
pub fn replay(held: KeyEntry, quantity: Quantity) -> Reservation {
    if held.quantity == quantity.get() {
        Reservation::Duplicate {
            order_id: held.order_id,
            state: held.state,
        }
    } else {
        Reservation::Refused(Refusal::KeyReused {
            order_id: held.order_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_are_counted_per_minute_and_refused_past_the_limit_until_the_next() {
        let t = 1_795_773_600_000; // a whole minute
        let one = attempt(None, 2, t).unwrap();
        let two = attempt(Some(one), 2, t + 1_000).unwrap();
        assert_eq!(two, (one.0, 2));
        assert_eq!(
            attempt(Some(two), 2, t + 15_000),
            Err(Refusal::TooManyAttempts { retry_after_s: 45 })
        );
        assert_eq!(
            attempt(Some(two), 2, t + 60_000).unwrap().1,
            1,
            "a new minute"
        );
    }

    #[test]
    fn a_held_key_replays_its_order_for_the_same_quantity_and_refuses_another() {
        let id = uuid::Uuid::now_v7();
        let held = KeyEntry::parse(&format!("{id} 2 CONFIRMED")).unwrap();
        assert_eq!(
            replay(held, q(2)),
            Reservation::Duplicate {
                order_id: id,
                state: Some(crate::domain::OrderState::Confirmed)
            }
        );
        assert_eq!(
            replay(held, q(1)),
            Reservation::Refused(Refusal::KeyReused { order_id: id })
        );
        let pending = KeyEntry::parse(&format!("{id} 1")).unwrap();
        assert_eq!(pending.state, None);
        for bad in [
            "",
            "x 1",
            &format!("{id}"),
            &format!("{id} 1 WHAT"),
            &format!("{id} 1 CONFIRMED x"),
        ] {
            assert_eq!(KeyEntry::parse(bad), None, "{bad:?}");
        }
    }

    fn rules(remaining: i64, limit: u32) -> LiveRules {
        LiveRules {
            remaining,
            per_user_limit: limit,
            opens_at_ms: Some(1_000),
            closes_at_ms: Some(2_000),
        }
    }
    fn q(n: i64) -> Quantity {
        Quantity::new(n).unwrap()
    }

    #[test]
    fn the_window_is_checked_before_the_limit_and_the_stock() {
        assert_eq!(
            check(&rules(0, 1), 5, q(1), 999),
            Err(Refusal::NotOpen { opens_at_ms: 1_000 })
        );
        assert_eq!(
            check(&rules(0, 1), 5, q(1), 2_000),
            Err(Refusal::Closed {
                closes_at_ms: 2_000
            })
        );
        assert_eq!(check(&rules(5, 1), 0, q(1), 1_000), Ok(()));
    }

    #[test]
    fn the_limit_counts_what_the_buyer_already_has() {
        assert_eq!(
            check(&rules(10, 3), 2, q(2), 1_500),
            Err(Refusal::LimitReached { allowance: 1 })
        );
        assert_eq!(
            check(&rules(10, 3), 4, q(1), 1_500),
            Err(Refusal::LimitReached { allowance: 0 })
        );
        assert_eq!(check(&rules(10, 3), 2, q(1), 1_500), Ok(()));
    }

    #[test]
    fn too_little_stock_is_sold_out_or_insufficient() {
        assert_eq!(check(&rules(0, 5), 0, q(1), 1_500), Err(Refusal::SoldOut));
        assert_eq!(
            check(&rules(2, 5), 0, q(3), 1_500),
            Err(Refusal::InsufficientStock { remaining: 2 })
        );
        assert_eq!(check(&rules(3, 5), 0, q(3), 1_500), Ok(()));
    }

    #[test]
    fn a_waiting_room_takes_only_an_unspent_admission_of_its_own_queue_valid_now() {
        use crate::domain::waiting_room::tokens::Admission;
        let now = 1_796_000_000_000;
        let a = Admission {
            index: 4,
            batch: 2,
            expires_ms: now + 1,
            epoch: 9,
        };
        let unspent = |_| None;
        assert_eq!(
            not_admitted(None, None, unspent, now),
            None,
            "no waiting room"
        );
        assert_eq!(not_admitted(Some(9), Some(&a), unspent, now), None);
        assert_eq!(
            not_admitted(Some(9), None, unspent, now),
            Some(Refusal::NotAdmitted)
        );
        assert_eq!(
            not_admitted(Some(8), Some(&a), unspent, now),
            Some(Refusal::NotAdmitted),
            "an admission of a lost queue"
        );
        assert_eq!(
            not_admitted(Some(9), Some(&a), unspent, now + 1),
            Some(Refusal::NotAdmitted),
            "expired"
        );
        let order = Uuid::nil();
        assert_eq!(
            not_admitted(Some(9), Some(&a), |i| (i == 4).then_some(order), now),
            Some(Refusal::AdmissionUsed { order_id: order })
        );
    }
}
