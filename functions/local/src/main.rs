//! `flashflow-local`: FlashFlow's handlers on the local stack, the same code as the Lambdas.
//!
//! - `flashflow-local api`: the routers of the buy, order-status and operator functions merged
//!   on one HTTP port (`LISTEN_ADDR`, default 127.0.0.1:3000), within `HTTP_HEADER_TIMEOUT_MS` (5000),
//!   `HTTP_REQUEST_TIMEOUT_MS` (10000) and `HTTP_MAX_CONNECTIONS` (10000).
//! - `flashflow-local settle`: the SQS event source mapping feeding the settle handler in-process
//!   (or a Lambda Invoke endpoint given in `EVENT_SOURCE_INVOKE_URL`, e.g. `cargo lambda watch`'s).
//!   `EVENT_SOURCE_BATCH_SIZE` (10), `EVENT_SOURCE_BATCHING_WINDOW_MS` (0),
//!   `EVENT_SOURCE_MAX_CONCURRENCY` (2), `EVENT_SOURCE_POLL_WAIT_MS` (20000, the long-poll wait).
//! - `flashflow-local dlq show|redrive`: list the dead-letter queue (`ORDERS_DLQ_URL`) as JSON
//!   lines, or move its messages back to the order queue.
//! - `flashflow-local sqs-rate N`: the emulator's own SQS rate (benchmark figure).
//! - `flashflow-local ceiling`: the benchmarks' ceiling server on `LISTEN_ADDR` (127.0.0.1:3001).
//! - `flashflow-local reconcile`: the outbox sweeper every `RECONCILE_INTERVAL_MS` (10000), for
//!   entries older than `OUTBOX_THRESHOLD_MS` (30000); in AWS it is a scheduled Lambda.
//!
//! Other settings are those of the functions (`REDIS_URL`, `DATABASE_URL`, `ORDERS_QUEUE_URL`, …).

use anyhow::Context;
use flashflow::adapters::dynamodb::DynamoStatusStore;
use flashflow::adapters::relay::{Relay, RelaySettings};
use flashflow::adapters::{postgres::Db, redis::RedisStore, sqs::SqsPublisher};
use flashflow::api::{buy, operator, orders};
use flashflow::metrics::Metrics;
use flashflow::settle::Settler;
use flashflow::{aws, config, reconcile};
use flashflow_local::event_source::{self, EventSourceConfig, EventSourceStats, HttpInvokeTarget};
use flashflow_local::server;
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    lambda_http::tracing::init_default_subscriber();
    match std::env::args().nth(1).as_deref() {
        Some("api") => api().await,
        Some("settle") => settle().await,
        Some("reconcile") => reconcile_loop().await,
        Some("dlq") => dlq(std::env::args().nth(2).as_deref()).await,
        Some("ceiling") => ceiling().await,
        Some("bench-settle") => bench_settle().await,
        Some("sqs-rate") => sqs_rate(std::env::args().nth(2).as_deref()).await,
        _ => anyhow::bail!(
            "usage: flashflow-local api|settle|reconcile|dlq show|dlq redrive|ceiling"
        ),
    }
}

async fn connected_store(sdk: &aws::SdkConfig) -> anyhow::Result<RedisStore> {
    let settings = config::redis_from(sdk)
        .await
        .map_err(anyhow::Error::from_boxed)?;
    let store = RedisStore::connect(&settings)?;
    store
        .ready(Duration::from_secs(5))
        .await
        .context("connecting to Redis")?;
    Ok(store)
}

fn count(name: &'static str, default: usize, max: usize) -> anyhow::Result<usize> {
    match config::optional(name) {
        None => Ok(default),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => anyhow::bail!("environment variable {name}={v:?} is invalid: expected 1..={max}"),
        },
    }
}

async fn api() -> anyhow::Result<()> {
    let queue_url = config::required("ORDERS_QUEUE_URL", "the SQS queue that settle reads")?;
    let table = config::required("ORDERS_TABLE", "the DynamoDB order-status table")?;
    let trust_user_header = config::flag("TRUST_USER_HEADER", false)?;
    let token = config::optional("OPERATOR_TOKEN");
    let addr = config::optional("LISTEN_ADDR").unwrap_or_else(|| "127.0.0.1:3000".into());

    let sdk = aws::sdk_config().await;
    let database = config::database_from(&sdk)
        .await
        .map_err(anyhow::Error::from_boxed)?;
    let db = Db::from_settings(&database)?;
    db.migrate().await.context("migrating Postgres")?;
    let store = connected_store(&sdk).await?;
    let metrics = Metrics::new("buy");
    metrics.flush_every(config::millis("METRICS_FLUSH_MS", 10_000)?);
    let status = DynamoStatusStore::new(aws_sdk_dynamodb::Client::new(&sdk), table);
    let in_queue_for = config::millis("OUTBOX_IN_QUEUE_MS", 345_600_000)?;
    let publisher = SqsPublisher::new(aws_sdk_sqs::Client::new(&sdk), queue_url, config::signer()?);
    let settings = buy::BuySettings {
        trust_user_header,
        in_queue_for,
    };
    let buy_routes = if config::flag("BUY_RELAY", true)? {
        // Answer once the reservation is in the outbox; the relay sends in batches behind it.
        let relay_settings = RelaySettings {
            capacity: count("RELAY_CAPACITY", 100_000, 10_000_000)?,
            in_flight: count("RELAY_IN_FLIGHT", 16, 1_000)?,
            in_queue_for,
        };
        let (relay, _worker) = Relay::start(publisher, store.clone(), relay_settings);
        info!(
            ?relay_settings,
            "buy answers from the outbox; the relay sends in batches"
        );
        buy::routes(buy::BuyState {
            store: store.clone(),
            publisher: relay,
            settings,
            metrics,
        })
    } else {
        buy::routes(buy::BuyState {
            store: store.clone(),
            publisher,
            settings,
            metrics,
        })
    };
    let app = server::app(
        buy_routes,
        orders::routes(orders::OrdersState {
            status: status.clone(),
            store: store.clone(),
            trust_user_header,
            operator_token: token.clone(),
        }),
        operator::routes(operator::OperatorState {
            db,
            store,
            status,
            token,
            allow_reset: config::flag("SALE_RESET_ENABLED", false)?,
        }),
    );

    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    info!(%addr, "serving the FlashFlow API");
    let limits = server::Limits {
        header_read: config::millis("HTTP_HEADER_TIMEOUT_MS", 5_000)?,
        request: config::millis("HTTP_REQUEST_TIMEOUT_MS", 10_000)?,
        max_connections: count("HTTP_MAX_CONNECTIONS", 10_000, 1_000_000)?,
    };
    server::serve_with(listener, app, limits, Default::default()).await?;
    Ok(())
}

async fn settle() -> anyhow::Result<()> {
    let queue_url = config::required("ORDERS_QUEUE_URL", "the SQS queue that settle reads")?;
    let region = config::optional("AWS_REGION").unwrap_or_else(|| "us-east-1".into());
    let mut cfg = EventSourceConfig::new(queue_url, region);
    cfg.batch_size = count("EVENT_SOURCE_BATCH_SIZE", 10, 10_000)?;
    cfg.batching_window = config::millis_or_zero("EVENT_SOURCE_BATCHING_WINDOW_MS", 0)?;
    cfg.max_concurrency = count("EVENT_SOURCE_MAX_CONCURRENCY", 2, 1_000)?;
    if cfg.batch_size > 10 && cfg.batching_window < Duration::from_secs(1) {
        anyhow::bail!("EVENT_SOURCE_BATCH_SIZE above 10 needs EVENT_SOURCE_BATCHING_WINDOW_MS of at least 1000, as in AWS");
    }
    cfg.poll_wait = config::millis("EVENT_SOURCE_POLL_WAIT_MS", 20_000)?;
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

    if let Some(url) = config::optional("EVENT_SOURCE_INVOKE_URL") {
        let targets = (0..cfg.max_concurrency)
            .map(|_| HttpInvokeTarget::new(url.clone()))
            .collect();
        event_source::run(sqs, cfg, targets, stop_rx, stats).await;
        return Ok(());
    }
    let database = config::database_from(&sdk)
        .await
        .map_err(anyhow::Error::from_boxed)?;
    let table = config::required("ORDERS_TABLE", "the DynamoDB order-status table")?;
    let store = connected_store(&sdk).await?;
    let metrics = Metrics::new("settle");
    metrics.flush_every(config::millis("METRICS_FLUSH_MS", 10_000)?);
    let signer = config::signer()?;
    let retry_delay = config::millis("SETTLE_RETRY_DELAY_MS", 60_000)?;
    let requeue = SqsPublisher::new(
        aws_sdk_sqs::Client::new(&sdk),
        cfg.queue_url.clone(),
        signer.clone(),
    );
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let mut targets = Vec::new();
    // One settler (one Postgres connection) per concurrent batch, like one Lambda instance each.
    for _ in 0..cfg.max_concurrency {
        let db = Db::from_settings(&database)?.with_timeouts(config::db_timeouts()?);
        db.migrate().await.context("migrating Postgres")?;
        targets.push(
            Settler::new(
                db,
                DynamoStatusStore::new(dynamodb.clone(), &table),
                store.clone(),
                requeue.clone(),
                signer.clone(),
            )
            .with_retry_delay(retry_delay)
            .with_metrics(metrics.clone()),
        );
    }
    event_source::run(sqs, cfg, targets, stop_rx, stats).await;
    Ok(())
}

/// The benchmarks' ceiling server on `LISTEN_ADDR`.
async fn ceiling() -> anyhow::Result<()> {
    let addr = config::optional("LISTEN_ADDR").unwrap_or_else(|| "127.0.0.1:3001".into());
    let client = flashflow_local::ceiling::client(&config::redis()?.url).await?;
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    info!(%addr, "serving the ceiling server");
    server::serve_with(
        listener,
        flashflow_local::ceiling::router(client),
        server::Limits::default(),
        Default::default(),
    )
    .await?;
    Ok(())
}

/// `bench-settle [N] [C…]`: settlement throughput at the handler level (see `bench_settle`).
async fn bench_settle() -> anyhow::Result<()> {
    use flashflow_local::bench_settle::{handler, ledger, through_queue, Stack};
    let args: Vec<usize> = std::env::args()
        .skip(2)
        .map(|a| {
            a.parse()
                .context("usage: bench-settle [orders] [concurrency…]")
        })
        .collect::<anyhow::Result<_>>()?;
    let n = args.first().copied().unwrap_or(20_000);
    let levels = if args.len() > 1 {
        args[1..].to_vec()
    } else {
        vec![5]
    };
    let sdk = aws::sdk_config().await;
    let database = config::database_from(&sdk)
        .await
        .map_err(anyhow::Error::from_boxed)?;
    let url = database.url.clone();
    let queue_url = config::required("ORDERS_QUEUE_URL", "the SQS queue that settle reads")?;
    let stack = Stack {
        database_url: url,
        store: connected_store(&sdk).await?,
        dynamodb: aws_sdk_dynamodb::Client::new(&sdk),
        table: config::required("ORDERS_TABLE", "the DynamoDB order-status table")?,
        requeue: SqsPublisher::new(aws_sdk_sqs::Client::new(&sdk), queue_url, config::signer()?),
        signer: config::signer()?,
    };
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let region = config::optional("AWS_REGION").unwrap_or_else(|| "us-east-1".into());
    for c in levels {
        let l = ledger(&stack, n, c).await?;
        println!(
            "settle ledger  (Db::settle_orders): {n} orders, batches of 100, {c} connections: {:.0} orders/s ({:.2} s), invariants ok",
            l.per_second(),
            l.seconds
        );
        let h = handler(&stack, n, c).await?;
        println!(
            "settle handler (Settler::handle)  : {n} orders, batches of 100, {c} instances: {:.0} orders/s ({:.2} s), invariants ok",
            h.per_second(),
            h.seconds
        );
        let q = through_queue(&stack, &sqs, &region, n, c).await?;
        println!(
            "settle via the local queue (event source, 100 / 1 s window): {n} orders, {c} instances: {:.0} orders/s ({:.2} s), invariants ok",
            q.per_second(),
            q.seconds
        );
    }
    Ok(())
}

/// The emulator's own message rate, for the benchmark: `n` messages to a scratch queue in
/// `SendMessageBatch` calls of ten, 16 in flight, then received and deleted by 16 pollers.
async fn sqs_rate(n: Option<&str>) -> anyhow::Result<()> {
    let n: usize = n
        .unwrap_or("20000")
        .parse()
        .context("usage: sqs-rate <messages>")?;
    let sqs = aws_sdk_sqs::Client::new(&aws::sdk_config().await);
    let name = format!("flashflow-sqs-rate-{}", std::process::id());
    let url = sqs
        .create_queue()
        .queue_name(&name)
        .send()
        .await?
        .queue_url()
        .unwrap_or_default()
        .to_owned();
    let publisher = SqsPublisher::new(sqs.clone(), &url, config::signer()?);
    let body = "x".repeat(200);
    let start = std::time::Instant::now();
    let failed = flashflow_local::bench_settle::send_all(&publisher, &vec![body; n], 16).await?;
    let mut tasks = tokio::task::JoinSet::new();
    let send = start.elapsed();
    let start = std::time::Instant::now();
    let received = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let target = n - failed;
    for _ in 0..16 {
        let (sqs, url, received) = (sqs.clone(), url.clone(), Arc::clone(&received));
        tasks.spawn(async move {
            while received.load(std::sync::atomic::Ordering::Relaxed) < target {
                let Ok(out) = sqs
                    .receive_message()
                    .queue_url(&url)
                    .max_number_of_messages(10)
                    .wait_time_seconds(1)
                    .send()
                    .await
                else {
                    continue;
                };
                let entries: Vec<_> = out
                    .messages()
                    .iter()
                    .enumerate()
                    .filter_map(|(i, m)| {
                        aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder()
                            .id(i.to_string())
                            .receipt_handle(m.receipt_handle().unwrap_or_default())
                            .build()
                            .ok()
                    })
                    .collect();
                if entries.is_empty() {
                    continue;
                }
                let k = entries.len();
                if sqs
                    .delete_message_batch()
                    .queue_url(&url)
                    .set_entries(Some(entries))
                    .send()
                    .await
                    .is_ok()
                {
                    received.fetch_add(k, std::sync::atomic::Ordering::Relaxed);
                }
            }
            0
        });
    }
    while tasks.join_next().await.is_some() {}
    let recv = start.elapsed();
    let _ = sqs.delete_queue().queue_url(&url).send().await;
    println!(
        "send {:.0} msgs/s ({:.0} SendMessageBatch calls/s, {failed} refused); receive+delete {:.0} msgs/s",
        target as f64 / send.as_secs_f64(),
        n.div_ceil(10) as f64 / send.as_secs_f64(),
        target as f64 / recv.as_secs_f64()
    );
    Ok(())
}

/// `dlq show`: the DLQ's messages as JSON lines; `dlq redrive`: move them back to the queue.
async fn dlq(what: Option<&str>) -> anyhow::Result<()> {
    let queue_url = config::required("ORDERS_QUEUE_URL", "the SQS queue that settle reads")?;
    let dlq_url = config::required("ORDERS_DLQ_URL", "the orders queue's dead-letter queue")?;
    let sqs = aws_sdk_sqs::Client::new(&aws::sdk_config().await);
    match what {
        Some("show") => {
            for m in flashflow_local::dlq::show(&sqs, &dlq_url, 1_000).await? {
                println!("{}", serde_json::to_string(&m)?);
            }
        }
        Some("redrive") => {
            let moved = flashflow_local::dlq::redrive(&sqs, &dlq_url, &queue_url).await?;
            println!("moved {moved} message(s) from {dlq_url} back to {queue_url}");
        }
        _ => anyhow::bail!("usage: flashflow-local dlq show|redrive"),
    }
    Ok(())
}

async fn reconcile_loop() -> anyhow::Result<()> {
    let queue_url = config::required("ORDERS_QUEUE_URL", "the SQS queue that settle reads")?;
    let timing = reconcile::SweepTiming {
        grace: config::millis("OUTBOX_THRESHOLD_MS", 30_000)?,
        in_queue_for: config::millis("OUTBOX_IN_QUEUE_MS", 345_600_000)?,
        finished_ttl: config::millis("FINISHED_SALE_TTL_MS", 86_400_000)?,
    };
    let interval = config::millis("RECONCILE_INTERVAL_MS", 10_000)?;
    let sdk = aws::sdk_config().await;
    let store = connected_store(&sdk).await?;
    let queue = SqsPublisher::new(aws_sdk_sqs::Client::new(&sdk), queue_url, config::signer()?);
    info!(?timing, ?interval, "outbox sweeper started");
    loop {
        if let Err(e) = reconcile::sweep(&store, &queue, timing).await {
            warn!(error = %e, "sweep failed");
        }
        tokio::time::sleep(interval).await;
    }
}
