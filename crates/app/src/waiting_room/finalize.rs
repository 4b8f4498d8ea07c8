//! The draw made final (`ff-draw-v2`): once the sale has opened and the cohort is fixed, the
//! first queue process to find the draw waiting fetches the beacon round fixed in advance (the
//! first at or after the opening), checks it, takes the lease on building the join list (so the
//! pre-queue is read from the store once, not once per process), builds it from the pre-queue's
//! tickets, and stores the root, the round and the leaves; the store keeps the first writer's
//! (every process computes the same from the same round and places). Until then the pre-queue
//! is told it is being drawn and the inlet admits nobody. If the round cannot be had within
//! [`BEACON_WAIT_MS`] of the opening the draw is made from the seed and the join list alone, and
//! its record says so.

use flashflow::domain::waiting_room::draw::{BeaconRound, FinalDraw, BEACON_WAIT_MS};
use flashflow::domain::waiting_room::join_list::{leaf, JoinList};
use flashflow::domain::waiting_room::queue::QueueState;
use flashflow::domain::waiting_room::tokens::{TicketPlace, TokenKeys};
use flashflow::domain::SaleId;
use flashflow::ports::{Beacon, JoinLists, StoreError};
use tracing::{error, info, warn};

/// How long one process may take to build the join list before another may take over: a list of
/// 100,000 tickets is built in well under a second.
pub const LEASE_MS: i64 = 10_000;

/// What the draw of `state` waits for, or what makes it final now.
enum Round {
    Wait,
    Use(Option<BeaconRound>),
}

/// Make the draw of `state` final if it can be now; `true` when the store holds it final.
///
/// # Errors
/// [`StoreError`] when the store fails (nothing is final then; the next read tries again).
pub async fn finalize<W: JoinLists, B: Beacon>(
    store: &W,
    beacon: &B,
    keys: &TokenKeys,
    sale: &SaleId,
    state: &QueueState,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let Some((seed, cohort)) = &state.drawn else {
        return Ok(false);
    };
    let round = match fetch_round(beacon, sale, state, *cohort, now_ms).await {
        Round::Wait => return Ok(false),
        Round::Use(round) => round,
    };
    if !store.claim_finalize(sale, state.epoch, LEASE_MS).await? {
        // Another process builds it; this one answers "drawing" until its next read.
        return Ok(false);
    }
    let Some(buyers) = store.cohort(sale, state.epoch, *cohort).await? else {
        return Ok(false);
    };
    let leaves = buyers
        .iter()
        .enumerate()
        .map(|(index, buyer)| {
            let place = TicketPlace {
                index: index as u64,
                epoch: state.epoch,
            };
            match buyer {
                Some(b) => leaf(&keys.ticket(sale, b, place)),
                None => {
                    // No place of the pre-queue moves before the draw is final.
                    error!(sale = %sale, index, "a pre-queue join index has no holder");
                    leaf("")
                }
            }
        })
        .collect();
    let list = JoinList::new(leaves);
    let draw = FinalDraw::new(seed, list.root(), round);
    let done = store
        .finalize(sale, state.epoch, &draw, list.leaves())
        .await?;
    info!(
        sale = %sale,
        cohort,
        join_root = %hex::encode(draw.join_root),
        round = ?draw.beacon.as_ref().map(|b| b.round),
        waited_ms = now_ms - state.sale_opens_at_ms,
        "draw final"
    );
    Ok(done)
}

/// The round to mix in: the beacon's, once out and checked; none for an empty pre-queue
/// (nothing to order) or once the wait is over.
async fn fetch_round<B: Beacon>(
    beacon: &B,
    sale: &SaleId,
    state: &QueueState,
    cohort: u64,
    now_ms: i64,
) -> Round {
    if cohort == 0 {
        return Round::Use(None);
    }
    let number = beacon.round_at(state.sale_opens_at_ms);
    let waited_out = now_ms >= state.sale_opens_at_ms + BEACON_WAIT_MS;
    match beacon.round(number).await {
        Ok(Some(round)) => Round::Use(Some(round)),
        Ok(None) if !waited_out => Round::Wait,
        Err(e) if !waited_out => {
            warn!(sale = %sale, round = number, error = %e, "beacon round not had yet");
            Round::Wait
        }
        Ok(None) | Err(_) => {
            warn!(sale = %sale, round = number, "beacon round not had in time: drawing without it");
            Round::Use(None)
        }
    }
}
