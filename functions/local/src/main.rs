//! `flashflow-local`: FlashFlow's functions on the local stack, wired by the same
//! [`flashflow::startup`] modules as the Lambdas. `flashflow-local --help` lists the subcommands;
//! `flashflow-local <subcommand> --help` the settings each reads.

use anyhow::Context;
use clap::{Parser, Subcommand};
use flashflow_adapters::aws;
use flashflow_app::metrics::Metrics;
use flashflow_local::beacon::{BeaconSettings, LocalBeacon};
use flashflow_local::event_source::{self, EventSourceStats, HttpInvokeTarget};
use flashflow_local::issuer::{self, IssuerSettings, LocalIssuer};
use flashflow_local::server;
use flashflow_local::settings::{
    ApiMode, DlqSettings, EventSourceSettings, ExpireLoop, MetricsSettings, ServerSettings,
    SweepLoop,
};
use flashflow_settings::FromEnv;
use std::sync::Arc;
use tracing::{info, warn};

#[derive(Parser)]
#[command(
    name = "flashflow-local",
    about = "FlashFlow's functions on the local stack: the same handlers as the Lambdas",
    after_help = "Settings come from the environment (infra/local/env.sh sets the local stack's); \
                  each subcommand's --help lists those it reads."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The buy, order-status, operator and checkout routers merged on one HTTP port (API
    /// Gateway's job in AWS).
    #[command(after_help = reads(&api_variables()))]
    Api,
    /// The SQS event source feeding the settle handler, as Lambda's event source mapping does.
    #[command(after_help = reads(&settle_variables()))]
    Settle,
    /// The outbox sweeper on a timer (a scheduled Lambda in AWS).
    #[command(after_help = reads(&reconcile_variables()))]
    Reconcile,
    /// Checkout's expiry job on a timer (EventBridge every minute in AWS): holds past `pay_by`
    /// end, their intents cancelled at Stripe first.
    #[command(after_help = reads(&expire_variables()))]
    Expire,
    /// Look at the dead-letter queue, or move its messages back to the order queue.
    #[command(after_help = reads(&DlqSettings::variables()))]
    Dlq {
        #[command(subcommand)]
        action: DlqAction,
    },
    /// Print a buyer's JWT from the local issuer, as a shop's identity issuer would give it
    /// (`Authorization: Bearer <it>` on the local API, which checks it as API Gateway's JWT
    /// authorizer does): `flashflow-local jwt --sub ann --claim phone_number_verified=true`.
    #[command(after_help = reads(&IssuerSettings::variables()))]
    Jwt {
        /// The buyer's id (the `sub` claim).
        #[arg(long)]
        sub: String,
        /// A claim, `name=value`; the value is read as JSON when it is JSON (`true`, `42`),
        /// else as a string. Repeat for more.
        #[arg(long = "claim", value_name = "NAME=VALUE")]
        claims: Vec<String>,
        /// How long the token is valid, in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl: u64,
    },
    /// A stand-in for a drand randomness beacon: drand's HTTP API (`/info`, `/public/latest`,
    /// `/public/{round}`), rounds every `BEACON_PERIOD` s, BLS-signed under its own key in
    /// quicknet's scheme.
    #[command(after_help = reads(&BeaconSettings::variables()))]
    Beacon,
    /// Print the API's OpenAPI document, generated from the code (`make openapi` writes it to
    /// docs/openapi.json, which the functions serve at GET /openapi.json).
    Openapi,
}

#[derive(Subcommand)]
enum DlqAction {
    /// The DLQ's messages as JSON lines.
    Show,
    /// Move the DLQ's messages back to the order queue.
    Redrive,
}

fn reads(variables: &[String]) -> String {
    format!("Settings (environment): {}", variables.join(", "))
}

fn union(groups: &[Vec<String>]) -> Vec<String> {
    let mut all: Vec<String> = Vec::new();
    for v in groups.iter().flatten() {
        if !all.contains(v) {
            all.push(v.clone());
        }
    }
    all
}

fn api_variables() -> Vec<String> {
    union(&[
        ServerSettings::variables(),
        IssuerSettings::variables(),
        ApiMode::variables(),
        MetricsSettings::variables(),
        flashflow_adapters::relay::RelaySettings::variables(),
        buy::Settings::variables(),
        orders::Settings::variables(),
        operator::Settings::variables(),
        checkout::Settings::variables(),
        queue::Settings::variables(),
    ])
}

fn expire_variables() -> Vec<String> {
    union(&[ExpireLoop::variables(), expire::Settings::variables()])
}

fn settle_variables() -> Vec<String> {
    union(&[
        EventSourceSettings::variables(),
        MetricsSettings::variables(),
        settle::Settings::variables(),
    ])
}

fn reconcile_variables() -> Vec<String> {
    union(&[SweepLoop::variables(), reconcile::Settings::variables()])
}

/// mimalloc, as every FlashFlow binary: glibc's malloc cost a quarter of the API's CPU under load.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    lambda_http::tracing::init_default_subscriber();
    match cli.command {
        Command::Api => api().await,
        Command::Settle => settle().await,
        Command::Reconcile => reconcile().await,
        Command::Expire => expire().await,
        Command::Dlq { action } => dlq(action).await,
        Command::Beacon => beacon().await,
        Command::Jwt { sub, claims, ttl } => {
            println!("{}", jwt(&sub, &claims, ttl)?);
            Ok(())
        }
        Command::Openapi => {
            print!("{}", flashflow_http::openapi::to_json());
            Ok(())
        }
    }
}

async fn api() -> anyhow::Result<()> {
    let server = ServerSettings::from_env()?;
    let issuer = LocalIssuer::new(&IssuerSettings::from_env()?);
    let mode = ApiMode::from_env()?;
    let flush = MetricsSettings::from_env()?.metrics_flush_ms.get();
    let buy = buy::Settings::from_env()?;
    let orders = orders::Settings::from_env()?;
    let operator = operator::Settings::from_env()?;
    let relay = flashflow_adapters::relay::RelaySettings::from_env()?;
    let checkout_settings = checkout::Settings::from_env()?;
    let queue = queue::Settings::from_env()?;

    let sdk = aws::sdk_config().await;
    let metrics = Metrics::new("buy");
    metrics.flush_every(flush);
    let buy_routes = if mode.buy_relay.get() {
        info!(
            ?relay,
            "buy answers from the outbox; the relay sends in batches"
        );
        buy::relayed_routes(&sdk, &buy, relay, metrics).await?
    } else {
        buy::routes(&sdk, &buy, metrics).await?
    };
    let checkout_state = checkout::state(&sdk, &checkout_settings).await?;
    checkout_state.checkout.metrics.flush_every(flush);
    let queue_metrics = Metrics::new("queue");
    queue_metrics.flush_every(flush);
    let app = server::app(
        buy_routes,
        orders::routes(&sdk, &orders)
            .await?
            .merge(queue::routes(&sdk, &queue, queue_metrics).await?),
        operator::routes(&sdk, &operator)
            .await?
            .merge(checkout::routes(checkout_state)),
    );
    let app = issuer::authorized(app, Arc::new(issuer));

    let addr = &server.listen_addr;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    info!(%addr, "serving the FlashFlow API");
    server::serve_with(listener, app, server.limits(), Default::default()).await?;
    Ok(())
}

async fn beacon() -> anyhow::Result<()> {
    let settings = BeaconSettings::from_env()?;
    let beacon = LocalBeacon::new(&settings).context("BEACON_SEED: at least 32 bytes")?;
    let addr = &settings.beacon_listen_addr;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    info!(%addr, chain = %beacon.chain().hash, "serving the local beacon");
    axum::serve(listener, flashflow_local::beacon::routes(Arc::new(beacon))).await?;
    Ok(())
}

/// A token of the local issuer for `sub` with `claims` (`name=value`, the value JSON when it is).
fn jwt(sub: &str, claims: &[String], ttl: u64) -> anyhow::Result<String> {
    let mut body = serde_json::Map::new();
    for claim in claims {
        let (name, value) = claim
            .split_once('=')
            .with_context(|| format!("--claim {claim:?}: expected name=value"))?;
        let value = serde_json::from_str(value)
            .unwrap_or_else(|_| serde_json::Value::String(value.to_owned()));
        body.insert(name.to_owned(), value);
    }
    let issuer = LocalIssuer::new(&IssuerSettings::from_env()?);
    Ok(issuer.sign(sub, body, std::time::Duration::from_secs(ttl))?)
}

async fn settle() -> anyhow::Result<()> {
    let source = EventSourceSettings::from_env()?;
    let settings = settle::Settings::from_env()?;
    let cfg = source.config(&settings.queue.url);
    let sdk = aws::sdk_config().await;
    let sqs = aws::long_poll_sqs(&sdk, cfg.poll_wait);
    let stats = Arc::new(EventSourceStats::default());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::spawn(async move {
        // Finish the batch in hand, then stop: an abandoned long poll would still be handed a
        // message by the queue, which then stays invisible for the visibility timeout.
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        info!("stopping after the current batch");
        let _ = stop_tx.send(true);
    });
    info!(queue = %cfg.queue_url, batch_size = cfg.batch_size, concurrency = cfg.max_concurrency, "event source started");

    if let Some(url) = &source.event_source_invoke_url {
        let targets = (0..cfg.max_concurrency)
            .map(|_| HttpInvokeTarget::new(url.clone()))
            .collect();
        event_source::run(sqs, cfg, targets, stop_rx, stats).await;
        return Ok(());
    }
    let metrics = Metrics::new("settle");
    metrics.flush_every(MetricsSettings::from_env()?.metrics_flush_ms.get());
    // One settler (one Postgres connection) per concurrent batch, like one Lambda instance each.
    let clients = settle::clients(&sdk, &settings).await?;
    let mut targets = Vec::with_capacity(cfg.max_concurrency);
    for _ in 0..cfg.max_concurrency {
        targets.push(clients.settler(metrics.clone()).await?);
    }
    event_source::run(sqs, cfg, targets, stop_rx, stats).await;
    Ok(())
}

async fn reconcile() -> anyhow::Result<()> {
    let interval = SweepLoop::from_env()?.reconcile_interval_ms.get();
    let settings = reconcile::Settings::from_env()?;
    let sdk = aws::sdk_config().await;
    let sweeper = reconcile::sweeper(&sdk, &settings).await?;
    info!(timing = ?sweeper.timing, ?interval, "outbox sweeper started");
    loop {
        if let Err(e) = sweeper.sweep().await {
            warn!(error = %e, "sweep failed");
        }
        tokio::time::sleep(interval).await;
    }
}

async fn expire() -> anyhow::Result<()> {
    let interval = ExpireLoop::from_env()?.expire_interval_ms.get();
    let settings = expire::Settings::from_env()?;
    let sdk = aws::sdk_config().await;
    let checkout = expire::checkout(&sdk, &settings, "expire").await?;
    info!(?interval, "expiry job started");
    loop {
        let now = flashflow::domain::EpochMs::now();
        if let Err(e) = checkout.expire_due(now).await {
            warn!(error = %e, "expiry run failed");
        }
        checkout.metrics.flush();
        tokio::time::sleep(interval).await;
    }
}

async fn dlq(action: DlqAction) -> anyhow::Result<()> {
    let settings = DlqSettings::from_env()?;
    let (dlq, queue) = (&settings.orders_dlq_url, &settings.orders_queue_url);
    let sqs = aws_sdk_sqs::Client::new(&aws::sdk_config().await);
    match action {
        DlqAction::Show => {
            for m in flashflow_local::dlq::show(&sqs, dlq, 1_000).await? {
                println!("{}", serde_json::to_string(&m)?);
            }
        }
        DlqAction::Redrive => {
            let moved = flashflow_local::dlq::redrive(&sqs, dlq, queue).await?;
            println!("moved {moved} message(s) from {dlq} back to {queue}");
        }
    }
    Ok(())
}
