//! Test support shared by this crate's tests and flashflow-local's integration tests (the
//! `testing` feature; no Lambda links it).
//!
//! # Layout
//! - [`contract`]: what every adapter of a port must do, run against the in-memory adapters
//!   (unit tests) and the real ones (integration tests).
//! - [`http`]: calling a router and reading its answer.

pub mod contract;
pub mod http;
