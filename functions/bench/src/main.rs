//! `flashflow-bench`: the benchmarks' tools, kept out of the product runner.
//!
//! # Layout
//! - [`arrivals`]: the opening as an open arrival rate, a light load generator for the pinned
//!   opening of `make bench-opening` (k6's `ramping-arrival-rate`, without a JavaScript runtime).
//! - [`ceiling`]: the ceiling server (the same server as `flashflow-local api`, one trivial
//!   `EVALSHA` per request), what the buy path is judged against in `make bench`; and the HTTP
//!   limit (the same server, a constant `409`, no Redis), what the sold-out answers are judged
//!   against.
//! - [`settle`]: settlement throughput at the ledger, the handler and through the local queue
//!   (`make bench-settle`).
//! - [`sqs_rate`]: the emulator's own SQS rate, printed beside the drain in `make bench`.
//! - [`cost`]: the counting proxy and the exact-count driver of `make bench-cost`.
//! - [`waiting_room`]: a queue's places and tokens made in bulk, and a crowd (and a bot) at an
//!   opening, with or without a waiting room (`make bench-waiting-room`).
//! - [`sybil`]: the Sybil sweep, a bot's share with and without an entry policy (`make
//!   bench-entry`).
//! - [`insider`]: an insider who knows the draw's seed, under the draw of the seed alone and
//!   under today's (`make bench-insider`).
//!
//! Settings (`REDIS_URL`, `DATABASE_URL`, `ORDERS_QUEUE_URL`, …) come from the environment as for
//! the functions; `--help` lists the subcommands.

mod arrivals;
mod ceiling;
mod cost;
mod insider;
mod settle;
mod sqs_rate;
mod steps;
mod sybil;
mod waiting_room;

use anyhow::Context;
use clap::{Parser, Subcommand};
use flashflow_adapters::aws;
use flashflow_settings::FromEnv;
use tracing::info;

#[derive(Parser)]
#[command(name = "flashflow-bench", about = "FlashFlow's benchmark tools")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The ceiling server: one EVALSHA of a trivial script per request, a constant 202 (REDIS_URL).
    Ceiling {
        #[arg(long, default_value = "127.0.0.1:3001")]
        listen: String,
    },
    /// The HTTP limit: the same server answering every buy with a constant 409 (sold out), no
    /// Redis: what the HTTP stack alone does on this machine.
    HttpLimit {
        #[arg(long, default_value = "127.0.0.1:3002")]
        listen: String,
    },
    /// Settlement throughput: N orders of one sale through C instances, at each of the levels C…
    /// (the settle function's settings, from the environment).
    Settle {
        #[arg(default_value_t = 20_000)]
        orders: usize,
        #[arg(default_values_t = [5])]
        concurrency: Vec<usize>,
        /// Messages per batch, each size run at every level (the template's event source sends
        /// up to its BatchSize).
        #[arg(long, default_values_t = [100], value_delimiter = ',')]
        batch: Vec<usize>,
    },
    /// A proxy in front of SQS and DynamoDB counting the calls made through it (make bench-cost).
    CountProxy {
        #[arg(long, default_value = "127.0.0.1:4599")]
        listen: String,
        #[arg(long, default_value = "http://127.0.0.1:4566")]
        sqs: String,
        #[arg(long, default_value = "http://127.0.0.1:8000")]
        dynamodb: String,
    },
    /// Exactly N buys of distinct buyers to URL, C at once.
    Drive {
        url: String,
        n: usize,
        #[arg(default_value_t = 50)]
        concurrency: usize,
        #[arg(long, default_value = "drive")]
        prefix: String,
    },
    /// The opening as an open arrival rate: buys of distinct buyers to URL, the rate climbing to
    /// RATE a second in RAMP_MS, held HOLD_MS, falling back in RAMP_MS; an arrival due while
    /// MAX_IN_FLIGHT wait is dropped. Writes a k6-shaped summary to SUMMARY.
    Arrivals {
        url: String,
        #[arg(long, default_value_t = 1500.0)]
        rate: f64,
        #[arg(long, default_value_t = 200)]
        ramp_ms: u64,
        #[arg(long, default_value_t = 3000)]
        hold_ms: u64,
        #[arg(long, default_value_t = 1000)]
        max_in_flight: usize,
        #[arg(long, default_value = "open")]
        prefix: String,
        #[arg(long)]
        summary: String,
    },
    /// The emulator's own SQS rate: N messages sent in batches of ten, then received and deleted.
    SqsRate {
        #[arg(default_value_t = 20_000)]
        messages: usize,
    },
    /// The waiting room's tools (REDIS_URL, ADMISSION_KEY).
    WaitingRoom {
        #[command(subcommand)]
        action: RoomAction,
    },
}

#[derive(Subcommand)]
enum RoomAction {
    /// N places in SALE's queue for buyers PREFIX-i, straight through the store; their tickets
    /// to OUT ("buyer ticket" lines).
    Fill {
        sale: String,
        n: usize,
        #[arg(long, default_value = "poller")]
        prefix: String,
        #[arg(long)]
        out: String,
    },
    /// N admission tokens for SALE and buyers PREFIX-i to OUT ("buyer token" lines).
    Tokens {
        sale: String,
        n: usize,
        #[arg(long, default_value = "admitted")]
        prefix: String,
        #[arg(long)]
        out: String,
    },
    /// What N places cost: a new sale's queue filled with N joins (through the store), then its
    /// Redis bytes per place (MEMORY USAGE of each of its keys), the draw's table in a process
    /// (bytes, time to compute).
    Cost {
        #[arg(default_value_t = 100_000)]
        places: usize,
    },
    /// The Sybil sweep: a bot's share of places and units with made-up identities that share a
    /// few phone numbers, one place per number against no policy (REDIS_URL, ADMISSION_KEY).
    Sybil(sybil::Sweep),
    /// The insider: up to N last-moment joins with the seed known, their chance of place 1
    /// under ff-draw-v1 and ff-draw-v2 beside N joins blind (pure computation).
    Insider(insider::Insider),
    /// A crowd at an opening: people arriving over a window (and a bot), joining the queue,
    /// polling and buying once admitted (--room), or buying at once (a sale without one).
    /// Times are ms relative to the opening (OPENS_MS, since the epoch).
    Crowd {
        api: String,
        sale: String,
        opens_ms: i64,
        #[arg(long, default_value_t = 5_000)]
        people: usize,
        #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
        arrive_from: i64,
        #[arg(long, default_value_t = 2_000, allow_hyphen_values = true)]
        arrive_to: i64,
        #[arg(long, default_value_t = 0)]
        bot_ids: usize,
        #[arg(long, default_value_t = 5)]
        bot_connections: usize,
        #[arg(long, default_value_t = -2_000, allow_hyphen_values = true)]
        bot_from: i64,
        #[arg(long)]
        room: bool,
        #[arg(long, default_value_t = 1_000)]
        poll_ms: u64,
        #[arg(long, default_value_t = 30_000)]
        until: i64,
        /// Buyers with the local issuer's JWTs: people a phone number each, the bot's ids
        /// sharing this many (for a sale with one place per phone number); 0: X-User-Id.
        #[arg(long, default_value_t = 0)]
        bot_phones: usize,
    },
}

/// mimalloc, as every FlashFlow binary: glibc's malloc cost a quarter of the API's CPU under load.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let steps = steps::StepTimes::default();
    init_tracing(steps.clone());
    match cli.command {
        Command::Ceiling { listen } => ceiling(&listen).await,
        Command::HttpLimit { listen } => http_limit(&listen).await,
        Command::Settle {
            orders,
            concurrency,
            batch,
        } => settle(orders, &concurrency, &batch, steps).await,
        Command::CountProxy {
            listen,
            sqs,
            dynamodb,
        } => cost::proxy(&listen, &sqs, &dynamodb).await,
        Command::Drive {
            url,
            n,
            concurrency,
            prefix,
        } => cost::drive(&url, n, concurrency, &prefix).await,
        Command::Arrivals {
            url,
            rate,
            ramp_ms,
            hold_ms,
            max_in_flight,
            prefix,
            summary,
        } => {
            let seen = arrivals::run(arrivals::Opening {
                url,
                rate,
                ramp: std::time::Duration::from_millis(ramp_ms),
                hold: std::time::Duration::from_millis(hold_ms),
                max_in_flight,
                prefix,
            })
            .await?;
            std::fs::write(&summary, seen.to_string()).with_context(|| format!("writing {summary}"))
        }
        Command::SqsRate { messages } => {
            let sdk = aws::sdk_config().await;
            sqs_rate::run(&sdk, messages).await
        }
        Command::WaitingRoom { action } => match action {
            RoomAction::Fill {
                sale,
                n,
                prefix,
                out,
            } => waiting_room::fill(&sale, n, &prefix, &out).await,
            RoomAction::Tokens {
                sale,
                n,
                prefix,
                out,
            } => waiting_room::tokens(&sale, n, &prefix, &out).await,
            RoomAction::Cost { places } => waiting_room::cost(places).await,
            RoomAction::Sybil(sweep) => sybil::sweep(sweep).await,
            RoomAction::Insider(s) => {
                insider::run(&s);
                Ok(())
            }
            RoomAction::Crowd {
                api,
                sale,
                opens_ms,
                people,
                arrive_from,
                arrive_to,
                bot_ids,
                bot_connections,
                bot_from,
                room,
                poll_ms,
                until,
                bot_phones,
            } => {
                let identities = match bot_phones {
                    0 => None,
                    n => Some(waiting_room::Identities {
                        issuer: flashflow_local::issuer::LocalIssuer::new(
                            &flashflow_local::issuer::IssuerSettings::from_env()?,
                        ),
                        bot_phones: n,
                    }),
                };
                waiting_room::crowd(waiting_room::Crowd {
                    api,
                    sale,
                    opens_ms,
                    people,
                    arrive_from_ms: opens_ms + arrive_from,
                    arrive_to_ms: opens_ms + arrive_to,
                    bot_ids,
                    bot_connections,
                    bot_from_ms: opens_ms + bot_from,
                    room,
                    poll_every: std::time::Duration::from_millis(poll_ms),
                    until_ms: opens_ms + until,
                    identities,
                })
                .await
            }
        },
    }
}

async fn ceiling(addr: &str) -> anyhow::Result<()> {
    let redis = flashflow_adapters::redis::RedisSettings::from_env()?;
    let client = ceiling::client(&redis.url).await?;
    serve(addr, "the ceiling server", ceiling::router(client)).await
}

async fn http_limit(addr: &str) -> anyhow::Result<()> {
    serve(
        addr,
        "the HTTP limit (a constant 409)",
        ceiling::http_limit_router(),
    )
    .await
}

/// Serves `router` on `addr` with the same server and limits as `flashflow-local api`, so a
/// comparison measures only what the router does.
async fn serve(addr: &str, what: &str, router: axum::Router) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    info!(%addr, "serving {what}");
    flashflow_local::server::serve_with(
        listener,
        router,
        flashflow_local::server::Limits::default(),
        Default::default(),
    )
    .await?;
    Ok(())
}

/// Logs as `RUST_LOG` says (info by default), and every step span timed by `steps` whatever the
/// log level.
fn init_tracing(steps: steps::StepTimes) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{filter, fmt, EnvFilter, Layer};
    let logs = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::registry()
        .with(fmt::layer().with_filter(logs))
        .with(steps.with_filter(filter::LevelFilter::INFO))
        .init();
}

async fn settle(
    n: usize,
    levels: &[usize],
    batches: &[usize],
    steps: steps::StepTimes,
) -> anyhow::Result<()> {
    use settle::{handler, ledger, through_queue, Stack};
    let settings = ::settle::Settings::from_env()?;
    let sdk = aws::sdk_config().await;
    let database = flashflow_adapters::clients::database_settings(&sdk, &settings.database).await?;
    let signer = settings.signing.signer(&sdk).await?;
    let stack = Stack {
        database_url: database.url.clone(),
        store: flashflow_adapters::clients::redis_ready(&sdk, &settings.redis).await?,
        dynamodb: aws_sdk_dynamodb::Client::new(&sdk),
        table: settings.status.table.clone(),
        requeue: flashflow_adapters::sqs::SqsPublisher::new(
            aws_sdk_sqs::Client::new(&sdk),
            &settings.queue.url,
        ),
        signer,
        steps,
    };
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let region = std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into());
    let show = |f: &settle::Figures| {
        let total: std::time::Duration = f.steps.iter().map(|(_, d)| *d).sum();
        for (name, d) in &f.steps {
            println!(
                "    {name:<30} {:>8.2} ms/batch  {:>5.1}%",
                d.as_secs_f64() * 1e3,
                100.0 * d.as_secs_f64() / total.as_secs_f64().max(1e-9)
            );
        }
    };
    for &b in batches {
        for &c in levels {
            let l = ledger(&stack, n, c, b).await?;
            println!(
                "settle ledger  (Db::settle_orders): {n} orders, batches of {b}, {c} connections: {:.0} orders/s ({:.2} s), invariants ok",
                l.per_second(),
                l.seconds
            );
            show(&l);
            let h = handler(&stack, n, c, b).await?;
            println!(
                "settle handler (Settler::handle)  : {n} orders, batches of {b}, {c} instances: {:.0} orders/s ({:.2} s), invariants ok",
                h.per_second(),
                h.seconds
            );
            show(&h);
            let q = through_queue(&stack, &sqs, &region, n, c, b).await?;
            println!(
                "settle via the local queue (event source, {b} / 1 s window): {n} orders, {c} instances: {:.0} orders/s ({:.2} s), invariants ok",
                q.per_second(),
                q.seconds
            );
        }
    }
    Ok(())
}
