//! The waiting room's use cases on the in-memory store: join, a ticket's place and admission,
//! the draw's record, a challenge, the operator's controls. The same flows run against Redis in
//! `flashflow-local`'s integration tests; the store's own rules are its contract's.

use super::*;
use crate::waiting_room::gate::AdmissionGate;
use flashflow::domain::waiting_room::entry::Claims;
use flashflow::domain::waiting_room::tokens::solve;
use flashflow::domain::waiting_room::WaitingRoom;
use flashflow::domain::SaleDefinition;
use flashflow_adapters::contract::{fresh_sale_id, LoadForTests};
use flashflow_adapters::memory::{MemoryBeacon, MemoryStore};
use std::time::Duration;

const KEY: &[u8] = b"waiting-room-unit-tests-key-0123456789";

fn keys() -> TokenKeys {
    TokenKeys::new(KEY).unwrap()
}

/// A sale of `stock` whose queue opened a minute ago and which opens `sale_opens_in_ms` from
/// now, with `pow_bits` of proof of work.
async fn queue(
    stock: u32,
    sale_opens_in_ms: i64,
    pow_bits: u8,
) -> (Queue<MemoryStore, MemoryBeacon>, SaleId) {
    let def = room(stock, sale_opens_in_ms, pow_bits);
    let store = MemoryStore::default();
    store.load_sale(&def, stock).await.unwrap();
    (
        Queue::new(
            store,
            MemoryBeacon::default(),
            keys(),
            Metrics::new("queue"),
        ),
        def.id,
    )
}

/// The sale [`queue`] loads.
fn room(stock: u32, sale_opens_in_ms: i64, pow_bits: u8) -> SaleDefinition {
    let now = EpochMs::now().get();
    SaleDefinition::new(fresh_sale_id(), stock)
        .with_window(Some(now + sale_opens_in_ms), None)
        .with_waiting_room(WaitingRoom {
            opens_at_ms: now - 60_000,
            admission_seconds: 60,
            admit_per_second: None,
            pow_bits,
            entry: None,
        })
}

fn buyer(name: &str) -> BuyerId {
    BuyerId::parse(name).unwrap()
}

/// Past the process's copy of the state: the next read asks the store.
async fn fresh() {
    tokio::time::sleep(states::FRESH_FOR + Duration::from_millis(20)).await;
}

/// Past the store's next step (it steps a queue at most once a second) and this process's copy.
async fn next_step() {
    tokio::time::sleep(Duration::from_millis(1_050)).await;
}

#[tokio::test]
async fn a_place_in_a_queue_rebuilt_since_this_process_last_read_it_waits_and_a_lost_one_rejoins() {
    let def = room(1, 60_000, 0);
    let store = MemoryStore::default();
    store.load_sale(&def, 1).await.unwrap();
    let q = Queue::new(
        store,
        MemoryBeacon::default(),
        keys(),
        Metrics::new("queue"),
    );
    let (_, lost) = q
        .join(&def.id, &buyer("eve"), &Claims::new(), None)
        .await
        .unwrap();
    // The store loses the sale and the operator rebuilds it: a new queue, in a new epoch, while
    // this process still holds the state it read before the loss (fresh for a while yet).
    q.store.flush();
    q.store.load_sale(&def, 1).await.unwrap();
    let (_, new) = q
        .join(&def.id, &buyer("fay"), &Claims::new(), None)
        .await
        .unwrap();
    assert_eq!(new.state, "waiting", "a place of the new queue: {new:?}");
    let view = q
        .status(&def.id, &buyer("eve"), &lost.ticket)
        .await
        .unwrap();
    assert_eq!(view.state, "rejoin", "a place of the lost queue: {view:?}");
}

/// A queue whose sale lets one place per verified phone number.
async fn phone_queue() -> (Queue<MemoryStore, MemoryBeacon>, SaleId) {
    let mut def = room(5, 60_000, 0);
    if let Some(room) = def.waiting_room.as_mut() {
        room.entry = Some(flashflow::domain::waiting_room::entry::Entry {
            require_claims: [("phone_number_verified".to_owned(), "true".to_owned())].into(),
            one_per: Some("phone_number".into()),
        });
    }
    let store = MemoryStore::default();
    store.load_sale(&def, 5).await.unwrap();
    (
        Queue::new(
            store,
            MemoryBeacon::default(),
            keys(),
            Metrics::new("queue"),
        ),
        def.id,
    )
}

fn phone(number: &str, verified: bool) -> Claims {
    [
        ("phone_number".to_owned(), number.to_owned()),
        ("phone_number_verified".to_owned(), verified.to_string()),
    ]
    .into()
}

#[tokio::test]
async fn a_second_identity_with_the_same_phone_number_is_refused_and_names_the_claim() {
    let (q, sale) = phone_queue().await;
    let a = phone("+1 555 0100", true);
    assert!(q.join(&sale, &buyer("ann"), &a, None).await.unwrap().0);
    match q.join(&sale, &buyer("bob"), &a, None).await {
        Err(QueueError::AlreadyEntered { claim }) => assert_eq!(claim, "phone_number"),
        other => panic!("{other:?}"),
    }
    assert!(
        !q.join(&sale, &buyer("ann"), &a, None).await.unwrap().0,
        "the holder's own place"
    );
}

#[tokio::test]
async fn an_unverified_identity_is_not_let_in_and_takes_no_place() {
    let (q, sale) = phone_queue().await;
    assert!(matches!(
        q.join(&sale, &buyer("cat"), &phone("+1 555 0101", false), None)
            .await,
        Err(QueueError::EntryNotAllowed(_))
    ));
    let (_, view) = q
        .join(&sale, &buyer("dan"), &phone("+1 555 0102", true), None)
        .await
        .unwrap();
    assert_eq!(view.join_index, Some(0), "cat took no join index");
}

#[tokio::test]
async fn a_buyer_joins_once_and_a_second_join_answers_the_same_place() {
    let (q, sale) = queue(5, -1_000, 0).await;
    let (created, first) = q
        .join(&sale, &buyer("ann"), &Claims::new(), None)
        .await
        .unwrap();
    let (again, second) = q
        .join(&sale, &buyer("ann"), &Claims::new(), None)
        .await
        .unwrap();
    assert!(created && !again);
    assert_eq!(first.ticket, second.ticket, "one place, one ticket");
}

#[tokio::test]
async fn an_admitted_place_carries_a_token_the_buy_gate_accepts_for_its_buyer_only() {
    let (q, sale) = queue(5, -1_000, 0).await;
    let (_, joined) = q
        .join(&sale, &buyer("ann"), &Claims::new(), None)
        .await
        .unwrap();
    next_step().await;
    let view = q
        .status(&sale, &buyer("ann"), &joined.ticket)
        .await
        .unwrap();
    assert_eq!(view.state, "admitted", "{view:?}");
    let token = view.admission_token.expect("a token");
    let gate = AdmissionGate::new(Some(keys()));
    let now = EpochMs::now().get();
    assert!(gate
        .check(&sale, &buyer("ann"), Some(&token), false, now)
        .is_ok());
    assert!(gate
        .check(&sale, &buyer("bob"), Some(&token), false, now)
        .is_err());
}

#[tokio::test]
async fn a_ticket_is_found_only_for_its_own_buyer_and_sale() {
    let (q, sale) = queue(5, 60_000, 0).await;
    let (_, joined) = q
        .join(&sale, &buyer("ann"), &Claims::new(), None)
        .await
        .unwrap();
    assert!(matches!(
        q.status(&sale, &buyer("bob"), &joined.ticket).await,
        Err(QueueError::TicketNotFound)
    ));
    assert!(matches!(
        q.status(&sale, &buyer("ann"), "forged").await,
        Err(QueueError::TicketNotFound)
    ));
    let (other, other_sale) = queue(5, 60_000, 0).await;
    drop(other);
    assert!(matches!(
        q.status(&other_sale, &buyer("ann"), &joined.ticket).await,
        Err(QueueError::TicketNotFound)
    ));
}

#[tokio::test]
async fn before_the_draw_a_place_waits_with_its_join_index_and_no_position() {
    let (q, sale) = queue(5, 60_000, 0).await;
    let (_, view) = q
        .join(&sale, &buyer("ann"), &Claims::new(), None)
        .await
        .unwrap();
    assert_eq!(
        (view.state, view.position, view.join_index),
        ("waiting", None, Some(0))
    );
}

#[tokio::test]
async fn a_sale_without_a_waiting_room_has_no_queue_to_join() {
    let store = MemoryStore::default();
    let def = SaleDefinition::new(fresh_sale_id(), 5);
    store.load_sale(&def, 5).await.unwrap();
    let q = Queue::new(
        store,
        MemoryBeacon::default(),
        keys(),
        Metrics::new("queue"),
    );
    assert!(matches!(
        q.join(&def.id, &buyer("ann"), &Claims::new(), None).await,
        Err(QueueError::NoQueue)
    ));
    assert!(matches!(q.draw(&def.id).await, Err(QueueError::NoQueue)));
}

#[tokio::test]
async fn a_queue_asking_proof_of_work_takes_a_solved_challenge_once_and_nothing_else() {
    let (q, sale) = queue(5, 60_000, 6).await;
    assert!(matches!(
        q.join(&sale, &buyer("ann"), &Claims::new(), None).await,
        Err(QueueError::InvalidProof(_))
    ));
    let c = q.challenge(&sale, &buyer("ann")).await.unwrap();
    assert_eq!(c.bits, 6);
    let nonce = solve(&c.challenge, c.bits);
    let proof = Some((c.challenge.as_str(), nonce.as_str()));
    assert!(
        q.join(&sale, &buyer("ann"), &Claims::new(), proof)
            .await
            .unwrap()
            .0
    );
    assert!(
        matches!(
            q.join(&sale, &buyer("ann"), &Claims::new(), proof).await,
            Err(QueueError::InvalidProof(_))
        ),
        "a challenge is used once"
    );
    let bobs = Some((c.challenge.as_str(), nonce.as_str()));
    assert!(
        q.join(&sale, &buyer("bob"), &Claims::new(), bobs)
            .await
            .is_err(),
        "another buyer's challenge"
    );
}

#[tokio::test]
async fn the_draw_record_publishes_the_commitment_first_and_the_seed_after_the_opening() {
    let (q, sale) = queue(5, 300, 0).await;
    let before = q.draw(&sale).await.unwrap();
    assert_eq!((before.seed.as_deref(), before.cohort), (None, None));
    assert_eq!(before.algorithm, ALGORITHM);
    tokio::time::sleep(Duration::from_millis(400)).await;
    fresh().await;
    let after = q.draw(&sale).await.unwrap();
    let seed = after.seed.expect("revealed");
    let seed = flashflow::domain::waiting_room::draw::Seed::from_hex(&seed).unwrap();
    assert_eq!(seed.commitment(), before.commitment);
}

#[tokio::test]
async fn the_operator_pauses_the_inlet_and_a_pace_out_of_range_is_refused() {
    let (q, sale) = queue(5, -1_000, 0).await;
    let paused = control(&q.store, &sale, Some(true), None).await.unwrap();
    assert!(paused.expect("a queue").paused);
    assert!(matches!(
        control(&q.store, &sale, None, Some(Some(0))).await,
        Err(QueueError::InvalidControl(_))
    ));
    let (_, view) = q
        .join(&sale, &buyer("ann"), &Claims::new(), None)
        .await
        .unwrap();
    next_step().await;
    let now = q.status(&sale, &buyer("ann"), &view.ticket).await.unwrap();
    assert_eq!(now.state, "waiting", "paused: nobody admitted");
}

#[tokio::test]
async fn each_step_is_counted_once_whoever_reads_its_state() {
    let (metrics, lines) = Metrics::in_memory("queue");
    let (q, sale) = queue(5, -1_000, 0).await;
    let q = Queue::new(q.store, q.beacon, keys(), metrics);
    for who in ["ann", "bob"] {
        q.join(&sale, &buyer(who), &Claims::new(), None)
            .await
            .unwrap();
    }
    next_step().await;
    for _ in 0..3 {
        q.draw(&sale).await.unwrap();
    }
    q.metrics.flush();
    let text = lines.lock().unwrap().join("\n");
    let admitted: u64 = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["Admitted"].as_u64())
        .sum();
    assert_eq!(admitted, 2, "{text}");
}

/// Joins `who` before the opening of a sale opening in 300 ms, then waits past the opening.
async fn pre_queue(
    q: &Queue<MemoryStore, MemoryBeacon>,
    sale: &SaleId,
    who: &[&str],
) -> Vec<TicketView> {
    let mut views = Vec::new();
    for w in who {
        views.push(
            q.join(sale, &buyer(w), &Claims::new(), None)
                .await
                .unwrap()
                .1,
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    fresh().await;
    views
}

#[tokio::test]
async fn until_its_beacon_round_is_out_the_pre_queue_is_told_it_is_being_drawn_and_nobody_is_admitted(
) {
    let (q, sale) = queue(5, 300, 0).await;
    q.beacon.hold(true);
    let views = pre_queue(&q, &sale, &["ann", "bob"]).await;
    let view = q
        .status(&sale, &buyer("ann"), &views[0].ticket)
        .await
        .unwrap();
    assert_eq!((view.state, view.position), ("drawing", None));
    assert_eq!(view.retry_after_ms, Some(1_000));
    let record = q.draw(&sale).await.unwrap();
    assert_eq!(record.state, "drawing");
    assert!(record.seed.is_some() && record.join_root.is_none());
    assert_eq!(record.beacon.randomness, None);
    next_step().await;
    let view = q
        .status(&sale, &buyer("bob"), &views[1].ticket)
        .await
        .unwrap();
    assert_eq!(view.state, "drawing", "still no admission");
}

#[tokio::test]
async fn once_drawn_every_place_is_recomputed_from_the_record_and_each_ticket_proves_its_entry() {
    use flashflow::domain::waiting_room::draw::{self, BeaconRound, FinalDraw, Seed};
    use flashflow::domain::waiting_room::join_list::{self, Hash};
    let (q, sale) = queue(1, 300, 0).await;
    let names = ["ann", "bob", "cat", "dan", "eve"];
    let views = pre_queue(&q, &sale, &names).await;
    let record = q.draw(&sale).await.unwrap();
    assert_eq!(record.state, "drawn", "{record:?}");
    assert_eq!(record.algorithm, "ff-draw-v2");
    assert_eq!(record.fallback, None);
    let hash = |h: &str| -> Hash { hex::decode(h).unwrap().try_into().unwrap() };
    let root = hash(record.join_root.as_deref().unwrap());
    let seed = Seed::from_hex(record.seed.as_deref().unwrap()).unwrap();
    let round = BeaconRound {
        round: record.beacon.round,
        randomness: hash(record.beacon.randomness.as_deref().unwrap()),
        signature: vec![],
    };
    let places = draw::places(&FinalDraw::new(&seed, root, Some(round)).key, 5);
    for (name, joined) in names.iter().zip(&views) {
        let view = q.status(&sale, &buyer(name), &joined.ticket).await.unwrap();
        let index = view.join_index.unwrap();
        let proof: Vec<Hash> = view
            .join_proof
            .clone()
            .unwrap()
            .iter()
            .map(|h| hash(h))
            .collect();
        let leaf = join_list::leaf(&view.ticket);
        assert!(join_list::verify(&root, index, 5, &leaf, &proof), "{name}");
        let place = places[index as usize];
        let expected = if place == 1 { "admitted" } else { "waiting" };
        assert_eq!(view.state, expected, "{name}: place {place}, {view:?}");
        if place > 1 {
            assert_eq!(view.position, Some(u64::from(place) - 1));
        }
    }
}

#[tokio::test]
async fn a_beacon_out_of_reach_past_the_wait_leaves_a_draw_from_the_seed_and_the_list_and_says_so()
{
    let mut def = room(5, 60_000, 0);
    let store = MemoryStore::default();
    store.load_sale(&def, 5).await.unwrap();
    let q = Queue::new(
        store,
        MemoryBeacon::default(),
        keys(),
        Metrics::new("queue"),
    );
    q.join(&def.id, &buyer("ann"), &Claims::new(), None)
        .await
        .unwrap();
    q.join(&def.id, &buyer("bob"), &Claims::new(), None)
        .await
        .unwrap();
    // The sale opened longer ago than the draw waits for its round (its terms reloaded; the
    // queue kept), and the beacon cannot be reached.
    def.opens_at_ms =
        Some(EpochMs::now().get() - flashflow::domain::waiting_room::draw::BEACON_WAIT_MS - 1_000);
    q.store.load_sale(&def, 5).await.unwrap();
    q.beacon.set_unavailable(true);
    fresh().await;
    let record = q.draw(&def.id).await.unwrap();
    assert_eq!(record.state, "drawn");
    assert!(record.fallback.is_some(), "{record:?}");
    assert_eq!(
        (record.beacon.randomness, record.beacon.signature),
        (None, None)
    );
    assert!(record.join_root.is_some());
}

#[tokio::test]
async fn while_another_process_builds_the_join_list_this_one_answers_drawing_and_reads_no_places() {
    use flashflow::ports::{JoinLists, QueueSteps};
    let (q, sale) = queue(5, 300, 0).await;
    let views = pre_queue(&q, &sale, &["ann", "bob"]).await;
    // Another queue process took the lease: the round is out, but the list is theirs to build.
    let s = q.store.step(&sale).await.unwrap().unwrap();
    assert!(q
        .store
        .claim_finalize(&sale, s.epoch, finalize::LEASE_MS)
        .await
        .unwrap());
    let view = q
        .status(&sale, &buyer("ann"), &views[0].ticket)
        .await
        .unwrap();
    assert_eq!(view.state, "drawing");
    assert_eq!(q.draw(&sale).await.unwrap().state, "drawing");
}
