//! The waiting room's benchmark tools (`make bench-waiting-room`):
//! - `fill`: N places in a sale's queue, straight through the store, and their tickets in a file
//!   (for polls of a large queue).
//! - `tokens`: N admission tokens for made-up buyers (for buys with a token against buys without).
//! - `cost`: what N places cost in Redis (bytes per place) and in a process (the draw's table).
//! - `crowd`: people (and a bot) on the local API as at a real opening: join (with the proof of
//!   work when asked), poll every second, buy once admitted; or, without a waiting room, buy at
//!   the opening. Prints who got the units and each step's latency.
//!
//! Written here rather than in k6: a crowd of 20,000 buyers who each join, poll and buy is 20,000
//! tasks here, and would be 20,000 JavaScript runtimes there.

use bytes::Bytes;
use flashflow::domain::waiting_room::tokens::{solve, Admission, TokenKeys};
use flashflow::domain::{BuyerId, SaleId};
use flashflow::ports::{JoinOutcome, QueueJoins, QueueSteps};
use flashflow_adapters::redis::{RedisSettings, RedisStore};
use flashflow_settings::FromEnv;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// Requests in flight at once: one machine's sockets, not one per buyer (each of 20,000 buyers
/// would be a connection of their own). A request is timed from its turn.
const IN_FLIGHT: usize = 512;

fn keys() -> anyhow::Result<TokenKeys> {
    let key = std::env::var("ADMISSION_KEY")?;
    TokenKeys::new(key.as_bytes()).ok_or_else(|| anyhow::anyhow!("ADMISSION_KEY is too short"))
}

/// `n` places in `sale`'s queue for buyers `{prefix}-{i}`, their tickets written to `out`.
pub async fn fill(sale: &str, n: usize, prefix: &str, out: &str) -> anyhow::Result<()> {
    let settings = RedisSettings::from_env()?;
    let store = RedisStore::connect(&settings)?;
    store.ready(Duration::from_secs(5)).await?;
    let sale = SaleId::parse(sale)?;
    let keys = keys()?;
    let start = Instant::now();
    let mut lines = vec![String::new(); n];
    for chunk in (0..n).collect::<Vec<_>>().chunks(256) {
        let mut joins = tokio::task::JoinSet::new();
        for &i in chunk {
            let (store, sale) = (store.clone(), sale.clone());
            let buyer = BuyerId::parse(&format!("{prefix}-{i}"))?;
            joins.spawn(async move {
                match store.join(&sale, &buyer, None, None, None).await {
                    Ok(JoinOutcome::Joined(place) | JoinOutcome::Existing(place)) => {
                        Some((i, buyer, place))
                    }
                    _ => None,
                }
            });
        }
        while let Some(joined) = joins.join_next().await {
            if let Some((i, buyer, place)) = joined? {
                lines[i] = format!("{} {}", buyer.as_str(), keys.ticket(&sale, &buyer, place));
            }
        }
    }
    std::fs::write(out, lines.join("\n") + "\n")?;
    println!(
        "fill: {n} places in {:.1} s ({:.0}/s)",
        start.elapsed().as_secs_f64(),
        n as f64 / start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `def` (a sale with a waiting room) loaded straight into the store with `stock` units and a
/// random draw seed, as the operator's first load would, with no ledger behind it; the seed.
pub async fn load_fresh(
    store: &RedisStore,
    def: &flashflow::domain::SaleDefinition,
    stock: u32,
) -> anyhow::Result<flashflow::domain::waiting_room::draw::Seed> {
    use flashflow::domain::rehydrate::Plan;
    use flashflow::domain::waiting_room::draw::Seed;
    use flashflow::ports::SaleLoader;
    let mut seed = [0u8; 32];
    seed[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    seed[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    let plan = Plan {
        remaining: i64::from(stock),
        remaining_if_new: i64::from(stock),
        returned: Vec::new(),
        round: 1,
        buyers: Vec::new(),
        keys: Vec::new(),
        holds: Vec::new(),
        draw_seed: Some(Seed::new(seed)),
    };
    store.rehydrate(def, &plan).await?;
    Ok(Seed::new(seed))
}

/// What `places` places cost: a new sale (its queue opened a minute ago, the sale opening once
/// they joined) filled through the store; then Redis' bytes for the queue, the draw's table in
/// this process. Prints one table.
pub async fn cost(places: usize) -> anyhow::Result<()> {
    use flashflow::domain::waiting_room::draw;
    use flashflow::domain::waiting_room::WaitingRoom;
    use flashflow::domain::{EpochMs, SaleDefinition};
    use flashflow_adapters::redis::SaleKeys;
    use fred::interfaces::{ClientLike, KeysInterface};
    let settings = RedisSettings::from_env()?;
    let store = RedisStore::connect(&settings)?;
    store.ready(Duration::from_secs(5)).await?;
    let now = EpochMs::now().get();
    let id = SaleId::parse(&format!("cost-{}", uuid::Uuid::new_v4().simple()))?;
    let def = SaleDefinition::new(id.clone(), 1_000)
        .with_window(Some(now + 3_600_000), None)
        .with_waiting_room(WaitingRoom {
            opens_at_ms: now - 60_000,
            admission_seconds: 600,
            admit_per_second: Some(1),
            pow_bits: 0,
            entry: None,
        });
    let seed = load_fresh(&store, &def, 1_000).await?;
    let keys = SaleKeys::new(&id);
    let usage = |key: String| {
        let client = store.client().clone();
        async move {
            let n: Option<i64> = client
                .custom(
                    fred::cmd!("MEMORY"),
                    vec!["USAGE".to_owned(), key, "SAMPLES".into(), "0".into()],
                )
                .await?;
            Ok::<_, anyhow::Error>(n.unwrap_or(0))
        }
    };
    let room_bytes = || async {
        let mut total = 0;
        for k in keys.room_all() {
            total += usage(k).await?;
        }
        Ok::<_, anyhow::Error>(total)
    };
    let empty = room_bytes().await?;
    let start = Instant::now();
    for chunk in (0..places).collect::<Vec<_>>().chunks(512) {
        let mut joins = tokio::task::JoinSet::new();
        for &i in chunk {
            let (store, id) = (store.clone(), id.clone());
            let buyer = BuyerId::parse(&format!("cost-buyer-{i:07}"))?;
            joins.spawn(async move { store.join(&id, &buyer, None, None, None).await });
        }
        while let Some(j) = joins.join_next().await {
            j??;
        }
    }
    let fill_s = start.elapsed().as_secs_f64();
    let full = room_bytes().await?;
    let per_place = (full - empty) as f64 / places as f64;
    // The draw's table, as a queue process builds it on the first poll after the draw.
    let started = Instant::now();
    let table = draw::places(&seed, places as u32);
    let draw_ms = started.elapsed().as_secs_f64() * 1000.0;
    let table_bytes = table.capacity() * std::mem::size_of::<u32>();
    let mib = |bytes: f64| bytes / 1_048_576.0;
    println!("| places | the queue in Redis | per place | filled in | the draw's table in a process | built in |");
    println!("| ---: | ---: | ---: | ---: | ---: | ---: |");
    println!(
        "| {places} | {:.2} MiB | {per_place:.1} B | {fill_s:.1} s ({:.0} joins/s) | {:.2} MiB ({} B/place) | {draw_ms:.0} ms |",
        mib(full as f64),
        places as f64 / fill_s,
        mib(table_bytes as f64),
        std::mem::size_of::<u32>(),
    );
    let _: i64 = store.client().unlink(keys.room_all()).await?;
    let _: i64 = store
        .client()
        .unlink(vec![keys.sale.clone(), keys.room_seed(), keys.wake()])
        .await?;
    Ok(())
}

/// `n` admission tokens for `sale`'s queue (its epoch, read from Redis) and buyers `{prefix}-{i}`
/// (valid an hour, each its own place), to `out`.
pub async fn tokens(sale: &str, n: usize, prefix: &str, out: &str) -> anyhow::Result<()> {
    let sale = SaleId::parse(sale)?;
    let keys = keys()?;
    let store = RedisStore::connect(&RedisSettings::from_env()?)?;
    store.ready(Duration::from_secs(5)).await?;
    let epoch = store
        .peek(&sale)
        .await?
        .ok_or_else(|| anyhow::anyhow!("{sale} has no waiting room"))?
        .epoch;
    let expires_ms = flashflow::domain::EpochMs::now().get() + 3_600_000;
    let mut f = std::io::BufWriter::new(std::fs::File::create(out)?);
    for i in 0..n {
        let buyer = BuyerId::parse(&format!("{prefix}-{i}"))?;
        let token = keys.admission(
            &sale,
            &buyer,
            Admission {
                index: i as u64,
                batch: 1,
                expires_ms,
                epoch,
            },
        );
        writeln!(f, "{} {token}", buyer.as_str())?;
    }
    Ok(())
}

/// Latencies of one kind of request, in ms.
#[derive(Default)]
struct Timings(Mutex<Vec<f64>>);

impl Timings {
    fn add(&self, d: Duration) {
        self.0
            .lock()
            .expect("timings")
            .push(d.as_secs_f64() * 1000.0);
    }

    fn summary(&self) -> String {
        let mut v = self.0.lock().expect("timings").clone();
        if v.is_empty() {
            return "none".into();
        }
        v.sort_by(f64::total_cmp);
        let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
        format!(
            "{} requests, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            v.len(),
            at(0.5),
            at(0.99),
            v[v.len() - 1]
        )
    }
}

/// What happened to the crowd.
struct Tally {
    joins: Timings,
    polls: Timings,
    buys: Timings,
    challenges: Timings,
    pow: Timings,
    people_bought: AtomicU64,
    bot_bought: AtomicU64,
    people_admitted: AtomicU64,
    bot_admitted: AtomicU64,
    people_joined: AtomicU64,
    bot_joined: AtomicU64,
    sold_out_told: AtomicU64,
    last_buy_ms: AtomicI64,
    /// When the first place was seen admitted (ms since the epoch; `i64::MAX`: none): the draw's
    /// wait for its beacon round, and the first step after it.
    first_admitted_ms: AtomicI64,
    /// Answers by request kind and status (0: no answer).
    statuses: Mutex<BTreeMap<(&'static str, u16), u64>>,
    turns: tokio::sync::Semaphore,
}

impl Tally {
    fn new() -> Self {
        Self {
            joins: Timings::default(),
            polls: Timings::default(),
            buys: Timings::default(),
            challenges: Timings::default(),
            pow: Timings::default(),
            people_bought: AtomicU64::new(0),
            bot_bought: AtomicU64::new(0),
            people_admitted: AtomicU64::new(0),
            bot_admitted: AtomicU64::new(0),
            people_joined: AtomicU64::new(0),
            bot_joined: AtomicU64::new(0),
            sold_out_told: AtomicU64::new(0),
            last_buy_ms: AtomicI64::new(0),
            first_admitted_ms: AtomicI64::new(i64::MAX),
            statuses: Mutex::default(),
            turns: tokio::sync::Semaphore::new(IN_FLIGHT),
        }
    }

    /// The same tallies for the bot or for people.
    fn bought(&self, bot: bool) -> &AtomicU64 {
        if bot {
            &self.bot_bought
        } else {
            &self.people_bought
        }
    }

    fn joined(&self, bot: bool) -> &AtomicU64 {
        if bot {
            &self.bot_joined
        } else {
            &self.people_joined
        }
    }

    fn admitted(&self, bot: bool) -> &AtomicU64 {
        if bot {
            &self.bot_admitted
        } else {
            &self.people_admitted
        }
    }
}

/// The crowd's settings.
pub struct Crowd {
    pub api: String,
    pub sale: String,
    /// The sale's opening (ms since the epoch, the server's clock).
    pub opens_ms: i64,
    /// People, each arriving once at a time spread over `[arrive_from_ms, arrive_to_ms)`.
    pub people: usize,
    pub arrive_from_ms: i64,
    pub arrive_to_ms: i64,
    /// The bot: this many made-up buyer ids over this many connections, from `bot_from_ms`.
    pub bot_ids: usize,
    pub bot_connections: usize,
    pub bot_from_ms: i64,
    /// Whether the sale has a waiting room (join, poll, buy) or buyers race (buy at once).
    pub room: bool,
    pub poll_every: Duration,
    /// Give up this long after the opening.
    pub until_ms: i64,
    /// Buyers identified by the local issuer's JWTs carrying a verified phone number (people one
    /// each, the bot's ids sharing `bot_phones`), as for a sale with an entry policy; `None`:
    /// `X-User-Id`, no claims.
    pub identities: Option<Identities>,
}

/// The JWTs of a crowd: people with a phone number each, the bot's ids sharing a few.
pub struct Identities {
    pub issuer: flashflow_local::issuer::LocalIssuer,
    pub bot_phones: usize,
}

impl Identities {
    /// The bearer token of buyer `i` (a person, or the bot's id `i`).
    fn token(&self, i: usize, bot: bool) -> Option<String> {
        let phone = if bot {
            format!("+1 999 {:07}", i % self.bot_phones.max(1))
        } else {
            format!("+1 555 {i:07}")
        };
        let who = if bot {
            format!("bot-{i}")
        } else {
            format!("person-{i}")
        };
        let claims = serde_json::json!({"phone_number": phone, "phone_number_verified": true});
        let serde_json::Value::Object(claims) = claims else {
            return None;
        };
        self.issuer
            .sign(&who, claims, Duration::from_secs(3600))
            .ok()
    }
}

/// One request of `kind` in its turn (see [`IN_FLIGHT`]), timed from its turn and counted.
struct Request<'a> {
    kind: &'static str,
    method: http::Method,
    url: String,
    who: &'a str,
    /// The buyer's JWT, sent instead of `X-User-Id` when they have one.
    bearer: Option<&'a str>,
    token: Option<&'a str>,
    body: Option<String>,
}

impl Tally {
    async fn send(
        &self,
        client: &HttpClient,
        timings: &Timings,
        r: Request<'_>,
    ) -> Option<(u16, serde_json::Value)> {
        let _turn = self.turns.acquire().await.ok()?;
        let started = Instant::now();
        let answer = send(client, r.method, &r.url, (r.who, r.bearer), r.token, r.body).await;
        timings.add(started.elapsed());
        *self
            .statuses
            .lock()
            .expect("statuses")
            .entry((r.kind, answer.as_ref().map_or(0, |(s, _)| *s)))
            .or_default() += 1;
        answer
    }
}

async fn send(
    client: &HttpClient,
    method: http::Method,
    url: &str,
    (who, bearer): (&str, Option<&str>),
    token: Option<&str>,
    body: Option<String>,
) -> Option<(u16, serde_json::Value)> {
    let mut req = http::Request::builder().method(method).uri(url);
    req = match bearer {
        Some(jwt) => req.header("authorization", format!("Bearer {jwt}")),
        None => req.header("x-user-id", who),
    };
    if let Some(token) = token {
        req = req.header("admission-token", token);
    }
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    let req = req
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .ok()?;
    let resp = client.request(req).await.ok()?;
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.ok()?.to_bytes();
    Some((status, serde_json::from_slice(&bytes).unwrap_or_default()))
}

fn now_ms() -> i64 {
    flashflow::domain::EpochMs::now().get()
}

async fn sleep_until(ms: i64) {
    let wait = ms - now_ms();
    if wait > 0 {
        tokio::time::sleep(Duration::from_millis(wait as u64)).await;
    }
}

/// One buyer through the waiting room: join (with the proof of work asked), poll, buy.
async fn through_the_queue(
    client: HttpClient,
    c: Arc<Crowd>,
    t: Arc<Tally>,
    who: String,
    bot: bool,
    bearer: Option<String>,
) {
    let base = format!("{}/sales/{}", c.api, c.sale);
    let bearer = bearer.as_deref();
    let get = |kind, url: String| Request {
        kind,
        method: http::Method::GET,
        url,
        who: &who,
        bearer,
        token: None,
        body: None,
    };
    let mut body = None;
    let challenge = t
        .send(
            &client,
            &t.challenges,
            get("challenge", format!("{base}/queue/challenge")),
        )
        .await;
    if let Some((200, ch)) = challenge {
        let bits = ch["bits"].as_u64().unwrap_or(0) as u8;
        if bits > 0 {
            let challenge = ch["challenge"].as_str().unwrap_or_default().to_owned();
            let started = Instant::now();
            let nonce = tokio::task::spawn_blocking({
                let challenge = challenge.clone();
                move || solve(&challenge, bits)
            })
            .await
            .unwrap_or_default();
            t.pow.add(started.elapsed());
            body = Some(serde_json::json!({"challenge": challenge, "nonce": nonce}).to_string());
        }
    }
    let join = Request {
        kind: "join",
        method: http::Method::POST,
        url: format!("{base}/queue"),
        who: &who,
        bearer,
        token: None,
        body,
    };
    let Some((200 | 201, joined)) = t.send(&client, &t.joins, join).await else {
        return;
    };
    t.joined(bot).fetch_add(1, Relaxed);
    let ticket = joined["ticket"].as_str().unwrap_or_default().to_owned();
    while now_ms() < c.until_ms {
        tokio::time::sleep(c.poll_every).await;
        let poll = get("poll", format!("{base}/queue/{ticket}"));
        let Some((200, place)) = t.send(&client, &t.polls, poll).await else {
            continue;
        };
        match place["state"].as_str() {
            Some("admitted") => {
                t.admitted(bot).fetch_add(1, Relaxed);
                t.first_admitted_ms.fetch_min(now_ms(), Relaxed);
                let token = place["admission_token"].as_str().unwrap_or_default();
                let buy = Request {
                    kind: "buy",
                    method: http::Method::POST,
                    url: format!("{base}/buy"),
                    who: &who,
                    bearer,
                    token: Some(token),
                    body: None,
                };
                if let Some((202, _)) = t.send(&client, &t.buys, buy).await {
                    t.bought(bot).fetch_add(1, Relaxed);
                    t.last_buy_ms.fetch_max(now_ms(), Relaxed);
                }
                return;
            }
            Some("sold_out") => {
                t.sold_out_told.fetch_add(1, Relaxed);
                return;
            }
            Some("expired") => return,
            _ => {}
        }
    }
}

/// One buyer racing: one buy at their arrival. `true` once the sale is sold out.
async fn racing(client: &HttpClient, c: &Crowd, t: &Tally, who: &str, bot: bool) -> bool {
    let buy = Request {
        kind: "buy",
        method: http::Method::POST,
        url: format!("{}/sales/{}/buy", c.api, c.sale),
        who,
        bearer: None,
        token: None,
        body: None,
    };
    match t.send(client, &t.buys, buy).await {
        Some((202, _)) => {
            t.bought(bot).fetch_add(1, Relaxed);
            t.last_buy_ms.fetch_max(now_ms(), Relaxed);
            false
        }
        Some((409, _)) => true,
        // Not open yet (the bot, early), or no answer: the bot tries its next id.
        _ => false,
    }
}

/// Run the crowd and print what it got.
pub async fn crowd(c: Crowd) -> anyhow::Result<()> {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: HttpClient = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(IN_FLIGHT)
        .build(connector);
    let c = Arc::new(c);
    let t = Arc::new(Tally::new());
    let mut tasks = tokio::task::JoinSet::new();
    // People: each arrives once; the arrivals are spread evenly over the window in a fixed
    // shuffled order (index × a prime), so the run is the same each time.
    for i in 0..c.people {
        let (client, c, t) = (client.clone(), Arc::clone(&c), Arc::clone(&t));
        let span = (c.arrive_to_ms - c.arrive_from_ms).max(1);
        let at = c.arrive_from_ms + (i as i64 * 7919) % span;
        tasks.spawn(async move {
            sleep_until(at).await;
            let who = format!("person-{i}");
            if c.room {
                let bearer = c.identities.as_ref().and_then(|id| id.token(i, false));
                through_the_queue(client, c, t, who, false, bearer).await;
            } else {
                racing(&client, &c, &t, &who, false).await;
            }
        });
    }
    // The bot: made-up ids over a few connections, as fast as it can from its start.
    let next = Arc::new(AtomicUsize::new(0));
    for _ in 0..c.bot_connections {
        let (client, c, t, next) = (
            client.clone(),
            Arc::clone(&c),
            Arc::clone(&t),
            Arc::clone(&next),
        );
        tasks.spawn(async move {
            sleep_until(c.bot_from_ms).await;
            loop {
                let i = next.fetch_add(1, Relaxed);
                if i >= c.bot_ids || now_ms() > c.until_ms {
                    return;
                }
                let who = format!("bot-{i}");
                if c.room {
                    // Each made-up id is a place of its own; the bot polls them all.
                    let (client, c, t) = (client.clone(), Arc::clone(&c), Arc::clone(&t));
                    let bearer = c.identities.as_ref().and_then(|id| id.token(i, true));
                    tokio::spawn(through_the_queue(client, c, t, who, true, bearer));
                } else if racing(&client, &c, &t, &who, true).await {
                    return;
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    // The bot's places poll until `until_ms`.
    sleep_until(c.until_ms + 1_500).await;
    report(&client, &c, &t).await;
    Ok(())
}

async fn report(client: &HttpClient, c: &Crowd, t: &Tally) {
    let (people, bot) = (t.people_bought.load(Relaxed), t.bot_bought.load(Relaxed));
    let sold = people + bot;
    let share = |n: u64, of: u64| {
        if of > 0 {
            n as f64 * 100.0 / of as f64
        } else {
            0.0
        }
    };
    println!(
        "crowd: {} people, a bot with {} ids on {} connections, {}",
        c.people,
        if c.room {
            c.bot_ids.to_string()
        } else {
            "fresh".into()
        },
        c.bot_connections,
        if c.room {
            "through the waiting room"
        } else {
            "racing (no waiting room)"
        }
    );
    println!(
        "  units bought: {sold} (people {people}, bot {bot}: the bot's share {:.1}%)",
        share(bot, sold)
    );
    if c.room {
        let url = format!("{}/sales/{}/queue/draw", c.api, c.sale);
        let anyone = ("anyone", None);
        if let Some((200, draw)) = send(client, http::Method::GET, &url, anyone, None, None).await {
            let cohort = draw["cohort"].as_u64().unwrap_or(0);
            let bot_places = t.bot_joined.load(Relaxed);
            println!(
                "  the draw: {cohort} places in the pre-queue, {bot_places} of them the bot's \
                 ({:.1}%)",
                share(bot_places, cohort)
            );
        }
        if let Some(id) = &c.identities {
            let refused = |status| {
                t.statuses
                    .lock()
                    .expect("statuses")
                    .get(&("join", status))
                    .copied()
                    .unwrap_or(0)
            };
            println!(
                "  one place per phone number: the bot's {} ids carry {} numbers; joins refused \
                 409 already_entered: {}, 403 entry_not_allowed: {}",
                c.bot_ids,
                id.bot_phones,
                refused(409),
                refused(403)
            );
        }
        println!(
            "  admitted: people {}, bot {}; told sold out while waiting: {}",
            t.people_admitted.load(Relaxed),
            t.bot_admitted.load(Relaxed),
            t.sold_out_told.load(Relaxed)
        );
        let first = t.first_admitted_ms.load(Relaxed);
        if first != i64::MAX {
            println!(
                "  first place seen admitted {:.2} s after the opening (the draw waits for its \
                 beacon round; places poll at least a second apart)",
                (first - c.opens_ms) as f64 / 1000.0
            );
        }
        println!("  joins: {}", t.joins.summary());
        println!("  polls: {}", t.polls.summary());
        println!("  proof of work per join: {}", t.pow.summary());
    }
    println!("  buys: {}", t.buys.summary());
    let last = t.last_buy_ms.load(Relaxed);
    if last > 0 {
        println!(
            "  from the opening to the last unit bought: {:.2} s",
            (last - c.opens_ms) as f64 / 1000.0
        );
    }
    let answers: Vec<String> = t
        .statuses
        .lock()
        .expect("statuses")
        .iter()
        .map(|((kind, status), n)| format!("{kind} {status}: {n}"))
        .collect();
    println!("  answers (0: none): {}", answers.join(", "));
}
