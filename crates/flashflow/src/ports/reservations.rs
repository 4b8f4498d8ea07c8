//! The hot path: one atomic reservation per buy.

use super::StoreError;
use crate::domain::{BuyerId, IdempotencyKey, Refusal, Reservation, ReserveRequest, SaleId};
use std::future::Future;
use std::time::Duration;

/// How long the store remembers an order that reserved, so that a second run of the same order
/// (a client's retry inside buy's deadline, the Redis client re-sending after a reconnect) answers
/// the first: far longer than any such retry.
pub const ORDER_REMEMBERED_FOR: Duration = Duration::from_secs(600);

/// Takes stock for buys, atomically: checks the sale, the buyer's limit and idempotency key, takes
/// the stock and puts the order in the sale's outbox, all or nothing.
pub trait ReservationStore: Send + Sync + 'static {
    /// Idempotent on `req.order_id`: while the order is remembered ([`ORDER_REMEMBERED_FOR`]), a
    /// call for an order that already reserved answers that reservation and changes nothing.
    /// Never answered from [`ReservationStore::refusal_from_memory`]'s memory: a repeated call is
    /// how a caller learns what an in-doubt call did.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Failed`] when nothing was reserved by this
    /// call; [`StoreError::InDoubt`] when it may have reserved: calling again with the same
    /// order id tells.
    fn reserve(
        &self,
        req: &ReserveRequest,
    ) -> impl Future<Output = Result<Reservation, StoreError>> + Send;

    /// The refusal [`ReservationStore::reserve`] would answer this buy, when the store knows it
    /// without asking anyone (a sale it learned is sold out or closed: the Redis adapter's sold-out fast path);
    /// `None` otherwise. Never reserves. The default knows nothing.
    fn refusal_from_memory(
        &self,
        _sale: &SaleId,
        _buyer: &BuyerId,
        _key: Option<&IdempotencyKey>,
    ) -> Option<Refusal> {
        None
    }
}
