//! `flashflow-local`: FlashFlow's functions on the local stack, the same code as the Lambdas.
//!
//! # Layout
//! - [`server`]: serves the merged routers of the HTTP functions (what API Gateway does in AWS).
//! - [`beacon`]: a stand-in for a drand randomness beacon (there is no internet locally).
//! - [`issuer`]: the local identity issuer, and the layer that checks its JWTs as API Gateway's
//!   JWT authorizer does.
//! - [`dlq`]: look at the dead-letter queue and redrive it.
//! - [`event_source`]: feeds the settle handler from SQS as Lambda's event source mapping does
//!   (LocalStack cannot run Lambdas without Docker).
//! - [`settings`]: what only the local runner reads (server limits, event source, sweep timer).
//! - `template_check` (tests): every variable each function reads is declared in `template.yaml`.
//!
//! The binary (`src/main.rs`) runs them: `flashflow-local api|settle|reconcile|dlq show|dlq
//! redrive|jwt|beacon` (`--help` lists each one's settings). The benchmarks live in `functions/bench`.

pub mod beacon;
pub mod dlq;
pub mod event_source;
pub mod issuer;
pub mod server;
pub mod settings;
#[cfg(test)]
mod template_check;
