//! A sale's queue as its store keeps it, where one place stands in it, and how many places the
//! inlet admits at each step.
//!
//! Places are numbered in queue order: after the draw the pre-queue's `cohort` joiners hold
//! places `1..=cohort` in drawn order, and join index `n ≥ cohort` holds place `n + 1`. The inlet
//! admits places in that order, in batches: places `1..=admitted` have been admitted; a batch's
//! admissions expire together. Nobody's place depends on anyone polling: an abandoned place is
//! admitted in its turn and expires, and the measured no-show rate widens the inlet for it.

use super::draw::{FinalDraw, Seed};
use super::tokens::Admission;
use serde::Serialize;

/// The longest a batch admits for: a configured pace never admits more than this many seconds'
/// worth at once (a tick that came late does not flood the sale).
pub const MAX_TICK_MS: i64 = 5_000;
/// However many admitted buyers do not show, the inlet never lets out more than this many times
/// the units that are left.
pub const MAX_OVERBOOKING: f64 = 4.0;

/// One of the inlet's batches, while its admissions may still be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub id: u64,
    /// Its places: `first..=last`.
    pub first: u64,
    pub last: u64,
    pub expires_ms: i64,
}

/// A sale's queue, read in one step from its store (by the store's clock, `now_ms`).
#[derive(Debug, Clone, PartialEq)]
pub struct QueueState {
    pub now_ms: i64,
    /// When joining opens, and when the sale (and the draw) does.
    pub opens_at_ms: i64,
    pub sale_opens_at_ms: i64,
    pub admission_ms: i64,
    pub pow_bits: u8,
    /// `hex(SHA-256(seed))`, public from the queue's opening.
    pub commitment: String,
    /// The draw's seed and the pre-queue's size, once drawn (at the sale's opening).
    pub drawn: Option<(Seed, u64)>,
    /// The draw made final: its join list fixed and its beacon round mixed in. Until then the
    /// pre-queue is being drawn and the inlet admits nobody.
    pub final_draw: Option<FinalDraw>,
    /// Join indexes handed out so far (`0..joined`).
    pub joined: u64,
    /// Places `1..=admitted` have been admitted.
    pub admitted: u64,
    /// Admissions used to buy, and admissions that expired unused.
    pub used: u64,
    pub expired: u64,
    /// The batches whose admissions have not expired yet, oldest first.
    pub batches: Vec<Batch>,
    pub paused: bool,
    /// The pace set (`None`: as fast as the stock allows).
    pub pace: Option<u32>,
    /// Places admitted per second, measured.
    pub admit_rate: f64,
    /// No place not yet admitted will be: the stock is gone and no hold is open that could give
    /// a unit back.
    pub sold_out: bool,
    /// Units left to buy, as the store counts them.
    pub remaining: i64,
    /// Holds open (a checkout sale's reservations neither paid nor ended): each may give its units
    /// back, so while the stock is gone and some are open the sale is sold out for now only.
    pub held: u64,
    /// The sale has closed: nobody is admitted any more, and no place will be.
    pub closed: bool,
    /// The queue's epoch: a random number it got when it was made; tickets and admissions carry it.
    pub epoch: u64,
    /// Who may join (`None`: any buyer).
    pub entry: Option<super::entry::Entry>,
    /// What the step of this read did: places admitted, admissions found expired unused (both 0
    /// when another process's step had just run).
    pub stepped: (u64, u64),
}

impl QueueState {
    /// Admitted, neither used nor expired.
    pub fn outstanding(&self) -> u64 {
        self.admitted.saturating_sub(self.used + self.expired)
    }

    /// Of the admissions that ended, the share that expired unused.
    pub fn no_show_rate(&self) -> f64 {
        no_show_rate(self.used, self.expired)
    }

    /// Joined and not yet admitted.
    pub fn waiting(&self) -> u64 {
        self.joined.saturating_sub(self.admitted)
    }

    /// The place of join index `index`, once drawn; `places` is the pre-queue's
    /// ([`super::draw::places`] under the final draw's key). A pre-queue place has none until
    /// the draw is final; a later join's is its arrival.
    pub fn place_of(&self, index: u64, places: &[u32]) -> Option<u64> {
        let (_, cohort) = self.drawn.as_ref()?;
        if index < *cohort {
            self.final_draw.as_ref()?;
            places.get(index as usize).map(|p| u64::from(*p))
        } else {
            Some(index + 1)
        }
    }

    /// Seconds until the queue reaches `ahead + 1` more places, at the pace measured (or set).
    fn eta_seconds(&self, places: u64) -> Option<u64> {
        let rate = if self.admit_rate > 0.0 {
            self.admit_rate
        } else {
            f64::from(self.pace?)
        };
        Some((places as f64 / rate).ceil() as u64)
    }
}

/// Of the admissions that ended, the share that expired unused (0 while none ended).
pub fn no_show_rate(used: u64, expired: u64) -> f64 {
    if used + expired == 0 {
        0.0
    } else {
        expired as f64 / (used + expired) as f64
    }
}

/// Where one place stands.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Place {
    /// Joined before the opening: the draw has not placed it yet.
    PreQueue { eta_seconds: Option<u64> },
    /// The sale has opened and the draw waits for its beacon round.
    Drawing,
    /// `position` 1 is the next to be admitted; `ahead` still wait in front.
    Waiting {
        position: u64,
        ahead: u64,
        eta_seconds: Option<u64>,
    },
    /// May buy until the admission expires.
    #[serde(skip)]
    Admitted(Admission),
    /// Admitted and not used in time: joining again goes to the back.
    Expired,
    /// The queue will not reach this place.
    SoldOut,
    /// The sale closed: nobody is admitted any more.
    Closed,
}

/// Where join index `index` stands in `state`.
pub fn place(state: &QueueState, index: u64, places: &[u32]) -> Place {
    if state.closed {
        return Place::Closed;
    }
    let Some(position) = state.place_of(index, places) else {
        if state.drawn.is_some() {
            return Place::Drawing;
        }
        let to_opening = (state.sale_opens_at_ms - state.now_ms).max(0) as u64;
        return Place::PreQueue {
            eta_seconds: Some(to_opening.div_ceil(1000)),
        };
    };
    if position <= state.admitted {
        return match state
            .batches
            .iter()
            .find(|b| (b.first..=b.last).contains(&position))
        {
            Some(b) if state.now_ms < b.expires_ms => Place::Admitted(Admission {
                index,
                batch: b.id,
                expires_ms: b.expires_ms,
                epoch: state.epoch,
            }),
            _ => Place::Expired,
        };
    }
    if state.sold_out {
        return Place::SoldOut;
    }
    let ahead = position - state.admitted - 1;
    Place::Waiting {
        position: ahead + 1,
        ahead,
        eta_seconds: state.eta_seconds(ahead + 1),
    }
}

/// The shortest and the longest a client is told to wait before it asks again about its place.
pub const POLL_MS: std::ops::RangeInclusive<u64> = 1_000..=30_000;

/// When the owner of a place should ask again (ms), or `None` when nothing will change by itself
/// (admitted: buy now; expired, sold out, closed: done). Scaled to the wait: a place an hour away
/// asks twice a minute, the next in line every second, so a crowd costs requests in proportion to
/// how much its places move, not to its size.
pub fn poll_after_ms(place: &Place, now_ms: i64, sale_opens_at_ms: i64) -> Option<u64> {
    let clamp = |ms: u64| ms.clamp(*POLL_MS.start(), *POLL_MS.end());
    match place {
        Place::PreQueue { .. } => {
            // Until the draw at the opening: half the time left, so the opening is not missed.
            Some(clamp((sale_opens_at_ms - now_ms).max(0) as u64 / 2))
        }
        // A beacon round comes within seconds.
        Place::Drawing => Some(*POLL_MS.start()),
        Place::Waiting { eta_seconds, .. } => Some(match eta_seconds {
            Some(eta) => clamp(eta * 1000 / 4),
            None => 2_000,
        }),
        Place::Admitted(_) | Place::Expired | Place::SoldOut | Place::Closed => None,
    }
}

/// How many admissions may be outstanding: never more than the units that can still be bought
/// can serve, widened by the measured share of admitted buyers who do not show.
pub fn allowance(obtainable: i64, no_show_rate: f64) -> u64 {
    if obtainable <= 0 {
        return 0;
    }
    let showing = (1.0 - no_show_rate).max(1.0 / MAX_OVERBOOKING);
    (obtainable as f64 / showing).floor() as u64
}

/// How many places one step of the inlet admits: what the pace allows since the last step
/// (`None`: no pace set, as many as the allowance), within the allowance, and no more than
/// wait. `carry` is the fraction of a place the pace left over from the last step; the second
/// value is this step's.
pub fn to_admit(
    pace: Option<u32>,
    elapsed_ms: i64,
    carry: f64,
    allowance: u64,
    outstanding: u64,
    waiting: u64,
) -> (u64, f64) {
    let room = allowance.saturating_sub(outstanding).min(waiting);
    match pace {
        None => (room, 0.0),
        Some(rate) => {
            let due = f64::from(rate) * elapsed_ms.clamp(0, MAX_TICK_MS) as f64 / 1000.0 + carry;
            let whole = due.floor() as u64;
            let n = whole.min(room);
            // A step held back by the allowance does not bank its pace for later.
            let carry = if n < whole { 0.0 } else { due - whole as f64 };
            (n, carry)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_796_000_000_000;

    fn state() -> QueueState {
        QueueState {
            now_ms: NOW,
            opens_at_ms: NOW - 60_000,
            sale_opens_at_ms: NOW - 1_000,
            admission_ms: 60_000,
            pow_bits: 0,
            commitment: String::new(),
            drawn: Some((Seed::new([1; 32]), 3)),
            final_draw: Some(FinalDraw::new(&Seed::new([1; 32]), [0; 32], None)),
            joined: 10,
            admitted: 4,
            used: 0,
            expired: 0,
            batches: vec![
                Batch {
                    id: 1,
                    first: 1,
                    last: 2,
                    expires_ms: NOW - 1,
                },
                Batch {
                    id: 2,
                    first: 3,
                    last: 4,
                    expires_ms: NOW + 30_000,
                },
            ],
            paused: false,
            pace: None,
            admit_rate: 2.0,
            sold_out: false,
            remaining: 10,
            held: 0,
            closed: false,
            epoch: 7,
            entry: None,
            stepped: (0, 0),
        }
    }

    /// The pre-queue of 3 was drawn into places 3, 1, 2.
    const PLACES: [u32; 3] = [3, 1, 2];

    #[test]
    fn a_pre_queue_place_is_its_drawn_place_and_a_later_join_queues_behind() {
        let s = state();
        assert_eq!(s.place_of(0, &PLACES), Some(3));
        assert_eq!(s.place_of(1, &PLACES), Some(1));
        assert_eq!(s.place_of(3, &PLACES), Some(4));
        assert_eq!(s.place_of(9, &PLACES), Some(10));
    }

    #[test]
    fn an_admitted_place_has_its_batchs_admission_until_it_expires() {
        let s = state();
        assert_eq!(
            place(&s, 0, &PLACES),
            Place::Admitted(Admission {
                index: 0,
                batch: 2,
                expires_ms: NOW + 30_000,
                epoch: 7,
            })
        );
        assert_eq!(
            place(&s, 1, &PLACES),
            Place::Expired,
            "place 1: batch 1 expired"
        );
    }

    #[test]
    fn a_waiting_place_counts_who_is_ahead_and_estimates_the_wait_from_the_measured_pace() {
        let s = state();
        assert_eq!(
            place(&s, 9, &PLACES),
            Place::Waiting {
                position: 6,
                ahead: 5,
                eta_seconds: Some(3)
            }
        );
        assert_eq!(
            place(&s, 4, &PLACES),
            Place::Waiting {
                position: 1,
                ahead: 0,
                eta_seconds: Some(1)
            }
        );
    }

    #[test]
    fn before_the_draw_a_place_waits_for_the_opening() {
        let mut s = state();
        s.drawn = None;
        s.sale_opens_at_ms = NOW + 2_500;
        assert_eq!(
            place(&s, 0, &[]),
            Place::PreQueue {
                eta_seconds: Some(3)
            }
        );
    }

    #[test]
    fn after_the_opening_a_pre_queue_place_is_being_drawn_until_the_draw_is_final() {
        let mut s = state();
        s.final_draw = None;
        assert_eq!(place(&s, 0, &PLACES), Place::Drawing);
        assert_eq!(
            place(&s, 9, &PLACES),
            Place::Waiting {
                position: 6,
                ahead: 5,
                eta_seconds: Some(3)
            },
            "a join after the opening queues behind the pre-queue, drawn or not"
        );
        assert_eq!(poll_after_ms(&Place::Drawing, NOW, NOW), Some(1_000));
    }

    #[test]
    fn once_sold_out_every_waiting_place_is_told_so_and_admitted_ones_keep_their_admission() {
        let mut s = state();
        s.sold_out = true;
        assert_eq!(place(&s, 9, &PLACES), Place::SoldOut);
        assert!(matches!(place(&s, 0, &PLACES), Place::Admitted(_)));
    }

    #[test]
    fn a_place_asks_again_in_proportion_to_its_wait_within_bounds() {
        let waiting = |eta| Place::Waiting {
            position: 1,
            ahead: 0,
            eta_seconds: eta,
        };
        assert_eq!(poll_after_ms(&waiting(Some(0)), NOW, NOW), Some(1_000));
        assert_eq!(poll_after_ms(&waiting(Some(20)), NOW, NOW), Some(5_000));
        assert_eq!(poll_after_ms(&waiting(Some(3_600)), NOW, NOW), Some(30_000));
        assert_eq!(poll_after_ms(&waiting(None), NOW, NOW), Some(2_000));
        let pre = Place::PreQueue { eta_seconds: None };
        assert_eq!(poll_after_ms(&pre, NOW, NOW + 10_000), Some(5_000));
        assert_eq!(poll_after_ms(&Place::SoldOut, NOW, NOW), None);
        assert_eq!(poll_after_ms(&Place::Closed, NOW, NOW), None);
    }

    #[test]
    fn once_the_sale_closed_every_place_is_told_so_admitted_or_not() {
        let mut s = state();
        s.closed = true;
        assert_eq!(place(&s, 9, &PLACES), Place::Closed);
        assert_eq!(place(&s, 0, &PLACES), Place::Closed);
    }

    #[test]
    fn with_no_no_shows_outstanding_admissions_never_exceed_the_units_left() {
        assert_eq!(allowance(10, 0.0), 10);
        assert_eq!(
            to_admit(None, 1000, 0.0, allowance(10, 0.0), 4, 100),
            (6, 0.0)
        );
        assert_eq!(
            to_admit(None, 1000, 0.0, allowance(10, 0.0), 10, 100),
            (0, 0.0)
        );
        assert_eq!(allowance(0, 0.0), 0);
        assert_eq!(allowance(-3, 0.5), 0);
    }

    #[test]
    fn no_shows_widen_the_allowance_within_a_bound() {
        assert_eq!(allowance(70, 0.3), 100);
        assert_eq!(allowance(10, 0.99), 40, "at most four times the units left");
        assert!((no_show_rate(7, 3) - 0.3).abs() < 1e-9);
        assert_eq!(no_show_rate(0, 0), 0.0);
    }

    #[test]
    fn a_set_pace_admits_its_rate_per_second_carrying_fractions_and_not_more_than_wait() {
        assert_eq!(to_admit(Some(10), 1000, 0.0, 1000, 0, 1000), (10, 0.0));
        let (n, carry) = to_admit(Some(3), 500, 0.0, 1000, 0, 1000);
        assert_eq!(n, 1);
        assert!((carry - 0.5).abs() < 1e-9);
        assert_eq!(to_admit(Some(3), 500, carry, 1000, 0, 1000).0, 2);
        assert_eq!(to_admit(Some(10), 1000, 0.0, 1000, 0, 4), (4, 0.0));
        assert_eq!(
            to_admit(Some(10), 60_000, 0.0, 1000, 0, 1000).0,
            50,
            "a late tick is capped"
        );
    }
}
