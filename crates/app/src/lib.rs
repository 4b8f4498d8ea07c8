//! The application layer: the use cases that span several ports, between the entry points (the
//! HTTP routers of `flashflow-http`, the Lambda mains, `flashflow-local`) and the ports (crate
//! `flashflow`). This crate does not depend on the adapters, so the compiler refuses a use case
//! that names one: each is generic over the ports it needs, its tests run on the in-memory
//! adapters (a dev-dependency) and each function's crate wires the real ones.
//!
//! # Layout
//! - [`buy`]: reserve until the outcome is known, hand the order to the queue, mark it sent; the
//!   admission gate and the sold-out tally on the way.
//! - [`settle`]: a batch of queued orders into the ledger, then the status store and the outbox
//!   cleanup.
//! - [`checkout`]: pay for a held order, cancel it, expire it; each change once.
//! - [`admin`]: operator work: loading and rebuilding a sale in Redis, resetting it.
//! - [`reconcile`]: the outbox sweeper that re-sends reservations whose message never made it.
//! - [`waiting_room`]: the queue in front of an opening: join, status, the draw, buy's gate.
//! - [`metrics`]: business counts as CloudWatch Embedded Metric Format lines.

pub mod admin;
pub mod buy;
pub mod checkout;
pub mod metrics;
pub mod reconcile;
pub mod settle;
pub mod waiting_room;
