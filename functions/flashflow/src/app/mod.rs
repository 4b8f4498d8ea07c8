//! The application layer: the use cases that span several ports, between the entry points (the
//! HTTP routers in [`crate::api`], the Lambda mains, `flashflow-local`) and the ports. Nothing
//! here names an adapter: each use case is generic over the ports it needs, so its tests run on
//! the in-memory adapters and its callers wire the real ones (see [`crate::startup`]).
//!
//! # Layout
//! - [`settle`]: an SQS batch into the ledger, then the status store and the outbox cleanup.
//! - [`checkout`]: pay for a held order, cancel it, expire it; each change once.
//! - [`admin`]: operator work: loading and rebuilding a sale in Redis, resetting it.
//! - [`reconcile`]: the outbox sweeper that re-sends reservations whose message never made it.
//! - [`waiting_room`]: the queue in front of an opening: join, status, the draw, buy's gate.

pub mod admin;
pub mod checkout;
pub mod reconcile;
#[cfg(feature = "sqs-events")]
pub mod settle;
pub mod waiting_room;
