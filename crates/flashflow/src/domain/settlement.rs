//! Settlement: which orders of a batch are confirmed, rejected or duplicates of an earlier one.
//!
//! Postgres backs every promise Redis makes: the stock, each buyer's limit and each idempotency
//! key are enforced again here, so a Redis that lost its data can never make the ledger sell more,
//! sell a buyer more than the limit, or record one request twice.

use super::{BuyerId, IdempotencyKey, OrderMessage, SaleId};
use std::collections::HashMap;
use uuid::Uuid;

/// How one order ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settlement {
    Confirmed,
    /// A checkout sale's order: its units are held for it until it is paid or the hold ends.
    Held,
    /// Past the stock or the buyer's limit: recorded, never dropped.
    Rejected,
    /// Its idempotency key already belongs to `original` (a retry that Redis did not recognise,
    /// e.g. after losing its data): recorded as a duplicate, takes nothing.
    Duplicate {
        original: Uuid,
    },
    /// Reserved in an earlier round of the sale (before a reset): recorded as rejected with that
    /// round's history, takes nothing from the current one.
    Stale,
    /// The sale does not exist in Postgres: nothing recorded.
    UnknownSale,
}

impl Settlement {
    /// The `orders.status` this outcome is recorded with.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Confirmed => "CONFIRMED",
            Self::Held => "HELD",
            Self::Rejected | Self::Stale => "REJECTED",
            Self::Duplicate { .. } => "DUPLICATE",
            Self::UnknownSale => "UNKNOWN_SALE",
        }
    }
}

/// What the ledger holds for one order of a batch after settling it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    /// The order as the ledger recorded it (now, or by an earlier delivery): the status buyers
    /// see is written from this, never from the message alone.
    Recorded(super::OrderStatus),
    /// The sale does not exist in the ledger: nothing recorded.
    UnknownSale,
}

/// What the ledger knows of one sale while a batch is settled (its row locked).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SaleBook {
    /// Stock neither confirmed nor held.
    pub available: i64,
    /// A checkout sale's hold: what it takes is held (until paid or the hold ends), not confirmed.
    pub hold_ms: Option<i64>,
    pub per_user_limit: i64,
    /// Incremented by every reset; orders reserved in an earlier round are [`Settlement::Stale`].
    pub round: u32,
    /// Quantity confirmed or held so far, per buyer, in this round.
    pub bought: HashMap<BuyerId, i64>,
    /// The order each (buyer, idempotency key) of this round already belongs to.
    pub keys: HashMap<(BuyerId, IdempotencyKey), Uuid>,
}

/// The allocation rule: first come, first served by Redis' reservation time (then order id).
/// For each order, in that order: an older round's order is stale; a known (buyer, key) makes it a
/// duplicate of the key's order; then it is confirmed (held, for a checkout sale) while the buyer
/// stays within the limit and the sale's stock covers it, else rejected. Orders of sales not in `books` are
/// [`Settlement::UnknownSale`]. An order appearing twice is decided once. `books` is updated.
///
/// Pure: the Postgres adapter feeds it the locked sales and the buyers' and keys' records, and
/// records its answer.
pub fn allocate<'a>(
    books: &mut HashMap<SaleId, SaleBook>,
    orders: impl IntoIterator<Item = &'a OrderMessage>,
) -> Vec<(&'a OrderMessage, Settlement)> {
    let mut fresh: Vec<&OrderMessage> = orders.into_iter().collect();
    fresh.sort_by_key(|o| (o.reserved_at_ms, o.order_id));
    let mut seen = std::collections::HashSet::new();
    fresh
        .into_iter()
        .filter(|o| seen.insert(o.order_id))
        .map(|o| {
            let Some(book) = books.get_mut(&o.sale_id) else {
                return (o, Settlement::UnknownSale);
            };
            if o.round < book.round {
                return (o, Settlement::Stale);
            }
            let key = o.idempotency_key.clone().map(|k| (o.buyer.clone(), k));
            if let Some(original) = key.as_ref().and_then(|k| book.keys.get(k)) {
                return (
                    o,
                    Settlement::Duplicate {
                        original: *original,
                    },
                );
            }
            if let Some(k) = key {
                book.keys.insert(k, o.order_id);
            }
            let q = i64::from(o.quantity.get());
            let bought = book.bought.entry(o.buyer.clone()).or_default();
            let settled = if *bought + q > book.per_user_limit || q > book.available {
                Settlement::Rejected
            } else {
                *bought += q;
                book.available -= q;
                if book.hold_ms.is_some() {
                    Settlement::Held
                } else {
                    Settlement::Confirmed
                }
            };
            (o, settled)
        })
        .collect()
}

/// The order a replay of `status`'s request must answer: the original of a duplicate (when it is
/// known), else the order itself.
pub fn replay_answer<'a>(
    status: &'a super::OrderStatus,
    recorded: impl Fn(Uuid) -> Option<&'a super::OrderStatus>,
) -> Option<&'a super::OrderStatus> {
    match status.duplicate_of {
        Some(original) => recorded(original),
        None => Some(status),
    }
}

/// The distinct order ids of `orders`, in first-seen order.
pub fn distinct_ids(orders: &[OrderMessage]) -> Vec<Uuid> {
    let mut seen = std::collections::HashSet::new();
    orders
        .iter()
        .map(|o| o.order_id)
        .filter(|id| seen.insert(*id))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replay_answers_the_original_of_a_duplicate_and_otherwise_the_order_itself() {
        use crate::domain::{OrderState, OrderStatus};
        let status = |id: Uuid, state, duplicate_of| OrderStatus {
            order_id: id,
            sale_id: SaleId::parse("s").unwrap(),
            buyer: BuyerId::parse("b").unwrap(),
            quantity: 1,
            status: state,
            duplicate_of,
            pay_by_ms: None,
        };
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let original = status(a, OrderState::Confirmed, None);
        let duplicate = status(b, OrderState::Duplicate, Some(a));
        let find = |id: Uuid| (id == a).then_some(&original);
        assert_eq!(replay_answer(&original, find), Some(&original));
        assert_eq!(replay_answer(&duplicate, find), Some(&original));
        assert_eq!(
            replay_answer(&duplicate, |_| None),
            None,
            "an unknown original answers nothing"
        );
    }
    use crate::domain::{BuyerId, Quantity, ORDER_MESSAGE_VERSION};

    fn order(sale: &str, q: i64, at: i64) -> OrderMessage {
        by("b", sale, q, at)
    }

    fn by(buyer: &str, sale: &str, q: i64, at: i64) -> OrderMessage {
        OrderMessage {
            v: ORDER_MESSAGE_VERSION,
            order_id: Uuid::now_v7(),
            sale_id: SaleId::parse(sale).unwrap(),
            buyer: BuyerId::parse(buyer).unwrap(),
            quantity: Quantity::new(q).unwrap(),
            reserved_at_ms: at,
            idempotency_key: None,
            round: 1,
            pay_by_ms: None,
            sig: None,
        }
    }

    fn keyed(mut o: OrderMessage, key: &str) -> OrderMessage {
        o.idempotency_key = Some(IdempotencyKey::parse(key).unwrap());
        o
    }

    fn stock(pairs: &[(&str, i64)]) -> HashMap<SaleId, SaleBook> {
        pairs
            .iter()
            .map(|(s, n)| {
                let book = SaleBook {
                    available: *n,
                    per_user_limit: 100,
                    round: 1,
                    ..SaleBook::default()
                };
                (SaleId::parse(s).unwrap(), book)
            })
            .collect()
    }

    fn outcomes(books: &mut HashMap<SaleId, SaleBook>, orders: &[OrderMessage]) -> Vec<Settlement> {
        allocate(books, orders)
            .into_iter()
            .map(|(_, s)| s)
            .collect()
    }

    #[test]
    fn the_earliest_reservations_win_the_remaining_stock() {
        let orders = [order("a", 1, 30), order("a", 1, 10), order("a", 1, 20)];
        let mut books = stock(&[("a", 2)]);
        let decided = allocate(&mut books, &orders);
        let by_time: Vec<(i64, Settlement)> = decided
            .iter()
            .map(|(o, s)| (o.reserved_at_ms, *s))
            .collect();
        assert_eq!(
            by_time,
            vec![
                (10, Settlement::Confirmed),
                (20, Settlement::Confirmed),
                (30, Settlement::Rejected)
            ]
        );
        assert_eq!(books[&SaleId::parse("a").unwrap()].available, 0);
    }

    #[test]
    fn a_large_order_that_does_not_fit_does_not_block_a_later_small_one() {
        let orders = [order("a", 3, 1), order("a", 1, 2)];
        let mut books = stock(&[("a", 2)]);
        assert_eq!(
            outcomes(&mut books, &orders),
            vec![Settlement::Rejected, Settlement::Confirmed]
        );
    }

    #[test]
    fn unknown_sales_and_duplicates_are_decided_without_taking_stock() {
        let twice = order("a", 1, 5);
        let orders = [twice.clone(), twice, order("zz", 1, 1)];
        let mut books = stock(&[("a", 5)]);
        let decided = allocate(&mut books, &orders);
        assert_eq!(decided.len(), 2, "the duplicate is decided once");
        assert_eq!(decided[0].1, Settlement::UnknownSale);
        assert_eq!(decided[1].1, Settlement::Confirmed);
        assert_eq!(books[&SaleId::parse("a").unwrap()].available, 4);
    }

    #[test]
    fn sales_are_allocated_independently() {
        let orders = [order("a", 2, 1), order("b", 2, 2), order("a", 1, 3)];
        let mut books = stock(&[("a", 2), ("b", 1)]);
        assert_eq!(
            outcomes(&mut books, &orders),
            vec![
                Settlement::Confirmed,
                Settlement::Rejected,
                Settlement::Rejected
            ]
        );
    }

    #[test]
    fn a_buyer_past_the_limit_is_rejected_counting_what_the_ledger_already_holds() {
        let mut books = stock(&[("a", 10)]);
        let book = books.get_mut(&SaleId::parse("a").unwrap()).unwrap();
        book.per_user_limit = 2;
        book.bought.insert(BuyerId::parse("alice").unwrap(), 1);
        let orders = [
            by("alice", "a", 1, 1),
            by("alice", "a", 1, 2),
            by("bob", "a", 2, 3),
            by("bob", "a", 1, 4),
        ];
        assert_eq!(
            outcomes(&mut books, &orders),
            vec![
                Settlement::Confirmed,
                Settlement::Rejected,
                Settlement::Confirmed,
                Settlement::Rejected
            ]
        );
        assert_eq!(books[&SaleId::parse("a").unwrap()].available, 7);
    }

    #[test]
    fn a_known_idempotency_key_makes_a_new_order_a_duplicate_of_the_original() {
        let mut books = stock(&[("a", 10)]);
        let original = Uuid::now_v7();
        books
            .get_mut(&SaleId::parse("a").unwrap())
            .unwrap()
            .keys
            .insert(
                (
                    BuyerId::parse("alice").unwrap(),
                    IdempotencyKey::parse("k1").unwrap(),
                ),
                original,
            );
        let first = keyed(by("bob", "a", 1, 1), "k1");
        let orders = [
            keyed(by("alice", "a", 1, 2), "k1"),
            first.clone(),
            keyed(by("bob", "a", 1, 3), "k1"),
        ];
        assert_eq!(
            outcomes(&mut books, &orders),
            vec![
                Settlement::Confirmed,
                Settlement::Duplicate { original },
                Settlement::Duplicate {
                    original: first.order_id
                }
            ],
            "keys are per buyer; the first order with a key is the original"
        );
        assert_eq!(books[&SaleId::parse("a").unwrap()].available, 9);
    }

    #[test]
    fn orders_of_an_earlier_round_take_nothing_from_the_current_one() {
        let mut books = stock(&[("a", 1)]);
        books.get_mut(&SaleId::parse("a").unwrap()).unwrap().round = 2;
        let old = order("a", 1, 1);
        let mut current = order("a", 1, 2);
        current.round = 2;
        assert_eq!(
            outcomes(&mut books, &[old, current]),
            vec![Settlement::Stale, Settlement::Confirmed]
        );
    }
}
