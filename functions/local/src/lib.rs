//! `flashflow-local`: FlashFlow's functions on the local stack, the same code as the Lambdas.
//!
//! # Layout
//! - [`server`]: serves the merged routers of the HTTP functions (what API Gateway does in AWS).
//! - [`bench_settle`]: settlement throughput at the handler level (`make bench-settle`).
//! - [`ceiling`]: the benchmarks' ceiling server (one trivial `EVALSHA` per request).
//! - [`dlq`]: look at the dead-letter queue and redrive it.
//! - [`event_source`]: feeds the settle handler from SQS as Lambda's event source mapping does
//!   (LocalStack cannot run Lambdas without Docker).
//!
//! The binary (`src/main.rs`) wires them: `flashflow-local api|settle|reconcile|dlq show|dlq redrive`.

pub mod bench_settle;
pub mod ceiling;
pub mod dlq;
pub mod event_source;
pub mod server;
