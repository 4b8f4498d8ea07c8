//! The waiting room on Redis: the draw, the inlet tied to the units left, abandonment, tokens
//! checked by buy without a Redis round trip, proof of work, the queue's routes.
//!
//! Each test's sale is its own. Where a test needs time to pass faster than the terms allow (an
//! admission window of seconds, an opening now), it changes its sale's waiting-room hash in
//! Redis directly, as the clock would.

use crate::helpers::*;
use axum::Router;
use flashflow::domain::waiting_room::draw::{self, BeaconRound, FinalDraw, Seed};
use flashflow::domain::waiting_room::join_list::{self, Hash, JoinList};
use flashflow::domain::waiting_room::tokens::{solve, Admission, TicketPlace, TokenKeys};
use flashflow::domain::waiting_room::WaitingRoom;
use flashflow::domain::EpochMs;
use flashflow::domain::{BuyerId, SaleDefinition};
use flashflow::ports::{JoinOutcome, QueueControls, QueueJoins};
use flashflow_app::waiting_room::gate::AdmissionGate;
use flashflow_app::waiting_room::{Queue, TicketView};
use flashflow_http::queue::QueueState;
use fred::interfaces::{HashesInterface, KeysInterface};
use std::time::Duration;

/// The waiting room's key the local stack uses (`ADMISSION_KEY`).
pub fn keys() -> TokenKeys {
    let key = std::env::var("ADMISSION_KEY").expect("ADMISSION_KEY is set by make test");
    TokenKeys::new(key.as_bytes()).expect("a long enough key")
}

fn buyer(name: &str) -> BuyerId {
    BuyerId::parse(name).unwrap()
}

/// One test's sale with a waiting room, its queue routes and a buy router that checks tokens.
struct Room {
    t: TestApp,
    def: SaleDefinition,
    queue: Router,
    buy: Router,
    /// The queue's use cases on the same store (for checks that need no HTTP).
    direct: Queue<flashflow_adapters::redis::RedisStore, flashflow_adapters::beacon::Drand>,
}

impl Room {
    /// A sale of `stock` (limit `limit`) whose queue opened a second ago and which opens
    /// `opens_in` from now; `pow_bits` of proof of work.
    async fn new(stock: u32, limit: u32, opens_in: Duration, pow_bits: u8) -> Self {
        Self::on(TestApp::new().await, stock, limit, opens_in, pow_bits, None).await
    }

    async fn on(
        t: TestApp,
        stock: u32,
        limit: u32,
        opens_in: Duration,
        pow_bits: u8,
        checkout: Option<flashflow::domain::sale::Checkout>,
    ) -> Self {
        let now = EpochMs::now().get();
        let mut def = sale(&fresh_sale_id(), stock, limit);
        def.opens_at_ms = Some(now + opens_in.as_millis() as i64);
        def.checkout = checkout;
        def.waiting_room = Some(WaitingRoom {
            opens_at_ms: now - 1_000,
            admission_seconds: 60,
            admit_per_second: None,
            pow_bits,
            entry: None,
        });
        t.db.create_sale(&def).await.unwrap();
        t.store.load_sale(&def, stock).await.unwrap();
        Self::with(t, def).await
    }

    /// The routes of `def`, a sale created and loaded on `t`.
    async fn with(t: TestApp, def: SaleDefinition) -> Self {
        let queue = flashflow_http::app(flashflow_http::queue::routes(QueueState {
            queue: Queue::new(
                t.store.clone(),
                local_beacon(),
                keys(),
                flashflow_app::metrics::Metrics::new("queue"),
            ),
            trust_user_header: true,
        }));
        let buy = gated_buy_app(&t, Some(keys()));
        let direct = Queue::new(
            t.store.clone(),
            local_beacon(),
            keys(),
            flashflow_app::metrics::Metrics::new("queue"),
        );
        Self {
            t,
            def,
            queue,
            buy,
            direct,
        }
    }

    fn room_key(&self) -> String {
        format!("ff:{{{}}}:wr", self.def.id)
    }

    /// Change a field of the sale's waiting-room hash, as time would.
    async fn set(&self, field: &str, value: i64) {
        let _: i64 = admin_redis()
            .await
            .hset(self.room_key(), (field, value))
            .await
            .unwrap();
    }

    /// The opening comes now and buys are open; returns once the draw is made (its beacon
    /// round comes within a second: the local stand-in's period here).
    async fn open_now(&self) {
        let now = EpochMs::now().get();
        self.set("sale_opens_ms", now).await;
        let _: i64 = admin_redis()
            .await
            .hset(format!("ff:{{{}}}:sale", self.def.id), ("opens_ms", now))
            .await
            .unwrap();
        let started = std::time::Instant::now();
        while self.direct.draw(&self.def.id).await.unwrap().state != "drawn" {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "no draw 10 s after the opening"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn join(&self, who: &str) -> Answer {
        call(
            &self.queue,
            request(
                "POST",
                &format!("/sales/{}/queue", self.def.id),
                &[("x-user-id", who)],
                None,
            ),
        )
        .await
    }

    async fn status(&self, who: &str, ticket: &str) -> Answer {
        call(
            &self.queue,
            request(
                "GET",
                &format!("/sales/{}/queue/{ticket}", self.def.id),
                &[("x-user-id", who)],
                None,
            ),
        )
        .await
    }

    async fn buy(&self, who: &str, token: Option<&str>) -> Answer {
        let mut headers = vec![("x-user-id", who)];
        if let Some(t) = token {
            headers.push(("admission-token", t));
        }
        call(
            &self.buy,
            request(
                "POST",
                &format!("/sales/{}/buy", self.def.id),
                &headers,
                None,
            ),
        )
        .await
    }

    async fn remaining(&self) -> i64 {
        self.t
            .store
            .live_sale(&self.def.id)
            .await
            .unwrap()
            .unwrap()
            .remaining
    }

    /// The queue after a step (as any reader's: at most one a second).
    async fn view(&self) -> flashflow_app::waiting_room::QueueView {
        use flashflow::ports::QueueSteps;
        let state = self.t.store.step(&self.def.id).await.unwrap().unwrap();
        flashflow_app::waiting_room::QueueView::of(&state)
    }
}

/// Redis loses `sale`: every key it has there (its hash tag's) is gone.
pub async fn lose_sale(sale: &str) {
    use fred::interfaces::ClientLike;
    let admin = admin_redis().await;
    let mut cursor = "0".to_owned();
    loop {
        let (next, keys): (String, Vec<String>) = admin
            .custom(
                fred::cmd!("SCAN"),
                vec![
                    cursor.clone(),
                    "MATCH".into(),
                    format!("ff:{{{sale}}}:*"),
                    "COUNT".into(),
                    "1000".into(),
                ],
            )
            .await
            .unwrap();
        if !keys.is_empty() {
            let _: i64 = admin.del(keys).await.unwrap();
        }
        if next == "0" {
            break;
        }
        cursor = next;
    }
}

/// A client of the local Redis as its administrator (for what time would change).
async fn admin_redis() -> fred::clients::Client {
    use fred::interfaces::ClientLike;
    let url = std::env::var("REDIS_URL").unwrap();
    let client = fred::clients::Client::new(
        fred::types::config::Config::from_url(&url).unwrap(),
        None,
        None,
        None,
    );
    client.init().await.unwrap();
    client
}

/// Buy's routes with its admission gate (`keys`: the waiting room's key, if this buy has it).
fn gated_buy_app(t: &TestApp, keys: Option<TokenKeys>) -> Router {
    buy_routes(
        t.store.clone(),
        flashflow_adapters::sqs::SqsPublisher::new(t.sqs.clone(), &t.queue),
        AdmissionGate::new(keys),
    )
}

fn view(a: &Answer) -> TicketView {
    let b = &a.body;
    TicketView {
        ticket: b["ticket"].as_str().unwrap_or_default().to_owned(),
        state: match b["state"].as_str().unwrap_or_default() {
            "waiting" => "waiting",
            "drawing" => "drawing",
            "admitted" => "admitted",
            "expired" => "expired",
            "sold_out" => "sold_out",
            "used" => "used",
            "closed" => "closed",
            "rejoin" => "rejoin",
            other => panic!("unknown state {other}: {b}"),
        },
        position: b["position"].as_u64(),
        ahead: b["ahead"].as_u64(),
        eta_seconds: b["eta_seconds"].as_u64(),
        admission_token: b["admission_token"].as_str().map(str::to_owned),
        admission_expires_at: b["admission_expires_at"].as_str().map(str::to_owned),
        join_index: b["join_index"].as_u64(),
        join_proof: b["join_proof"].as_array().map(|p| {
            p.iter()
                .filter_map(|h| h.as_str().map(str::to_owned))
                .collect()
        }),
        held: b["held"].as_u64(),
        retry_after_ms: b["retry_after_ms"].as_u64(),
    }
}

/// Spearman's rank correlation of two rankings of the same items (no ties).
fn spearman(a: &[u64], b: &[u64]) -> f64 {
    let n = a.len() as f64;
    let d2: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - *y as f64).powi(2))
        .sum();
    1.0 - 6.0 * d2 / (n * (n * n - 1.0))
}

#[tokio::test]
async fn ten_thousand_joiners_before_the_opening_are_drawn_into_a_fair_order_anyone_can_check() {
    let r = Room::new(100, 1, Duration::from_secs(3600), 0).await;
    // The inlet waits, so every place reads as its drawn position.
    r.t.store
        .control(&r.def.id, Some(true), None)
        .await
        .unwrap();
    const N: u64 = 10_000;
    for i in 0..N {
        let joined =
            r.t.store
                .join(&r.def.id, &buyer(&format!("p{i}")), None, None, None)
                .await
                .unwrap();
        assert!(
            matches!(joined, JoinOutcome::Joined(p) if p.index == i),
            "arrival order is the join index: {joined:?}"
        );
    }
    let before = r.direct.draw(&r.def.id).await.unwrap();
    assert_eq!(
        (before.seed.clone(), before.cohort),
        (None, None),
        "no seed before the draw"
    );
    r.open_now().await;
    tokio::time::sleep(flashflow_app::waiting_room::states::FRESH_FOR).await;

    let epoch = r.t.store.peek(&r.def.id).await.unwrap().unwrap().epoch;
    let mut places = Vec::new();
    for i in 0..N {
        let who = buyer(&format!("p{i}"));
        let ticket = keys().ticket(&r.def.id, &who, TicketPlace { index: i, epoch });
        let v = r.direct.status(&r.def.id, &who, &ticket).await.unwrap();
        assert_eq!((v.state, v.join_index), ("waiting", Some(i)));
        places.push(v.position.unwrap());
    }
    let mut sorted = places.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        (1..=N).collect::<Vec<_>>(),
        "a permutation: no gaps, no ties"
    );
    let arrival: Vec<u64> = (1..=N).collect();
    let rho = spearman(&arrival, &places);
    assert!(rho.abs() < 0.05, "Spearman's rho {rho}");

    let record = r.direct.draw(&r.def.id).await.unwrap();
    let seed = Seed::from_hex(record.seed.as_deref().unwrap()).unwrap();
    assert_eq!(record.cohort, Some(N));
    assert_eq!(
        record.commitment, before.commitment,
        "committed before anyone joined"
    );
    assert_eq!(
        seed.commitment(),
        record.commitment,
        "the seed matches its commitment"
    );
    // ff-draw-v2: the beacon's round, checked by anyone against the chain's key, and the join
    // list's root give the order with the seed.
    assert_eq!(record.algorithm, "ff-draw-v2");
    assert_eq!((record.state, record.fallback.as_deref()), ("drawn", None));
    let chain = local_beacon_chain();
    assert_eq!(record.beacon.chain, chain.hash);
    let opened_s =
        (r.t.store
            .peek(&r.def.id)
            .await
            .unwrap()
            .unwrap()
            .sale_opens_at_ms as u64)
            .div_ceil(1000);
    assert_eq!(
        record.beacon.round,
        chain.round_at(opened_s),
        "the first round at or after the opening"
    );
    let signature = hex::decode(record.beacon.signature.as_deref().unwrap()).unwrap();
    let checked = chain
        .check(record.beacon.round, &signature)
        .expect("signed by the chain");
    assert_eq!(
        Some(hex::encode(checked.randomness)),
        record.beacon.randomness
    );
    let root: Hash = hex::decode(record.join_root.as_deref().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let tickets: Vec<String> = (0..N)
        .map(|i| {
            keys().ticket(
                &r.def.id,
                &buyer(&format!("p{i}")),
                TicketPlace { index: i, epoch },
            )
        })
        .collect();
    assert_eq!(
        JoinList::new(tickets.iter().map(|t| join_list::leaf(t)).collect()).root(),
        root,
        "the root is the list of every pre-queue ticket, in join order"
    );
    let round = BeaconRound {
        round: record.beacon.round,
        randomness: checked.randomness,
        signature,
    };
    let recomputed: Vec<u64> =
        draw::places(&FinalDraw::new(&seed, root, Some(round)).key, N as u32)
            .into_iter()
            .map(u64::from)
            .collect();
    assert_eq!(
        recomputed, places,
        "the published record reproduces every place"
    );
    // Each ticket's status proves it is in the list the draw used (a few, over HTTP).
    for i in [0, 1, 4_999, N - 1] {
        let who = format!("p{i}");
        let v = view(&r.status(&who, &tickets[i as usize]).await);
        let proof: Vec<Hash> = v
            .join_proof
            .expect("a pre-queue place's proof")
            .iter()
            .map(|h| hex::decode(h).unwrap().try_into().unwrap())
            .collect();
        assert!(
            join_list::verify(&root, i, N, &join_list::leaf(&v.ticket), &proof),
            "{who}"
        );
    }

    // After the opening: first come, first served, behind the whole pre-queue.
    let mut last = N;
    for i in 0..50 {
        let a = r.join(&format!("late{i}")).await;
        assert_eq!(a.status, 201, "{}", a.body);
        let p = view(&a).position.unwrap();
        assert!(p > last, "late joiner {i} at {p}, after {last}");
        assert_eq!(view(&a).join_index, None, "not in the pre-queue");
        last = p;
    }
}

#[tokio::test]
async fn outstanding_admissions_never_exceed_the_units_left_and_a_sold_out_queue_says_so() {
    let r = Room::new(5, 1, Duration::from_secs(3600), 0).await;
    let mut tickets = Vec::new();
    for i in 0..20 {
        let a = r.join(&format!("b{i}")).await;
        assert_eq!(a.status, 201, "{}", a.body);
        tickets.push((format!("b{i}"), view(&a).ticket));
    }
    r.open_now().await;
    let mut bought = 0;
    let start = std::time::Instant::now();
    loop {
        let v = r.view().await;
        let left = r.remaining().await;
        assert!(
            v.outstanding as i64 <= left,
            "{} admissions outstanding with {left} units left",
            v.outstanding
        );
        if v.sold_out {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "never sold out: {v:?}"
        );
        // Admitted buyers buy, one at a time, so the inlet is read between buys.
        for (who, ticket) in &tickets {
            let s = view(&r.status(who, ticket).await);
            if s.state == "admitted" {
                let a = r.buy(who, s.admission_token.as_deref()).await;
                if a.status == 202 {
                    bought += 1;
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(bought, 5);
    // Sold out, nothing held: every place still waiting hears so within two seconds.
    let told = std::time::Instant::now();
    for (who, ticket) in &tickets {
        loop {
            let s = view(&r.status(who, ticket).await);
            // A buyer who bought sees their place as used.
            if matches!(s.state, "sold_out" | "admitted" | "used") {
                break;
            }
            assert!(
                told.elapsed() < Duration::from_secs(2),
                "{who} still {}",
                s.state
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test]
async fn a_hold_that_ends_admits_the_next_in_line() {
    let checkout = flashflow::domain::sale::Checkout {
        hold_seconds: 60,
        price: 1_000,
        currency: "eur".into(),
    };
    let r = Room::on(
        TestApp::new().await,
        1,
        1,
        Duration::from_secs(3600),
        0,
        Some(checkout),
    )
    .await;
    let first = view(&r.join("first").await);
    let second = view(&r.join("second").await);
    r.open_now().await;
    let token = loop {
        let a = view(&r.status("first", &first.ticket).await);
        let b = view(&r.status("second", &second.ticket).await);
        if a.state == "admitted" || b.state == "admitted" {
            break if a.state == "admitted" {
                (
                    "first",
                    a.admission_token.unwrap(),
                    second.ticket.clone(),
                    "second",
                )
            } else {
                (
                    "second",
                    b.admission_token.unwrap(),
                    first.ticket.clone(),
                    "first",
                )
            };
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let (admitted, admission, next_ticket, next) = token;
    let a = r.buy(admitted, Some(&admission)).await;
    assert_eq!(a.status, 202, "{}", a.body);
    // One unit, held: the next in line waits (not sold out: the hold may end).
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert_eq!(view(&r.status(next, &next_ticket).await).state, "waiting");
    // The hold ends (expired or cancelled): its unit goes back, and the next is admitted.
    let message = r.t.store.entries(&r.def.id).await.unwrap().remove(0).1;
    let order = flashflow::domain::OrderMessage::parse(&message).unwrap();
    let hold = flashflow::ports::HoldRecord {
        status: flashflow::domain::OrderStatus::of(&order, flashflow::domain::OrderState::Expired),
        payment_intent: None,
        price: 1_000,
        currency: "eur".into(),
        round: 1,
        stock_returned: false,
        status_written: true,
    };
    r.t.store.return_stock(&hold).await.unwrap();
    wait_until(
        "the next in line admitted",
        Duration::from_secs(5),
        || async { view(&r.status(next, &next_ticket).await).state == "admitted" },
    )
    .await;
}

#[tokio::test]
async fn admitted_buyers_who_never_buy_do_not_stall_the_queue_and_the_sale_sells_out() {
    let r = Room::new(10, 1, Duration::from_secs(3600), 0).await;
    let mut tickets = Vec::new();
    for i in 0..30 {
        tickets.push((
            format!("a{i}"),
            view(&r.join(&format!("a{i}")).await).ticket,
        ));
    }
    // Admissions last 2 s here (the terms allow 60 s at least: time runs faster in this test).
    r.set("admission_ms", 2_000).await;
    r.open_now().await;
    let start = std::time::Instant::now();
    let mut bought = 0;
    let mut no_shows = 0;
    let mut seen = std::collections::HashSet::new();
    while bought < 10 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "stalled: {bought} bought, {:?}",
            r.view().await
        );
        for (who, ticket) in &tickets {
            let s = view(&r.status(who, ticket).await);
            if s.state != "admitted" || !seen.insert(who.clone()) {
                continue;
            }
            // Three in ten admitted buyers walk away, counted in the order they are admitted:
            // walkers chosen by name could all be drawn after the first ten (1 draw in 85).
            if (seen.len() - 1) % 10 < 3 {
                no_shows += 1;
                continue;
            }
            if r.buy(who, s.admission_token.as_deref()).await.status == 202 {
                bought += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(r.remaining().await, 0, "sold out");
    assert!(no_shows > 0, "the test had walkers-away");
    let v = r.view().await;
    assert!(
        v.expired > 0 || v.no_show_rate > 0.0 || v.outstanding > 0,
        "{v:?}"
    );
}

#[tokio::test]
async fn a_bad_admission_token_is_refused_in_the_process_without_a_redis_command() {
    use fred::interfaces::ClientLike;
    let redis = PrivateRedis::start(&[]);
    let store =
        flashflow_adapters::redis::RedisStore::connect(&flashflow_adapters::redis::RedisSettings {
            url: redis.url(),
            ..Default::default()
        })
        .unwrap();
    store.ready(Duration::from_secs(5)).await.unwrap();
    let mut def = sale(&fresh_sale_id(), 10, 1);
    let now = EpochMs::now().get();
    def.opens_at_ms = Some(now - 1_000);
    def.waiting_room = Some(WaitingRoom {
        opens_at_ms: now - 2_000,
        admission_seconds: 60,
        admit_per_second: None,
        pow_bits: 0,
        entry: None,
    });
    store.load_sale(&def, 10).await.unwrap();
    let t = TestApp::new().await;
    let mut t = t;
    t.store = store.clone();
    let buy = gated_buy_app(&t, Some(keys()));
    let alice = buyer("alice");
    let valid = Admission {
        index: 0,
        batch: 1,
        expires_ms: now + 60_000,
        epoch: store.peek(&def.id).await.unwrap().unwrap().epoch,
    };
    let token = keys().admission(&def.id, &alice, valid);
    let other_key = TokenKeys::new(&[9u8; 32])
        .unwrap()
        .admission(&def.id, &alice, valid);
    let (payload, _) = token.split_once('.').unwrap();
    let altered = format!("{payload}.{}", "A".repeat(43));
    let expired = keys().admission(
        &def.id,
        &alice,
        Admission {
            expires_ms: now - 1,
            ..valid
        },
    );
    let others = keys().admission(&def.id, &buyer("mallory"), valid);
    let other_sale = keys().admission(&fresh_sale_id(), &alice, valid);
    let post = |token: Option<String>| {
        let buy = buy.clone();
        let path = format!("/sales/{}/buy", def.id);
        async move {
            let mut h = vec![("x-user-id", "alice".to_owned())];
            if let Some(t) = token {
                h.push(("admission-token", t));
            }
            let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
            call(&buy, request("POST", &path, &h, None)).await
        }
    };
    // The first buy without a token teaches this process that the sale has a waiting room
    // (the script refuses it, reserving nothing).
    assert_eq!(post(None).await.body["error"], "not_admitted");

    let admin = fred::clients::Client::new(
        fred::types::config::Config::from_url(&redis.url()).unwrap(),
        None,
        None,
        None,
    );
    admin.init().await.unwrap();
    let calls = || async {
        let info: String = admin
            .info(Some(fred::types::InfoKind::CommandStats))
            .await
            .unwrap();
        info.lines()
            .filter(|l| l.starts_with("cmdstat_") && !l.starts_with("cmdstat_info"))
            .filter_map(|l| {
                l.split("calls=")
                    .nth(1)?
                    .split(',')
                    .next()?
                    .parse::<u64>()
                    .ok()
            })
            .sum::<u64>()
    };
    let before = calls().await;
    for (what, token) in [
        ("missing", None),
        ("forged", Some(other_key)),
        ("altered", Some(altered)),
        ("expired", Some(expired)),
        ("another buyer's", Some(others)),
        ("another sale's", Some(other_sale)),
    ] {
        let a = post(token).await;
        assert_eq!(
            (a.status, a.body["error"].as_str()),
            (403, Some("not_admitted")),
            "{what}"
        );
    }
    assert_eq!(
        calls().await - before,
        0,
        "Redis commands for six refused buys"
    );
    let live = store.live_sale(&def.id).await.unwrap().unwrap();
    assert_eq!(live.remaining, 10, "nothing reserved");
    // And the valid token buys.
    assert_eq!(post(Some(token)).await.status, 202);
}

#[tokio::test]
async fn a_wrong_reused_or_someone_elses_proof_of_work_is_refused() {
    let r = Room::new(10, 1, Duration::from_secs(3600), 8).await;
    let challenge = |who: &str| {
        let q = r.queue.clone();
        let path = format!("/sales/{}/queue/challenge", r.def.id);
        let who = who.to_owned();
        async move {
            call(&q, request("GET", &path, &[("x-user-id", &who)], None))
                .await
                .body["challenge"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let join = |who: &str, body: Option<String>| {
        let q = r.queue.clone();
        let path = format!("/sales/{}/queue", r.def.id);
        let who = who.to_owned();
        async move {
            call(
                &q,
                request(
                    "POST",
                    &path,
                    &[("x-user-id", &who), ("content-type", "application/json")],
                    body.as_deref(),
                ),
            )
            .await
        }
    };
    let proof =
        |c: &str, n: &str| Some(serde_json::json!({"challenge": c, "nonce": n}).to_string());
    let refused = |a: &Answer| a.status == 400 && a.body["error"] == "invalid_proof";

    assert!(refused(&join("alice", None).await), "no proof");
    let c = challenge("alice").await;
    let wrong = (0u64..)
        .map(|n| n.to_string())
        .find(|n| !flashflow::domain::waiting_room::tokens::meets(&c, n, 8))
        .unwrap();
    assert!(
        refused(&join("alice", proof(&c, &wrong)).await),
        "a wrong answer"
    );
    let right = solve(&c, 8);
    assert!(
        refused(&join("bob", proof(&c, &right)).await),
        "alice's answer, sent by bob"
    );
    let a = join("alice", proof(&c, &right)).await;
    assert_eq!(a.status, 201, "{}", a.body);
    assert!(
        refused(&join("alice", proof(&c, &right)).await),
        "the same answer again"
    );
    assert_eq!(r.view().await.waiting, 1, "one place taken");
}

#[tokio::test]
async fn the_queue_answers_not_open_not_found_and_one_place_per_buyer() {
    let r = Room::new(10, 1, Duration::from_secs(3600), 0).await;
    // Before the queue opens: 409 queue_not_open.
    r.set("opens_ms", EpochMs::now().get() + 60_000).await;
    tokio::time::sleep(flashflow_app::waiting_room::states::FRESH_FOR).await;
    let a = r.join("alice").await;
    assert_eq!(
        (a.status, a.body["error"].as_str()),
        (409, Some("queue_not_open"))
    );
    r.set("opens_ms", EpochMs::now().get() - 1_000).await;
    tokio::time::sleep(flashflow_app::waiting_room::states::FRESH_FOR).await;
    // One place per buyer: the same ticket again.
    let first = r.join("alice").await;
    let again = r.join("alice").await;
    assert_eq!((first.status, again.status), (201, 200));
    assert_eq!(view(&first).ticket, view(&again).ticket);
    // Someone else's ticket is no ticket.
    let t = view(&first).ticket;
    assert_eq!(
        r.status("mallory", &t).await.body["error"],
        "ticket_not_found"
    );
    // A sale without a waiting room has no queue.
    let plain = r.t.sale(5, 1).await;
    let a = call(
        &r.queue,
        request(
            "POST",
            &format!("/sales/{}/queue", plain.id),
            &[("x-user-id", "alice")],
            None,
        ),
    )
    .await;
    assert_eq!(
        (a.status, a.body["error"].as_str()),
        (404, Some("queue_not_found"))
    );
}

#[tokio::test]
async fn an_admission_not_used_in_time_expires_and_joining_again_goes_to_the_back() {
    let r = Room::new(1, 1, Duration::from_secs(3600), 0).await;
    let first = view(&r.join("first").await);
    let _second = view(&r.join("second").await);
    r.set("admission_ms", 1_000).await;
    r.open_now().await;
    wait_until("someone admitted", Duration::from_secs(5), || async {
        r.view().await.admitted >= 1
    })
    .await;
    // Whoever was admitted lets it lapse; the other is admitted next.
    wait_until("an admission expired", Duration::from_secs(10), || async {
        r.view().await.expired >= 1
    })
    .await;
    let s = view(&r.status("first", &first.ticket).await);
    if s.state == "expired" {
        let again = r.join("first").await;
        assert_eq!(again.status, 201, "a new place: {}", again.body);
        assert_ne!(view(&again).ticket, first.ticket);
        let joined = r.view().await;
        assert_eq!(
            joined.waiting + joined.admitted,
            3,
            "a third place, at the back"
        );
    }
}

#[tokio::test]
async fn the_operator_pauses_the_inlet_and_sets_its_pace() {
    let r = Room::new(100, 1, Duration::from_secs(3600), 0).await;
    for i in 0..10 {
        r.join(&format!("c{i}")).await;
    }
    let op = r.t.operator().await;
    let a = call(
        &op,
        admin(
            "POST",
            &format!("/admin/sales/{}/queue", r.def.id),
            Some(r#"{"paused": true}"#),
        ),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["paused"], true);
    r.open_now().await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(r.view().await.admitted, 0, "paused: nobody admitted");
    let a = call(
        &op,
        admin(
            "POST",
            &format!("/admin/sales/{}/queue", r.def.id),
            Some(r#"{"paused": false, "admit_per_second": 2}"#),
        ),
    )
    .await;
    assert_eq!(
        (
            a.body["paused"].as_bool(),
            a.body["admit_per_second"].as_u64()
        ),
        (Some(false), Some(2))
    );
    wait_until("admitted at 2 a second", Duration::from_secs(5), || async {
        r.view().await.admitted >= 2
    })
    .await;
    assert!(r.view().await.admitted < 10, "not all at once");
    let shown = call(
        &op,
        admin("GET", &format!("/admin/sales/{}", r.def.id), None),
    )
    .await;
    assert!(
        shown.body["waiting_room"]["queue"]["commitment"].is_string(),
        "{}",
        shown.body
    );
}

/// `queue_step.lua`'s inlet is `domain::waiting_room::queue`'s `allowance` and `to_admit`: one
/// table of cases through both.
#[tokio::test]
async fn the_scripts_inlet_admits_what_the_rust_rule_says() {
    use flashflow::domain::waiting_room::queue::{allowance, no_show_rate, to_admit};
    // (units left, admitted, used, expired, joined, pace)
    let cases: [(i64, u64, u64, u64, u64, Option<u32>); 8] = [
        (10, 0, 0, 0, 50, None),
        (10, 6, 2, 0, 50, None),
        (3, 10, 4, 3, 50, None),
        (0, 5, 5, 0, 50, None),
        (100, 0, 0, 0, 7, None),
        (100, 0, 0, 0, 1_000, Some(10)),
        (5, 0, 0, 0, 1_000, Some(10)),
        (40, 20, 10, 10, 1_000, Some(3)),
    ];
    for (i, (left, admitted, used, expired, joined, pace)) in cases.into_iter().enumerate() {
        let r = Room::new(1_000, 1, Duration::from_secs(3600), 0).await;
        r.open_now().await;
        // The state before a step a second and a half after the last.
        let now = EpochMs::now().get();
        // Admissions spent are counted in a key of their own (reserve.lua increments it).
        let _: () = admin_redis()
            .await
            .set(
                format!("ff:{{{}}}:wr:used", r.def.id),
                used as i64,
                None,
                None,
                false,
            )
            .await
            .unwrap();
        for (field, value) in [
            ("admitted", admitted as i64),
            ("expired", expired as i64),
            ("joined", joined as i64),
            ("last_step_ms", now - 1_500),
        ] {
            r.set(field, value).await;
        }
        if let Some(p) = pace {
            r.set("pace", i64::from(p)).await;
        }
        let _: i64 = admin_redis()
            .await
            .hset(format!("ff:{{{}}}:sale", r.def.id), ("remaining", left))
            .await
            .unwrap();
        let after = r.view().await.admitted;
        let (want, _) = to_admit(
            pace,
            1_500,
            0.0,
            allowance(left, no_show_rate(used, expired)),
            admitted - used - expired,
            joined - admitted,
        );
        assert_eq!(after - admitted, want, "case {i}");
    }
}

impl Room {
    /// `who`'s place once admitted (asked every 200 ms, for at most 5 s).
    async fn wait_admitted(&self, who: &str, ticket: &str) -> TicketView {
        let until = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let v = view(&self.status(who, ticket).await);
            if v.state == "admitted" {
                return v;
            }
            assert!(std::time::Instant::now() < until, "{who} still {}", v.state);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// A buy with an Idempotency-Key.
    async fn buy_keyed(&self, who: &str, token: &str, key: &str) -> Answer {
        let headers = [
            ("x-user-id", who),
            ("admission-token", token),
            ("idempotency-key", key),
        ];
        let path = format!("/sales/{}/buy", self.def.id);
        call(&self.buy, request("POST", &path, &headers, None)).await
    }

    /// Redis loses this sale: every key it has there (its hash tag's) is gone.
    async fn lose(&self) {
        lose_sale(&self.def.id.to_string()).await;
    }
}

#[tokio::test]
async fn a_keyed_retry_after_its_admission_expired_gets_its_order_and_a_new_order_needs_a_live_one()
{
    let r = Room::new(5, 2, Duration::from_millis(0), 0).await;
    let ticket = r.join("ann").await.body["ticket"]
        .as_str()
        .unwrap()
        .to_owned();
    let admitted = r.wait_admitted("ann", &ticket).await;
    let token = admitted.admission_token.unwrap();
    let first = r.buy_keyed("ann", &token, "k-1").await;
    assert_eq!(first.status, 202, "{}", first.body);
    // The same admission, as if its minute had passed (a retry after a 503 outcome_unknown).
    let genuine = keys()
        .genuine_admission(Some(&token), &r.def.id, &buyer("ann"))
        .unwrap();
    let expired = keys().admission(
        &r.def.id,
        &buyer("ann"),
        Admission {
            expires_ms: EpochMs::now().get() - 1,
            ..genuine
        },
    );
    let retry = r.buy_keyed("ann", &expired, "k-1").await;
    assert!(
        matches!(retry.status, 200 | 202),
        "the retry gets its order, not 403: {}",
        retry.body
    );
    assert_eq!(retry.body["order_id"], first.body["order_id"]);
    let new_order = r.buy_keyed("ann", &expired, "k-2").await;
    assert_eq!(
        (new_order.status, new_order.body["error"].as_str()),
        (403, Some("not_admitted"))
    );
}

#[tokio::test]
async fn after_a_redis_loss_a_rehydrate_keeps_the_published_commitment_and_old_places_rejoin() {
    let t = TestApp::new().await;
    let now = EpochMs::now().get();
    let mut def = sale(&fresh_sale_id(), 1, 1);
    def.opens_at_ms = Some(now - 500);
    def.waiting_room = Some(WaitingRoom {
        opens_at_ms: now - 1_000,
        admission_seconds: 60,
        admit_per_second: None,
        pow_bits: 0,
        entry: None,
    });
    t.db.create_sale(&def).await.unwrap();
    // Loaded as the operator loads it: the ledger gives the draw's seed.
    flashflow_app::admin::rehydrate(&t.db, &t.store, &def.id)
        .await
        .unwrap();
    let r = Room::with(t, def).await;
    let ticket = r.join("ann").await.body["ticket"]
        .as_str()
        .unwrap()
        .to_owned();
    let token = r
        .wait_admitted("ann", &ticket)
        .await
        .admission_token
        .unwrap();
    let before = r.direct.draw(&r.def.id).await.unwrap();
    r.lose().await;
    flashflow_app::admin::rehydrate(&r.t.db, &r.t.store, &r.def.id)
        .await
        .unwrap();
    tokio::time::sleep(flashflow_app::waiting_room::states::FRESH_FOR).await;
    let after = r.direct.draw(&r.def.id).await.unwrap();
    assert_eq!(after.commitment, before.commitment, "never replaced");
    assert_eq!(after.seed, before.seed, "the same seed, revealed");
    let old = view(&r.status("ann", &ticket).await);
    assert_eq!(
        old.state, "rejoin",
        "a place of the lost queue names nobody's now"
    );
    let bought = r.buy("ann", Some(&token)).await;
    assert_eq!(
        (bought.status, bought.body["error"].as_str()),
        (403, Some("not_admitted")),
        "an admission of the lost queue admits nobody"
    );
    let bob = r.join("bob").await;
    assert_eq!(bob.status, 201, "{}", bob.body);
    let again = r.join("ann").await;
    assert_eq!(again.status, 201, "ann joins the new queue: {}", again.body);
}

#[tokio::test]
async fn when_a_sale_retires_every_key_of_its_waiting_room_expires_too() {
    use flashflow::ports::{SaleRetirement, SettledOrders};
    use fred::interfaces::ClientLike;
    let r = Room::new(1, 1, Duration::ZERO, 0).await;
    let ticket = r.join("ann").await.body["ticket"]
        .as_str()
        .unwrap()
        .to_owned();
    let token = r
        .wait_admitted("ann", &ticket)
        .await
        .admission_token
        .unwrap();
    let bought = r.buy("ann", Some(&token)).await;
    assert_eq!(bought.status, 202, "{}", bought.body);
    let order: uuid::Uuid = bought.body["order_id"].as_str().unwrap().parse().unwrap();
    r.t.store
        .remove_settled(&r.def.id, &[order], &[])
        .await
        .unwrap();
    let retired =
        r.t.store
            .retire_if_finished(&r.def.id, EpochMs::now(), Duration::from_secs(600))
            .await
            .unwrap();
    assert!(retired, "sold out, nothing pending");
    let admin = admin_redis().await;
    let (mut keys, mut cursor) = (Vec::new(), "0".to_owned());
    loop {
        let (next, found): (String, Vec<String>) = admin
            .custom(
                fred::cmd!("SCAN"),
                vec![
                    cursor,
                    "MATCH".into(),
                    format!("ff:{{{}}}:*", r.def.id),
                    "COUNT".into(),
                    "1000".into(),
                ],
            )
            .await
            .unwrap();
        keys.extend(found);
        if next == "0" {
            break;
        }
        cursor = next;
    }
    let room_keys = keys.iter().filter(|k| k.contains(":wr")).count();
    assert!(room_keys >= 5, "the room's keys exist: {keys:?}");
    for key in &keys {
        let ttl: i64 = admin.ttl(key).await.unwrap();
        assert!(ttl > 0, "{key} never expires (TTL {ttl})");
    }
}
