//! A local stand-in for Lambda's SQS event source mapping (LocalStack cannot run Lambdas without
//! Docker). It does what the mapping does in AWS:
//!
//! - long-polls `ReceiveMessage` (up to 10 per call) with all system attributes, gathering a batch
//!   until `batch_size` messages or the `batching_window` elapsed since the first one;
//! - invokes the function with an `SqsEvent` (`eventSource` `aws:sqs`, `eventSourceARN`,
//!   `ApproximateReceiveCount`, …), in-process or through a Lambda Invoke endpoint;
//! - with `ReportBatchItemFailures` semantics: an error deletes nothing; otherwise every message not
//!   named in `batchItemFailures` is deleted, and a failure id that is empty or not in the batch
//!   fails the whole batch. Failed messages reappear after the queue's visibility timeout, so the
//!   queue's redrive policy moves poison messages to its DLQ;
//! - runs up to `max_concurrency` batches at once (the mapping's `MaximumConcurrency`), each poller
//!   with its own target, as each concurrent Lambda invocation has its own instance.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage, SqsMessageAttribute};
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName};
use flashflow::ports::{Ledger, OrderPublisher, Outbox, StatusStore};
use flashflow_app::settle::Settler;
use settle::SqsBatches;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tracing::{debug, warn};

/// The mapping's settings.
#[derive(Debug, Clone)]
pub struct EventSourceConfig {
    pub queue_url: String,
    /// Largest batch handed to one invocation (AWS: 1–10,000 for standard queues).
    pub batch_size: usize,
    /// How long to gather a batch after its first message (AWS: `MaximumBatchingWindowInSeconds`).
    pub batching_window: Duration,
    /// Batches in flight at once (AWS: `ScalingConfig.MaximumConcurrency`).
    pub max_concurrency: usize,
    /// Long-poll wait of an empty receive; also how quickly a stop request is noticed.
    pub poll_wait: Duration,
    pub region: String,
}

impl EventSourceConfig {
    pub fn new(queue_url: impl Into<String>, region: impl Into<String>) -> Self {
        Self {
            queue_url: queue_url.into(),
            batch_size: 10,
            batching_window: Duration::ZERO,
            max_concurrency: 2,
            poll_wait: Duration::from_secs(20),
            region: region.into(),
        }
    }

    /// The queue's ARN, derived from its URL (`…/{account}/{name}`).
    pub fn queue_arn(&self) -> String {
        let mut parts = self.queue_url.trim_end_matches('/').rsplit('/');
        let name = parts.next().unwrap_or_default();
        let account = parts.next().unwrap_or("000000000000");
        format!("arn:aws:sqs:{}:{account}:{name}", self.region)
    }
}

/// The function invocation failed as a whole (like a Lambda error): nothing of the batch is deleted.
#[derive(Debug, thiserror::Error)]
#[error("invocation failed: {0}")]
pub struct InvokeError(pub String);

/// Something that handles an SQS batch the way the settle Lambda does.
pub trait BatchTarget: Send + Sync + 'static {
    fn invoke(
        &self,
        event: SqsEvent,
    ) -> impl Future<Output = Result<SqsBatchResponse, InvokeError>> + Send;
}

impl<L: Ledger, S: StatusStore, R: Outbox, Q: OrderPublisher> BatchTarget for Settler<L, S, R, Q> {
    async fn invoke(&self, event: SqsEvent) -> Result<SqsBatchResponse, InvokeError> {
        Ok(self.handle(event).await)
    }
}

/// Invokes a function through the Lambda Invoke API (`POST …/2015-03-31/functions/{fn}/invocations`),
/// e.g. the one `cargo lambda watch` serves.
pub struct HttpInvokeTarget {
    url: String,
    client: hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        http_body_util::Full<bytes::Bytes>,
    >,
}

impl HttpInvokeTarget {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            client: hyper_util::client::legacy::Client::builder(
                hyper_util::rt::TokioExecutor::new(),
            )
            .build_http(),
        }
    }
}

impl BatchTarget for HttpInvokeTarget {
    async fn invoke(&self, event: SqsEvent) -> Result<SqsBatchResponse, InvokeError> {
        use http_body_util::BodyExt;
        let body = serde_json::to_vec(&event).map_err(|e| InvokeError(e.to_string()))?;
        let req = http::Request::post(&self.url)
            .header("content-type", "application/json")
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
            .map_err(|e| InvokeError(e.to_string()))?;
        let resp = self
            .client
            .request(req)
            .await
            .map_err(|e| InvokeError(e.to_string()))?;
        let function_error = resp.headers().contains_key("x-amz-function-error");
        let status = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| InvokeError(e.to_string()))?
            .to_bytes();
        if function_error || !status.is_success() {
            return Err(InvokeError(format!(
                "{status}: {}",
                String::from_utf8_lossy(&bytes)
            )));
        }
        serde_json::from_slice(&bytes).map_err(|e| InvokeError(format!("bad response: {e}")))
    }
}

/// Counters of a running event source.
#[derive(Debug, Default)]
pub struct EventSourceStats {
    pub batches: AtomicU64,
    pub messages: AtomicU64,
    pub deleted: AtomicU64,
    pub failed: AtomicU64,
    pub invoke_errors: AtomicU64,
}

/// Run the mapping until `stop` turns true; one poller per target, at most
/// `cfg.max_concurrency` targets are used.
pub async fn run<T: BatchTarget>(
    sqs: aws_sdk_sqs::Client,
    cfg: EventSourceConfig,
    targets: Vec<T>,
    stop: watch::Receiver<bool>,
    stats: Arc<EventSourceStats>,
) {
    let cfg = Arc::new(cfg);
    let mut tasks = Vec::new();
    for target in targets.into_iter().take(cfg.max_concurrency.max(1)) {
        let (sqs, cfg, stop, stats) = (
            sqs.clone(),
            Arc::clone(&cfg),
            stop.clone(),
            Arc::clone(&stats),
        );
        tasks.push(tokio::spawn(async move {
            poller(sqs, cfg, target, stop, stats).await
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

async fn poller<T: BatchTarget>(
    sqs: aws_sdk_sqs::Client,
    cfg: Arc<EventSourceConfig>,
    target: T,
    stop: watch::Receiver<bool>,
    stats: Arc<EventSourceStats>,
) {
    let arn = cfg.queue_arn();
    while !*stop.borrow() {
        let batch = gather(&sqs, &cfg, &stop).await;
        if batch.is_empty() {
            continue;
        }
        stats.batches.fetch_add(1, Ordering::Relaxed);
        stats
            .messages
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        let handles: HashMap<String, String> = batch
            .iter()
            .filter_map(|m| Some((m.message_id.clone()?, m.receipt_handle.clone()?)))
            .collect();
        let mut event = SqsEvent::default();
        event.records = batch
            .into_iter()
            .map(|m| to_event_record(m, &arn, &cfg.region))
            .collect();

        let to_delete: Vec<(String, String)> = match target.invoke(event).await {
            Err(e) => {
                warn!(error = %e, "invocation failed, the whole batch will be retried");
                stats.invoke_errors.fetch_add(1, Ordering::Relaxed);
                stats
                    .failed
                    .fetch_add(handles.len() as u64, Ordering::Relaxed);
                Vec::new()
            }
            Ok(resp) => {
                let failed: HashSet<&str> = resp
                    .batch_item_failures
                    .iter()
                    .map(|f| f.item_identifier.as_str())
                    .collect();
                if failed
                    .iter()
                    .any(|id| id.is_empty() || !handles.contains_key(*id))
                {
                    warn!(
                        "a batch item failure names no message of the batch: the whole batch fails"
                    );
                    stats
                        .failed
                        .fetch_add(handles.len() as u64, Ordering::Relaxed);
                    Vec::new()
                } else {
                    stats
                        .failed
                        .fetch_add(failed.len() as u64, Ordering::Relaxed);
                    handles
                        .iter()
                        .filter(|(id, _)| !failed.contains(id.as_str()))
                        .map(|(id, h)| (id.clone(), h.clone()))
                        .collect()
                }
            }
        };
        let deleted = delete(&sqs, &cfg.queue_url, &to_delete).await;
        stats.deleted.fetch_add(deleted as u64, Ordering::Relaxed);
    }
}

/// Gather one batch: wait (long poll) for a first message, then keep receiving until the batch is
/// full or the batching window has passed.
async fn gather(
    sqs: &aws_sdk_sqs::Client,
    cfg: &EventSourceConfig,
    stop: &watch::Receiver<bool>,
) -> Vec<Message> {
    let mut batch: Vec<Message> = Vec::new();
    let mut first_at: Option<Instant> = None;
    loop {
        let want = (cfg.batch_size - batch.len()).min(10) as i32;
        let wait = match first_at {
            None => cfg.poll_wait,
            Some(t) => cfg.batching_window.saturating_sub(t.elapsed()),
        };
        let received = sqs
            .receive_message()
            .queue_url(&cfg.queue_url)
            .max_number_of_messages(want)
            .wait_time_seconds(wait.as_secs().min(20) as i32)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await;
        match received {
            Ok(out) => {
                let got = out.messages.unwrap_or_default();
                if got.is_empty() && first_at.is_some() {
                    // Inside a sub-second window a receive returns at once: do not spin.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                if !got.is_empty() && first_at.is_none() {
                    first_at = Some(Instant::now());
                }
                batch.extend(got);
            }
            Err(e) => {
                warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "receive failed");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        let window_over = first_at.is_some_and(|t| t.elapsed() >= cfg.batching_window);
        if batch.len() >= cfg.batch_size || window_over || *stop.borrow() {
            return batch;
        }
        if first_at.is_none() {
            // Nothing yet: return to the caller so it can check for a stop request.
            return batch;
        }
    }
}

async fn delete(sqs: &aws_sdk_sqs::Client, queue_url: &str, msgs: &[(String, String)]) -> usize {
    let mut deleted = 0;
    for chunk in msgs.chunks(10) {
        let entries: Vec<DeleteMessageBatchRequestEntry> = chunk
            .iter()
            .enumerate()
            .filter_map(|(i, (_, handle))| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(handle)
                    .build()
                    .ok()
            })
            .collect();
        match sqs
            .delete_message_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries))
            .send()
            .await
        {
            Ok(out) => deleted += out.successful().len(),
            Err(e) => {
                warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "delete failed; the messages will be redelivered")
            }
        }
    }
    debug!(deleted, "deleted");
    deleted
}

fn to_event_record(m: Message, arn: &str, region: &str) -> SqsMessage {
    let mut r = SqsMessage::default();
    r.message_id = m.message_id;
    r.receipt_handle = m.receipt_handle;
    r.body = m.body;
    r.md5_of_body = m.md5_of_body;
    r.md5_of_message_attributes = m.md5_of_message_attributes;
    r.attributes = m
        .attributes
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k.as_str().to_owned(), v))
        .collect();
    r.message_attributes = m
        .message_attributes
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| {
            let mut a = SqsMessageAttribute::default();
            a.string_value = v.string_value;
            a.string_list_values = v.string_list_values.unwrap_or_default();
            a.data_type = Some(v.data_type);
            (k, a)
        })
        .collect();
    r.event_source = Some("aws:sqs".into());
    r.event_source_arn = Some(arn.to_owned());
    r.aws_region = Some(region.to_owned());
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queue_arn_comes_from_the_queue_url() {
        let cfg = EventSourceConfig::new(
            "http://localhost:4566/queue/us-east-1/000000000000/flashflow-orders",
            "us-east-1",
        );
        assert_eq!(
            cfg.queue_arn(),
            "arn:aws:sqs:us-east-1:000000000000:flashflow-orders"
        );
    }
}
