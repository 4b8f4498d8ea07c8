//! Reserved orders between the reservation and their settlement.

use super::StoreError;
use crate::domain::rehydrate::KeyHolder;
use crate::domain::EpochMs;
use crate::domain::{OrderMessage, SaleId};
use std::future::Future;
use uuid::Uuid;

/// An outbox entry the sweeper looks at: its order id, and its message (`None` when the order
/// settled meanwhile and only its index entry is left).
pub type StaleEntry = (String, Option<String>);

/// Each sale's outbox: every reserved order's message until settle records it. The sweeper
/// re-sends what may have been lost; buy and the relay record what is in the queue. Each trait
/// says one thing; [`Outbox`] is all of them.
pub trait PendingOrders: Send + Sync + 'static {
    /// The reserved, unsettled order with this id, in any sale, if any.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails.
    fn find_pending(
        &self,
        order_id: Uuid,
    ) -> impl Future<Output = Result<Option<OrderMessage>, StoreError>> + Send;

    /// Every message in the sale's outbox, `(order id, message)`.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails.
    fn entries(
        &self,
        sale: &SaleId,
    ) -> impl Future<Output = Result<Vec<(String, String)>, StoreError>> + Send;
}

/// Buy and the relay: what is in the queue.
pub trait SentMarks: Send + Sync + 'static {
    /// Record that these orders' messages are in the queue: the sweeper leaves them alone until
    /// `until` (when a message can no longer be there unsettled).
    ///
    /// # Errors
    /// [`StoreError`] when the store fails; the sweeper then re-sends the entries after its
    /// grace, duplicates that settle absorbs.
    fn mark_sent(
        &self,
        sale: &SaleId,
        order_ids: &[Uuid],
        until: EpochMs,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Settle: what is recorded leaves the outbox.
pub trait SettledOrders: Send + Sync + 'static {
    /// Remove settled orders from the sale's outbox, and record each settled idempotency key's
    /// order and state (`keys`), so a replay of the request answers the order's outcome.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails; the entries stay, the sweeper re-sends them and settle
    /// absorbs the duplicates.
    fn remove_settled(
        &self,
        sale: &SaleId,
        order_ids: &[Uuid],
        keys: &[KeyHolder],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The sweeper: entries whose message may be lost.
pub trait OutboxSweep: Send + Sync + 'static {
    /// Entries of `sale` reserved (or last marked) before `before`, at most `limit`.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails.
    fn stale(
        &self,
        sale: &SaleId,
        before: EpochMs,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<StaleEntry>, StoreError>> + Send;

    /// Mark `resent` entries as in the queue until `until`, and forget index entries whose
    /// message is `gone` (settled meanwhile).
    ///
    /// # Errors
    /// [`StoreError`] when the store fails.
    fn touch(
        &self,
        sale: &SaleId,
        resent: &[String],
        gone: &[String],
        until: EpochMs,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The whole outbox.
pub trait Outbox: PendingOrders + SentMarks + SettledOrders + OutboxSweep {}

impl<T: PendingOrders + SentMarks + SettledOrders + OutboxSweep> Outbox for T {}
