//! Ports: what the handlers need from the outside world. Each has a real adapter (Redis, SQS,
//! DynamoDB, Postgres) and an in-memory one ([`crate::adapters::memory`]) that the fast handler
//! tests use; the integration tests run the same handlers on the real adapters.

use crate::domain::rehydrate::KeyHolder;
use crate::domain::{OrderMessage, OrderStatus, Reservation, ReserveRequest, SaleId, Settled};
use std::collections::HashMap;
use std::future::Future;
use uuid::Uuid;

/// The reservation store failed; nothing is known to have been reserved.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store could not be reached in time (down, failing over, overloaded).
    #[error("redis unavailable: {0}")]
    Unavailable(String),
    /// The store answered something this code does not understand, or refused a command.
    #[error("redis error: {0}")]
    Failed(String),
}

/// Sending an order message failed. The reservation stays in the outbox for the sweeper.
#[derive(Debug, thiserror::Error)]
#[error("could not send order message: {0}")]
pub struct PublishError(pub String);

/// The order-status store failed.
#[derive(Debug, thiserror::Error)]
#[error("order status store: {0}")]
pub struct StatusError(pub String);

/// The ledger (Postgres) failed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The database could not be reached or the connection broke.
    #[error("postgres unavailable: {0}")]
    Unavailable(String),
    /// The statement gave up for a reason that is not the data's: a lock or statement timeout, a
    /// deadlock, a serialization failure, the server shutting down. Retry the same work later.
    #[error("postgres busy: {0}")]
    Busy(String),
    /// A statement failed because of what it was given (e.g. a value the schema refuses).
    #[error("postgres error: {0}")]
    Query(String),
    /// The configuration is wrong (e.g. an unparsable `DATABASE_URL`).
    #[error("postgres configuration: {0}")]
    Config(String),
}

impl DbError {
    /// Whether the same work may succeed later without any change: the database was away or busy.
    /// Otherwise the failure comes from the work itself (a statement refused its data).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable(_) | Self::Busy(_))
    }
}

/// Takes stock for buys, atomically, and keeps each reservation in an outbox until it is settled.
pub trait ReservationStore: Send + Sync + 'static {
    /// # Errors
    /// [`StoreError`] when the store cannot answer; then nothing was reserved by this call.
    fn reserve(
        &self,
        req: &ReserveRequest,
    ) -> impl Future<Output = Result<Reservation, StoreError>> + Send;

    /// The reserved, unsettled order with this id, if any.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails.
    fn find_pending(
        &self,
        order_id: Uuid,
    ) -> impl Future<Output = Result<Option<OrderMessage>, StoreError>> + Send;

    /// Record that the order's message is in the queue: the sweeper leaves the entry alone until
    /// `until_ms` (epoch ms), when the message can no longer be there unsettled.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails; the sweeper then re-sends the entry after its grace,
    /// a duplicate that settle absorbs.
    fn mark_sent(
        &self,
        sale: &SaleId,
        order_id: Uuid,
        until_ms: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Remove settled orders from the sale's outbox, and record each settled idempotency key's
    /// order and state (`keys`), so a replay of the request answers the order's outcome.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails; the entries stay, the sweeper re-sends them and settle
    /// absorbs the duplicates.
    /// [`ReservationStore::mark_sent`] for several orders of one sale at once.
    ///
    /// # Errors
    /// As [`ReservationStore::mark_sent`].
    fn mark_sent_many(
        &self,
        sale: &SaleId,
        order_ids: &[Uuid],
        until_ms: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        async move {
            for id in order_ids {
                self.mark_sent(sale, *id, until_ms).await?;
            }
            Ok(())
        }
    }

    fn remove_from_outbox(
        &self,
        sale: &SaleId,
        order_ids: &[Uuid],
        keys: &[KeyHolder],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// SQS' default message retention, 4 days: how long a sent message may wait in the queue.
pub const DEFAULT_IN_QUEUE_FOR: std::time::Duration = std::time::Duration::from_secs(4 * 24 * 3600);

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
    /// # Errors
    /// [`PublishError`] when the queue did not accept the message.
    fn publish(&self, message: &str) -> impl Future<Output = Result<(), PublishError>> + Send;

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

    /// Send several messages now (SQS: `SendMessageBatch`, 10 per call). Returns the indexes
    /// (into `messages`) that were not accepted.
    fn publish_many(&self, messages: &[String]) -> impl Future<Output = Vec<usize>> + Send {
        async move {
            let mut failed = Vec::new();
            for (i, m) in messages.iter().enumerate() {
                if self.publish(m).await.is_err() {
                    failed.push(i);
                }
            }
            failed
        }
    }

    /// Send `messages` again, delivered no sooner than `delay` from now. Returns the indexes (into
    /// `messages`) that were not accepted.
    fn publish_later(
        &self,
        messages: &[String],
        delay: std::time::Duration,
    ) -> impl Future<Output = Vec<usize>> + Send;
}

/// The order-status read model buyers poll.
pub trait StatusStore: Send + Sync + 'static {
    /// The order's recorded status, or `None` (not settled yet, or unknown).
    ///
    /// # Errors
    /// [`StatusError`] when the store fails.
    fn get(
        &self,
        order_id: Uuid,
    ) -> impl Future<Output = Result<Option<OrderStatus>, StatusError>> + Send;

    /// Write the statuses; returns the order ids that could not be written.
    fn put_all(&self, items: &[OrderStatus]) -> impl Future<Output = Vec<Uuid>> + Send;
}

/// Records settled orders, the authority for stock.
pub trait Ledger: Send + Sync + 'static {
    /// Settle a batch in one transaction, idempotently: orders already recorded keep their
    /// recorded outcome, new ones are allocated by [`crate::domain::settlement::allocate`].
    ///
    /// # Errors
    /// [`DbError`] when the database fails; then nothing of the batch was recorded.
    fn settle_orders(
        &self,
        orders: &[OrderMessage],
    ) -> impl Future<Output = Result<HashMap<Uuid, Settled>, DbError>> + Send;
}
