//! The SQS adapter of the order queue: where reserved orders go to be settled.

use aws_sdk_sqs::Client;
use flashflow::ports::{OrderPublisher, PublishError};

/// The order queue: `ORDERS_QUEUE_URL`.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct OrdersQueueSettings {
    #[serde(rename = "orders_queue_url")]
    pub url: String,
}

impl flashflow_settings::FromEnv for OrdersQueueSettings {}

/// SQS adapter. The endpoint comes from the standard AWS settings (`AWS_ENDPOINT_URL_SQS`, …).
/// It sends order messages as they are: each carries buy's signature inside
/// ([`flashflow::domain::signing`]), so no key is needed to send one.
#[derive(Clone, Debug)]
pub struct SqsPublisher {
    client: Client,
    queue_url: String,
}

impl SqsPublisher {
    /// The order queue the settings name, on the SDK's configuration.
    pub fn from_settings(sdk: &aws_config::SdkConfig, settings: &OrdersQueueSettings) -> Self {
        Self::new(Client::new(sdk), &settings.url)
    }

    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }

    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }
}

impl SqsPublisher {
    /// `messages` in `SendMessageBatch` calls of ten, each delivered after `delay`. Returns the
    /// indexes (into `messages`) that were not accepted.
    async fn send_batch(&self, messages: &[String], delay: std::time::Duration) -> Vec<usize> {
        use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
        // SQS delays a message by at most 15 minutes.
        let delay_s = delay.as_secs().min(900) as i32;
        let mut failed = Vec::new();
        for (c, chunk) in messages.chunks(10).enumerate() {
            let entries: Vec<SendMessageBatchRequestEntry> = chunk
                .iter()
                .enumerate()
                .filter_map(|(i, body)| {
                    SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(body)
                        .delay_seconds(delay_s)
                        .build()
                        .ok()
                })
                .collect();
            let base = c * 10;
            match self
                .client
                .send_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
            {
                Ok(out) => failed.extend(
                    out.failed()
                        .iter()
                        .filter_map(|f| f.id().parse::<usize>().ok())
                        .map(|i| base + i),
                ),
                Err(e) => {
                    tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "batch send failed");
                    failed.extend(base..base + chunk.len());
                }
            }
        }
        failed
    }
}

impl OrderPublisher for SqsPublisher {
    async fn publish_many(&self, messages: &[String]) -> Vec<usize> {
        self.send_batch(messages, std::time::Duration::ZERO).await
    }

    async fn publish_later(&self, messages: &[String], delay: std::time::Duration) -> Vec<usize> {
        self.send_batch(messages, delay).await
    }

    async fn publish(&self, message: &str) -> Result<(), PublishError> {
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(message)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| PublishError(Box::new(e)))
    }
}

/// The order queue and its DLQ, for their depths: `ORDERS_QUEUE_URL`, `ORDERS_DLQ_URL`.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct DepthSettings {
    pub orders_queue_url: String,
    pub orders_dlq_url: String,
}

impl flashflow_settings::FromEnv for DepthSettings {}

/// [`flashflow::ports::QueueDepths`] on SQS (`GetQueueAttributes`).
#[derive(Clone, Debug)]
pub struct SqsDepths {
    pub client: Client,
    pub settings: DepthSettings,
}

impl SqsDepths {
    /// The depths of the queues the settings name, on the SDK's configuration.
    pub fn from_settings(sdk: &aws_config::SdkConfig, settings: &DepthSettings) -> Self {
        Self {
            client: Client::new(sdk),
            settings: settings.clone(),
        }
    }

    async fn depth(&self, url: &str) -> Option<i64> {
        use aws_sdk_sqs::types::QueueAttributeName as A;
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(A::ApproximateNumberOfMessages)
            .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
            .attribute_names(A::ApproximateNumberOfMessagesDelayed)
            .send()
            .await
            .ok()?;
        Some(
            out.attributes()?
                .values()
                .filter_map(|v| v.parse::<i64>().ok())
                .sum(),
        )
    }
}

impl flashflow::ports::QueueDepths for SqsDepths {
    async fn depths(&self) -> (Option<i64>, Option<i64>) {
        tokio::join!(
            self.depth(&self.settings.orders_queue_url),
            self.depth(&self.settings.orders_dlq_url)
        )
    }
}
