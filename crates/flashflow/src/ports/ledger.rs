//! Settlement: the authority for stock.

use super::DbError;
use crate::domain::{OrderMessage, Settled};
use std::collections::HashMap;
use std::future::Future;
use uuid::Uuid;

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
