//! FlashFlow: a flash-sale and settlement engine for AWS Lambda.
//!
//! A buy is one atomic Redis Lua script (check the sale, the buyer's limit and idempotency key,
//! take stock, record the order in a per-sale outbox), then one SQS message; settlement writes
//! orders to Postgres, the authority for stock.
//!
//! # Layout
//! - [`domain`]: validated types (sale id, buyer, quantity, the order message).
//! - [`store`]: the Redis adapter and the reservation port; the scripts live in `src/lua/`.
//! - [`queue`]: the order-queue port and its SQS adapter.
//! - [`db`]: Postgres (connection with TLS, migrations, sales, the set-based settlement transaction).
//! - [`settle`]: an SQS batch into Postgres, then DynamoDB ([`status`]) and the outbox cleanup.
//! - [`api`]: HTTP handlers (buy, operator) and the one error-to-HTTP mapping.
//! - [`reconcile`]: the outbox sweeper that re-sends reservations whose message never made it.
//! - [`config`], [`aws`]: settings from the environment and the AWS SDK configuration.
//! - [`local`]: serving the same handlers over plain HTTP for local runs and load tests.

pub mod api;
pub mod aws;
pub mod config;
pub mod db;
pub mod domain;
pub mod local;
mod pgtls;
pub mod queue;
pub mod reconcile;
pub mod settle;
pub mod status;
pub mod store;
pub mod timefmt;
