//! `flashflow-bench settle N C…`: settlement throughput at the handler level, the figure the
//! SQS event source mapping's concurrency multiplies. N signed order messages of one sale (stock N,
//! distinct buyers), in batches of 100 as the template's event source sends them, through C
//! concurrent settle instances (each its own Postgres connection, as one Lambda instance each):
//!
//! - `ledger`: `Db::settle_orders` alone (the Postgres transaction);
//! - `handler`: the whole `Settler::handle` (signature checks, the ledger, DynamoDB statuses,
//!   the Redis outbox clean-up).
//!
//! After each run it checks the invariants in Postgres: N orders, each once, all CONFIRMED, no
//! more than the stock. Runs in a fresh schema of `DATABASE_URL`'s database.

use ::settle::SqsBatches;
use anyhow::{ensure, Context};
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use flashflow::domain::signing::Signer;
use flashflow::domain::{
    sale::NewSale, BuyerId, OrderMessage, Quantity, SaleDefinition, ORDER_MESSAGE_VERSION,
};
use flashflow::ports::{Ledger, OrderPublisher, SaleLedger};
use flashflow_adapters::sqs::SqsPublisher;
use flashflow_adapters::{dynamodb::DynamoStatusStore, postgres::Db, redis::RedisStore};
use flashflow_app::settle::Settler;
use std::sync::Arc;
use std::time::Instant;
use uuid::Uuid;

/// What the run needs from the stack.
pub struct Stack {
    pub database_url: String,
    pub store: RedisStore,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub table: String,
    pub requeue: SqsPublisher,
    pub signer: Signer,
    /// The step spans' times (see [`crate::steps`]).
    pub steps: crate::steps::StepTimes,
}

/// One measured run.
#[derive(Debug)]
pub struct Figures {
    pub orders: usize,
    pub seconds: f64,
    /// Where a batch's time went: each step's mean time (its spans' lifetimes, over every
    /// instance).
    pub steps: Vec<(&'static str, std::time::Duration)>,
}

impl Figures {
    pub fn per_second(&self) -> f64 {
        self.orders as f64 / self.seconds
    }
}

async fn fresh_schema(database_url: &str) -> anyhow::Result<String> {
    let schema = format!("bench_{}", Uuid::new_v4().simple());
    Db::new(database_url)?
        .client()
        .await?
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await?;
    let sep = if database_url.contains('?') { '&' } else { '?' };
    Ok(format!(
        "{database_url}{sep}options=-csearch_path%3D{schema}"
    ))
}

fn messages(sale: &SaleDefinition, n: usize) -> Vec<OrderMessage> {
    let now = flashflow::domain::EpochMs::now().get();
    (0..n)
        .map(|i| OrderMessage {
            v: ORDER_MESSAGE_VERSION,
            order_id: Uuid::now_v7(),
            sale_id: sale.id.clone(),
            buyer: BuyerId::parse(&format!("bench-{i}")).expect("valid buyer"),
            quantity: Quantity::default(),
            reserved_at_ms: now,
            idempotency_key: None,
            round: 1,
            pay_by_ms: None,
            sig: None,
        })
        .collect()
}

fn events(signer: &Signer, orders: &[OrderMessage], batch: usize) -> Vec<SqsEvent> {
    orders
        .chunks(batch)
        .map(|chunk| {
            let mut event = SqsEvent::default();
            for o in chunk {
                let body = signer.signed(o.clone()).to_json();
                let mut m = SqsMessage::default();
                m.message_id = Some(Uuid::new_v4().to_string());
                m.body = Some(body);
                event.records.push(m);
            }
            event
        })
        .collect()
}

async fn new_sale(db: &Db, n: usize, tag: &str) -> anyhow::Result<SaleDefinition> {
    let def = NewSale {
        id: format!("bench-settle-{tag}-{}", Uuid::new_v4().simple()),
        name: "settle benchmark".into(),
        stock: n as i64,
        per_user_limit: 1,
        opens_at: None,
        closes_at: None,
        attempts_per_minute: None,
        checkout: None,
        waiting_room: None,
    }
    .validate()?;
    db.create_sale(&def).await?;
    Ok(def)
}

async fn check(db: &Db, sale: &SaleDefinition, n: usize) -> anyhow::Result<()> {
    let row = db
        .client()
        .await?
        .query_one(
            "SELECT count(*), count(DISTINCT order_id), count(*) FILTER (WHERE status = 'CONFIRMED'), \
             coalesce(sum(quantity) FILTER (WHERE status = 'CONFIRMED'), 0)::bigint \
             FROM orders WHERE sale_id = $1",
            &[&sale.id.as_str()],
        )
        .await?;
    let (rows, distinct, confirmed, quantity): (i64, i64, i64, i64) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    ensure!(
        rows == n as i64 && distinct == rows,
        "{rows} rows, {distinct} distinct, expected {n}"
    );
    ensure!(confirmed == n as i64, "{confirmed} CONFIRMED of {n}");
    ensure!(
        quantity <= i64::from(sale.stock),
        "sold {quantity} > stock {}",
        sale.stock
    );
    Ok(())
}

/// `Db::settle_orders` alone, `concurrency` connections.
pub async fn ledger(
    stack: &Stack,
    n: usize,
    concurrency: usize,
    batch: usize,
) -> anyhow::Result<Figures> {
    stack.steps.reset();
    let url = fresh_schema(&stack.database_url).await?;
    let setup = Db::new(&url)?;
    setup.migrate().await.context("migrating")?;
    let sale = new_sale(&setup, n, "ledger").await?;
    let batches: Vec<Vec<OrderMessage>> = messages(&sale, n)
        .chunks(batch)
        .map(<[_]>::to_vec)
        .collect();
    let queue = Arc::new(std::sync::Mutex::new(batches));
    let mut dbs = Vec::new();
    for _ in 0..concurrency {
        let db = Arc::new(Db::new(&url)?);
        db.client().await?;
        dbs.push(db);
    }
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for db in dbs.clone() {
        let queue = Arc::clone(&queue);
        tasks.spawn(async move {
            loop {
                let next = queue.lock().expect("queue").pop();
                let Some(batch) = next else {
                    return Ok::<_, anyhow::Error>(());
                };
                db.settle_orders(&batch).await?;
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    let seconds = start.elapsed().as_secs_f64();
    check(&setup, &sale, n).await?;
    Ok(Figures {
        orders: n,
        seconds,
        steps: stack
            .steps
            .means(flashflow_adapters::postgres::LEDGER_STEPS),
    })
}

/// The whole settle handler, `concurrency` instances.
pub async fn handler(
    stack: &Stack,
    n: usize,
    concurrency: usize,
    batch: usize,
) -> anyhow::Result<Figures> {
    stack.steps.reset();
    let url = fresh_schema(&stack.database_url).await?;
    let setup = Db::new(&url)?;
    setup.migrate().await.context("migrating")?;
    let sale = new_sale(&setup, n, "handler").await?;
    let events = events(&stack.signer, &messages(&sale, n), batch);
    let queue = Arc::new(std::sync::Mutex::new(events));
    let mut settlers = Vec::new();
    for _ in 0..concurrency {
        let db = Db::new(&url)?;
        db.client().await?;
        settlers.push(Arc::new(Settler::new(
            db,
            DynamoStatusStore::new(stack.dynamodb.clone(), &stack.table),
            stack.store.clone(),
            stack.requeue.clone(),
            stack.signer.clone(),
        )));
    }
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for settler in settlers.clone() {
        let queue = Arc::clone(&queue);
        tasks.spawn(async move {
            let mut failed = 0;
            loop {
                let next = queue.lock().expect("queue").pop();
                let Some(event) = next else { return failed };
                failed += settler.handle(event).await.batch_item_failures.len();
            }
        });
    }
    let mut failed = 0;
    while let Some(r) = tasks.join_next().await {
        failed += r?;
    }
    let seconds = start.elapsed().as_secs_f64();
    ensure!(failed == 0, "{failed} messages reported failed");
    check(&setup, &sale, n).await?;
    Ok(Figures {
        orders: n,
        seconds,
        steps: stack.steps.means(flashflow_app::settle::STEPS),
    })
}

/// Send `bodies` in `SendMessageBatch` calls of ten, `in_flight` at once; returns how many the
/// queue refused.
///
/// # Errors
/// When a sending task panicked.
pub async fn send_all(
    publisher: &SqsPublisher,
    bodies: &[String],
    in_flight: usize,
) -> anyhow::Result<usize> {
    let slots = Arc::new(tokio::sync::Semaphore::new(in_flight.max(1)));
    let mut sends = tokio::task::JoinSet::new();
    for chunk in bodies.chunks(10) {
        let permit = Arc::clone(&slots).acquire_owned().await?;
        let (publisher, chunk) = (publisher.clone(), chunk.to_vec());
        sends.spawn(async move {
            let failed = publisher.publish_many(&chunk).await.len();
            drop(permit);
            failed
        });
    }
    let mut refused = 0;
    while let Some(f) = sends.join_next().await {
        refused += f?;
    }
    Ok(refused)
}

/// Through the local queue: `n` signed messages put on a scratch queue (`SendMessageBatch`, 16 in
/// flight), then drained by the local event source as the template configures it (batches of up
/// to 100 gathered for at most 1 s, `concurrency` at once) into settle handlers; timed from the
/// first poll to the last order recorded.
pub async fn through_queue(
    stack: &Stack,
    sqs: &aws_sdk_sqs::Client,
    region: &str,
    n: usize,
    concurrency: usize,
    batch: usize,
) -> anyhow::Result<Figures> {
    use flashflow_local::event_source::{self, EventSourceConfig, EventSourceStats};
    stack.steps.reset();
    let url = fresh_schema(&stack.database_url).await?;
    let setup = Db::new(&url)?;
    setup.migrate().await.context("migrating")?;
    let sale = new_sale(&setup, n, "queue").await?;
    let queue_url = sqs
        .create_queue()
        .queue_name(format!(
            "flashflow-bench-settle-{}",
            Uuid::new_v4().simple()
        ))
        .send()
        .await?
        .queue_url()
        .unwrap_or_default()
        .to_owned();
    let publisher = SqsPublisher::new(sqs.clone(), &queue_url);
    let bodies: Vec<String> = messages(&sale, n)
        .into_iter()
        .map(|o| stack.signer.signed(o).to_json())
        .collect();
    let refused = send_all(&publisher, &bodies, 16).await?;
    ensure!(refused == 0, "the queue refused {refused} messages");

    let mut cfg = EventSourceConfig::new(&queue_url, region);
    cfg.batch_size = batch;
    cfg.batching_window = std::time::Duration::from_secs(1);
    cfg.max_concurrency = concurrency;
    cfg.poll_wait = std::time::Duration::from_secs(1);
    let mut settlers = Vec::new();
    for _ in 0..concurrency {
        settlers.push(Settler::new(
            Db::new(&url)?,
            DynamoStatusStore::new(stack.dynamodb.clone(), &stack.table),
            stack.store.clone(),
            publisher.clone(),
            stack.signer.clone(),
        ));
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let start = Instant::now();
    let source = tokio::spawn(event_source::run(
        sqs.clone(),
        cfg,
        settlers,
        stop_rx,
        Arc::new(EventSourceStats::default()),
    ));
    let counter = Db::new(&url)?;
    let deadline = Instant::now() + std::time::Duration::from_secs(600);
    loop {
        let done: i64 = counter
            .client()
            .await?
            .query_one(
                "SELECT count(*) FROM orders WHERE sale_id = $1",
                &[&sale.id.as_str()],
            )
            .await?
            .get(0);
        if done >= n as i64 {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "only {done} of {n} settled in 10 minutes"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let seconds = start.elapsed().as_secs_f64();
    let _ = stop_tx.send(true);
    let _ = source.await;
    let _ = sqs.delete_queue().queue_url(&queue_url).send().await;
    check(&setup, &sale, n).await?;
    Ok(Figures {
        orders: n,
        seconds,
        steps: Vec::new(),
    })
}
