//! Checkout's rules (applied by `flashflow_app::checkout`): what becomes of a held order
//! when its payment succeeds or fails, when its buyer cancels, and when its hold runs out — and
//! what must happen outside for it (stock returned, the intent cancelled at the payment provider, a refund).
//!
//! The rules are what the contract says, in one pure function, so that the webhook, the
//! payment route, the cancel route and the expiry job all apply the same ones:
//! - a payment that succeeds while the order is held confirms it; after the hold ended (expired,
//!   cancelled) it is refunded and the stock, already returned, is not touched again;
//! - a failed payment leaves the hold (the buyer may try again until `pay_by`);
//! - a buyer's cancel and a hold past `pay_by` both first cancel the order's intent at
//!   the provider, so no payment can complete afterwards (a buyer charged for a cancelled order that
//!   nobody refunds is what this prevents); only once the provider says it is cancelled (or there is
//!   none) does the order end and its stock go back; if the provider says it was paid, the order is
//!   confirmed instead (and the buyer's cancel is answered `409 already_paid`).
//!
//! Every event may arrive more than once and in any order: repeating one changes nothing more.

/// Where a checkout order stands once settlement recorded its hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// Reserved and recorded; waiting for payment until `pay_by`.
    Held,
    /// Paid while held.
    Confirmed,
    /// The hold ran out unpaid; its stock went back.
    Expired,
    /// The buyer cancelled; its stock went back.
    Cancelled,
    /// Paid after the hold ended: the money went back, the stock was not taken again.
    Refunded,
}

/// What happened to an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The provider says the payment succeeded (a signed webhook, or the intent read back).
    PaymentSucceeded,
    /// The provider says a payment attempt failed.
    PaymentFailed,
    /// The order's buyer asks to cancel; `intent` says what the provider answered to cancelling the
    /// order's intent.
    BuyerCancels { intent: IntentCancel },
    /// The expiry job found the hold past `pay_by`; `intent` as for a cancel.
    HoldRanOut { intent: IntentCancel },
}

/// What the provider answered when the order's intent was cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntentCancel {
    /// The order never got one: nothing can be paid.
    None,
    /// Cancelled (now, or before): nothing can be paid any more.
    Cancelled,
    /// The provider would not cancel it because it was paid.
    Succeeded,
    /// The provider could not be asked, or the payment is still being processed: decide later.
    Unknown,
}

/// What to do outside the order's own state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Give the order's units back, in Postgres and in Redis (remaining and the buyer's count).
    ReturnStock,
    /// Refund the payment at the provider (idempotent on the order).
    Refund,
}

/// What an event does to a held order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The order moves to `to`, and `effect` (if any) must happen once, with the move.
    Move { to: Hold, effect: Option<Effect> },
    /// Nothing changes: a repeat of what already happened, or an event that changes nothing.
    Stay,
    /// The event is refused with this reason (the buyer's cancel of a paid order, say).
    Refuse(HoldRefusal),
}

/// Why a change to a held order was refused (a buy's refusal is `reservation::Refusal`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldRefusal {
    /// `409 already_paid`.
    AlreadyPaid,
    /// `409 hold_expired`.
    HoldExpired,
}

/// The rule: `event` on an order that stands at `now`.
pub fn on(now: Hold, event: Event) -> Outcome {
    use Event::*;
    use Hold::*;
    let to = |to, effect| Outcome::Move { to, effect };
    match (now, event) {
        (Held, PaymentSucceeded) => to(Confirmed, None),
        (Expired | Cancelled, PaymentSucceeded) => to(Refunded, Some(Effect::Refund)),
        (Confirmed | Refunded, PaymentSucceeded) => Outcome::Stay,
        (_, PaymentFailed) => Outcome::Stay,
        (Held, BuyerCancels { intent } | HoldRanOut { intent }) => {
            let ended = if matches!(event, BuyerCancels { .. }) {
                Cancelled
            } else {
                Expired
            };
            match intent {
                IntentCancel::None | IntentCancel::Cancelled => {
                    to(ended, Some(Effect::ReturnStock))
                }
                IntentCancel::Succeeded => to(Confirmed, None),
                IntentCancel::Unknown => Outcome::Stay,
            }
        }
        (Cancelled, BuyerCancels { .. }) => Outcome::Stay,
        (Confirmed | Refunded, BuyerCancels { .. }) => Outcome::Refuse(HoldRefusal::AlreadyPaid),
        (Expired, BuyerCancels { .. }) => Outcome::Refuse(HoldRefusal::HoldExpired),
        (_, HoldRanOut { .. }) => Outcome::Stay,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Event::*;
    use Hold::*;

    const ALL: [Hold; 5] = [Held, Confirmed, Expired, Cancelled, Refunded];
    const INTENTS: [IntentCancel; 4] = [
        IntentCancel::None,
        IntentCancel::Cancelled,
        IntentCancel::Succeeded,
        IntentCancel::Unknown,
    ];

    fn events() -> Vec<Event> {
        let mut all = vec![PaymentSucceeded, PaymentFailed];
        for intent in INTENTS {
            all.push(BuyerCancels { intent });
            all.push(HoldRanOut { intent });
        }
        all
    }

    fn after(mut at: Hold, events: &[Event]) -> (Hold, Vec<Effect>) {
        let mut effects = Vec::new();
        for e in events {
            if let Outcome::Move { to, effect } = on(at, *e) {
                at = to;
                effects.extend(effect);
            }
        }
        (at, effects)
    }

    /// Whether the provider took the buyer's money in this history: a succeeded payment, or a cancel
    /// that the provider refused because of one. (The provider's answers come only for a held order: the
    /// routes and the expiry job ask the provider only then.)
    fn paid(events: &[Event]) -> bool {
        let mut at = Held;
        let mut paid = false;
        for e in events {
            match e {
                PaymentSucceeded => paid = true,
                BuyerCancels {
                    intent: IntentCancel::Succeeded,
                }
                | HoldRanOut {
                    intent: IntentCancel::Succeeded,
                } if at == Held => paid = true,
                _ => {}
            }
            if let Outcome::Move { to, .. } = on(at, *e) {
                at = to;
            }
        }
        paid
    }

    #[test]
    fn paying_in_time_confirms_and_paying_after_the_hold_ended_refunds_without_touching_stock() {
        assert_eq!(after(Held, &[PaymentSucceeded]), (Confirmed, vec![]));
        let expired = HoldRanOut {
            intent: IntentCancel::Cancelled,
        };
        assert_eq!(
            after(Held, &[expired, PaymentSucceeded]),
            (Refunded, vec![Effect::ReturnStock, Effect::Refund])
        );
        let cancel = BuyerCancels {
            intent: IntentCancel::None,
        };
        assert_eq!(
            after(Held, &[cancel, PaymentSucceeded]),
            (Refunded, vec![Effect::ReturnStock, Effect::Refund])
        );
    }

    #[test]
    fn a_hold_expires_only_once_the_provider_says_no_payment_can_happen() {
        let ran_out = |intent| after(Held, &[HoldRanOut { intent }]);
        assert_eq!(
            ran_out(IntentCancel::Unknown),
            (Held, vec![]),
            "decide later"
        );
        assert_eq!(
            ran_out(IntentCancel::Succeeded),
            (Confirmed, vec![]),
            "it was paid"
        );
        assert_eq!(
            ran_out(IntentCancel::None),
            (Expired, vec![Effect::ReturnStock])
        );
    }

    #[test]
    fn a_failed_payment_leaves_the_hold_and_a_paid_order_cannot_be_cancelled() {
        assert_eq!(after(Held, &[PaymentFailed]), (Held, vec![]));
        let cancel = BuyerCancels {
            intent: IntentCancel::Cancelled,
        };
        assert_eq!(
            on(Confirmed, cancel),
            Outcome::Refuse(HoldRefusal::AlreadyPaid)
        );
        assert_eq!(
            on(Expired, cancel),
            Outcome::Refuse(HoldRefusal::HoldExpired)
        );
        // The provider refuses to cancel an intent that was paid: the order is confirmed (the route
        // answers 409 already_paid), and no stock goes back.
        let paid = BuyerCancels {
            intent: IntentCancel::Succeeded,
        };
        assert_eq!(after(Held, &[paid]), (Confirmed, vec![]));
    }

    #[test]
    fn every_event_repeated_in_any_order_returns_stock_at_most_once_and_refunds_at_most_once() {
        // Every sequence of up to four events, each possibly delivered twice in a row.
        let mut seqs: Vec<Vec<Event>> = vec![vec![]];
        for _ in 0..3 {
            let mut next = Vec::new();
            for s in &seqs {
                for e in events() {
                    let mut a = s.clone();
                    a.push(e);
                    next.push(a.clone());
                    a.push(e);
                    next.push(a);
                }
            }
            seqs = next;
        }
        for s in &seqs {
            let (end, effects) = after(Held, s);
            let returned = effects
                .iter()
                .filter(|e| **e == Effect::ReturnStock)
                .count();
            let refunded = effects.iter().filter(|e| **e == Effect::Refund).count();
            assert!(returned <= 1 && refunded <= 1, "{s:?} -> {effects:?}");
            // Charged means confirmed or refunded in the end, never neither.
            assert_eq!(
                paid(s),
                matches!(end, Confirmed | Refunded),
                "{s:?} -> {end:?}"
            );
            // Stock goes back exactly when the order ends neither held nor confirmed.
            assert_eq!(
                returned == 1,
                matches!(end, Expired | Cancelled | Refunded),
                "{s:?}"
            );
        }
    }

    #[test]
    fn every_state_answers_every_event() {
        for at in ALL {
            for e in events() {
                let _ = on(at, e);
            }
        }
    }
}
