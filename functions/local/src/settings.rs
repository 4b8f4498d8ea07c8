//! Settings of what only the local runner does (the HTTP server, the event source, the sweeper's
//! timer); everything else is read by the functions' own settings in [`flashflow::startup`].

use flashflow::settings::{at_most, count, flag, invalid, millis, millis_or_zero, FromEnv};
use serde::Deserialize;
use std::time::Duration;

/// The HTTP server: `LISTEN_ADDR` (127.0.0.1:3000), `HTTP_HEADER_TIMEOUT_MS` (5000),
/// `HTTP_REQUEST_TIMEOUT_MS` (10000), `HTTP_HANDLER_TIMEOUT_MS` (30000), `HTTP_MAX_CONNECTIONS`
/// (10000, at most 1,000,000), `HTTP_MAX_CONNECTIONS_PER_PEER` (1000, at most the total),
/// `HTTP_REQUESTS_PER_CONNECTION` (10000). See [`crate::server::Limits`].
#[derive(Debug, Clone, Deserialize)]
pub struct ServerSettings {
    #[serde(default = "default_listen_addr")]
    pub listen_addr: String,
    #[serde(default = "default_header_timeout", deserialize_with = "millis")]
    pub http_header_timeout_ms: Duration,
    #[serde(default = "default_request_timeout", deserialize_with = "millis")]
    pub http_request_timeout_ms: Duration,
    #[serde(default = "default_handler_timeout", deserialize_with = "millis")]
    pub http_handler_timeout_ms: Duration,
    #[serde(default = "default_max_connections", deserialize_with = "count")]
    pub http_max_connections: usize,
    #[serde(default = "default_max_per_peer", deserialize_with = "count")]
    pub http_max_connections_per_peer: usize,
    #[serde(
        default = "default_requests_per_connection",
        deserialize_with = "count"
    )]
    pub http_requests_per_connection: usize,
}

impl FromEnv for ServerSettings {
    fn check(&self) -> Result<(), flashflow::settings::ConfigError> {
        at_most("HTTP_MAX_CONNECTIONS", self.http_max_connections, 1_000_000)?;
        at_most(
            "HTTP_MAX_CONNECTIONS_PER_PEER",
            self.http_max_connections_per_peer,
            self.http_max_connections,
        )?;
        at_most(
            "HTTP_REQUESTS_PER_CONNECTION",
            self.http_requests_per_connection,
            u32::MAX as usize,
        )
    }
}

impl ServerSettings {
    /// The server's limits (see [`crate::server::Limits`]).
    pub fn limits(&self) -> crate::server::Limits {
        crate::server::Limits {
            header_read: self.http_header_timeout_ms,
            request: self.http_request_timeout_ms,
            handler: self.http_handler_timeout_ms,
            max_connections: self.http_max_connections,
            max_per_peer: self.http_max_connections_per_peer,
            requests_per_connection: self.http_requests_per_connection as u32,
        }
    }
}

fn default_listen_addr() -> String {
    "127.0.0.1:3000".into()
}
fn default_header_timeout() -> Duration {
    crate::server::Limits::default().header_read
}
fn default_request_timeout() -> Duration {
    crate::server::Limits::default().request
}
fn default_handler_timeout() -> Duration {
    crate::server::Limits::default().handler
}
fn default_max_connections() -> usize {
    crate::server::Limits::default().max_connections
}
fn default_max_per_peer() -> usize {
    crate::server::Limits::default().max_per_peer
}
fn default_requests_per_connection() -> usize {
    crate::server::Limits::default().requests_per_connection as usize
}

/// How the local API answers buys: `BUY_RELAY` (true: from the outbox, the relay sending behind;
/// false: after the send, as the Lambda does).
#[derive(Debug, Clone, Deserialize)]
pub struct ApiMode {
    #[serde(default = "yes", deserialize_with = "flag")]
    pub buy_relay: bool,
}

impl FromEnv for ApiMode {}

/// How often a long-running process writes its EMF metrics: `METRICS_FLUSH_MS` (10000). A Lambda
/// writes them after every invocation instead.
#[derive(Debug, Clone, Deserialize)]
pub struct MetricsSettings {
    #[serde(default = "default_metrics_flush", deserialize_with = "millis")]
    pub metrics_flush_ms: Duration,
}

impl FromEnv for MetricsSettings {}

fn yes() -> bool {
    true
}
fn default_metrics_flush() -> Duration {
    Duration::from_secs(10)
}

/// The SQS event source (what Lambda's event source mapping does in AWS):
/// `EVENT_SOURCE_BATCH_SIZE` (10, at most 10,000; above 10 needs a batching window of at least
/// 1000 ms, as in AWS), `EVENT_SOURCE_BATCHING_WINDOW_MS` (0), `EVENT_SOURCE_MAX_CONCURRENCY` (2,
/// at most 1000), `EVENT_SOURCE_POLL_WAIT_MS` (20000, the long-poll wait),
/// `EVENT_SOURCE_INVOKE_URL` (unset: settle in-process; else a Lambda Invoke endpoint such as
/// `cargo lambda watch`'s) and `AWS_REGION` (us-east-1, for the queue's ARN in events).
#[derive(Debug, Clone, Deserialize)]
pub struct EventSourceSettings {
    #[serde(default = "default_batch_size", deserialize_with = "count")]
    pub event_source_batch_size: usize,
    #[serde(default, deserialize_with = "millis_or_zero")]
    pub event_source_batching_window_ms: Duration,
    #[serde(default = "default_concurrency", deserialize_with = "count")]
    pub event_source_max_concurrency: usize,
    #[serde(default = "default_poll_wait", deserialize_with = "millis")]
    pub event_source_poll_wait_ms: Duration,
    pub event_source_invoke_url: Option<String>,
    #[serde(default = "default_region")]
    pub aws_region: String,
}

impl FromEnv for EventSourceSettings {
    fn check(&self) -> Result<(), flashflow::settings::ConfigError> {
        at_most(
            "EVENT_SOURCE_BATCH_SIZE",
            self.event_source_batch_size,
            10_000,
        )?;
        at_most(
            "EVENT_SOURCE_MAX_CONCURRENCY",
            self.event_source_max_concurrency,
            1_000,
        )?;
        if self.event_source_batch_size > 10
            && self.event_source_batching_window_ms < Duration::from_secs(1)
        {
            return Err(invalid(
                "EVENT_SOURCE_BATCHING_WINDOW_MS",
                "EVENT_SOURCE_BATCH_SIZE above 10 needs a batching window of at least 1000 ms, as in AWS",
            ));
        }
        Ok(())
    }
}

impl EventSourceSettings {
    /// The event source's configuration for `queue_url`.
    pub fn config(&self, queue_url: &str) -> crate::event_source::EventSourceConfig {
        let mut cfg = crate::event_source::EventSourceConfig::new(queue_url, &self.aws_region);
        cfg.batch_size = self.event_source_batch_size;
        cfg.batching_window = self.event_source_batching_window_ms;
        cfg.max_concurrency = self.event_source_max_concurrency;
        cfg.poll_wait = self.event_source_poll_wait_ms;
        cfg
    }
}

fn default_batch_size() -> usize {
    10
}
fn default_concurrency() -> usize {
    2
}
fn default_poll_wait() -> Duration {
    Duration::from_secs(20)
}
fn default_region() -> String {
    "us-east-1".into()
}

/// The sweeper's timer: `RECONCILE_INTERVAL_MS` (10000); in AWS a schedule runs it.
#[derive(Debug, Clone, Deserialize)]
pub struct SweepLoop {
    #[serde(default = "default_interval", deserialize_with = "millis")]
    pub reconcile_interval_ms: Duration,
}

impl FromEnv for SweepLoop {}

fn default_interval() -> Duration {
    Duration::from_secs(10)
}

/// How often the local expiry job runs: `EXPIRE_INTERVAL_MS` (2000; EventBridge's every minute in
/// AWS: a hold ends within that of `pay_by`).
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct ExpireLoop {
    #[serde(default = "default_expire_interval", deserialize_with = "millis")]
    pub expire_interval_ms: Duration,
}

impl FromEnv for ExpireLoop {}

fn default_expire_interval() -> Duration {
    Duration::from_secs(2)
}

/// The dead-letter queue and where a redrive sends its messages: `ORDERS_DLQ_URL`,
/// `ORDERS_QUEUE_URL`.
#[derive(Debug, Clone, Deserialize)]
pub struct DlqSettings {
    pub orders_dlq_url: String,
    pub orders_queue_url: String,
}

impl FromEnv for DlqSettings {}
