//! Adapters: the ports on real services, and in memory.
//!
//! - [`redis`]: the reservation store (Lua scripts in `lua/`), the outbox and the live counters.
//! - [`sqs`]: the order queue.
//! - [`dynamodb`]: the order-status read model.
//! - [`postgres`]: the ledger (sales, settled orders, migrations), with TLS from `pgtls`.
//! - [`relay`]: the long-running server's outbox relay (answers before the send, sends in batches).
//! - [`memory`]: every port in memory, for fast tests.

#[cfg(feature = "dynamodb")]
pub mod dynamodb;
pub mod memory;
#[cfg(feature = "postgres")]
mod pgtls;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod redis;
pub mod relay;
#[cfg(feature = "sqs")]
pub mod sqs;
mod tls;
