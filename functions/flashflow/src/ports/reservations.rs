//! The hot path: one atomic reservation per buy.

use super::StoreError;
use crate::domain::{Reservation, ReserveRequest};
use std::future::Future;

/// Takes stock for buys, atomically: checks the sale, the buyer's limit and idempotency key, takes
/// the stock and puts the order in the sale's outbox, all or nothing.
pub trait ReservationStore: Send + Sync + 'static {
    /// # Errors
    /// [`StoreError`] when the store cannot answer; then nothing was reserved by this call.
    fn reserve(
        &self,
        req: &ReserveRequest,
    ) -> impl Future<Output = Result<Reservation, StoreError>> + Send;
}
