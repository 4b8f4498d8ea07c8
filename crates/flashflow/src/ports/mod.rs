//! Ports: what the use cases need from the outside world, one concern each. Every port has a
//! real adapter (Redis, SQS, DynamoDB, Postgres, Stripe) and an in-memory one (`flashflow-adapters`'
//! `memory`, behind its `testing` feature) for fast tests; one set of contract tests (its
//! `contract`) runs against both.
//!
//! # Layout
//! - [`reservations`]: [`ReservationStore`], the hot path: take stock for a buy, atomically.
//! - [`outbox`]: [`Outbox`], reserved orders until they settle: find, mark sent, remove, sweep.
//! - [`sales`]: [`SaleCache`] (the sale as the reservation script sees it) and [`SaleLedger`]
//!   (the sale as the ledger holds it), for operators.
//! - [`queue`]: [`OrderPublisher`], order messages to the settlement queue.
//! - [`status`]: [`StatusStore`], the order-status read model.
//! - [`ledger`]: [`Ledger`], settlement.
//! - [`holds`]: [`Holds`], checkout's held orders: pay, cancel, expire, each change once.
//! - [`payments`]: [`Payments`], the payment provider: intents, refunds, webhooks.
//! - [`waiting_room`]: [`WaitingRooms`], a sale's queue: places, the inlet's steps, controls,
//!   the join list.
//! - [`beacon`]: [`Beacon`], a public randomness beacon's rounds, checked.
//! - this file: the errors, each keeping its cause as its `source`.

pub mod beacon;
pub mod holds;
pub mod ledger;
pub mod outbox;
pub mod payments;
pub mod queue;
pub mod reservations;
pub mod sales;
pub mod status;
pub mod waiting_room;

pub use beacon::{Beacon, BeaconError};
pub use holds::{
    Attached, ExpiryWork, FollowUps, HoldChanges, HoldReader, HoldRecord, Holds, ReturnStock,
    Returned,
};
pub use ledger::Ledger;
pub use outbox::{Outbox, OutboxSweep, PendingOrders, SentMarks, SettledOrders, StaleEntry};
pub use payments::{
    CancelIntent, Cancelled, CreateIntent, EventKind, Intent, IntentState, NewIntent, PaymentError,
    PaymentEvent, Payments, ReadIntent, Refund, RefundPayment, RefundState, VerifyWebhook,
    WebhookError,
};
pub use queue::{Delivery, OrderPublisher, QueueDepths, IN_QUEUE_FOR};
pub use reservations::ReservationStore;
pub use sales::{
    AnswerTally, CheckoutCounts, CreateOutcome, FailoverPauses, LedgerOfSale, LedgerReset,
    LiveSale, LiveSales, ResetStart, SaleCache, SaleLedger, SaleLoader, SaleRecord, SaleResets,
    SaleRetirement, HOLDS_END_WITHIN,
};
pub use status::StatusStore;
pub use waiting_room::{
    JoinLists, JoinOutcome, QueueControls, QueueJoins, QueueSteps, SpentAdmissions, WaitingRooms,
};

/// Every port trait, to bring their methods into scope at once (`use crate::ports::prelude::*`):
/// for tests and tools that call adapters directly; the application asks for the traits it
/// needs by name.
pub mod prelude {
    pub use super::{
        AnswerTally, Beacon, CancelIntent, CreateIntent, ExpiryWork, FailoverPauses, FollowUps,
        HoldChanges, HoldReader, Holds, JoinLists, Ledger, LiveSales, OrderPublisher, Outbox,
        OutboxSweep, Payments, PendingOrders, QueueControls, QueueDepths, QueueJoins, QueueSteps,
        ReadIntent, RefundPayment, ReservationStore, ReturnStock, SaleCache, SaleLedger,
        SaleLoader, SaleResets, SaleRetirement, SentMarks, SettledOrders, SpentAdmissions,
        StatusStore, VerifyWebhook,
    };
}

/// The cause of a port's error, whatever the adapter.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The reservation store (or the outbox, or the sale cache) failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store refused before running anything (down, loading, out of memory, read-only, busy
    /// with a script, refusing new commands): nothing changed.
    #[error("redis unavailable: {0}")]
    Unavailable(#[source] BoxError),
    /// No answer came for a command that may have reached the store (a timeout, a connection
    /// that broke): it may or may not have run.
    #[error("redis did not answer: {0}")]
    InDoubt(#[source] BoxError),
    /// The store answered something this code does not understand, or refused a command.
    #[error("redis error: {0}")]
    Failed(#[source] BoxError),
}

/// Sending an order message failed. The reservation stays in the outbox for the sweeper.
#[derive(Debug, thiserror::Error)]
#[error("could not send order message: {0}")]
pub struct PublishError(#[source] pub BoxError);

/// The order-status store failed.
#[derive(Debug, thiserror::Error)]
#[error("order status store: {0}")]
pub struct StatusError(#[source] pub BoxError);

/// The ledger (Postgres) failed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The database could not be reached or the connection broke.
    #[error("postgres unavailable: {0}")]
    Unavailable(#[source] BoxError),
    /// The statement gave up for a reason that is not the data's: a lock or statement timeout, a
    /// deadlock, a serialization failure, the server shutting down. Retry the same work later.
    #[error("postgres busy: {0}")]
    Busy(#[source] BoxError),
    /// A statement failed because of what it was given (e.g. a value the schema refuses).
    #[error("postgres error: {0}")]
    Query(#[source] BoxError),
    /// The configuration is wrong (e.g. an unparsable `DATABASE_URL`, an edited migration).
    #[error("postgres configuration: {0}")]
    Config(#[source] BoxError),
    /// A row this call had just written or read was gone when it looked again (a concurrent
    /// change); the same call may succeed when repeated.
    #[error("{what} changed while being read; retry")]
    Raced { what: String },
}

impl DbError {
    /// Whether the same work may succeed later without any change: the database was away or busy.
    /// Otherwise the failure comes from the work itself (a statement refused its data).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Unavailable(_) | Self::Busy(_) | Self::Raced { .. }
        )
    }
}
