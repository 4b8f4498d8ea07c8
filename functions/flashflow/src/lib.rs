//! FlashFlow: a flash-sale and settlement engine for AWS Lambda.
//!
//! A buy is one atomic Redis Lua script (check the sale, the buyer's limit and idempotency key,
//! take stock, record the signed order in a per-sale outbox), then one SQS message; settlement
//! writes orders to Postgres, the authority for stock. `docs/architecture.md` has the glossary
//! and the reasons.
//!
//! # Layout
//! - [`domain`]: validated types and the rules (reservation, allocation, replays, sale
//!   validation, checkout, RFC 3339), no I/O.
//! - [`ports`]: one trait per outside capability, composed where a use case needs several, and
//!   their errors.
//! - [`adapters`]: the ports on Redis (Lua scripts in `adapters/redis/lua/`), SQS, DynamoDB,
//!   Postgres and Stripe; in memory behind the `testing` feature.
//! - [`app`]: the use cases spanning ports: settle, checkout, admin, reconcile.
//! - [`api`]: one `axum::Router` per HTTP function and the one error-to-HTTP mapping.
//! - [`settings`] and [`startup`]: each function's typed settings and its wiring, shared by the
//!   Lambda mains and `flashflow-local`.
//! - [`sold_out`]: the sold-out fast path: sales answered from memory while nothing can be bought.
//! - [`signing`]: the signature that lets settle tell buy's messages from anyone else's.
//! - [`secrets`]: database, Redis and signing-key credentials from Secrets Manager, read at start.
//! - [`metrics`]: CloudWatch Embedded Metric Format lines (counts per outcome, batch duration).
//! - [`aws`], [`clock`]: the AWS SDK configuration, epoch milliseconds.
//! - `testing` (feature): the ports' contract tests and HTTP helpers for tests.

pub mod adapters;
#[cfg(feature = "http")]
pub mod api;
pub mod app;
pub mod aws;
pub mod clock;
pub mod domain;
pub mod metrics;
pub mod ports;
pub mod secrets;
pub mod settings;
pub mod signing;
pub mod sold_out;
pub mod startup;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

#[cfg(test)]
mod layering {
    /// The source files under `src/<dir>`, but their tests (`tests.rs`, `*_tests.rs`).
    fn sources(dir: &str) -> Vec<(String, String)> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src")
            .join(dir);
        let mut files = Vec::new();
        let mut todo = vec![root];
        while let Some(d) = todo.pop() {
            for entry in std::fs::read_dir(&d).unwrap() {
                let path = entry.unwrap().path();
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                if path.is_dir() {
                    todo.push(path);
                } else if name.ends_with(".rs")
                    && name != "tests.rs"
                    && !name.ends_with("_tests.rs")
                {
                    files.push((name, std::fs::read_to_string(&path).unwrap()));
                }
            }
        }
        files
    }

    /// Entry points and use cases go through ports (their tests may use the memory adapters).
    #[test]
    fn the_routers_and_the_use_cases_name_no_adapter() {
        for dir in ["api", "app"] {
            let files = sources(dir);
            assert!(!files.is_empty(), "{dir}");
            for (name, text) in files {
                let code = text.split("#[cfg(test)]").next().unwrap_or_default();
                assert!(
                    !code.contains("adapters::"),
                    "src/{dir}/{name} names an adapter: go through a port"
                );
            }
        }
    }
}
