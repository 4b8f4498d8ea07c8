//! FlashFlow: a flash-sale and settlement engine for AWS Lambda.
//!
//! A buy is one atomic Redis Lua script (check the sale, the buyer's limit and idempotency key,
//! take stock, record the order in a per-sale outbox), then one SQS message; settlement writes
//! orders to Postgres, the authority for stock.
//!
//! # Layout
//! - [`domain`]: validated types and the rules (reservation, allocation, sale validation), no I/O.
//! - [`ports`]: what the handlers need from outside (reservation store, order queue, status
//!   store, ledger) and their errors.
//! - [`adapters`]: the ports on Redis (Lua scripts in `adapters/lua/`), SQS, DynamoDB and
//!   Postgres, and in memory for fast tests.
//! - [`api`]: one `axum::Router` per HTTP function (buy, orders, operator) and the one
//!   error-to-HTTP mapping.
//! - [`admin`]: operator work spanning the stores: rehydrating Redis, resetting a sale.
//! - [`settle`]: an SQS batch into the ledger, then the status store and the outbox cleanup.
//! - [`reconcile`]: the outbox sweeper that re-sends reservations whose message never made it.
//! - [`signing`]: the signature that lets settle tell buy's messages from anyone else's.
//! - [`secrets`]: database and Redis credentials from Secrets Manager, read once at start.
//! - [`metrics`]: CloudWatch Embedded Metric Format lines (counts per outcome, batch duration).
//! - [`config`], [`aws`], [`timefmt`]: settings from the environment, the AWS SDK configuration,
//!   RFC 3339 times.

pub mod adapters;
pub mod admin;
#[cfg(feature = "http")]
pub mod api;
pub mod aws;
pub mod clock;
pub mod domain;
pub mod metrics;
pub mod ports;
pub mod reconcile;
pub mod secrets;
pub mod settings;
#[cfg(feature = "sqs-events")]
pub mod settle;
pub mod signing;
pub mod startup;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod timefmt;
