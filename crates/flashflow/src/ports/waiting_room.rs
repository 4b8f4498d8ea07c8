//! A sale's waiting room as a store keeps it: places taken, the inlet's steps, the operator's
//! controls. All of a queue's state lives in the store, so any process may serve any request,
//! and a process killed mid-step loses nobody's place.

use super::StoreError;
use crate::domain::waiting_room::draw::FinalDraw;
use crate::domain::waiting_room::join_list::Hash;
use crate::domain::waiting_room::queue::QueueState;
use crate::domain::waiting_room::tokens::TicketPlace;
use crate::domain::{BuyerId, SaleId};
use std::future::Future;

/// What a join did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinOutcome {
    /// A new place, at this join index of the queue of this epoch.
    Joined(TicketPlace),
    /// The buyer's place, taken before (one place per buyer).
    Existing(TicketPlace),
    /// The sale has no waiting room (or the store does not hold it).
    NoQueue,
    /// Joining opens then.
    NotOpen { opens_at_ms: i64 },
    /// The sale closed then: nobody joins any more.
    Closed { closes_at_ms: i64 },
    /// The proof of work's challenge was used before.
    ChallengeReused,
    /// This buyer joined too often this minute; nothing was stored.
    TooMany { retry_after_s: u32 },
    /// Another buyer entered under the same `one_per` value; nothing was stored.
    AlreadyEntered,
}

/// Places in a sale's queue.
pub trait QueueJoins: Send + Sync + 'static {
    /// Take a place for `buyer`, or answer the one they have. `requeue`: the join index of the
    /// buyer's place, found expired or spent, which a new place at the back replaces.
    /// `challenge`: the single-use id of the proof of work that came with the join, remembered
    /// until it could no longer be answered. `entry_tag`: the keyed hash of the joiner's value of
    /// the entry policy's `one_per` claim: the first buyer to enter under a tag holds it for the
    /// sale, anyone else gets `AlreadyEntered`. At most
    /// [`MAX_JOINS_PER_MINUTE`](crate::domain::waiting_room::MAX_JOINS_PER_MINUTE) joins per buyer
    /// per minute.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails; a join repeated after a lost answer answers
    /// `Existing` with the place the first one took (or `ChallengeReused` when it brought the
    /// same proof of work: the client asks for a new challenge).
    fn join(
        &self,
        sale: &SaleId,
        buyer: &BuyerId,
        requeue: Option<u64>,
        challenge: Option<&str>,
        entry_tag: Option<&str>,
    ) -> impl Future<Output = Result<JoinOutcome, StoreError>> + Send;
}

/// Which admissions were spent.
pub trait SpentAdmissions: Send + Sync + 'static {
    /// The order that spent the admission of join index `index` (an admission is spent by its
    /// first reservation), if one did.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails.
    fn spent_by(
        &self,
        sale: &SaleId,
        index: u64,
    ) -> impl Future<Output = Result<Option<uuid::Uuid>, StoreError>> + Send;
}

/// The queue's state, moved on by whoever reads it.
pub trait QueueSteps: Send + Sync + 'static {
    /// One step of the queue (the draw once the sale opens, the expiry of admissions not used in
    /// time, the inlet), at most one a second per sale whoever asks, then its state; `None` for
    /// a sale without a waiting room.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails; a step is atomic, so a failed one did nothing.
    fn step(
        &self,
        sale: &SaleId,
    ) -> impl Future<Output = Result<Option<QueueState>, StoreError>> + Send;

    /// The state as the last step left it, moving nothing (the operator's view).
    ///
    /// # Errors
    /// [`StoreError`] when the store fails.
    fn peek(
        &self,
        sale: &SaleId,
    ) -> impl Future<Output = Result<Option<QueueState>, StoreError>> + Send;
}

/// The operator's hand on the inlet.
pub trait QueueControls: Send + Sync + 'static {
    /// Pause or resume admission, and set the pace (`Some(None)`: as fast as the stock allows).
    /// `false` when the sale has no waiting room.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails.
    fn control(
        &self,
        sale: &SaleId,
        paused: Option<bool>,
        pace: Option<Option<u32>>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// The pre-queue's join list: who holds each join index when the draw is made final, and the
/// list fixed with it.
pub trait JoinLists: Send + Sync + 'static {
    /// The buyers of join indexes `0..cohort` of the queue of `epoch`, by index (`None` for an
    /// index nobody holds, or a queue of another epoch: `Ok(None)`). Read while the draw waits
    /// for its round: no place of the pre-queue can move then.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails.
    fn cohort(
        &self,
        sale: &SaleId,
        epoch: u64,
        cohort: u64,
    ) -> impl Future<Output = Result<Option<Vec<Option<BuyerId>>>, StoreError>> + Send;

    /// Take the lease on making the draw of the queue of `epoch` final, for `lease_ms`: `true`
    /// for the one caller that builds the join list meanwhile; `false` while another holds it, or
    /// when the draw is final, not drawn, or the queue is another epoch's.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails.
    fn claim_finalize(
        &self,
        sale: &SaleId,
        epoch: u64,
        lease_ms: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Make the draw of the queue of `epoch` final with `draw` and the join list's `leaves`,
    /// unless it is final already (the first writer wins: every process computes the same).
    /// `false` when the queue is another epoch's or not drawn.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails; then nothing was written.
    fn finalize(
        &self,
        sale: &SaleId,
        epoch: u64,
        draw: &FinalDraw,
        leaves: &[Hash],
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// The leaves of the join list the final draw fixed (`None` before, or for another epoch).
    ///
    /// # Errors
    /// [`StoreError`] when the store fails or holds a list that is not whole leaves.
    fn leaves(
        &self,
        sale: &SaleId,
        epoch: u64,
    ) -> impl Future<Output = Result<Option<Vec<Hash>>, StoreError>> + Send;
}

/// Everything the waiting room's routes ask of the store.
pub trait WaitingRooms:
    QueueJoins + QueueSteps + QueueControls + SpentAdmissions + JoinLists
{
}
impl<T: QueueJoins + QueueSteps + QueueControls + SpentAdmissions + JoinLists> WaitingRooms for T {}
