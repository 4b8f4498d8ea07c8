//! The waiting room's benchmark tools (`make bench-waiting-room`):
//! - `fill`: N places in a sale's queue, straight through the store, and their tickets in a file
//!   (for polls of a large queue).
//! - `tokens`: N admission tokens for made-up buyers (for buys with a token against buys without).
//! - `crowd`: people (and a bot) on the local API as at a real opening: join (with the proof of
//!   work when asked), poll every second, buy once admitted; or, without a waiting room, buy at
//!   the opening. Prints who got the units and each step's latency.
//!
//! Written here rather than in k6: a crowd of 20,000 buyers who each join, poll and buy is 20,000
//! tasks here, and would be 20,000 JavaScript runtimes there.

use bytes::Bytes;
use flashflow::adapters::redis::{RedisSettings, RedisStore};
use flashflow::domain::waiting_room::tokens::{solve, Admission, TokenKeys};
use flashflow::domain::{BuyerId, SaleId};
use flashflow::ports::{JoinOutcome, QueueJoins};
use flashflow::settings::FromEnv;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

type HttpClient = Client<HttpConnector, Full<Bytes>>;

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
                match store.join(&sale, &buyer, None, None).await {
                    Ok(JoinOutcome::Joined(index) | JoinOutcome::Existing(index)) => {
                        Some((i, buyer, index))
                    }
                    _ => None,
                }
            });
        }
        while let Some(joined) = joins.join_next().await {
            if let Some((i, buyer, index)) = joined? {
                lines[i] = format!("{} {}", buyer.as_str(), keys.ticket(&sale, &buyer, index));
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

/// `n` admission tokens for `sale` and buyers `{prefix}-{i}` (valid an hour), to `out`.
pub fn tokens(sale: &str, n: usize, prefix: &str, out: &str) -> anyhow::Result<()> {
    let sale = SaleId::parse(sale)?;
    let keys = keys()?;
    let expires_ms = flashflow::clock::EpochMs::now().get() + 3_600_000;
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
#[derive(Default)]
struct Tally {
    joins: Timings,
    polls: Timings,
    buys: Timings,
    people_bought: std::sync::atomic::AtomicU64,
    bot_bought: std::sync::atomic::AtomicU64,
    people_admitted: std::sync::atomic::AtomicU64,
    bot_admitted: std::sync::atomic::AtomicU64,
    sold_out_told: std::sync::atomic::AtomicU64,
    errors: std::sync::atomic::AtomicU64,
    last_buy_ms: std::sync::atomic::AtomicI64,
    pow: Timings,
}

/// The crowd's settings.
pub struct Crowd {
    pub api: String,
    pub sale: String,
    /// The sale's opening (ms since the epoch, the server's clock).
    pub opens_ms: i64,
    /// People, each arriving once at a uniform time in `[arrive_from_ms, arrive_to_ms)`.
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
}

async fn send(
    client: &HttpClient,
    method: http::Method,
    url: &str,
    who: &str,
    extra: Option<(&str, &str)>,
    body: Option<String>,
) -> Option<(u16, serde_json::Value)> {
    let mut req = http::Request::builder()
        .method(method)
        .uri(url)
        .header("x-user-id", who);
    if let Some((k, v)) = extra {
        req = req.header(k, v);
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
    flashflow::clock::EpochMs::now().get()
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
) {
    use std::sync::atomic::Ordering::Relaxed;
    let base = format!("{}/sales/{}", c.api, c.sale);
    let mut body = None;
    if let Some((200, ch)) = send(
        &client,
        http::Method::GET,
        &format!("{base}/queue/challenge"),
        &who,
        None,
        None,
    )
    .await
    {
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
    let started = Instant::now();
    let Some((status, joined)) = send(
        &client,
        http::Method::POST,
        &format!("{base}/queue"),
        &who,
        None,
        body,
    )
    .await
    else {
        t.errors.fetch_add(1, Relaxed);
        return;
    };
    t.joins.add(started.elapsed());
    if !(status == 200 || status == 201) {
        t.errors.fetch_add(1, Relaxed);
        return;
    }
    let ticket = joined["ticket"].as_str().unwrap_or_default().to_owned();
    loop {
        if now_ms() > c.until_ms {
            return;
        }
        tokio::time::sleep(c.poll_every).await;
        let started = Instant::now();
        let Some((200, place)) = send(
            &client,
            http::Method::GET,
            &format!("{base}/queue/{ticket}"),
            &who,
            None,
            None,
        )
        .await
        else {
            continue;
        };
        t.polls.add(started.elapsed());
        match place["state"].as_str() {
            Some("admitted") => {
                if bot {
                    t.bot_admitted.fetch_add(1, Relaxed);
                } else {
                    t.people_admitted.fetch_add(1, Relaxed);
                }
                let token = place["admission_token"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                let started = Instant::now();
                let bought = send(
                    &client,
                    http::Method::POST,
                    &format!("{base}/buy"),
                    &who,
                    Some(("admission-token", &token)),
                    None,
                )
                .await;
                t.buys.add(started.elapsed());
                if let Some((202, _)) = bought {
                    if bot {
                        t.bot_bought.fetch_add(1, Relaxed);
                    } else {
                        t.people_bought.fetch_add(1, Relaxed);
                    }
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

/// One buyer racing: one buy at their arrival.
async fn racing(client: HttpClient, c: Arc<Crowd>, t: Arc<Tally>, who: String, bot: bool) -> bool {
    use std::sync::atomic::Ordering::Relaxed;
    let started = Instant::now();
    let answer = send(
        &client,
        http::Method::POST,
        &format!("{}/sales/{}/buy", c.api, c.sale),
        &who,
        None,
        None,
    )
    .await;
    t.buys.add(started.elapsed());
    match answer {
        Some((202, _)) => {
            if bot {
                t.bot_bought.fetch_add(1, Relaxed);
            } else {
                t.people_bought.fetch_add(1, Relaxed);
            }
            t.last_buy_ms.fetch_max(now_ms(), Relaxed);
            true
        }
        Some((409, _)) => false,
        _ => {
            t.errors.fetch_add(1, Relaxed);
            false
        }
    }
}

/// Run the crowd and print what it got.
pub async fn crowd(c: Crowd) -> anyhow::Result<()> {
    use std::sync::atomic::Ordering::Relaxed;
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: HttpClient = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(256)
        .build(connector);
    let c = Arc::new(c);
    let t = Arc::new(Tally::default());
    let mut tasks = tokio::task::JoinSet::new();
    // People: each arrives once, at a uniform time over the window (a fixed spread, seeded by
    // the index: the run is the same each time).
    for i in 0..c.people {
        let (client, c, t) = (client.clone(), Arc::clone(&c), Arc::clone(&t));
        let span = (c.arrive_to_ms - c.arrive_from_ms).max(1);
        let at = c.arrive_from_ms + (i as i64 * 7919) % span;
        tasks.spawn(async move {
            sleep_until(at).await;
            let who = format!("person-{i}");
            if c.room {
                through_the_queue(client, c, t, who, false).await;
            } else {
                racing(client, c, t, who, false).await;
            }
        });
    }
    // The bot: made-up ids over a few connections, as fast as it can from its start.
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
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
                    tokio::spawn(through_the_queue(client, c, t, who, true));
                } else {
                    racing(client.clone(), Arc::clone(&c), Arc::clone(&t), who, true).await;
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    // The bot's spawned places finish by `until_ms`.
    sleep_until(c.until_ms + 1_500).await;
    let (people, bot) = (t.people_bought.load(Relaxed), t.bot_bought.load(Relaxed));
    let sold = people + bot;
    println!(
        "crowd: {} people, a bot with {} ids on {} connections, {}",
        c.people,
        c.bot_ids,
        c.bot_connections,
        if c.room {
            "through the waiting room"
        } else {
            "racing (no waiting room)"
        }
    );
    println!(
        "  units bought: {sold} (people {people}, bot {bot}: the bot's share {:.1}%)",
        if sold > 0 {
            bot as f64 * 100.0 / sold as f64
        } else {
            0.0
        }
    );
    if c.room {
        println!(
            "  admitted: people {}, bot {}; told sold out while waiting: {}",
            t.people_admitted.load(Relaxed),
            t.bot_admitted.load(Relaxed),
            t.sold_out_told.load(Relaxed)
        );
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
    println!(
        "  errors (no answer, or an answer no buyer expects): {}",
        t.errors.load(Relaxed)
    );
    Ok(())
}
