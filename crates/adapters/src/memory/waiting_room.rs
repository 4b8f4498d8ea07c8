//! A sale's waiting room in memory: the same state as the Redis hashes and lists of
//! `queue_*.lua`, changed by the same rules (the inlet is the domain's `allowance` and
//! `to_admit`, which the scripts mirror), so the waiting room's use case is unit-tested on it and
//! the waiting-room contract runs on both.

use super::store::MemSale;
use flashflow::domain::waiting_room::draw::{FinalDraw, Seed};
use flashflow::domain::waiting_room::entry::Entry;
use flashflow::domain::waiting_room::join_list::Hash;
use flashflow::domain::waiting_room::queue::{
    allowance, no_show_rate, to_admit, Batch, QueueState,
};
use flashflow::domain::waiting_room::tokens::{TicketPlace, CHALLENGE_MS};
use flashflow::domain::waiting_room::{MAX_JOINS_PER_MINUTE, STEP_EVERY_MS as STEP_MS};
use flashflow::domain::SaleDefinition;
use flashflow::ports::{JoinOutcome, HOLDS_END_WITHIN};
use std::collections::{HashMap, VecDeque};
use uuid::Uuid;

/// One sale's waiting room (`ff:{sale}:wr` and its places, challenges, batches and uses).
#[derive(Debug)]
pub(super) struct MemRoom {
    opens_ms: i64,
    sale_opens_ms: i64,
    admission_ms: i64,
    pow_bits: u8,
    closes_ms: Option<i64>,
    entry: Option<Entry>,
    seed: Seed,
    commitment: String,
    /// The queue's epoch, random, given when the queue is made.
    pub(super) epoch: u64,
    joined: u64,
    cohort: Option<u64>,
    /// The draw made final, and its join list's leaves (`wr:leaves`).
    final_draw: Option<(FinalDraw, Vec<Hash>)>,
    /// When the lease on making the draw final was taken (ms).
    finalizing: Option<i64>,
    admitted: u64,
    /// Admissions spent in all (`wr:used`).
    used: u64,
    expired: u64,
    next_batch: u64,
    last_step_ms: Option<i64>,
    carry: f64,
    rate: f64,
    pace: Option<u32>,
    paused: bool,
    batches: VecDeque<Batch>,
    /// Batch id → its admissions spent (`reserve.lua` counts them).
    batch_uses: HashMap<u64, u64>,
    /// Join index → the order that spent its admission.
    pub(super) spent: HashMap<u64, Uuid>,
    places: HashMap<String, u64>,
    /// Challenges used → when they expire (ms).
    challenges: HashMap<String, i64>,
    /// Buyer → (minute, joins in it).
    joins: HashMap<String, (i64, u32)>,
    /// The entry policy's `one_per` tag → the buyer who entered under it (`wr:entries`).
    entries: HashMap<String, String>,
}

impl MemRoom {
    /// `queue_load.lua`: the terms refreshed on every load; the queue, the seed and an
    /// operator's pace kept.
    pub(super) fn load(room: &mut Option<MemRoom>, def: &SaleDefinition, seed: Option<&Seed>) {
        let Some(terms) = &def.waiting_room else {
            return;
        };
        let r = match room {
            Some(r) => r,
            None => {
                let Some(seed) = seed else {
                    return;
                };
                room.insert(MemRoom {
                    opens_ms: 0,
                    sale_opens_ms: 0,
                    admission_ms: 0,
                    pow_bits: 0,
                    closes_ms: None,
                    entry: None,
                    seed: seed.clone(),
                    commitment: seed.commitment(),
                    epoch: (Uuid::new_v4().as_u64_pair().0 >> 11).max(1),
                    joined: 0,
                    cohort: None,
                    final_draw: None,
                    finalizing: None,
                    admitted: 0,
                    used: 0,
                    expired: 0,
                    next_batch: 0,
                    last_step_ms: None,
                    carry: 0.0,
                    rate: 0.0,
                    pace: terms.admit_per_second,
                    paused: false,
                    batches: VecDeque::new(),
                    batch_uses: HashMap::new(),
                    spent: HashMap::new(),
                    places: HashMap::new(),
                    challenges: HashMap::new(),
                    joins: HashMap::new(),
                    entries: HashMap::new(),
                })
            }
        };
        r.opens_ms = terms.opens_at_ms;
        r.sale_opens_ms = def.opens_at_ms.unwrap_or_default();
        r.admission_ms = terms.admission_ms();
        r.pow_bits = terms.pow_bits;
        r.closes_ms = def.closes_at_ms;
        r.entry.clone_from(&terms.entry);
        if r.pace.is_none() {
            r.pace = terms.admit_per_second;
        }
    }

    /// Who may join (the `entry` field of `ff:{sale}:wr`).
    pub(super) fn entry(&self) -> Option<&Entry> {
        self.entry.as_ref()
    }

    /// The draw is fixed at the sale's opening: whoever joined before it is the pre-queue.
    fn draw_if_due(&mut self, now: i64) {
        if self.cohort.is_none() && now >= self.sale_opens_ms {
            self.cohort = Some(self.joined);
        }
    }

    /// The buyers of join indexes `0..cohort` (the places hash, read by index).
    pub(super) fn cohort(&self, epoch: u64, cohort: u64) -> Option<Vec<Option<String>>> {
        if epoch != self.epoch {
            return None;
        }
        let mut buyers = vec![None; cohort as usize];
        for (buyer, &index) in &self.places {
            if let Some(slot) = buyers.get_mut(index as usize) {
                *slot = Some(buyer.clone());
            }
        }
        Some(buyers)
    }

    /// `queue_claim_draw.lua`: the lease on building the join list.
    pub(super) fn claim_finalize(&mut self, epoch: u64, lease_ms: i64, now: i64) -> bool {
        if epoch != self.epoch || self.cohort.is_none() || self.final_draw.is_some() {
            return false;
        }
        if self.finalizing.is_some_and(|at| now - at < lease_ms) {
            return false;
        }
        self.finalizing = Some(now);
        true
    }

    /// `queue_finalize.lua`: the first writer fixes the draw; `false` for another epoch's queue
    /// or one not drawn.
    pub(super) fn finalize(&mut self, epoch: u64, draw: &FinalDraw, leaves: &[Hash]) -> bool {
        if epoch != self.epoch || self.cohort.is_none() {
            return false;
        }
        if self.final_draw.is_none() {
            self.final_draw = Some((draw.clone(), leaves.to_vec()));
        }
        true
    }

    /// The fixed join list's leaves.
    pub(super) fn leaves(&self, epoch: u64) -> Option<Vec<Hash>> {
        (epoch == self.epoch)
            .then(|| self.final_draw.as_ref().map(|(_, l)| l.clone()))
            .flatten()
    }

    /// `queue_join.lua`.
    pub(super) fn join(
        &mut self,
        buyer: &str,
        requeue: Option<u64>,
        challenge: Option<&str>,
        entry_tag: Option<&str>,
        now: i64,
    ) -> JoinOutcome {
        if now < self.opens_ms {
            return JoinOutcome::NotOpen {
                opens_at_ms: self.opens_ms,
            };
        }
        if let Some(closes_at_ms) = self.closes_ms.filter(|c| now >= *c) {
            return JoinOutcome::Closed { closes_at_ms };
        }
        self.draw_if_due(now);
        let minute = now.div_euclid(60_000);
        let count = match self.joins.get(buyer) {
            Some((m, c)) if *m == minute => c + 1,
            _ => 1,
        };
        if count > MAX_JOINS_PER_MINUTE {
            return JoinOutcome::TooMany {
                retry_after_s: (60 - (now.rem_euclid(60_000) / 1000)) as u32,
            };
        }
        self.joins.insert(buyer.to_owned(), (minute, count));
        self.challenges.retain(|_, expires| *expires > now);
        if let Some(c) = challenge {
            if self.challenges.contains_key(c) {
                return JoinOutcome::ChallengeReused;
            }
            self.challenges.insert(c.to_owned(), now + CHALLENGE_MS);
        }
        if let Some(tag) = entry_tag {
            match self.entries.get(tag) {
                Some(holder) if holder != buyer => return JoinOutcome::AlreadyEntered,
                Some(_) => {}
                None => {
                    self.entries.insert(tag.to_owned(), buyer.to_owned());
                }
            }
        }
        let place = |index| TicketPlace {
            index,
            epoch: self.epoch,
        };
        if let Some(&existing) = self.places.get(buyer) {
            if Some(existing) != requeue {
                return JoinOutcome::Existing(place(existing));
            }
        }
        let n = self.joined;
        self.joined += 1;
        self.places.insert(buyer.to_owned(), n);
        JoinOutcome::Joined(place(n))
    }

    /// `reserve.lua`'s last step for a sale with a waiting room: the admission of join index
    /// `index`, admitted in `batch`, spent by `order`.
    pub(super) fn spend(&mut self, index: u64, batch: u64, order: Uuid) {
        self.spent.insert(index, order);
        *self.batch_uses.entry(batch).or_default() += 1;
        self.used += 1;
    }

    /// `queue_step.lua`: one step at most every [`STEP_MS`] (the draw, expiries, the inlet),
    /// then the state; `peek` reads it as the last step left it.
    pub(super) fn step(&mut self, sale: &MemSale, now: i64, peek: bool) -> QueueState {
        let mut stepped = (0, 0);
        if !peek {
            self.draw_if_due(now);
        }
        let closed = self.closes_ms.is_some_and(|c| now >= c);
        // Holds that may still end and give units back: open, and not long past their pay_by.
        let grace = HOLDS_END_WITHIN.as_millis() as i64;
        let held = sale
            .holds
            .values()
            .filter(|pay_by| **pay_by >= now - grace)
            .count() as u64;
        let due = self.last_step_ms.is_none_or(|last| now - last >= STEP_MS);
        // Nobody is admitted before the draw is final: the pre-queue's order is not known.
        if !peek && self.final_draw.is_some() && due {
            let expired_before = self.expired;
            while let Some(b) = self.batches.front() {
                if b.expires_ms > now {
                    break;
                }
                let used_of = self.batch_uses.remove(&b.id).unwrap_or(0);
                let size = b.last - b.first + 1;
                self.expired += size.saturating_sub(used_of);
                self.batches.pop_front();
            }
            let used = self.used;
            let outstanding = self.admitted.saturating_sub(used + self.expired);
            let allowed = allowance(sale.remaining, no_show_rate(used, self.expired));
            let elapsed = self.last_step_ms.map_or(STEP_MS, |last| now - last);
            let waiting = self.joined.saturating_sub(self.admitted);
            let (n, carry) = if self.paused || closed {
                (0, self.carry)
            } else {
                to_admit(
                    self.pace,
                    elapsed,
                    self.carry,
                    allowed,
                    outstanding,
                    waiting,
                )
            };
            if n > 0 {
                self.next_batch += 1;
                self.batches.push_back(Batch {
                    id: self.next_batch,
                    first: self.admitted + 1,
                    last: self.admitted + n,
                    expires_ms: now + self.admission_ms,
                });
                self.admitted += n;
            }
            self.carry = carry;
            self.rate = self.rate * 0.7 + (n as f64 * 1000.0 / elapsed.max(1) as f64) * 0.3;
            self.last_step_ms = Some(now);
            stepped = (n, self.expired - expired_before);
        }
        let sold_out = self.cohort.is_some() && sale.remaining <= 0 && held == 0;
        QueueState {
            now_ms: now,
            opens_at_ms: self.opens_ms,
            sale_opens_at_ms: self.sale_opens_ms,
            admission_ms: self.admission_ms,
            pow_bits: self.pow_bits,
            commitment: self.commitment.clone(),
            drawn: self.cohort.map(|c| (self.seed.clone(), c)),
            final_draw: self.final_draw.as_ref().map(|(d, _)| d.clone()),
            joined: self.joined,
            admitted: self.admitted,
            used: self.used,
            expired: self.expired,
            batches: self.batches.iter().cloned().collect(),
            paused: self.paused,
            pace: self.pace,
            admit_rate: self.rate,
            sold_out,
            remaining: sale.remaining,
            held,
            closed,
            epoch: self.epoch,
            entry: self.entry.clone(),
            stepped,
        }
    }

    /// `queue_control.lua`.
    pub(super) fn control(&mut self, paused: Option<bool>, pace: Option<Option<u32>>) {
        if let Some(p) = paused {
            self.paused = p;
        }
        if let Some(p) = pace {
            self.pace = p;
        }
    }
}
