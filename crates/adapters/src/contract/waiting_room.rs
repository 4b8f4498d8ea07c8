//! A sale's waiting room as a store keeps it (Redis' `queue_*.lua`; in memory for unit tests):
//! places, the draw, the inlet's steps and the operator's controls, and the admission a buy
//! uses.

use super::{buy, fresh_sale_id, sale, LoadForTests};
use flashflow::domain::rehydrate::Plan;
use flashflow::domain::sale::Checkout;
use flashflow::domain::waiting_room::draw::{BeaconRound, FinalDraw};
use flashflow::domain::waiting_room::queue::QueueState;
use flashflow::domain::waiting_room::tokens::Admission;
use flashflow::domain::waiting_room::{WaitingRoom, MAX_JOINS_PER_MINUTE};
use flashflow::domain::{
    BuyerId, EpochMs, OrderMessage, OrderState, OrderStatus, Refusal, Reservation, SaleDefinition,
    SaleId,
};
use flashflow::ports::{
    HoldRecord, JoinOutcome, ReservationStore, ReturnStock, SaleLoader, WaitingRooms,
};
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
                one_entry_tag_holds_one_place_and_a_second_buyer_under_it_stores_nothing,
                the_entry_policy_loaded_with_the_sale_is_in_the_queues_state,
                an_expired_place_is_replaced_by_one_at_the_back,
                before_the_draw_the_commitment_is_public_and_the_seed_is_not,
                the_draw_at_the_opening_fixes_the_pre_queue_and_reveals_the_committed_seed,
                a_peek_reads_the_state_and_moves_nothing,
                the_inlet_admits_nobody_until_the_draw_is_final,
                the_cohort_lists_the_pre_queues_buyers_by_join_index,
                the_first_final_draw_stands_and_its_leaves_are_kept,
                one_caller_at_a_time_holds_the_lease_on_making_the_draw_final,
                the_inlet_admits_no_more_than_the_units_left,
                the_queue_steps_at_most_once_a_second_whoever_asks,
                a_paused_inlet_admits_nobody_until_resumed,
                an_admission_is_spent_by_its_first_reservation,
                a_unit_given_back_does_not_re_arm_its_admission,
                a_retry_of_an_order_is_answered_after_its_admission_expired,
                an_admission_of_a_lost_queue_admits_nobody,
                a_drawn_queue_with_no_unit_left_is_sold_out,
                while_a_hold_is_open_the_stock_gone_is_sold_out_for_now_only,
                a_rehydrate_restores_the_open_holds_so_sold_out_waits_for_them,
                a_rehydrate_does_not_restore_a_hold_whose_unit_came_back,
                a_closed_sale_admits_nobody_and_its_queue_says_so,
                a_buyer_joining_too_often_is_told_when_to_come_back,
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
            entry: None,
        })
}

fn buyer(name: &str) -> BuyerId {
    BuyerId::parse(name).expect("a valid buyer")
}

async fn join<S: WaitingRooms>(t: &Rooms<S>, sale: &SaleId, who: &str) -> JoinOutcome {
    t.store
        .join(sale, &buyer(who), None, None, None)
        .await
        .unwrap()
}

/// A join's kind and join index, its epoch aside.
fn at(outcome: JoinOutcome) -> (&'static str, u64) {
    match outcome {
        JoinOutcome::Joined(p) => ("joined", p.index),
        JoinOutcome::Existing(p) => ("existing", p.index),
        other => panic!("no place: {other:?}"),
    }
}

/// The admission of join index `index` in the first live batch of `s`.
fn admission_of(s: &QueueState, index: u64) -> Admission {
    let batch = &s.batches[0];
    Admission {
        index,
        batch: batch.id,
        expires_ms: batch.expires_ms,
        epoch: s.epoch,
    }
}

/// A buy of one unit by `who` with `admission` (and an Idempotency-Key when given).
async fn buy_admitted<S: ReservationStore>(
    t: &Rooms<S>,
    sale: &SaleId,
    who: &str,
    admission: Admission,
    key: Option<&str>,
) -> Reservation {
    let mut req = buy(sale, who, 1, key);
    req.admission = Some(admission);
    t.store.reserve(&req).await.unwrap()
}

/// One step, as a queue process sees it: a draw waiting to be made final is made final first
/// (with no round and an empty list: what it holds is another test's), then the queue steps.
async fn step<S: WaitingRooms>(t: &Rooms<S>, sale: &SaleId) -> QueueState {
    let s = raw_step(t, sale).await;
    match (&s.drawn, &s.final_draw) {
        (Some((seed, _)), None) => {
            let draw = FinalDraw::new(seed, [0; 32], None);
            assert!(t.store.finalize(sale, s.epoch, &draw, &[]).await.unwrap());
            raw_step(t, sale).await
        }
        _ => s,
    }
}

/// One step of the store, nothing else.
async fn raw_step<S: WaitingRooms>(t: &Rooms<S>, sale: &SaleId) -> QueueState {
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
    assert_eq!(at(join(t, &def.id, "ann").await), ("joined", 0));
    assert_eq!(at(join(t, &def.id, "bob").await), ("joined", 1));
    assert_eq!(at(join(t, &def.id, "ann").await), ("existing", 0));
    assert_eq!(step(t, &def.id).await.joined, 2);
}

pub async fn a_proof_of_work_challenge_is_used_once<S: WaitingRooms + SaleLoader>(t: &Rooms<S>) {
    let def = room_sale(5, 60_000);
    loaded(t, &def, 5).await;
    let joined = t
        .store
        .join(&def.id, &buyer("ann"), None, Some("c-1"), None)
        .await;
    assert_eq!(at(joined.unwrap()), ("joined", 0));
    let again = t
        .store
        .join(&def.id, &buyer("bob"), None, Some("c-1"), None)
        .await;
    assert_eq!(again.unwrap(), JoinOutcome::ChallengeReused);
}

pub async fn one_entry_tag_holds_one_place_and_a_second_buyer_under_it_stores_nothing<
    S: WaitingRooms + SaleLoader,
>(
    t: &Rooms<S>,
) {
    let def = room_sale(5, 60_000);
    loaded(t, &def, 5).await;
    let tagged = |who: &'static str, tag: &'static str| {
        let (sale, store) = (def.id.clone(), &t.store);
        async move {
            store
                .join(&sale, &buyer(who), None, None, Some(tag))
                .await
                .unwrap()
        }
    };
    assert_eq!(at(tagged("ann", "phone-1").await), ("joined", 0));
    assert_eq!(tagged("bob", "phone-1").await, JoinOutcome::AlreadyEntered);
    assert_eq!(
        at(tagged("ann", "phone-1").await),
        ("existing", 0),
        "the holder joins again as before"
    );
    assert_eq!(
        at(tagged("bob", "phone-2").await),
        ("joined", 1),
        "the refused join took no join index"
    );
    assert_eq!(step(t, &def.id).await.joined, 2);
}

pub async fn the_entry_policy_loaded_with_the_sale_is_in_the_queues_state<
    S: WaitingRooms + SaleLoader + flashflow::ports::LiveSales,
>(
    t: &Rooms<S>,
) {
    let mut def = room_sale(5, 60_000);
    let policy = flashflow::domain::waiting_room::entry::Entry {
        require_claims: [("phone_number_verified".to_owned(), "true".to_owned())].into(),
        one_per: Some("phone_number".into()),
    };
    if let Some(room) = def.waiting_room.as_mut() {
        room.entry = Some(policy.clone());
    }
    loaded(t, &def, 5).await;
    assert_eq!(step(t, &def.id).await.entry, Some(policy.clone()));
    let live = t.store.live_sale(&def.id).await.unwrap().unwrap();
    assert_eq!(
        live.entry,
        Some(policy),
        "the storefront's view says who may join"
    );
    if let Some(room) = def.waiting_room.as_mut() {
        room.entry = None;
    }
    loaded(t, &def, 5).await;
    assert_eq!(step(t, &def.id).await.entry, None, "a reload's terms win");
}

pub async fn an_expired_place_is_replaced_by_one_at_the_back<S: WaitingRooms + SaleLoader>(
    t: &Rooms<S>,
) {
    let def = room_sale(5, 60_000);
    loaded(t, &def, 5).await;
    join(t, &def.id, "ann").await;
    join(t, &def.id, "bob").await;
    let requeued = t
        .store
        .join(&def.id, &buyer("ann"), Some(0), None, None)
        .await;
    assert_eq!(at(requeued.unwrap()), ("joined", 2));
    assert_eq!(at(join(t, &def.id, "ann").await), ("existing", 2));
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
    assert_eq!(at(join(t, &def.id, "dan").await), ("joined", 3));
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

pub async fn the_inlet_admits_nobody_until_the_draw_is_final<S: WaitingRooms + SaleLoader>(
    t: &Rooms<S>,
) {
    let def = room_sale(5, 300);
    loaded(t, &def, 5).await;
    join(t, &def.id, "ann").await;
    until(def.opens_at_ms.unwrap()).await;
    let s = raw_step(t, &def.id).await;
    assert_eq!((s.drawn.is_some(), s.final_draw.is_none()), (true, true));
    assert_eq!(s.admitted, 0, "the order is not known yet");
    let (seed, _) = s.drawn.clone().unwrap();
    let draw = FinalDraw::new(&seed, [7; 32], None);
    assert!(t
        .store
        .finalize(&def.id, s.epoch, &draw, &[[1; 32]])
        .await
        .unwrap());
    let s = raw_step(t, &def.id).await;
    assert_eq!(s.final_draw, Some(draw));
    assert_eq!(
        s.admitted, 1,
        "admitted at the first step after it is final"
    );
}

pub async fn the_cohort_lists_the_pre_queues_buyers_by_join_index<S: WaitingRooms + SaleLoader>(
    t: &Rooms<S>,
) {
    let def = room_sale(5, 400);
    loaded(t, &def, 5).await;
    let mut epoch = 0;
    for who in ["ann", "bob", "cat"] {
        if let JoinOutcome::Joined(p) = join(t, &def.id, who).await {
            epoch = p.epoch;
        }
    }
    until(def.opens_at_ms.unwrap()).await;
    join(t, &def.id, "dan").await;
    let cohort = t.store.cohort(&def.id, epoch, 3).await.unwrap();
    assert_eq!(
        cohort,
        Some(vec![
            Some(buyer("ann")),
            Some(buyer("bob")),
            Some(buyer("cat"))
        ]),
        "dan joined after the opening"
    );
    assert_eq!(
        t.store.cohort(&def.id, epoch + 1, 3).await.unwrap(),
        None,
        "another epoch's queue"
    );
}

pub async fn the_first_final_draw_stands_and_its_leaves_are_kept<S: WaitingRooms + SaleLoader>(
    t: &Rooms<S>,
) {
    let def = room_sale(5, -1_000);
    loaded(t, &def, 5).await;
    join(t, &def.id, "ann").await;
    let s = raw_step(t, &def.id).await;
    let (seed, _) = s.drawn.clone().expect("drawn");
    assert_eq!(t.store.leaves(&def.id, s.epoch).await.unwrap(), None);
    let round = BeaconRound {
        round: 42,
        randomness: [4; 32],
        signature: vec![9; 48],
    };
    let first = FinalDraw::new(&seed, [1; 32], Some(round));
    let leaves = [[5u8; 32], [6; 32], [7; 32]];
    assert!(
        !t.store
            .finalize(&def.id, s.epoch + 1, &first, &leaves)
            .await
            .unwrap(),
        "another epoch"
    );
    assert!(t
        .store
        .finalize(&def.id, s.epoch, &first, &leaves)
        .await
        .unwrap());
    let second = FinalDraw::new(&seed, [2; 32], None);
    assert!(t
        .store
        .finalize(&def.id, s.epoch, &second, &[])
        .await
        .unwrap());
    assert_eq!(
        raw_step(t, &def.id).await.final_draw,
        Some(first),
        "the first stands"
    );
    assert_eq!(
        t.store.leaves(&def.id, s.epoch).await.unwrap(),
        Some(leaves.to_vec())
    );
    assert_eq!(t.store.leaves(&def.id, s.epoch + 1).await.unwrap(), None);
}

pub async fn one_caller_at_a_time_holds_the_lease_on_making_the_draw_final<
    S: WaitingRooms + SaleLoader,
>(
    t: &Rooms<S>,
) {
    let def = room_sale(5, 300);
    loaded(t, &def, 5).await;
    join(t, &def.id, "ann").await;
    let epoch = raw_step(t, &def.id).await.epoch;
    assert!(
        !t.store.claim_finalize(&def.id, epoch, 300).await.unwrap(),
        "nothing to make final before the opening"
    );
    until(def.opens_at_ms.unwrap()).await;
    let s = raw_step(t, &def.id).await;
    assert!(t.store.claim_finalize(&def.id, epoch, 300).await.unwrap());
    assert!(
        !t.store.claim_finalize(&def.id, epoch, 300).await.unwrap(),
        "held by the first caller"
    );
    assert!(!t
        .store
        .claim_finalize(&def.id, epoch + 1, 300)
        .await
        .unwrap());
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(
        t.store.claim_finalize(&def.id, epoch, 300).await.unwrap(),
        "a lease outlived is taken over"
    );
    let (seed, _) = s.drawn.clone().unwrap();
    let draw = FinalDraw::new(&seed, [1; 32], None);
    assert!(t.store.finalize(&def.id, epoch, &draw, &[]).await.unwrap());
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(
        !t.store.claim_finalize(&def.id, epoch, 300).await.unwrap(),
        "nothing to do once final"
    );
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

pub async fn an_admission_is_spent_by_its_first_reservation<
    S: WaitingRooms + SaleLoader + ReservationStore,
>(
    t: &Rooms<S>,
) {
    let def = room_sale(5, -1_000).with_limit(2);
    loaded(t, &def, 5).await;
    join(t, &def.id, "ann").await;
    let admission = admission_of(&step(t, &def.id).await, 0);
    let Reservation::Reserved { order_id, .. } =
        buy_admitted(t, &def.id, "ann", admission, None).await
    else {
        panic!("the first buy reserves");
    };
    assert_eq!(
        buy_admitted(t, &def.id, "ann", admission, None).await,
        Reservation::Refused(Refusal::AdmissionUsed { order_id }),
        "one admission, one order, within the buyer's limit or not"
    );
    assert_eq!(t.store.spent_by(&def.id, 0).await.unwrap(), Some(order_id));
    let now = t.store.peek(&def.id).await.unwrap().unwrap();
    assert_eq!(
        (now.used, now.outstanding()),
        (1, 0),
        "one admission, one use"
    );
}

/// `order` as the ledger holds it once its hold moved to `state`.
fn hold(order: &OrderMessage, state: OrderState) -> HoldRecord {
    HoldRecord {
        status: OrderStatus::of(order, state),
        payment_intent: None,
        price: 100,
        currency: "eur".into(),
        round: order.round,
        stock_returned: false,
        status_written: false,
    }
}

/// A checkout sale of `stock` with a waiting room, open now.
fn checkout_room_sale(stock: u32) -> SaleDefinition {
    room_sale(stock, -1_000).with_checkout(Checkout {
        hold_seconds: 60,
        price: 100,
        currency: "eur".into(),
    })
}

pub async fn a_unit_given_back_does_not_re_arm_its_admission<
    S: WaitingRooms + SaleLoader + ReservationStore + ReturnStock,
>(
    t: &Rooms<S>,
) {
    let def = checkout_room_sale(1);
    loaded(t, &def, 1).await;
    join(t, &def.id, "ann").await;
    let admission = admission_of(&step(t, &def.id).await, 0);
    let Reservation::Reserved {
        message, order_id, ..
    } = buy_admitted(t, &def.id, "ann", admission, None).await
    else {
        panic!("held");
    };
    let order = OrderMessage::parse(&message).unwrap();
    t.store
        .return_stock(&hold(&order, OrderState::Cancelled))
        .await
        .unwrap();
    assert_eq!(
        buy_admitted(t, &def.id, "ann", admission, None).await,
        Reservation::Refused(Refusal::AdmissionUsed { order_id }),
        "the unit came back; the admission did not"
    );
}

pub async fn a_retry_of_an_order_is_answered_after_its_admission_expired<
    S: WaitingRooms + SaleLoader + ReservationStore,
>(
    t: &Rooms<S>,
) {
    let def = room_sale(5, -1_000);
    loaded(t, &def, 5).await;
    join(t, &def.id, "ann").await;
    let admission = admission_of(&step(t, &def.id).await, 0);
    let Reservation::Reserved { order_id, .. } =
        buy_admitted(t, &def.id, "ann", admission, Some("k-1")).await
    else {
        panic!("reserved");
    };
    let expired = Admission {
        expires_ms: EpochMs::now().get() - 1,
        ..admission
    };
    let again = buy_admitted(t, &def.id, "ann", expired, Some("k-1")).await;
    assert!(
        matches!(again, Reservation::Duplicate { order_id: o, .. } if o == order_id),
        "{again:?}"
    );
    assert_eq!(
        buy_admitted(t, &def.id, "ann", expired, Some("k-2")).await,
        Reservation::Refused(Refusal::NotAdmitted),
        "a new order needs a live admission"
    );
}

pub async fn an_admission_of_a_lost_queue_admits_nobody<
    S: WaitingRooms + SaleLoader + ReservationStore,
>(
    t: &Rooms<S>,
) {
    let def = room_sale(5, -1_000);
    loaded(t, &def, 5).await;
    join(t, &def.id, "ann").await;
    let admission = admission_of(&step(t, &def.id).await, 0);
    let other_queue = Admission {
        epoch: admission.epoch + 1,
        ..admission
    };
    assert_eq!(
        buy_admitted(t, &def.id, "ann", other_queue, None).await,
        Reservation::Refused(Refusal::NotAdmitted)
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

pub async fn while_a_hold_is_open_the_stock_gone_is_sold_out_for_now_only<
    S: WaitingRooms + SaleLoader + ReservationStore + ReturnStock,
>(
    t: &Rooms<S>,
) {
    let def = checkout_room_sale(1);
    loaded(t, &def, 1).await;
    join(t, &def.id, "ann").await;
    join(t, &def.id, "bob").await;
    let admission = admission_of(&step(t, &def.id).await, 0);
    let Reservation::Reserved { message, .. } =
        buy_admitted(t, &def.id, "ann", admission, None).await
    else {
        panic!("held");
    };
    let now = t.store.peek(&def.id).await.unwrap().unwrap();
    assert_eq!(
        (now.remaining, now.held, now.sold_out),
        (0, 1, false),
        "the hold may end and give its unit back: sold out for now"
    );
    let order = OrderMessage::parse(&message).unwrap();
    t.store
        .return_stock(&hold(&order, OrderState::Confirmed))
        .await
        .unwrap();
    let paid = t.store.peek(&def.id).await.unwrap().unwrap();
    assert_eq!(
        (paid.remaining, paid.held, paid.sold_out),
        (0, 0, true),
        "paid: nothing can come back"
    );
}

/// The ledger's word after a Redis loss: no unit left, `holds` open (or ending), in round 1.
fn rebuilt(holds: Vec<(uuid::Uuid, EpochMs)>) -> Plan {
    Plan {
        remaining: 0,
        remaining_if_new: 0,
        returned: Vec::new(),
        round: 1,
        buyers: Vec::new(),
        keys: Vec::new(),
        holds,
        draw_seed: Some(super::random_seed()),
    }
}

pub async fn a_rehydrate_restores_the_open_holds_so_sold_out_waits_for_them<
    S: WaitingRooms + SaleLoader,
>(
    t: &Rooms<S>,
) {
    let def = checkout_room_sale(1);
    let pay_by = EpochMs::now().plus(Duration::from_secs(60));
    t.store
        .rehydrate(&def, &rebuilt(vec![(uuid::Uuid::now_v7(), pay_by)]))
        .await
        .unwrap();
    join(t, &def.id, "ann").await;
    let s = t.store.peek(&def.id).await.unwrap().unwrap();
    assert_eq!(
        (s.remaining, s.held, s.sold_out),
        (0, 1, false),
        "the ledger's hold may still give its unit back"
    );
}

pub async fn a_rehydrate_does_not_restore_a_hold_whose_unit_came_back<
    S: WaitingRooms + SaleLoader + ReservationStore + ReturnStock,
>(
    t: &Rooms<S>,
) {
    let def = checkout_room_sale(1);
    loaded(t, &def, 1).await;
    join(t, &def.id, "ann").await;
    let admission = admission_of(&step(t, &def.id).await, 0);
    let Reservation::Reserved { message, .. } =
        buy_admitted(t, &def.id, "ann", admission, None).await
    else {
        panic!("held");
    };
    let order = OrderMessage::parse(&message).unwrap();
    // The ledger was read while the hold was open; the unit came back before the rebuild.
    t.store
        .return_stock(&hold(&order, OrderState::Cancelled))
        .await
        .unwrap();
    let pay_by = EpochMs(order.pay_by_ms.expect("a hold has a pay_by"));
    t.store
        .rehydrate(&def, &rebuilt(vec![(order.order_id, pay_by)]))
        .await
        .unwrap();
    let s = t.store.peek(&def.id).await.unwrap().unwrap();
    assert_eq!(s.held, 0, "its unit is back: nothing is held");
}

pub async fn a_closed_sale_admits_nobody_and_its_queue_says_so<S: WaitingRooms + SaleLoader>(
    t: &Rooms<S>,
) {
    let now = EpochMs::now().get();
    let def = room_sale(5, -1_000).with_window(Some(now - 1_000), Some(now + 300));
    loaded(t, &def, 5).await;
    join(t, &def.id, "ann").await;
    until(now + 300).await;
    let s = step(t, &def.id).await;
    assert_eq!((s.closed, s.admitted), (true, 0));
    assert!(matches!(
        join(t, &def.id, "bob").await,
        JoinOutcome::Closed { .. }
    ));
}

pub async fn a_buyer_joining_too_often_is_told_when_to_come_back<S: WaitingRooms + SaleLoader>(
    t: &Rooms<S>,
) {
    let def = room_sale(5, 60_000);
    loaded(t, &def, 5).await;
    let mut outcomes = Vec::new();
    for _ in 0..=MAX_JOINS_PER_MINUTE {
        outcomes.push(join(t, &def.id, "ann").await);
    }
    let last = outcomes.pop().unwrap();
    assert!(
        matches!(last, JoinOutcome::TooMany { retry_after_s } if (1..=60).contains(&retry_after_s)),
        "{last:?}"
    );
    assert!(outcomes
        .iter()
        .all(|o| matches!(o, JoinOutcome::Joined(_) | JoinOutcome::Existing(_))));
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
