//! Checkout's holds in the ledger (Postgres): the one place where a held order changes state, so
//! each change happens once whoever asks (the buyer, the webhook, the expiry job) and however
//! often.

use super::{DbError, StoreError};
use crate::domain::EpochMs;
use crate::domain::{OrderState, OrderStatus};
use std::future::Future;
use uuid::Uuid;

/// A checkout order as the ledger holds it, with what payment and follow-up need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldRecord {
    /// The order as buyers see it (`pay_by_ms` set).
    pub status: OrderStatus,
    /// The order's one PaymentIntent, once the buyer asked to pay.
    pub payment_intent: Option<String>,
    /// The sale's unit price (minor units) and currency.
    pub price: u64,
    pub currency: String,
    /// The sale's round the order belongs to (a reset starts the next).
    pub round: u32,
    /// The hold's end is carried to Redis too (an ended hold's units back, a paid one no longer
    /// open there).
    pub stock_returned: bool,
    /// The read model shows the order's last change.
    pub status_written: bool,
}

/// What [`Holds::attach_intent`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attached {
    /// The order is held with this intent (the one given, or one attached before).
    Held(String),
    /// The order is no longer held (it stands as the record says): the intent was not attached.
    NotHeld(HoldRecord),
}

/// Checkout orders in the ledger: read ([`HoldReader`]), changed once each ([`HoldChanges`]),
/// worked through by the expiry job ([`ExpiryWork`]); [`Holds`] is all of them.
pub trait HoldReader: Send + Sync + 'static {
    /// The checkout order `order_id` (of this round), or `None` when the ledger has no such
    /// checkout order.
    ///
    /// # Errors
    /// [`DbError`] when the database fails.
    fn hold(
        &self,
        order_id: Uuid,
    ) -> impl Future<Output = Result<Option<HoldRecord>, DbError>> + Send;
}

/// The changes of a held order, each made once whoever asks first.
pub trait HoldChanges: Send + Sync + 'static {
    /// Attach `intent` to the held order unless it has one: the first intent attached is the
    /// order's one.
    ///
    /// # Errors
    /// [`DbError`] when the database fails; [`DbError::Raced`] when the order vanished (a reset).
    fn attach_intent(
        &self,
        order_id: Uuid,
        intent: &str,
    ) -> impl Future<Output = Result<Attached, DbError>> + Send;

    /// Move the order from `from` to `to` in one transaction, with the sale's counters (a held
    /// order's units leave `held`, into `confirmed` for a payment); an ended hold (`EXPIRED`,
    /// `CANCELLED`) is marked as still to be returned to Redis. `intent` must be the order's
    /// PaymentIntent as the caller saw it (`None`: it had none), so a payment attached meanwhile
    /// is never ended unseen; `paid_with` records the intent a payment came through (a refunded
    /// one). Returns the moved order, or `None` when it did not stand so (someone else moved it
    /// first: read it again).
    ///
    /// # Errors
    /// [`DbError`] when the database fails; nothing changed then.
    fn move_order(
        &self,
        order_id: Uuid,
        from: OrderState,
        to: OrderState,
        intent: Option<&str>,
        paid_with: Option<&str>,
    ) -> impl Future<Output = Result<Option<HoldRecord>, DbError>> + Send;
}

/// What the expiry job works through: holds past `pay_by`, follow-ups a crash left undone.
pub trait ExpiryWork: Send + Sync + 'static {
    /// Held orders whose `pay_by` is at or before `now`, oldest first, at most `limit`; those
    /// [deferred](ExpiryWork::defer) past `now` wait.
    ///
    /// # Errors
    /// [`DbError`] when the database fails.
    fn due(
        &self,
        now: EpochMs,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<HoldRecord>, DbError>> + Send;

    /// Orders whose last change is not yet carried everywhere (units back in Redis, status in
    /// the read model), at most `limit`, the longest waiting first; those
    /// [deferred](ExpiryWork::defer) past `now` wait.
    ///
    /// # Errors
    /// [`DbError`] when the database fails.
    fn unfinished(
        &self,
        now: EpochMs,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<HoldRecord>, DbError>> + Send;

    /// Look at the order again no sooner than `until`: its expiry or follow-up could not be
    /// done now, and it must not stand in front of the others meanwhile.
    ///
    /// # Errors
    /// [`DbError`] when the database fails.
    fn defer(
        &self,
        order_id: Uuid,
        until: EpochMs,
    ) -> impl Future<Output = Result<(), DbError>> + Send;

    /// How many held orders' `pay_by` passed before `before` (holds that should have ended
    /// by now: their units are not back on sale).
    ///
    /// # Errors
    /// [`DbError`] when the database fails.
    fn overdue(&self, before: EpochMs) -> impl Future<Output = Result<u64, DbError>> + Send;
}

/// Follow-ups of a change (units back in Redis, the status in the read model) recorded as done.
pub trait FollowUps: Send + Sync + 'static {
    /// Record that the order's units are back in Redis and/or its status `written` (the state
    /// the caller wrote: a change made since is still to be written).
    ///
    /// # Errors
    /// [`DbError`] when the database fails.
    fn finished(
        &self,
        order_id: Uuid,
        stock_returned: bool,
        written: Option<OrderState>,
    ) -> impl Future<Output = Result<(), DbError>> + Send;
}

/// Every checkout ledger operation.
pub trait Holds: HoldReader + HoldChanges + ExpiryWork + FollowUps {}

impl<T: HoldReader + HoldChanges + ExpiryWork + FollowUps> Holds for T {}

/// What [`ReturnStock::return_stock`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Returned {
    /// The units are back now (a paid hold: it is no longer open).
    Now,
    /// They were given back before, or a reset rebuilt the sale since: nothing more to do.
    Before,
    /// The store does not hold the sale (it lost its data): try again once it is loaded.
    NotLoaded,
}

/// A hold's end carried to the reservation store: an ended hold's units back, so the next buyer
/// can take them; a paid one no longer open, so a queue can tell sold out from sold out for now.
pub trait ReturnStock: Send + Sync + 'static {
    /// Carry `hold`'s end to the store, once per order: an ended (expired, cancelled) hold gives
    /// its units back (remaining and its buyer's allowance); a paid (confirmed) one is no longer
    /// counted as open.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails; repeating is safe.
    fn return_stock(
        &self,
        hold: &HoldRecord,
    ) -> impl Future<Output = Result<Returned, StoreError>> + Send;
}
