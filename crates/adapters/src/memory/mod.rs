//! Every port in memory, for fast tests that need no service (the `testing` feature; no Lambda
//! links it). They follow the same rules as the real adapters, checked by the same contract tests
//! (`crate::contract`); each can be switched to "unavailable" to test outages.
//!
//! # Layout
//! - [`store`]: [`MemoryStore`], the reservation store, the outbox and the sale cache (Redis).
//! - [`queue`]: [`MemoryQueue`], the order queue (SQS).
//! - [`status`]: [`MemoryStatus`], the status read model (DynamoDB).
//! - [`ledger`]: [`MemoryLedger`], settlement and sale administration (Postgres).
//! - [`holds`]: [`MemoryHolds`], checkout's held orders (Postgres).
//! - [`payments`]: [`MemoryPayments`], the payment provider, its webhooks signed its own way.
//! - [`beacon`]: [`MemoryBeacon`], a randomness beacon's rounds (drand).
//! - `waiting_room`: a sale's queue (Redis' `queue_*.lua`), part of [`MemoryStore`].

mod beacon;
mod holds;
mod ledger;
mod payments;
mod queue;
mod status;
mod store;
mod waiting_room;

pub use beacon::{MemoryBeacon, MEMORY_CHAIN};
pub use holds::MemoryHolds;
pub use ledger::{LedgerCounts, MemoryLedger};
pub use payments::{MemoryPayments, MEMORY_WEBHOOK_SECRET};
pub use queue::MemoryQueue;
pub use status::MemoryStatus;
pub use store::MemoryStore;

use std::sync::{Mutex, MutexGuard};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A test that panicked while holding the lock has already failed; keep the data usable.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The error of an adapter switched off.
fn switched_off(what: &str) -> flashflow::ports::BoxError {
    format!("{what} switched off").into()
}
