//! Adapters: the ports on real services, and in memory.
//!
//! - [`redis`]: the reservation store, the outbox and the sale cache (Lua scripts in `redis/lua/`).
//! - [`sqs`]: the order queue.
//! - [`dynamodb`]: the order-status read model.
//! - [`postgres`]: the ledger (sales, settled orders, migrations), with TLS from `pgtls`.
//! - [`relay`]: the long-running server's outbox relay (answers before the send, sends in batches).
//! - [`stripe`]: the payment provider of checkout sales (PaymentIntents, Refunds, the webhook signature).
//! - [`memory`]: every port in memory, for fast tests (the `testing` feature).

#[cfg(feature = "dynamodb")]
pub mod dynamodb;
#[cfg(any(test, feature = "testing"))]
pub mod memory;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod redis;
pub mod relay;
#[cfg(feature = "sqs")]
pub mod sqs;
#[cfg(feature = "stripe")]
pub mod stripe;
mod tls;
