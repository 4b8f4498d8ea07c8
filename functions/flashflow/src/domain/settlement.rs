//! Settlement: which orders of a batch are confirmed and which rejected.

use super::{OrderMessage, SaleId};
use std::collections::HashMap;
use uuid::Uuid;

/// How one order ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settlement {
    Confirmed,
    /// Past the stock Postgres allows: recorded, never dropped.
    Rejected,
    /// The sale does not exist in Postgres: nothing recorded.
    UnknownSale,
}

impl Settlement {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Confirmed => "CONFIRMED",
            Self::Rejected => "REJECTED",
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

/// The allocation rule: first come, first served by Redis' reservation time (then order id), each
/// order confirmed while its sale's `available` stock covers its quantity, else rejected; orders of
/// sales not in `available` are [`Settlement::UnknownSale`]. An order appearing twice is decided
/// once. `available` is updated to what is left.
///
/// Pure: the Postgres adapter feeds it the locked sales' remaining stock and records its answer.
pub fn allocate<'a>(
    available: &mut HashMap<SaleId, i64>,
    orders: impl IntoIterator<Item = &'a OrderMessage>,
) -> Vec<(&'a OrderMessage, Settlement)> {
    let mut fresh: Vec<&OrderMessage> = orders.into_iter().collect();
    fresh.sort_by_key(|o| (o.reserved_at_ms, o.order_id));
    let mut seen = std::collections::HashSet::new();
    fresh
        .into_iter()
        .filter(|o| seen.insert(o.order_id))
        .map(|o| {
            let settled = match available.get_mut(&o.sale_id) {
                None => Settlement::UnknownSale,
                Some(left) if i64::from(o.quantity.get()) <= *left => {
                    *left -= i64::from(o.quantity.get());
                    Settlement::Confirmed
                }
                Some(_) => Settlement::Rejected,
            };
            (o, settled)
        })
        .collect()
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
    use crate::domain::{BuyerId, Quantity, ORDER_MESSAGE_VERSION};

    fn order(sale: &str, q: i64, at: i64) -> OrderMessage {
        OrderMessage {
            v: ORDER_MESSAGE_VERSION,
            order_id: Uuid::now_v7(),
            sale_id: SaleId::parse(sale).unwrap(),
            buyer: BuyerId::parse("b").unwrap(),
            quantity: Quantity::new(q).unwrap(),
            reserved_at_ms: at,
            idempotency_key: None,
        }
    }

    fn stock(pairs: &[(&str, i64)]) -> HashMap<SaleId, i64> {
        pairs
            .iter()
            .map(|(s, n)| (SaleId::parse(s).unwrap(), *n))
            .collect()
    }

    #[test]
    fn the_earliest_reservations_win_the_remaining_stock() {
        let orders = [order("a", 1, 30), order("a", 1, 10), order("a", 1, 20)];
        let mut available = stock(&[("a", 2)]);
        let decided = allocate(&mut available, &orders);
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
        assert_eq!(available[&SaleId::parse("a").unwrap()], 0);
    }

    #[test]
    fn a_large_order_that_does_not_fit_does_not_block_a_later_small_one() {
        let orders = [order("a", 3, 1), order("a", 1, 2)];
        let mut available = stock(&[("a", 2)]);
        let decided: Vec<Settlement> = allocate(&mut available, &orders)
            .into_iter()
            .map(|(_, s)| s)
            .collect();
        assert_eq!(decided, vec![Settlement::Rejected, Settlement::Confirmed]);
    }

    #[test]
    fn unknown_sales_and_duplicates_are_decided_without_taking_stock() {
        let twice = order("a", 1, 5);
        let orders = [twice.clone(), twice, order("zz", 1, 1)];
        let mut available = stock(&[("a", 5)]);
        let decided = allocate(&mut available, &orders);
        assert_eq!(decided.len(), 2, "the duplicate is decided once");
        assert_eq!(decided[0].1, Settlement::UnknownSale);
        assert_eq!(decided[1].1, Settlement::Confirmed);
        assert_eq!(available[&SaleId::parse("a").unwrap()], 4);
    }

    #[test]
    fn sales_are_allocated_independently() {
        let orders = [order("a", 2, 1), order("b", 2, 2), order("a", 1, 3)];
        let mut available = stock(&[("a", 2), ("b", 1)]);
        let decided: Vec<Settlement> = allocate(&mut available, &orders)
            .into_iter()
            .map(|(_, s)| s)
            .collect();
        assert_eq!(
            decided,
            vec![
                Settlement::Confirmed,
                Settlement::Rejected,
                Settlement::Rejected
            ]
        );
    }
}
