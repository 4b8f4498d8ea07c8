//! FlashFlow's adapters: the ports (crate `flashflow`) on the outside services, and in memory.
//! Each adapter only translates between a port and its service. A function's crate turns on the
//! services it talks to, one feature each, and links nothing else.
//!
//! # Layout
//! - [`redis`] (`redis`): the reservation store, the outbox, the sale cache, the sold-out fast
//!   path and the waiting room (Lua scripts in `redis/lua/`).
//! - [`postgres`] (`postgres`): the ledger (sales, settled orders, holds, migrations), TLS.
//! - [`sqs`] (`sqs`): the order queue and its depths.
//! - [`dynamodb`] (`dynamodb`): the order-status read model.
//! - [`stripe`] (`stripe`): the payment provider (PaymentIntents, refunds, the webhook signature).
//! - [`beacon`] (`beacon`): a public randomness beacon's rounds checked (drand's quicknet scheme),
//!   and the local stand-in's signer.
//! - [`relay`]: the long-running server's outbox relay (answers before the send, sends in
//!   batches), on any publisher and outbox.
//! - [`memory`] and [`contract`] (`testing`): every port in memory, and what every adapter of a
//!   port must do, run on memory here and on the real services by flashflow-local's tests.
//! - [`clients`]: the clients every function builds at start (Redis, Postgres), [`clients::StartupError`].
//! - [`aws`], [`secrets`], [`keys`]: the AWS SDK's configuration, credentials from Secrets
//!   Manager, the signing keys.

pub mod aws;
#[cfg(feature = "beacon")]
pub mod beacon;
pub mod clients;
#[cfg(feature = "testing")]
pub mod contract;
#[cfg(feature = "dynamodb")]
pub mod dynamodb;
pub mod keys;
#[cfg(feature = "testing")]
pub mod memory;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "redis")]
pub mod redis;
pub mod relay;
pub mod secrets;
#[cfg(feature = "sqs")]
pub mod sqs;
#[cfg(feature = "stripe")]
pub mod stripe;
#[cfg(any(
    feature = "redis",
    feature = "postgres",
    feature = "stripe",
    feature = "beacon"
))]
mod tls;
