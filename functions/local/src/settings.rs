//! Settings of what only the local runner does (the HTTP server, the event source, the sweeper's
//! timer); everything else is read by the functions' own settings in [`flashflow::startup`].
//! Each type's `Default` is its defaults table (see [`flashflow_settings`]).

use flashflow_settings::{at_most, invalid, required, Count, Flag, FromEnv, Millis, MillisOrZero};
use serde::Deserialize;
use std::time::Duration;

/// The HTTP server: `LISTEN_ADDR` (127.0.0.1:3000), `HTTP_HEADER_TIMEOUT_MS` (5000),
/// `HTTP_REQUEST_TIMEOUT_MS` (10000), `HTTP_HANDLER_TIMEOUT_MS` (30000), `HTTP_MAX_CONNECTIONS`
/// (10000, at most 1,000,000), `HTTP_MAX_CONNECTIONS_PER_PEER` (1000, at most the total),
/// `HTTP_REQUESTS_PER_CONNECTION` (10000). See [`crate::server::Limits`].
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ServerSettings {
    pub listen_addr: String,
    pub http_header_timeout_ms: Millis,
    pub http_request_timeout_ms: Millis,
    pub http_handler_timeout_ms: Millis,
    pub http_max_connections: Count,
    pub http_max_connections_per_peer: Count,
    pub http_requests_per_connection: Count,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            listen_addr: "127.0.0.1:3000".into(),
            http_header_timeout_ms: Millis::secs(5),
            http_request_timeout_ms: Millis::secs(10),
            http_handler_timeout_ms: Millis::secs(30),
            http_max_connections: Count::of(10_000),
            http_max_connections_per_peer: Count::of(1_000),
            http_requests_per_connection: Count::of(10_000),
        }
    }
}

impl FromEnv for ServerSettings {
    fn check(&self) -> Result<(), flashflow_settings::ConfigError> {
        at_most("HTTP_MAX_CONNECTIONS", self.http_max_connections, 1_000_000)?;
        at_most(
            "HTTP_MAX_CONNECTIONS_PER_PEER",
            self.http_max_connections_per_peer,
            self.http_max_connections.get(),
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
            header_read: self.http_header_timeout_ms.get(),
            request: self.http_request_timeout_ms.get(),
            handler: self.http_handler_timeout_ms.get(),
            max_connections: self.http_max_connections.get(),
            max_per_peer: self.http_max_connections_per_peer.get(),
            requests_per_connection: self.http_requests_per_connection.get() as u32,
        }
    }
}

/// How the local API answers buys: `BUY_RELAY` (true: from the outbox, the relay sending behind;
/// false: after the send, as the Lambda does).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ApiMode {
    pub buy_relay: Flag,
}

impl Default for ApiMode {
    fn default() -> Self {
        Self {
            buy_relay: Flag(true),
        }
    }
}

impl FromEnv for ApiMode {}

/// How often a long-running process writes its EMF metrics: `METRICS_FLUSH_MS` (10000). A Lambda
/// writes them after every invocation instead.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct MetricsSettings {
    pub metrics_flush_ms: Millis,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        Self {
            metrics_flush_ms: Millis::secs(10),
        }
    }
}

impl FromEnv for MetricsSettings {}

/// The SQS event source (what Lambda's event source mapping does in AWS):
/// `EVENT_SOURCE_BATCH_SIZE` (10, at most 10,000; above 10 needs a batching window of at least
/// 1000 ms, as in AWS), `EVENT_SOURCE_BATCHING_WINDOW_MS` (0), `EVENT_SOURCE_MAX_CONCURRENCY` (2,
/// at most 1000), `EVENT_SOURCE_POLL_WAIT_MS` (20000, the long-poll wait),
/// `EVENT_SOURCE_INVOKE_URL` (unset: settle in-process; else a Lambda Invoke endpoint such as
/// `cargo lambda watch`'s) and `AWS_REGION` (us-east-1, for the queue's ARN in events).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct EventSourceSettings {
    pub event_source_batch_size: Count,
    pub event_source_batching_window_ms: MillisOrZero,
    pub event_source_max_concurrency: Count,
    pub event_source_poll_wait_ms: Millis,
    pub event_source_invoke_url: Option<String>,
    pub aws_region: String,
}

impl Default for EventSourceSettings {
    fn default() -> Self {
        Self {
            event_source_batch_size: Count::of(10),
            event_source_batching_window_ms: MillisOrZero::ms(0),
            event_source_max_concurrency: Count::of(2),
            event_source_poll_wait_ms: Millis::secs(20),
            event_source_invoke_url: None,
            aws_region: "us-east-1".into(),
        }
    }
}

impl FromEnv for EventSourceSettings {
    fn check(&self) -> Result<(), flashflow_settings::ConfigError> {
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
        if self.event_source_batch_size.get() > 10
            && self.event_source_batching_window_ms.get() < Duration::from_secs(1)
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
        cfg.batch_size = self.event_source_batch_size.get();
        cfg.batching_window = self.event_source_batching_window_ms.get();
        cfg.max_concurrency = self.event_source_max_concurrency.get();
        cfg.poll_wait = self.event_source_poll_wait_ms.get();
        cfg
    }
}

/// The sweeper's timer: `RECONCILE_INTERVAL_MS` (10000); in AWS a schedule runs it.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct SweepLoop {
    pub reconcile_interval_ms: Millis,
}

impl Default for SweepLoop {
    fn default() -> Self {
        Self {
            reconcile_interval_ms: Millis::secs(10),
        }
    }
}

impl FromEnv for SweepLoop {}

/// How often the local expiry job runs: `EXPIRE_INTERVAL_MS` (2000; EventBridge's every minute in
/// AWS: a hold ends within that of `pay_by`).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(default)]
pub struct ExpireLoop {
    pub expire_interval_ms: Millis,
}

impl Default for ExpireLoop {
    fn default() -> Self {
        Self {
            expire_interval_ms: Millis::secs(2),
        }
    }
}

impl FromEnv for ExpireLoop {}

/// The dead-letter queue and where a redrive sends its messages: `ORDERS_DLQ_URL`,
/// `ORDERS_QUEUE_URL` (both required).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct DlqSettings {
    pub orders_dlq_url: String,
    pub orders_queue_url: String,
}

impl FromEnv for DlqSettings {
    fn check(&self) -> Result<(), flashflow_settings::ConfigError> {
        required("ORDERS_DLQ_URL", &self.orders_dlq_url)?;
        required("ORDERS_QUEUE_URL", &self.orders_queue_url)
    }
}
