//! The settlement queue.

use super::PublishError;
use crate::domain::SaleId;
use std::future::Future;
use std::time::Duration;
use uuid::Uuid;

/// SQS' default message retention, 4 days: how long a sent message may wait in the queue; the
/// default of `OUTBOX_IN_QUEUE_MS` wherever it is read.
pub const IN_QUEUE_FOR: Duration = Duration::from_secs(4 * 24 * 3600);

/// What [`OrderPublisher::publish_order`] did with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// In the queue.
    Sent,
    /// Taken by a relay that sends it and marks it sent.
    Relayed,
}

/// Hands order messages to the settlement queue.
pub trait OrderPublisher: Send + Sync + 'static {
    /// Send one message now.
    ///
    /// # Errors
    /// [`PublishError`] when the queue did not accept the message.
    fn publish(&self, message: &str) -> impl Future<Output = Result<(), PublishError>> + Send;

    /// Send several messages now (SQS: `SendMessageBatch`, 10 per call). Returns the indexes
    /// (into `messages`) that were not accepted.
    fn publish_many(&self, messages: &[String]) -> impl Future<Output = Vec<usize>> + Send;

    /// Send `messages` again, delivered no sooner than `delay` from now. Returns the indexes (into
    /// `messages`) that were not accepted.
    fn publish_later(
        &self,
        messages: &[String],
        delay: Duration,
    ) -> impl Future<Output = Vec<usize>> + Send;

    /// Hand over a just-reserved order's message. [`Delivery::Sent`]: it is in the queue now (the
    /// caller marks it sent); [`Delivery::Relayed`]: a relay sends it shortly and marks it itself.
    /// Either way the reservation is already in the outbox, which the sweeper delivers if this
    /// message is lost.
    ///
    /// # Errors
    /// [`PublishError`] when the message was neither sent nor taken by a relay.
    fn publish_order(
        &self,
        _sale: &SaleId,
        _order_id: Uuid,
        message: &str,
    ) -> impl Future<Output = Result<Delivery, PublishError>> + Send {
        async move { self.publish(message).await.map(|()| Delivery::Sent) }
    }
}

/// How many messages wait in the order queue and its dead-letter queue (visible, in flight and
/// delayed), for the live view; `None` when the queue could not be asked.
pub trait QueueDepths: Send + Sync + 'static {
    fn depths(&self) -> impl Future<Output = (Option<i64>, Option<i64>)> + Send;
}
