//! `flashflow-bench`: the benchmarks' tools, kept out of the product runner.
//!
//! # Layout
//! - [`ceiling`]: the ceiling server (the same server as `flashflow-local api`, one trivial
//!   `EVALSHA` per request), what the buy path is judged against in `make bench`.
//! - [`settle`]: settlement throughput at the ledger, the handler and through the local queue
//!   (`make bench-settle`).
//! - [`sqs_rate`]: the emulator's own SQS rate, printed beside the drain in `make bench`.
//! - [`cost`]: the counting proxy and the exact-count driver of `make bench-cost`.
//!
//! Settings (`REDIS_URL`, `DATABASE_URL`, `ORDERS_QUEUE_URL`, …) come from the environment as for
//! the functions; `--help` lists the subcommands.

mod ceiling;
mod cost;
mod settle;
mod sqs_rate;
mod steps;

use anyhow::Context;
use clap::{Parser, Subcommand};
use flashflow::settings::FromEnv;
use flashflow::{aws, startup};
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
    /// The emulator's own SQS rate: N messages sent in batches of ten, then received and deleted.
    SqsRate {
        #[arg(default_value_t = 20_000)]
        messages: usize,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let steps = steps::StepTimes::default();
    init_tracing(steps.clone());
    match cli.command {
        Command::Ceiling { listen } => ceiling(&listen).await,
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
        Command::SqsRate { messages } => {
            let sdk = aws::sdk_config().await;
            sqs_rate::run(&sdk, messages).await
        }
    }
}

async fn ceiling(addr: &str) -> anyhow::Result<()> {
    let redis = flashflow::adapters::redis::RedisSettings::from_env()?;
    let client = ceiling::client(&redis.url).await?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    info!(%addr, "serving the ceiling server");
    flashflow_local::server::serve_with(
        listener,
        ceiling::router(client),
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
    let settings = startup::settle::Settings::from_env()?;
    let sdk = aws::sdk_config().await;
    let database = startup::database_settings(&sdk, &settings.database).await?;
    let signer = settings.signing.signer(&sdk).await?;
    let stack = Stack {
        database_url: database.url.clone(),
        store: startup::redis_ready(&sdk, &settings.redis).await?,
        dynamodb: aws_sdk_dynamodb::Client::new(&sdk),
        table: settings.status.table.clone(),
        requeue: flashflow::adapters::sqs::SqsPublisher::new(
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
