//! Rebuilding a sale in Redis from the ledger and the outbox, after Redis lost it (a flush, a
//! failover to an empty or stale replica, an eviction).
//!
//! Everything the reservation script relies on is rebuilt: the remaining stock (stock minus what
//! is confirmed minus what is reserved and still pending), each buyer's count, each
//! idempotency key's order (with its settled state when there is one, so a replay answers it),
//! and a checkout sale's holds that may still give a unit back (so the waiting room does not say
//! sold out while one is open).

use super::{BuyerId, EpochMs, IdempotencyKey, OrderMessage, OrderState};
use std::collections::{BTreeMap, HashSet};
use uuid::Uuid;

/// An idempotency key as the ledger holds it: the order it belongs to, in the sale's `round`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyHolder {
    pub buyer: BuyerId,
    pub key: IdempotencyKey,
    pub order_id: Uuid,
    pub quantity: u32,
    pub state: OrderState,
    pub round: u32,
}

/// The field of the idempotency hash for a buyer's key (`reserve.lua` uses the same form).
pub fn idem_field(buyer: &BuyerId, key: &IdempotencyKey) -> String {
    format!("{}\n{}", buyer.as_str(), key.as_str())
}

/// The value of the idempotency hash: `order-id quantity`, then ` STATE` once settled
/// (`reserve.lua` reads the same form).
pub fn idem_value(order_id: Uuid, quantity: u32, state: Option<OrderState>) -> String {
    match state {
        Some(s) => format!("{order_id} {quantity} {}", s.as_str()),
        None => format!("{order_id} {quantity}"),
    }
}

/// What Redis must hold for a sale to go on where the ledger and the outbox say it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Stock that may still be reserved, for a sale Redis still holds: an ended hold's unit
    /// counts as out until its return reaches Redis (the return script remembers it there).
    pub remaining: i64,
    /// Stock that may still be reserved, for a sale Redis loads anew: every ended hold's unit
    /// counts as back, whatever the ledger's flag says, because the Redis that remembered its
    /// return is gone (a return carried to the lost Redis, its flag written after the ledger was
    /// read, would otherwise be lost; one carried again by a stale follow-up counted twice).
    pub remaining_if_new: i64,
    /// The round's ended holds (expired, cancelled, refunded): a sale loaded anew records each
    /// as returned, so a late or repeated return of it gives nothing twice.
    pub returned: Vec<Uuid>,
    pub round: u32,
    /// Each buyer's count (confirmed plus pending): Redis keeps the larger of this and its own.
    pub buyers: Vec<(String, i64)>,
    /// Idempotency entries: `(field, value, authoritative)`. Settled ones (from the ledger)
    /// overwrite what Redis has; pending ones (from the outbox) only fill a gap.
    pub keys: Vec<(String, String, bool)>,
    /// A checkout sale's holds whose unit may still come back (held in the ledger, ended with
    /// the unit not yet back, or reserved and still pending), each with its `pay_by`.
    pub holds: Vec<(Uuid, EpochMs)>,
    /// A seed for the waiting room's draw, should the sale have one and Redis none yet (the
    /// first load's seed stands: its commitment may have been published).
    pub draw_seed: Option<super::waiting_room::draw::Seed>,
}

/// The plan for a sale of `stock` of which `taken` is out in this `round` (confirmed, held, and
/// `unreturned`: ended holds whose unit the ledger has not seen come back). `holds` are the
/// ledger's holds whose unit may still come back; `ended` every ended hold of the round. `pending` are the outbox's
/// messages not yet in the ledger; those of another round are ignored (they settle as that
/// round's).
#[allow(clippy::too_many_arguments)] // each is one part of the ledger's account
pub fn plan(
    stock: u32,
    taken: u32,
    unreturned: u32,
    round: u32,
    bought: &[(BuyerId, i64)],
    keys: &[KeyHolder],
    holds: &[(Uuid, EpochMs)],
    ended: &[Uuid],
    pending: &[OrderMessage],
) -> Plan {
    let pending: Vec<&OrderMessage> = pending.iter().filter(|o| o.round == round).collect();
    let reserved: i64 = pending.iter().map(|o| i64::from(o.quantity.get())).sum();
    let mut buyers: BTreeMap<&str, i64> = bought.iter().map(|(b, n)| (b.as_str(), *n)).collect();
    for o in &pending {
        *buyers.entry(o.buyer.as_str()).or_default() += i64::from(o.quantity.get());
    }
    let mut entries: Vec<(String, String, bool)> = keys
        .iter()
        .map(|k| {
            (
                idem_field(&k.buyer, &k.key),
                idem_value(k.order_id, k.quantity, Some(k.state)),
                true,
            )
        })
        .collect();
    let known: HashSet<String> = entries.iter().map(|(f, _, _)| f.clone()).collect();
    for o in &pending {
        if let Some(key) = &o.idempotency_key {
            let field = idem_field(&o.buyer, key);
            if !known.contains(&field) {
                entries.push((field, idem_value(o.order_id, o.quantity.get(), None), false));
            }
        }
    }
    let mut open: BTreeMap<Uuid, EpochMs> = holds.iter().copied().collect();
    for o in &pending {
        if let Some(pay_by) = o.pay_by_ms {
            open.entry(o.order_id).or_insert(EpochMs(pay_by));
        }
    }
    Plan {
        remaining: (i64::from(stock) - i64::from(taken) - reserved).max(0),
        remaining_if_new: (i64::from(stock)
            - i64::from(taken.saturating_sub(unreturned))
            - reserved)
            .max(0),
        returned: ended.to_vec(),
        round,
        buyers: buyers.into_iter().map(|(b, n)| (b.to_owned(), n)).collect(),
        keys: entries,
        holds: open.into_iter().collect(),
        draw_seed: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Quantity, SaleId, ORDER_MESSAGE_VERSION};

    fn pending(buyer: &str, q: i64, key: Option<&str>, round: u32) -> OrderMessage {
        OrderMessage {
            v: ORDER_MESSAGE_VERSION,
            order_id: Uuid::now_v7(),
            sale_id: SaleId::parse("s").unwrap(),
            buyer: BuyerId::parse(buyer).unwrap(),
            quantity: Quantity::new(q).unwrap(),
            reserved_at_ms: 1_764_000_000_000,
            idempotency_key: key.map(|k| IdempotencyKey::parse(k).unwrap()),
            round,
            pay_by_ms: None,
            sig: None,
        }
    }

    #[test]
    fn remaining_stock_subtracts_the_confirmed_and_the_still_pending() {
        let p = plan(
            10,
            3,
            0,
            1,
            &[],
            &[],
            &[],
            &[],
            &[pending("a", 2, None, 1), pending("b", 1, None, 1)],
        );
        assert_eq!(p.remaining, 4);
        let over = plan(2, 2, 0, 1, &[], &[], &[], &[], &[pending("a", 1, None, 1)]);
        assert_eq!(over.remaining, 0, "never negative");
    }

    #[test]
    fn a_sale_loaded_anew_counts_every_ended_hold_as_back_and_a_live_one_waits_for_the_return() {
        let ended = [Uuid::now_v7(), Uuid::now_v7()];
        // 10 units: 3 confirmed or held, 2 of ended holds whose return the ledger has not seen.
        let p = plan(
            10,
            5,
            2,
            1,
            &[],
            &[],
            &[],
            &ended,
            &[pending("a", 1, None, 1)],
        );
        assert_eq!((p.remaining, p.remaining_if_new), (4, 6));
        assert_eq!(
            p.returned,
            ended.to_vec(),
            "recorded as returned when loaded anew"
        );
    }

    #[test]
    fn buyers_count_what_is_confirmed_and_what_is_pending() {
        let alice = BuyerId::parse("alice").unwrap();
        let p = plan(
            10,
            1,
            0,
            1,
            &[(alice, 1)],
            &[],
            &[],
            &[],
            &[pending("alice", 2, None, 1), pending("bob", 1, None, 1)],
        );
        assert_eq!(p.buyers, vec![("alice".into(), 3), ("bob".into(), 1)]);
    }

    #[test]
    fn settled_keys_carry_their_state_and_win_over_pending_ones() {
        let alice = BuyerId::parse("alice").unwrap();
        let k1 = IdempotencyKey::parse("k1").unwrap();
        let original = Uuid::now_v7();
        let held = KeyHolder {
            buyer: alice.clone(),
            key: k1.clone(),
            order_id: original,
            quantity: 1,
            state: OrderState::Confirmed,
            round: 1,
        };
        let retry = pending("alice", 1, Some("k1"), 1);
        let other = pending("bob", 1, Some("k9"), 1);
        let p = plan(10, 1, 0, 1, &[], &[held], &[], &[], &[retry, other.clone()]);
        assert_eq!(
            p.keys,
            vec![
                ("alice\nk1".into(), format!("{original} 1 CONFIRMED"), true),
                ("bob\nk9".into(), format!("{} 1", other.order_id), false),
            ]
        );
    }

    #[test]
    fn pending_orders_of_another_round_are_left_to_settle_as_that_rounds() {
        let mut held = pending("a", 3, Some("k"), 1);
        held.pay_by_ms = Some(1_764_000_600_000);
        let p = plan(5, 0, 0, 2, &[], &[], &[], &[], &[held]);
        assert_eq!(p.remaining, 5);
        assert!(p.buyers.is_empty() && p.keys.is_empty() && p.holds.is_empty());
    }

    #[test]
    fn holds_that_may_give_a_unit_back_are_the_ledgers_and_the_pending_checkout_orders() {
        let (in_ledger, pay_by) = (Uuid::now_v7(), EpochMs(1_764_000_600_000));
        let mut reserved = pending("b", 1, None, 1);
        reserved.pay_by_ms = Some(1_764_000_700_000);
        let flash = pending("c", 1, None, 1);
        let p = plan(
            10,
            0,
            0,
            1,
            &[],
            &[],
            &[(in_ledger, pay_by)],
            &[],
            &[reserved.clone(), flash],
        );
        let mut want = vec![
            (in_ledger, pay_by),
            (reserved.order_id, EpochMs(1_764_000_700_000)),
        ];
        want.sort();
        assert_eq!(p.holds, want, "a flash sale's pending order holds nothing");
    }
}
