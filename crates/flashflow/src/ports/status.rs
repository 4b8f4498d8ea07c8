//! The order-status read model.

use super::StatusError;
use crate::domain::OrderStatus;
use std::future::Future;
use uuid::Uuid;

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

    /// Write one status unless the store holds one of a higher or equal rank
    /// ([`crate::domain::OrderState::rank`]): a late write never undoes a later change.
    ///
    /// # Errors
    /// [`StatusError`] when the store fails.
    fn put_newer(
        &self,
        status: &OrderStatus,
    ) -> impl Future<Output = Result<(), StatusError>> + Send;
}
