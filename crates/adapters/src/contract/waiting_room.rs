//! A sale's waiting room as a store keeps it (Redis' `queue_*.lua`; in memory for unit tests):
//! places, the draw, the inlet's steps and the operator's controls, and the admission a buy
//! uses.

use super::{buy, fresh_sale_id, sale, LoadForTests};
use flashflow::domain::waiting_room::queue::QueueState;
use flashflow::domain::waiting_room::tokens::Admission;
use flashflow::domain::waiting_room::WaitingRoom;
use flashflow::domain::{BuyerId, EpochMs, Reservation, SaleDefinition, SaleId};
use flashflow::ports::{JoinOutcome, ReservationStore, SaleLoader, WaitingRooms};
use sha2::Digest;
use std::time::Duration;

/// What a waiting room's behaviours run on: a store of sales with their queues.
pub struct Rooms<S> {
    pub store: S,
}

/// Every behaviour of the waiting room's contract as a test of `$make` (an async expression
/// giving [`Rooms`]).
#[macro_export]
macro_rules! waiting_room_contract {
    ($make:expr) => {
        $crate::contract_tests!(
            waiting_room,
            $make,
            [
                a_sale_without_a_waiting_room_has_no_queue,
                joining_before_the_queue_opens_is_refused_with_its_opening,
                a_buyer_holds_one_place_and_join_indexes_follow_arrival,
                a_proof_of_work_challenge_is_used_once,
                an_expired_place_is_replaced_by_one_at_the_back,
                before_the_draw_the_commitment_is_public_and_the_seed_is_not,
                the_draw_at_the_opening_fixes_the_pre_queue_and_reveals_the_committed_seed,
                a_peek_reads_the_state_and_moves_nothing,
                the_inlet_admits_no_more_than_the_units_left,
                the_queue_steps_at_most_once_a_second_whoever_asks,
                a_paused_inlet_admits_nobody_until_resumed,
                an_admission_used_to_buy_counts_once_as_used,
                a_drawn_queue_with_no_unit_left_is_sold_out,
            ]
        );
    };
}

/// The store's sale `def`, loaded with `available` units.
async fn loaded<S: SaleLoader>(t: &Rooms<S>, def: &SaleDefinition, available: u32) {
    t.store.load_sale(def, available).await.unwrap();
}

/// A sale of `stock` whose queue opened a minute ago and which opens `sale_opens_in` from now
/// (negative: it opened that long ago), as fast as the stock allows.
fn room_sale(stock: u32, sale_opens_in_ms: i64) -> SaleDefinition {
    let now = EpochMs::now().get();
    sale(&fresh_sale_id(), stock)
        .with_window(Some(now + sale_opens_in_ms), None)
        .with_waiting_room(WaitingRoom {
            opens_at_ms: now - 60_000,
            admission_seconds: 60,
            admit_per_second: None,
            pow_bits: 0,
        })
}

fn buyer(name: &str) -> BuyerId {
    BuyerId::parse(name).expect("a valid buyer")
}

async fn join<S: WaitingRooms>(t: &Rooms<S>, sale: &SaleId, who: &str) -> JoinOutcome {
    t.store.join(sale, &buyer(who), None, None).await.unwrap()
}

async fn step<S: WaitingRooms>(t: &Rooms<S>, sale: &SaleId) -> QueueState {
    t.store
        .step(sale)
        .await
        .unwrap()
        .expect("the sale has a waiting room")
}

/// Sleep until `ms` (epoch) has passed on this machine's clock, which the store's shares.
async fn until(ms: i64) {
    let wait = ms - EpochMs::now().get();
    if wait > 0 {
        tokio::time::sleep(Duration::from_millis(wait as u64 + 50)).await;
    }
}

pub async fn a_sale_without_a_waiting_room_has_no_queue<S: WaitingRooms + SaleLoader>(
    t: &Rooms<S>,
) {
    let def = sale(&fresh_sale_id(), 5);
    loaded(t, &def, 5).await;
    assert_eq!(join(t, &def.id, "ann").await, JoinOutcome::NoQueue);
    assert_eq!(t.store.step(&def.id).await.unwrap(), None);
    assert_eq!(t.store.peek(&def.id).await.unwrap(), None);
    assert!(!t.store.control(&def.id, Some(true), None).await.unwrap());
}

pub async fn joining_before_the_queue_opens_is_refused_with_its_opening<
    S: WaitingRooms + SaleLoader,
>(
    t: &Rooms<S>,
) {
    let mut def = room_sale(5, 120_000);
    let opens = EpochMs::now().get() + 60_000;
    def.waiting_room.as_mut().unwrap().opens_at_ms = opens;
    loaded(t, &def, 5).await;
    assert_eq!(
        join(t, &def.id, "ann").await,
        JoinOutcome::NotOpen { opens_at_ms: opens }
    );
}

pub async fn a_buyer_holds_one_place_and_join_indexes_follow_arrival<
    S: WaitingRooms + SaleLoader,
>(
    t: &Rooms<S>,
) {
    let def = room_sale(5, 60_000);
    loaded(t, &def, 5).await;
    assert_eq!(join(t, &def.id, "ann").await, JoinOutcome::Joined(0));
    assert_eq!(join(t, &def.id, "bob").await, JoinOutcome::Joined(1));
    assert_eq!(join(t, &def.id, "ann").await, JoinOutcome::Existing(0));
    assert_eq!(step(t, &def.id).await.joined, 2);
}

pub async fn a_proof_of_work_challenge_is_used_once<S: WaitingRooms + SaleLoader>(t: &Rooms<S>) {
    let def = room_sale(5, 60_000);
    loaded(t, &def, 5).await;
    let joined = t
        .store
        .join(&def.id, &buyer("ann"), None, Some("c-1"))
        .await;
    assert_eq!(joined.unwrap(), JoinOutcome::Joined(0));
    let again = t
        .store
        .join(&def.id, &buyer("bob"), None, Some("c-1"))
        .await;
    assert_eq!(again.unwrap(), JoinOutcome::ChallengeReused);
}

pub async fn an_expired_place_is_replaced_by_one_at_the_back<S: WaitingRooms + SaleLoader>(
    t: &Rooms<S>,
) {
    let def = room_sale(5, 60_000);
    loaded(t, &def, 5).await;
    join(t, &def.id, "ann").await;
    join(t, &def.id, "bob").await;
    let requeued = t.store.join(&def.id, &buyer("ann"), Some(0), None).await;
    assert_eq!(requeued.unwrap(), JoinOutcome::Joined(2));
    assert_eq!(join(t, &def.id, "ann").await, JoinOutcome::Existing(2));
}

pub async fn before_the_draw_the_commitment_is_public_and_the_seed_is_not<
    S: WaitingRooms + SaleLoader,
>(
    t: &Rooms<S>,
) {
    let def = room_sale(5, 60_000);
    loaded(t, &def, 5).await;
    join(t, &def.id, "ann").await;
    let s = step(t, &def.id).await;
    assert_eq!(s.commitment.len(), 64, "hex SHA-256: {}", s.commitment);
    assert_eq!(s.drawn, None, "no seed before the opening");
    assert_eq!((s.joined, s.admitted), (1, 0));
}

pub async fn the_draw_at_the_opening_fixes_the_pre_queue_and_reveals_the_committed_seed<
    S: WaitingRooms + SaleLoader,
>(
    t: &Rooms<S>,
) {
    let def = room_sale(5, 400);
    loaded(t, &def, 5).await;
    for who in ["ann", "bob", "cat"] {
        join(t, &def.id, who).await;
    }
    let commitment = step(t, &def.id).await.commitment;
    until(def.opens_at_ms.unwrap()).await;
    let s = step(t, &def.id).await;
    let (seed, cohort) = s.drawn.clone().expect("drawn at the opening");
    assert_eq!(cohort, 3, "the pre-queue is who joined before the opening");
    assert_eq!(seed.commitment(), commitment);
    assert_eq!(
        hex::encode(sha2::Sha256::digest(seed.bytes())),
        commitment,
        "the commitment is SHA-256 of the revealed seed"
    );
    assert_eq!(join(t, &def.id, "dan").await, JoinOutcome::Joined(3));
    let after = step(t, &def.id).await;
    assert_eq!(
        after.drawn.map(|(_, n)| n),
        Some(3),
        "a later join does not move the draw"
    );
}

pub async fn a_peek_reads_the_state_and_moves_nothing<S: WaitingRooms + SaleLoader>(t: &Rooms<S>) {
    let def = room_sale(5, 300);
    loaded(t, &def, 5).await;
    join(t, &def.id, "ann").await;
    until(def.opens_at_ms.unwrap()).await;
    let peeked = t.store.peek(&def.id).await.unwrap().unwrap();
    assert_eq!((peeked.drawn.is_some(), peeked.admitted), (false, 0));
    let s = step(t, &def.id).await;
    assert_eq!((s.drawn.is_some(), s.admitted), (true, 1));
    let peeked = t.store.peek(&def.id).await.unwrap().unwrap();
    assert_eq!((peeked.admitted, peeked.stepped), (1, (0, 0)));
}

pub async fn the_inlet_admits_no_more_than_the_units_left<S: WaitingRooms + SaleLoader>(
    t: &Rooms<S>,
) {
    let def = room_sale(2, -1_000);
    loaded(t, &def, 2).await;
    for who in ["ann", "bob", "cat", "dan", "eve"] {
        join(t, &def.id, who).await;
    }
    let s = step(t, &def.id).await;
    assert_eq!((s.admitted, s.outstanding(), s.waiting()), (2, 2, 3));
    assert_eq!(s.stepped, (2, 0));
    assert_eq!(s.batches.len(), 1);
    assert_eq!((s.batches[0].first, s.batches[0].last), (1, 2));
    assert!(
        s.batches[0].expires_ms > s.now_ms,
        "admissions live a while"
    );
}

pub async fn the_queue_steps_at_most_once_a_second_whoever_asks<S: WaitingRooms + SaleLoader>(
    t: &Rooms<S>,
) {
    let def = room_sale(5, -1_000);
    loaded(t, &def, 5).await;
    join(t, &def.id, "ann").await;
    assert_eq!(step(t, &def.id).await.admitted, 1);
    join(t, &def.id, "bob").await;
    let again = step(t, &def.id).await;
    assert_eq!(
        (again.admitted, again.stepped),
        (1, (0, 0)),
        "within the second a read only reads"
    );
}

pub async fn a_paused_inlet_admits_nobody_until_resumed<S: WaitingRooms + SaleLoader>(
    t: &Rooms<S>,
) {
    let def = room_sale(5, -1_000);
    loaded(t, &def, 5).await;
    assert!(t.store.control(&def.id, Some(true), None).await.unwrap());
    join(t, &def.id, "ann").await;
    let s = step(t, &def.id).await;
    assert_eq!((s.paused, s.admitted), (true, 0));
    assert!(t.store.control(&def.id, Some(false), None).await.unwrap());
    until(s.now_ms + 1_000).await;
    let s = step(t, &def.id).await;
    assert_eq!((s.paused, s.admitted), (false, 1));
}

pub async fn an_admission_used_to_buy_counts_once_as_used<
    S: WaitingRooms + SaleLoader + ReservationStore,
>(
    t: &Rooms<S>,
) {
    let def = room_sale(5, -1_000).with_limit(2);
    loaded(t, &def, 5).await;
    join(t, &def.id, "ann").await;
    let s = step(t, &def.id).await;
    let batch = &s.batches[0];
    let admission = Admission {
        index: 0,
        batch: batch.id,
        expires_ms: batch.expires_ms,
    };
    for _ in 0..2 {
        let mut req = buy(&def.id, "ann", 1, None);
        req.admission = Some(admission);
        let r = t.store.reserve(&req).await.unwrap();
        assert!(matches!(r, Reservation::Reserved { .. }), "{r:?}");
    }
    let now = t.store.peek(&def.id).await.unwrap().unwrap();
    assert_eq!(
        (now.used, now.outstanding()),
        (1, 0),
        "one admission, one use"
    );
}

pub async fn a_drawn_queue_with_no_unit_left_is_sold_out<S: WaitingRooms + SaleLoader>(
    t: &Rooms<S>,
) {
    let def = room_sale(1, -1_000);
    loaded(t, &def, 0).await;
    join(t, &def.id, "ann").await;
    let s = step(t, &def.id).await;
    assert!(s.sold_out, "nothing left, nothing held");
    assert_eq!(s.admitted, 0);
}

#[cfg(test)]
mod on_memory {
    use super::Rooms;
    use crate::memory::MemoryStore;

    crate::waiting_room_contract!(async {
        Rooms {
            store: MemoryStore::default(),
        }
    });
}
