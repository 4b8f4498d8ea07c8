//! The order queue (SQS): where reserved orders go to be settled.

use aws_sdk_sqs::Client;

/// Sending an order message failed. The reservation stays in the Redis outbox for the sweeper.
#[derive(Debug, thiserror::Error)]
#[error("could not send order message: {0}")]
pub struct PublishError(pub String);

/// Port: hand one order message to the settlement queue.
pub trait OrderPublisher: Send + Sync {
    /// # Errors
    /// [`PublishError`] when the queue did not accept the message.
    fn publish(
        &self,
        message: &str,
    ) -> impl std::future::Future<Output = Result<(), PublishError>> + Send;
}

/// SQS adapter. The endpoint comes from the standard AWS settings (`AWS_ENDPOINT_URL_SQS`, …).
#[derive(Clone, Debug)]
pub struct SqsPublisher {
    client: Client,
    queue_url: String,
}

impl SqsPublisher {
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

impl OrderPublisher for SqsPublisher {
    async fn publish(&self, message: &str) -> Result<(), PublishError> {
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(message)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| PublishError(aws_sdk_sqs::error::DisplayErrorContext(e).to_string()))
    }
}
