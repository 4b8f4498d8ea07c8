//! The waiting room's use cases: join a sale's queue, see where one's place stands, read the
//! draw's record, get a proof-of-work challenge, and the operator's controls; and buy's admission
//! check ([`gate`]).
//!
//! A poll reads the state this process holds ([`states`]): no store round trip per request. A
//! ticket carries its join index, signed, so where it stands is computed here from the state; an
//! admitted place's token is signed here, and buy checks it in its own process.
//!
//! # Layout
//! - `mod.rs`: [`Queue`], the use cases of the queue's routes.
//! - [`finalize`]: the draw made final with its beacon round and join list.
//! - [`gate`]: [`gate::AdmissionGate`], buy's check of an admission token.
//! - [`states`]: each sale's queue state as this process holds it.

pub mod finalize;
pub mod gate;
pub mod states;

use crate::metrics::{Count, Metrics};
use flashflow::domain::timefmt::format_ms;
use flashflow::domain::waiting_room::draw::ALGORITHM;
use flashflow::domain::waiting_room::entry::{Claims, NotAllowed};
use flashflow::domain::waiting_room::join_list::JoinList;
use flashflow::domain::waiting_room::queue::{place, poll_after_ms, Place, QueueState};
use flashflow::domain::waiting_room::tokens::{InvalidProof, TicketPlace, TokenKeys};
use flashflow::domain::EpochMs;
use flashflow::domain::{BuyerId, SaleId};
use flashflow::ports::{Beacon, JoinOutcome, StoreError, WaitingRooms};
use serde::Serialize;
use states::{Snapshot, States};
use std::sync::Arc;
use tracing::{error, info, warn};

/// Why a queue request was not served.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The sale has no waiting room (or does not exist).
    #[error("this sale has no waiting room")]
    NoQueue,
    #[error("the queue opens at {}", format_ms(*opens_at_ms))]
    NotOpen { opens_at_ms: i64 },
    /// The sale closed: nobody joins any more.
    #[error("the sale closed at {}", format_ms(*closes_at_ms))]
    Closed { closes_at_ms: i64 },
    /// The buyer joined too often this minute; nothing was stored.
    #[error("too many joins this minute: retry in {retry_after_s} s")]
    TooMany { retry_after_s: u32 },
    /// The caller's identity lacks what the sale's entry policy asks; nothing was stored.
    #[error(transparent)]
    EntryNotAllowed(#[from] NotAllowed),
    /// Another identity with the same value of the policy's `one_per` claim holds a place;
    /// nothing was stored.
    #[error("an identity with this {claim} has entered this sale already")]
    AlreadyEntered { claim: String },
    #[error(transparent)]
    InvalidProof(#[from] InvalidProof),
    /// Not a ticket of this buyer for this sale (someone else's looks the same).
    #[error("no such ticket for this caller")]
    TicketNotFound,
    #[error("the operator's controls: {0}")]
    InvalidControl(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A place as its owner sees it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct TicketView {
    /// Opaque; ask `GET /sales/{sale_id}/queue/{ticket}` with it. Its SHA-256 behind a `0x00`
    /// byte is its leaf in the draw's join list.
    pub ticket: String,
    /// `waiting`; `drawing` (the sale opened and the draw waits for its beacon round: a few
    /// seconds); `admitted` (buy with the token); `used` (the admission bought an order: to buy
    /// again, join again); `expired` (not used in time: join again, at the back); `sold_out` (the
    /// queue will not reach this place); `closed` (the sale closed); `rejoin` (this ticket's queue
    /// was lost and rebuilt: join again).
    pub state: &'static str,
    /// 1 = next to be admitted; `null` before the draw or once not waiting.
    pub position: Option<u64>,
    /// How many still wait in front.
    pub ahead: Option<u64>,
    /// The estimated wait, from the pace measured.
    pub eta_seconds: Option<u64>,
    /// Leave to buy (the `Admission-Token` header of `POST /sales/{sale_id}/buy`), while admitted.
    pub admission_token: Option<String>,
    #[schema(format = DateTime)]
    pub admission_expires_at: Option<String>,
    /// A pre-queue place's arrival order (0-based): with the draw's record it gives the place.
    pub join_index: Option<u64>,
    /// A pre-queue place's audit path in the draw's join list, once the draw is final (hex,
    /// from the leaf up): with the record's `join_root` and `cohort` it shows this ticket was in
    /// the list the draw used (RFC 9162's check, docs/api.md).
    pub join_proof: Option<Vec<String>>,
    /// While waiting with no unit left: the units held for payment that may still come back
    /// (sold out for now, not for good).
    pub held: Option<u64>,
    /// Ask again about this place after this many ms (also the `Retry-After` header); absent when
    /// nothing will change by itself.
    pub retry_after_ms: Option<u64>,
}

/// `GET /sales/{sale_id}/queue/draw`: what anyone needs to check the draw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct DrawRecord {
    /// `open` (joining, before the draw), `drawing` (the sale opened; the draw waits for its
    /// beacon round), `drawn` (final: every value below is out).
    pub state: &'static str,
    /// `hex(SHA-256(seed))`, published from the moment the queue opens.
    pub commitment: String,
    /// The seed (hex), once the sale opened.
    pub seed: Option<String>,
    /// How many joined before the opening (the pre-queue), once the sale opened.
    pub cohort: Option<u64>,
    /// The root of the pre-queue's join list (hex), once drawn.
    pub join_root: Option<String>,
    /// The public randomness mixed in: its chain and round are fixed from the queue's opening,
    /// its randomness and signature out once drawn.
    pub beacon: BeaconRecord,
    /// Set when the draw was made without the beacon's round: why (the order is then
    /// `SHA-256(seed ‖ join_root)`'s).
    pub fallback: Option<String>,
    /// The draw's algorithm, defined in docs/api.md.
    pub algorithm: &'static str,
    #[schema(format = DateTime)]
    pub queue_opens_at: String,
    /// The draw happens at the sale's opening.
    #[schema(format = DateTime)]
    pub draw_at: String,
}

/// The beacon round of a draw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct BeaconRecord {
    /// The drand chain's hash (hex).
    pub chain: String,
    /// The first round at or after the sale's opening.
    pub round: u64,
    /// Where anyone reads that round.
    pub url: String,
    /// The round's randomness (hex, `SHA-256(signature)`), once drawn with it.
    pub randomness: Option<String>,
    /// The round's BLS signature (hex), checked against the chain's key, once drawn with it.
    pub signature: Option<String>,
}

/// `GET /sales/{sale_id}/queue/challenge`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Challenge {
    /// Join with a `nonce` such that SHA-256(challenge ‖ nonce) starts with `bits` zero bits.
    pub challenge: String,
    pub bits: u8,
}

/// The queue as the operator sees it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct QueueView {
    /// Joined, not yet admitted.
    pub waiting: u64,
    /// Admitted so far, and of those: used to buy, expired unused, still open.
    pub admitted: u64,
    pub used: u64,
    pub expired: u64,
    pub outstanding: u64,
    /// Expired unused / (used + expired).
    pub no_show_rate: f64,
    /// Places admitted per second, measured.
    pub admitted_per_second: f64,
    /// The estimated wait of the last in line.
    pub eta_last_seconds: Option<u64>,
    pub paused: bool,
    /// The pace set (`null`: as fast as the stock allows).
    pub admit_per_second: Option<u32>,
    pub sold_out: bool,
    pub commitment: String,
    pub seed: Option<String>,
    pub cohort: Option<u64>,
}

impl QueueView {
    /// The view of a queue's state.
    pub fn of(s: &QueueState) -> Self {
        let waiting = s.waiting();
        let rate = if s.admit_rate > 0.01 {
            Some(s.admit_rate)
        } else {
            s.pace.map(f64::from)
        };
        Self {
            waiting,
            admitted: s.admitted,
            used: s.used,
            expired: s.expired,
            outstanding: s.outstanding(),
            no_show_rate: s.no_show_rate(),
            admitted_per_second: (s.admit_rate * 100.0).round() / 100.0,
            eta_last_seconds: rate.map(|r| (waiting as f64 / r).ceil() as u64),
            paused: s.paused,
            admit_per_second: s.pace,
            sold_out: s.sold_out,
            commitment: s.commitment.clone(),
            seed: s.drawn.as_ref().map(|(seed, _)| seed.hex()),
            cohort: s.drawn.as_ref().map(|(_, n)| *n),
        }
    }
}

/// The waiting room's use cases over the store `W` and the beacon `B`.
pub struct Queue<W, B> {
    pub store: W,
    pub beacon: B,
    pub keys: TokenKeys,
    pub metrics: Metrics,
    states: States,
}

impl<W: WaitingRooms, B: Beacon> Queue<W, B> {
    pub fn new(store: W, beacon: B, keys: TokenKeys, metrics: Metrics) -> Self {
        Self {
            store,
            beacon,
            keys,
            metrics,
            states: States::default(),
        }
    }

    /// The sale's queue state, stepping it when the one in hand is stale, and making its draw
    /// final when it waits for that (one request per read tries); counts what the step did.
    async fn snapshot(&self, sale: &SaleId) -> Result<Arc<Snapshot>, QueueError> {
        let mut snapshot = self.states.get(&self.store, sale).await?;
        if snapshot.claim_finalize() {
            snapshot = self.finalize(sale, snapshot).await?;
        }
        self.count_step(sale, &snapshot);
        Ok(snapshot)
    }

    /// Try to make `held`'s draw final; the state read anew when it is.
    async fn finalize(
        &self,
        sale: &SaleId,
        held: Arc<Snapshot>,
    ) -> Result<Arc<Snapshot>, QueueError> {
        let Some(state) = held.state.as_ref() else {
            return Ok(held);
        };
        let now = EpochMs::now().get();
        match finalize::finalize(&self.store, &self.beacon, &self.keys, sale, state, now).await {
            Ok(true) => Ok(self.states.reread(&self.store, sale, &held).await?),
            Ok(false) => Ok(held),
            // The pre-queue is told it is being drawn; the next read tries again.
            Err(e) => {
                warn!(sale = %sale, error = %e, "the draw could not be made final yet");
                Ok(held)
            }
        }
    }

    /// The final draw's join list, read once per draw by this process.
    async fn join_list(&self, sale: &SaleId, snapshot: &Snapshot) -> Option<Arc<JoinList>> {
        let state = snapshot.state.as_ref()?;
        let root = state.final_draw.as_ref()?.join_root;
        let load = async {
            let leaves = self.store.leaves(sale, state.epoch).await?;
            Ok::<_, StoreError>(leaves.map(JoinList::new).and_then(|list| {
                if list.root() == root {
                    Some(Arc::new(list))
                } else {
                    error!(sale = %sale, "the stored join list does not give the published root");
                    None
                }
            }))
        };
        match snapshot.join_list(load).await {
            Ok(list) => list,
            Err(e) => {
                warn!(sale = %sale, error = %e, "the join list could not be read");
                None
            }
        }
    }

    /// The state to answer a place of `epoch` with. A state in hand of another epoch may predate
    /// a rebuild of the queue (a Redis loss, then the operator's rehydrate) that the place
    /// belongs to, so the store is asked once more before the place is told to rejoin; an epoch
    /// found lost that way is remembered, so its tickets cost no further read.
    async fn snapshot_for(
        &self,
        sale: &SaleId,
        epoch: u64,
        held: Arc<Snapshot>,
    ) -> Result<Arc<Snapshot>, QueueError> {
        match &held.state {
            Some(state) if state.epoch != epoch && !self.states.is_lost(sale, epoch) => {
                let fresh = self.states.reread(&self.store, sale, &held).await?;
                if fresh.state.as_ref().is_some_and(|s| s.epoch != epoch) {
                    self.states.mark_lost(sale, epoch);
                }
                self.count_step(sale, &fresh);
                Ok(fresh)
            }
            _ => Ok(held),
        }
    }

    /// Counts what the step that read `snapshot` did: once, by the first request to see it.
    fn count_step(&self, sale: &SaleId, snapshot: &Snapshot) {
        let stepped = snapshot.state.as_ref().map_or((0, 0), |s| s.stepped);
        if stepped != (0, 0) && snapshot.claim_step() {
            self.metrics.add(Count::Admitted, stepped.0);
            self.metrics.add(Count::AdmissionExpired, stepped.1);
            info!(sale = %sale, admitted = stepped.0, expired = stepped.1, "queue stepped");
        }
    }

    /// Take a place in `sale`'s queue for `buyer`, whose identity carries `claims` (or answer the
    /// one they have: `false`).
    ///
    /// # Errors
    /// [`QueueError`]: no waiting room, not open yet, an identity the entry policy refuses or
    /// whose `one_per` value entered already, a proof of work missing or wrong, the store.
    pub async fn join(
        &self,
        sale: &SaleId,
        buyer: &BuyerId,
        claims: &Claims,
        proof: Option<(&str, &str)>,
    ) -> Result<(bool, TicketView), QueueError> {
        let snapshot = self.snapshot(sale).await?;
        let state = snapshot.state.as_ref().ok_or(QueueError::NoQueue)?;
        let now = EpochMs::now().get();
        if now < state.opens_at_ms {
            return Err(QueueError::NotOpen {
                opens_at_ms: state.opens_at_ms,
            });
        }
        if state.closed {
            return Err(QueueError::Closed {
                closes_at_ms: state.now_ms,
            });
        }
        let entry_tag = match &state.entry {
            None => None,
            Some(entry) => entry
                .admit(claims)?
                .map(|value| snapshot.entry_key(|| self.keys.entry_key(sale)).tag(value)),
        };
        let challenge = match (state.pow_bits, proof) {
            (0, _) => None,
            (_, None) => return Err(InvalidProof::Missing.into()),
            (bits, Some((challenge, nonce))) => Some(
                self.keys
                    .check_proof(challenge, nonce, sale, buyer, bits, now)?,
            ),
        };
        let joined = self
            .store
            .join(
                sale,
                buyer,
                None,
                challenge.as_deref(),
                entry_tag.as_deref(),
            )
            .await?;
        if joined == JoinOutcome::AlreadyEntered {
            let claim = state.entry.as_ref().and_then(|e| e.one_per.clone());
            return Err(QueueError::AlreadyEntered {
                claim: claim.unwrap_or_default(),
            });
        }
        let snapshot = match &joined {
            JoinOutcome::Joined(p) | JoinOutcome::Existing(p) => {
                self.snapshot_for(sale, p.epoch, snapshot).await?
            }
            _ => snapshot,
        };
        let (created, at) = match joined {
            JoinOutcome::Existing(p) => self.requeue_if_over(sale, buyer, p, &snapshot).await?,
            other => (true, placed(other)?),
        };
        if created {
            self.metrics.add(Count::Joined, 1);
        }
        Ok((created, self.view(sale, buyer, at, &snapshot, now).await?))
    }

    /// A buyer whose turn is over joins again at the back: their admission expired unused, or
    /// was spent on an order (buying again waits a new turn).
    async fn requeue_if_over(
        &self,
        sale: &SaleId,
        buyer: &BuyerId,
        at: TicketPlace,
        snapshot: &Snapshot,
    ) -> Result<(bool, TicketPlace), QueueError> {
        let now = EpochMs::now().get();
        let Some(state) = snapshot.at(now) else {
            return Ok((false, at));
        };
        let over = match place(&state, at.index, snapshot.places()) {
            Place::Expired => true,
            Place::Admitted(_) => self.store.spent_by(sale, at.index).await?.is_some(),
            _ => false,
        };
        if !over {
            return Ok((false, at));
        }
        // The buyer holds their one_per tag already (their first join took it).
        match self
            .store
            .join(sale, buyer, Some(at.index), None, None)
            .await?
        {
            JoinOutcome::Existing(p) => Ok((false, p)),
            other => Ok((true, placed(other)?)),
        }
    }

    /// Where `buyer`'s `ticket` stands.
    ///
    /// # Errors
    /// [`QueueError::TicketNotFound`] for anyone else's ticket or a sale without a queue; the
    /// store's error when no state is in hand.
    pub async fn status(
        &self,
        sale: &SaleId,
        buyer: &BuyerId,
        ticket: &str,
    ) -> Result<TicketView, QueueError> {
        let at = self
            .keys
            .open_ticket(ticket, sale, buyer)
            .ok_or(QueueError::TicketNotFound)?;
        let snapshot = self.snapshot(sale).await?;
        let snapshot = self.snapshot_for(sale, at.epoch, snapshot).await?;
        if snapshot.state.is_none() {
            return Err(QueueError::TicketNotFound);
        }
        self.view(sale, buyer, at, &snapshot, EpochMs::now().get())
            .await
    }

    async fn view(
        &self,
        sale: &SaleId,
        buyer: &BuyerId,
        at: TicketPlace,
        snapshot: &Snapshot,
        now: i64,
    ) -> Result<TicketView, QueueError> {
        let index = at.index;
        let mut view = TicketView {
            ticket: self.keys.ticket(sale, buyer, at),
            state: "waiting",
            position: None,
            ahead: None,
            eta_seconds: None,
            admission_token: None,
            admission_expires_at: None,
            join_index: None,
            join_proof: None,
            held: None,
            retry_after_ms: None,
        };
        let Some(state) = snapshot.at(now) else {
            return Ok(view);
        };
        if at.epoch != state.epoch {
            // A place in a queue that was lost: its index names someone else's place now.
            view.state = "rejoin";
            return Ok(view);
        }
        let pre_queue = state
            .drawn
            .as_ref()
            .is_none_or(|(_, cohort)| index < *cohort);
        if pre_queue {
            view.join_index = Some(index);
            if state.final_draw.is_some() {
                view.join_proof = self
                    .join_list(sale, snapshot)
                    .await
                    .and_then(|list| list.proof(index))
                    .map(|path| path.iter().map(hex::encode).collect());
            }
        }
        let at_place = place(&state, index, snapshot.places());
        view.retry_after_ms = poll_after_ms(&at_place, now, state.sale_opens_at_ms);
        match at_place {
            Place::PreQueue { eta_seconds } => view.eta_seconds = eta_seconds,
            Place::Drawing => view.state = "drawing",
            Place::Waiting {
                position,
                ahead,
                eta_seconds,
            } => {
                view.position = Some(position);
                view.ahead = Some(ahead);
                view.eta_seconds = eta_seconds;
                if state.remaining <= 0 {
                    view.held = Some(state.held);
                }
            }
            // Only an admitted or passed place asks the store: was its admission spent?
            Place::Admitted(_) | Place::Expired
                if self.store.spent_by(sale, index).await?.is_some() =>
            {
                view.state = "used";
            }
            Place::Admitted(admission) => {
                view.state = "admitted";
                view.position = Some(0);
                view.ahead = Some(0);
                view.eta_seconds = Some(0);
                view.admission_token = Some(self.keys.admission(sale, buyer, admission));
                view.admission_expires_at = Some(format_ms(admission.expires_ms));
            }
            Place::Expired => view.state = "expired",
            Place::SoldOut => view.state = "sold_out",
            Place::Closed => view.state = "closed",
        }
        Ok(view)
    }

    /// The draw's record: the commitment and the beacon's round from the queue's opening, the
    /// seed and the pre-queue's size from the sale's, the join list's root and the round's
    /// randomness once the draw is final.
    ///
    /// # Errors
    /// [`QueueError::NoQueue`], or the store's error when no state is in hand.
    pub async fn draw(&self, sale: &SaleId) -> Result<DrawRecord, QueueError> {
        let snapshot = self.snapshot(sale).await?;
        let s = snapshot.state.as_ref().ok_or(QueueError::NoQueue)?;
        let fin = s.final_draw.as_ref();
        let round = self.beacon.round_at(s.sale_opens_at_ms);
        let used = fin.and_then(|f| f.beacon.as_ref());
        let fallback = match (fin, used, s.drawn.as_ref()) {
            (Some(_), None, Some((_, 0))) => Some("nobody joined before the opening: nothing to draw"),
            (Some(_), None, _) => Some("the beacon's round could not be had in time: drawn from the seed and the join list alone"),
            _ => None,
        };
        Ok(DrawRecord {
            state: match (fin, &s.drawn) {
                (Some(_), _) => "drawn",
                (None, Some(_)) => "drawing",
                (None, None) => "open",
            },
            commitment: s.commitment.clone(),
            seed: s.drawn.as_ref().map(|(seed, _)| seed.hex()),
            cohort: s.drawn.as_ref().map(|(_, n)| *n),
            join_root: fin.map(|f| hex::encode(f.join_root)),
            beacon: BeaconRecord {
                chain: self.beacon.chain().to_owned(),
                round: used.map_or(round, |b| b.round),
                url: self.beacon.round_url(used.map_or(round, |b| b.round)),
                randomness: used.map(|b| hex::encode(b.randomness)),
                signature: used.map(|b| hex::encode(&b.signature)),
            },
            fallback: fallback.map(str::to_owned),
            algorithm: ALGORITHM,
            queue_opens_at: format_ms(s.opens_at_ms),
            draw_at: format_ms(s.sale_opens_at_ms),
        })
    }

    /// A proof-of-work challenge for `buyer` to join `sale`'s queue.
    ///
    /// # Errors
    /// [`QueueError::NoQueue`]; a store error when no state is in hand; the system's random
    /// source failing (a store error too: the request may be repeated).
    pub async fn challenge(&self, sale: &SaleId, buyer: &BuyerId) -> Result<Challenge, QueueError> {
        let snapshot = self.snapshot(sale).await?;
        let s = snapshot.state.as_ref().ok_or(QueueError::NoQueue)?;
        let mut random = [0u8; 16];
        getrandom::fill(&mut random)
            .map_err(|e| QueueError::Store(StoreError::Failed(e.to_string().into())))?;
        Ok(Challenge {
            challenge: self
                .keys
                .challenge(sale, buyer, random, EpochMs::now().get()),
            bits: s.pow_bits,
        })
    }
}

/// The place a join took, or why it took none.
fn placed(outcome: JoinOutcome) -> Result<TicketPlace, QueueError> {
    match outcome {
        JoinOutcome::Joined(p) | JoinOutcome::Existing(p) => Ok(p),
        JoinOutcome::NoQueue => Err(QueueError::NoQueue),
        JoinOutcome::NotOpen { opens_at_ms } => Err(QueueError::NotOpen { opens_at_ms }),
        JoinOutcome::Closed { closes_at_ms } => Err(QueueError::Closed { closes_at_ms }),
        JoinOutcome::ChallengeReused => Err(InvalidProof::Reused.into()),
        JoinOutcome::TooMany { retry_after_s } => Err(QueueError::TooMany { retry_after_s }),
        JoinOutcome::AlreadyEntered => Err(QueueError::AlreadyEntered {
            claim: String::new(),
        }),
    }
}

/// The operator's view of `sale`'s queue, as its last step left it (the readers step it).
///
/// # Errors
/// The store's.
pub async fn operator_view<W: flashflow::ports::QueueSteps>(
    store: &W,
    sale: &SaleId,
) -> Result<Option<QueueView>, StoreError> {
    Ok(store.peek(sale).await?.as_ref().map(QueueView::of))
}

/// Pause or resume `sale`'s inlet and set its pace.
///
/// # Errors
/// [`QueueError::NoQueue`], [`QueueError::InvalidControl`] for a pace out of range, the store's.
pub async fn control<W: WaitingRooms>(
    store: &W,
    sale: &SaleId,
    paused: Option<bool>,
    pace: Option<Option<u32>>,
) -> Result<Option<QueueView>, QueueError> {
    if let Some(Some(p)) = pace {
        if !flashflow::domain::waiting_room::ADMIT_PER_SECOND.contains(&p) {
            return Err(QueueError::InvalidControl(
                "admit_per_second must be an integer from 1 to 100000, or null".into(),
            ));
        }
    }
    if !store.control(sale, paused, pace).await? {
        return Err(QueueError::NoQueue);
    }
    info!(sale = %sale, ?paused, ?pace, "queue controls set");
    Ok(operator_view(store, sale).await?)
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
