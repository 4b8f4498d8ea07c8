//! Shared helpers: [`TestApp`] (one isolated world per test: a Postgres schema, a queue with its
//! DLQ, an order-status table, and clients to reach them), request builders and checks.
#![allow(dead_code)]

use aws_sdk_sqs::types::QueueAttributeName;
use axum::body::Body;
use axum::Router;
use flashflow::domain::{
    BuyerId, OrderMessage, Quantity, SaleDefinition, SaleId, ORDER_MESSAGE_VERSION,
};
use flashflow_adapters::dynamodb::DynamoStatusStore;
use flashflow_adapters::postgres::Db;
use flashflow_adapters::redis::{RedisSettings, RedisStore};
use flashflow_adapters::sqs::SqsPublisher;
use flashflow_app::settle::Settler;
use flashflow_http::{self, buy};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// The ports' traits, so every test module (`use crate::helpers::*`) calls the adapters' methods.
pub use flashflow::ports::prelude::*;
/// Loading a first round of a sale, as tests do (a random draw seed).
pub use flashflow_adapters::contract::LoadForTests;
/// Settle's SQS event handling, as the Lambda runs it (`settler.handle(event)`).
pub use settle::SqsBatches;

/// The order-message signer the local stack uses (`ORDER_SIGNING_KEY`).
pub fn signer() -> flashflow::domain::signing::Signer {
    use flashflow_settings::FromEnv;
    let key = flashflow_adapters::keys::SigningSettings::from_env()
        .ok()
        .and_then(|s| s.key)
        .expect("ORDER_SIGNING_KEY is set by make test");
    flashflow::domain::signing::Signer::new(secrecy::ExposeSecret::expose_secret(&key).as_bytes())
        .expect("a long enough key")
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the tests with 'make test', which starts the local stack and sets it")
    })
}

/// The operator token of [`TestApp::operator`].
pub const OPERATOR: &str = "test-operator-token";

/// An operator request with the token of [`TestApp::operator`].
pub fn admin(method: &str, path: &str, body: Option<&str>) -> http::Request<Body> {
    let bearer = format!("Bearer {OPERATOR}");
    request(
        method,
        path,
        &[
            ("authorization", bearer.as_str()),
            ("content-type", "application/json"),
        ],
        body,
    )
}

/// A fixed reservation time base (2026-11-27T10:00Z) for hand-made order messages.
pub const T0: i64 = 1_795_773_600_000;

pub type RealSettler = Settler<Db, DynamoStatusStore, RedisStore, SqsPublisher>;

/// One test's own world on the local stack.
pub struct TestApp {
    pub store: RedisStore,
    pub sqs: aws_sdk_sqs::Client,
    /// The order queue (1 s visibility timeout, DLQ after 2 receives) and its DLQ.
    pub queue: String,
    pub dlq: String,
    /// A Postgres URL whose `search_path` is this test's fresh schema, migrated.
    pub db_url: String,
    /// A connection for setup and checks.
    pub db: Db,
    pub status: DynamoStatusStore,
}

impl TestApp {
    pub async fn new() -> Self {
        Self::with_max_receive(2).await
    }

    pub async fn with_max_receive(max_receive: u32) -> Self {
        let sqs = sqs().await;
        let (queue, dlq) = queue_with_dlq(&sqs, max_receive).await;
        let db_url = fresh_schema_url().await;
        Self {
            store: store().await,
            db: db_at(&db_url).await,
            sqs,
            queue,
            dlq,
            db_url,
            status: fresh_status_store().await,
        }
    }

    /// A sale in Postgres and Redis.
    pub async fn sale(&self, stock: u32, limit: u32) -> SaleDefinition {
        let def = sale(&fresh_sale_id(), stock, limit);
        self.db.create_sale(&def).await.unwrap();
        self.store.load_sale(&def, stock).await.unwrap();
        def
    }

    /// The operator router on this test's schema, Redis and status table (token [`OPERATOR`],
    /// resets allowed).
    pub async fn operator(&self) -> Router {
        flashflow_http::app(flashflow_http::operator::routes(
            flashflow_http::operator::OperatorState {
                db: db_at(&self.db_url).await,
                store: self.store.clone(),
                status: self.status.clone(),
                queues: self.depths(),
                token: Some(OPERATOR.into()),
                allow_reset: true,
            },
        ))
    }

    /// The depths of this test's queue and DLQ.
    pub fn depths(&self) -> flashflow_adapters::sqs::SqsDepths {
        flashflow_adapters::sqs::SqsDepths {
            client: self.sqs.clone(),
            settings: flashflow_adapters::sqs::DepthSettings {
                orders_queue_url: self.queue.clone(),
                orders_dlq_url: self.dlq.clone(),
            },
        }
    }

    /// Buy one unit of `sale` as `buyer` with an `Idempotency-Key`.
    pub async fn buy_with_key(&self, sale: &SaleDefinition, buyer: &str, key: &str) -> Answer {
        let req = request(
            "POST",
            &format!("/sales/{}/buy", sale.id),
            &[("x-user-id", buyer), ("idempotency-key", key)],
            None,
        );
        call(&self.buy_app(), req).await
    }

    /// The buy router on Redis and this test's queue, trusting `X-User-Id`.
    pub fn buy_app(&self) -> Router {
        buy_app(self.store.clone(), self.sqs.clone(), &self.queue)
    }

    /// A settle handler with its own Postgres connection, as one Lambda instance.
    pub async fn settler(&self) -> RealSettler {
        self.settler_on(db_at(&self.db_url).await)
    }

    /// A settle handler on `db` (e.g. one that cannot connect, or with short lock timeouts),
    /// re-queueing to this test's queue after 1 s.
    pub fn settler_on(&self, db: Db) -> RealSettler {
        Settler::new(
            db,
            self.status.clone(),
            self.store.clone(),
            SqsPublisher::new(self.sqs.clone(), &self.queue),
            signer(),
        )
        .with_retry_delay(Duration::from_secs(1))
    }

    /// What Postgres recorded for `sale`.
    pub async fn counts(&self, sale: &SaleDefinition) -> Counts {
        counts(&self.db, sale).await
    }

    /// Messages in `queue`, visible or in flight.
    pub async fn depth(&self, queue: &str) -> i64 {
        depth(&self.sqs, queue).await
    }

    /// Put a message body on this test's order queue, its order signed as buy signs it (a body
    /// that is no order goes as it is).
    pub async fn send(&self, body: &str) {
        let body = match OrderMessage::parse(body) {
            Ok(order) => signer().signed(order).to_json(),
            Err(_) => body.to_owned(),
        };
        SqsPublisher::new(self.sqs.clone(), &self.queue)
            .publish_many(&[body])
            .await;
    }

    /// Put a message body on this test's order queue without a signature (as a forger would).
    pub async fn send_unsigned(&self, body: &str) {
        self.sqs
            .send_message()
            .queue_url(&self.queue)
            .message_body(body)
            .send()
            .await
            .unwrap();
    }

    /// Buy one unit of `sale` as `buyer` through the buy router (SQS for real).
    pub async fn buy(&self, sale: &SaleDefinition, buyer: &str) -> Answer {
        call(&self.buy_app(), local_buy(&sale.id, buyer, None)).await
    }

    /// The local event source feeding `concurrency` settle handlers from this test's queue.
    pub async fn start_settlement(&self, concurrency: usize) -> Settlement {
        let mut targets = Vec::new();
        for _ in 0..concurrency {
            targets.push(self.settler().await);
        }
        Settlement::start(&self.sqs, &self.queue, targets)
    }

    /// Check the promises after a scenario: Postgres never confirmed more than the stock nor
    /// anything but `accepted` orders, each of those exactly once and CONFIRMED in Postgres and
    /// DynamoDB; Redis never went below zero; the outbox is empty; the DLQ holds `dlq` messages.
    ///
    /// Prints the scenario's row of the README's reliability table (`cargo test -- --nocapture`).
    pub async fn assert_invariants(
        &self,
        scenario: &str,
        sale: &SaleDefinition,
        accepted: &[Uuid],
        dlq: i64,
    ) {
        let c = self.counts(sale).await;
        let client = self.db.client().await.unwrap();
        let rows: Vec<(Uuid, String)> = client
            .query(
                "SELECT order_id, status FROM orders WHERE sale_id = $1",
                &[&sale.id.as_str()],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let mine = |id: &Uuid| rows.iter().filter(|(o, _)| o == id).count();
        let settled = accepted.iter().filter(|id| mine(id) == 1).count();
        let lost = accepted.iter().filter(|id| mine(id) == 0).count();
        let duplicated: usize = accepted.iter().map(|id| mine(id).saturating_sub(1)).sum();
        let wrongly_confirmed = rows
            .iter()
            .filter(|(o, s)| s == "CONFIRMED" && !accepted.contains(o))
            .count();
        let in_dlq = self.depth(&self.dlq).await;
        println!(
            "reliability | {scenario} | {} | {settled} | {lost} | {duplicated} | {wrongly_confirmed} | {in_dlq} |",
            accepted.len()
        );
        assert_eq!(
            (lost, duplicated, wrongly_confirmed),
            (0, 0, 0),
            "{scenario}"
        );
        assert!(c.confirmed_quantity as u32 <= sale.stock, "oversold: {c:?}");
        assert_eq!(
            c.confirmed,
            accepted.len() as i64,
            "confirmed exactly the accepted orders"
        );
        for id in accepted {
            let rows: Vec<String> = client
                .query("SELECT status FROM orders WHERE order_id = $1", &[id])
                .await
                .unwrap()
                .iter()
                .map(|r| r.get(0))
                .collect();
            assert_eq!(
                rows,
                vec!["CONFIRMED".to_string()],
                "order {id} once, confirmed"
            );
            let status = flashflow::ports::StatusStore::get(&self.status, *id)
                .await
                .unwrap()
                .map(|s| s.status);
            assert_eq!(
                status,
                Some(flashflow::domain::OrderState::Confirmed),
                "{id} in DynamoDB"
            );
        }
        // Every scenario ends with Redis holding the sale (re-created or rehydrated where it
        // was lost): a sale Redis does not hold must fail here, not skip the checks.
        let live = self
            .store
            .live_sale(&sale.id)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{scenario}: Redis does not hold sale {}", sale.id));
        assert!(live.remaining >= 0, "Redis oversold: {live:?}");
        assert_eq!(live.pending, 0, "outbox left: {live:?}");
        assert_eq!(in_dlq, dlq, "DLQ");
    }

    /// Wait until Postgres recorded `n` orders of `sale`.
    pub async fn wait_for_settled(&self, sale: &SaleDefinition, n: i64) {
        wait_until(
            &format!("{n} settled orders"),
            Duration::from_secs(30),
            || async { self.counts(sale).await.orders == n },
        )
        .await;
    }
}

/// A running local event source (see [`TestApp::start_settlement`]).
pub struct Settlement {
    stop: tokio::sync::watch::Sender<bool>,
    runner: tokio::task::JoinHandle<()>,
    pub stats: std::sync::Arc<flashflow_local::event_source::EventSourceStats>,
}

impl Settlement {
    /// Run `targets` (one per concurrent batch) on `queue` with a 1 s long poll.
    pub fn start<T: flashflow_local::event_source::BatchTarget>(
        sqs: &aws_sdk_sqs::Client,
        queue: &str,
        targets: Vec<T>,
    ) -> Self {
        use flashflow_local::event_source::{run, EventSourceConfig, EventSourceStats};
        let mut cfg = EventSourceConfig::new(queue, "us-east-1");
        cfg.poll_wait = Duration::from_secs(1);
        cfg.max_concurrency = targets.len();
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let stats = std::sync::Arc::new(EventSourceStats::default());
        let runner = tokio::spawn(run(
            sqs.clone(),
            cfg,
            targets,
            stop_rx,
            std::sync::Arc::clone(&stats),
        ));
        Self {
            stop,
            runner,
            stats,
        }
    }

    /// Finish the batches in hand and stop.
    pub async fn stop(self) -> std::sync::Arc<flashflow_local::event_source::EventSourceStats> {
        self.stop.send(true).unwrap();
        self.runner.await.unwrap();
        self.stats
    }
}

/// What Postgres recorded for a sale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub confirmed: i64,
    pub rejected: i64,
    pub orders: i64,
    /// `sales.confirmed`: the confirmed quantity.
    pub confirmed_quantity: i32,
}

pub async fn counts(db: &Db, sale: &SaleDefinition) -> Counts {
    let c = db.client().await.unwrap();
    let r = c
        .query_one(
            "SELECT count(*) FILTER (WHERE status = 'CONFIRMED'), count(*) FILTER (WHERE status = 'REJECTED'),
                    count(*), (SELECT confirmed FROM sales WHERE id = $1)
               FROM orders WHERE sale_id = $1",
            &[&sale.id.as_str()],
        )
        .await
        .unwrap();
    Counts {
        confirmed: r.get(0),
        rejected: r.get(1),
        orders: r.get(2),
        confirmed_quantity: r.get(3),
    }
}

pub fn redis_settings() -> RedisSettings {
    RedisSettings {
        url: env("REDIS_URL"),
        command_timeout: Duration::from_secs(5).into(),
        ..Default::default()
    }
}

/// A connected store.
pub async fn store() -> RedisStore {
    let store = RedisStore::connect(&redis_settings()).unwrap();
    store
        .ready(Duration::from_secs(5))
        .await
        .expect("redis is not reachable");
    store
}

/// A connected store with the sold-out fast path (`tracking`: learn returns through `CLIENT
/// TRACKING`; entries live at most `max_age`).
pub async fn store_with_fast_path(tracking: bool, max_age: Duration) -> RedisStore {
    let fast = flashflow_adapters::redis::FastPathSettings {
        max_age: max_age.into(),
        tracking: flashflow_settings::Flag(tracking),
    };
    let store = RedisStore::connect(&redis_settings())
        .and_then(|s| s.with_fast_path(&fast, &redis_settings()))
        .unwrap();
    store
        .ready(Duration::from_secs(5))
        .await
        .expect("redis is not reachable");
    store
}

/// Wait until `store`'s sold-out cache holds `sale` (`true`) or has forgotten it (`false`).
pub async fn wait_for_cached(store: &RedisStore, sale: &SaleId, cached: bool) {
    let cache = store.sold_out_cache().expect("the fast path is on");
    // Polled every 5 ms (not wait_until's 100): the tests time the invalidation's arrival.
    let until = std::time::Instant::now() + Duration::from_secs(5);
    while cache.has_fresh(sale) != cached {
        assert!(
            std::time::Instant::now() < until,
            "the sold-out cache did not {} {sale}",
            if cached { "learn" } else { "forget" }
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// An entry younger than this cannot age out within the push latency the tests allow.
const YOUNG: Duration = Duration::from_millis(250);

/// Drive `def` with new buyers until `app`'s process answers it from a sold-out (or closed) entry
/// learned moments ago, and return that entry's age. Each refusal from the script starts a read,
/// and an entry past half its age is read again, so asking is what keeps it young; a young entry
/// that goes before its age bound went by news, not by age ([`assert_forgotten_by_news`]).
pub async fn learn_young(app: &TestApp, def: &SaleDefinition) -> Duration {
    let cache = app.store.sold_out_cache().expect("the fast path is on");
    let until = std::time::Instant::now() + Duration::from_secs(10);
    for n in 0.. {
        if let Some(age) = cache.age(&def.id).filter(|age| *age < YOUNG) {
            return age;
        }
        assert!(
            std::time::Instant::now() < until,
            "the sold-out cache did not learn {}",
            def.id
        );
        let a = app.buy(def, &format!("learner-{n}")).await;
        assert!(matches!(a.status, 403 | 409), "{:?}", a.body);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    unreachable!()
}

/// Wait until `store`'s process forgets `sale`, and check that news did it: the entry was `age`
/// old when the news was sent at `news`, and went before it would have aged out.
pub async fn assert_forgotten_by_news(
    store: &RedisStore,
    sale: &SaleId,
    age: Duration,
    news: std::time::Instant,
) {
    wait_for_cached(store, sale, false).await;
    let bound = store
        .sold_out_cache()
        .expect("the fast path is on")
        .max_age();
    assert!(
        age + news.elapsed() < bound,
        "forgotten by news, not by age: {age:?} old at the news, gone {:?} after it",
        news.elapsed()
    );
}

/// A sale id no other test (or earlier run) uses.
pub fn fresh_sale_id() -> SaleId {
    SaleId::parse(&format!("t-{}", Uuid::new_v4().simple())).unwrap()
}

pub fn sale(id: &SaleId, stock: u32, limit: u32) -> SaleDefinition {
    SaleDefinition::new(id.clone(), stock)
        .with_name("test sale")
        .with_limit(limit)
}

/// A new sale loaded into Redis only.
pub async fn loaded_sale(store: &RedisStore, stock: u32, limit: u32) -> SaleDefinition {
    let def = sale(&fresh_sale_id(), stock, limit);
    assert!(store.load_sale(&def, stock).await.unwrap());
    def
}

/// A hand-made order message for `sale`, reserved `at` ms after [`T0`].
pub fn order(sale: &SaleDefinition, buyer: &str, quantity: i64, at: i64) -> OrderMessage {
    OrderMessage {
        v: ORDER_MESSAGE_VERSION,
        order_id: Uuid::now_v7(),
        sale_id: sale.id.clone(),
        buyer: BuyerId::parse(buyer).unwrap(),
        quantity: Quantity::new(quantity).unwrap(),
        reserved_at_ms: T0 + at,
        idempotency_key: None,
        round: 1,
        pay_by_ms: None,
        sig: None,
    }
}

/// The URL of a brand-new schema in the test database.
pub async fn fresh_schema_url() -> String {
    let base = env("TEST_DATABASE_URL");
    let schema = format!("t_{}", Uuid::new_v4().simple());
    Db::new(&base)
        .unwrap()
        .client()
        .await
        .expect("postgres is not reachable")
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await
        .unwrap();
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options=-csearch_path%3D{schema}")
}

/// A migrated `Db` at `url`.
pub async fn db_at(url: &str) -> Db {
    let db = Db::new(url).unwrap();
    db.migrate().await.unwrap();
    db
}

/// A `Db` on a brand-new schema of the test database, migrated.
pub async fn fresh_db() -> Db {
    db_at(&fresh_schema_url().await).await
}

pub async fn dynamodb() -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(&flashflow_adapters::aws::sdk_config().await)
}

/// A new DynamoDB table shaped like the order-status table.
pub async fn fresh_status_store() -> DynamoStatusStore {
    use aws_sdk_dynamodb::types::*;
    let client = dynamodb().await;
    let table = format!("t-{}", Uuid::new_v4().simple());
    client
        .create_table()
        .table_name(&table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("order_id")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("order_id")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("DynamoDB Local is not reachable");
    DynamoStatusStore::new(client, table)
}

pub async fn sqs() -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(&flashflow_adapters::aws::sdk_config().await)
}

/// A new, empty queue; returns its URL.
pub async fn fresh_queue(sqs: &aws_sdk_sqs::Client) -> String {
    sqs.create_queue()
        .queue_name(format!("t-{}", Uuid::new_v4().simple()))
        .send()
        .await
        .expect("LocalStack SQS is not reachable")
        .queue_url
        .unwrap()
}

/// A queue with a DLQ after `max_receive` receives and a 1 s visibility timeout. Returns (queue, dlq).
pub async fn queue_with_dlq(sqs: &aws_sdk_sqs::Client, max_receive: u32) -> (String, String) {
    let dlq = fresh_queue(sqs).await;
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&dlq)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&QueueAttributeName::QueueArn]
        .clone();
    let queue = sqs
        .create_queue()
        .queue_name(format!("t-{}", Uuid::new_v4().simple()))
        .attributes(QueueAttributeName::VisibilityTimeout, "1")
        .attributes(
            QueueAttributeName::RedrivePolicy,
            format!(r#"{{"deadLetterTargetArn":"{arn}","maxReceiveCount":"{max_receive}"}}"#),
        )
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    (queue, dlq)
}

/// Messages in `queue`, visible, in flight or delayed.
pub async fn depth(sqs: &aws_sdk_sqs::Client, queue: &str) -> i64 {
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(queue)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap();
    [
        QueueAttributeName::ApproximateNumberOfMessages,
        QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
        QueueAttributeName::ApproximateNumberOfMessagesDelayed,
    ]
    .iter()
    .map(|k| attrs[k].parse::<i64>().unwrap())
    .sum()
}

/// Poll `check` every 100 ms until it holds; fail the test after `timeout`.
pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Wait until `queue` holds exactly `n` messages (visible or in flight).
pub async fn wait_for_depth(sqs: &aws_sdk_sqs::Client, queue: &str, n: i64, timeout: Duration) {
    wait_until(
        &format!("{n} message(s) in {queue}"),
        timeout,
        || async move { depth(sqs, queue).await == n },
    )
    .await;
}

/// An SQS client whose endpoint refuses connections: "SQS is down".
pub async fn unreachable_sqs() -> aws_sdk_sqs::Client {
    let conf = aws_sdk_sqs::config::Builder::from(&flashflow_adapters::aws::sdk_config().await)
        .endpoint_url("http://127.0.0.1:9")
        .build();
    aws_sdk_sqs::Client::from_conf(conf)
}

/// A DynamoDB client whose endpoint refuses connections: "the status store is down".
pub async fn unreachable_dynamodb() -> aws_sdk_dynamodb::Client {
    let conf =
        aws_sdk_dynamodb::config::Builder::from(&flashflow_adapters::aws::sdk_config().await)
            .endpoint_url("http://127.0.0.1:9")
            .build();
    aws_sdk_dynamodb::Client::from_conf(conf)
}

/// Buy's routes on `store` and the queue at `queue_url` (each order signed, as buy signs it),
/// trusting `X-User-Id`.
pub fn buy_app(store: RedisStore, sqs: aws_sdk_sqs::Client, queue_url: &str) -> Router {
    buy_routes(store, SqsPublisher::new(sqs, queue_url), Default::default())
}

/// Buy's routes on `store` and `publisher` with `gate`, each order signed with [`signer`],
/// trusting `X-User-Id`.
pub fn buy_routes<P: flashflow::ports::OrderPublisher>(
    store: RedisStore,
    publisher: P,
    gate: flashflow_app::waiting_room::gate::AdmissionGate,
) -> Router {
    let buy = flashflow_app::buy::Buy::new(
        store,
        publisher,
        signer(),
        gate,
        flashflow_app::metrics::Metrics::new("buy"),
    );
    flashflow_http::app(buy::routes(buy::BuyState {
        buy: std::sync::Arc::new(buy),
        callers: buy::BuyCallers {
            trust_user_header: flashflow_settings::Flag(true),
        },
    }))
}

/// An API Gateway event fixture from `events/`, with `demo-sale` replaced by `sale`.
pub const BUY_EVENT: &str = include_str!("../../../../events/apigw-buy.json");
pub const ADMIN_CREATE_EVENT: &str =
    include_str!("../../../../events/apigw-admin-create-sale.json");
pub const ADMIN_SHOW_EVENT: &str = include_str!("../../../../events/apigw-admin-show-sale.json");
pub const SQS_BATCH_EVENT: &str = include_str!("../../../../events/sqs-orders-batch.json");

/// Requests and answers, shared with the handler tests.
pub use flashflow_http::testing::{call, event, local_buy, request, Answer};

/// A publisher whose queue refuses connections: for settle handlers that must not re-queue.
pub async fn no_requeue() -> SqsPublisher {
    SqsPublisher::new(unreachable_sqs().await, "http://127.0.0.1:9/q")
}

/// An SQS event with one record per body, each with a fresh message id and signed as buy signs
/// it; returns the ids too.
pub fn sqs_event(bodies: &[String]) -> (aws_lambda_events::event::sqs::SqsEvent, Vec<String>) {
    let mut event = aws_lambda_events::event::sqs::SqsEvent::default();
    let mut ids = Vec::new();
    for b in bodies {
        let mut m = aws_lambda_events::event::sqs::SqsMessage::default();
        let id = Uuid::new_v4().to_string();
        m.message_id = Some(id.clone());
        m.body = Some(b.clone());
        sign_record(&mut m);
        event.records.push(m);
        ids.push(id);
    }
    (event, ids)
}

/// Sign a record's order as buy would (a body that is no order is left as it is).
pub fn sign_record(m: &mut aws_lambda_events::event::sqs::SqsMessage) {
    if let Some(order) = m.body.as_deref().and_then(|b| OrderMessage::parse(b).ok()) {
        m.body = Some(signer().signed(order).to_json());
    }
}

/// The message ids a batch response reports as failed.
pub fn failed_ids(resp: &aws_lambda_events::event::sqs::SqsBatchResponse) -> Vec<String> {
    resp.batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect()
}

/// A `redis-server` of a test's own, on a free loopback port, with its data in a temp dir.
pub struct PrivateRedis {
    pub port: u16,
    dir: std::path::PathBuf,
    pub child: Child,
    args: Vec<String>,
}

impl PrivateRedis {
    /// Start one with `args` besides its port, loopback and data directory (e.g. AOF on).
    pub fn start(args: &[&str]) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = std::env::temp_dir().join(format!("ff-redis-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        let child = Self::spawn(port, &dir, &args);
        Self {
            port,
            dir,
            child,
            args,
        }
    }

    fn spawn(port: u16, dir: &std::path::Path, args: &[String]) -> Child {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args(args)
            .arg("--dir")
            .arg(dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is on the PATH");
        let until = Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < until, "private redis did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        child
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kill -9 (nothing flushed at exit) and start again on the same port and data.
    pub fn kill_and_restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = Self::spawn(self.port, &self.dir, &self.args);
    }

    /// Stop (SIGTERM: Redis flushes its AOF and exits) and start again on the same port.
    pub fn restart(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
        self.child = Self::spawn(self.port, &self.dir, &self.args);
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A TCP proxy to `upstream` that can be frozen: while frozen it moves no byte either way, as a
/// stopped process (`SIGSTOP`, the chaos run's freeze of LocalStack) would; thawed, it delivers
/// what waited in the order it came, one request after the other (as the stopped process, woken,
/// takes what waits in its sockets), also a request whose client has given up meanwhile.
pub struct FreezableProxy {
    pub addr: std::net::SocketAddr,
    frozen: tokio::sync::watch::Sender<bool>,
}

impl FreezableProxy {
    pub async fn start(upstream: String) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (frozen, rx) = tokio::sync::watch::channel(false);
        // Requests wait for their turn here (tokio's mutex is first come, first served).
        let turns = std::sync::Arc::new(tokio::sync::Mutex::new(()));
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (rx, upstream, turns) = (rx.clone(), upstream.clone(), turns.clone());
                tokio::spawn(async move {
                    let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                        return;
                    };
                    let (client_read, client_write) = client.into_split();
                    let (server_read, server_write) = server.into_split();
                    tokio::join!(
                        pump(client_read, server_write, rx.clone(), Some(turns)),
                        pump(server_read, client_write, rx, None)
                    );
                });
            }
        });
        Self { addr, frozen }
    }

    pub fn freeze(&self, frozen: bool) {
        let _ = self.frozen.send(frozen);
    }
}

/// Copy `from` to `to`, holding every chunk while the proxy is frozen; with `turns`, chunks held
/// on different connections go on in the order they came, 100 ms apart.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut frozen: tokio::sync::watch::Receiver<bool>,
    turns: Option<std::sync::Arc<tokio::sync::Mutex<()>>>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = from.read(&mut buf).await.unwrap_or(0);
        let turn = match &turns {
            Some(t) => Some(t.lock().await),
            None => None,
        };
        let held = *frozen.borrow();
        if frozen.wait_for(|f| !*f).await.is_err() {
            return;
        }
        if n == 0 {
            let _ = to.shutdown().await;
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
        if held && turn.is_some() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The local beacon stand-in (`flashflow-local beacon`) with a round every second, served once
/// per test process on a thread of its own (every test's runtime ends with its test), and a
/// client of it that checks its rounds' signatures as the queue function does.
pub fn local_beacon() -> flashflow_adapters::beacon::Drand {
    let (url, chain) = served_beacon();
    flashflow_adapters::beacon::Drand::new(&flashflow_adapters::beacon::DrandSettings {
        beacon_url: url.clone(),
        beacon_chain: chain.hash.clone(),
        beacon_public_key: hex::encode(&chain.public_key),
        beacon_genesis: chain.genesis_time,
        beacon_period: chain.period,
        ..Default::default()
    })
    .expect("a beacon client")
}

/// The chain [`local_beacon`]'s rounds are signed under, to check them with.
pub fn local_beacon_chain() -> flashflow_adapters::beacon::Chain {
    served_beacon().1.clone()
}

fn served_beacon() -> &'static (String, flashflow_adapters::beacon::Chain) {
    use flashflow_local::beacon::{routes, BeaconSettings, LocalBeacon};
    static SERVED: std::sync::OnceLock<(String, flashflow_adapters::beacon::Chain)> =
        std::sync::OnceLock::new();
    SERVED.get_or_init(|| {
        let settings = BeaconSettings {
            beacon_period: 1,
            ..BeaconSettings::default()
        };
        let beacon = std::sync::Arc::new(LocalBeacon::new(&settings).expect("a long seed"));
        let chain = beacon.chain().clone();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        let addr = listener.local_addr().expect("an address");
        listener.set_nonblocking(true).expect("non-blocking");
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("a listener");
                axum::serve(listener, routes(beacon)).await.expect("served");
            });
        });
        (format!("http://{addr}"), chain)
    })
}
