//! FlashFlow's domain and its ports: what a flash sale is and what it needs from the outside
//! world, with no I/O and no feature. Every other crate builds on this one.
//!
//! A buy is one atomic reservation (check the sale, the buyer's limit and idempotency key, take
//! stock, record the signed order in the sale's outbox), then one message to the settlement
//! queue; settlement writes orders to the ledger, the authority for stock.
//! `docs/architecture.md` has the glossary, the crates and the reasons.
//!
//! # Layout
//! - [`domain`]: validated types and the rules (reservation, allocation, replays, sale
//!   validation, checkout, the waiting room, order signatures, RFC 3339, epoch milliseconds).
//! - [`ports`]: one trait per outside capability, composed where a use case needs several, and
//!   their errors. The adapters (`flashflow-adapters`) implement them; the use cases
//!   (`flashflow-app`) and the HTTP layer (`flashflow-http`) ask for them by name.
//! - [`per_sale`]: the one building block of a process's memory about sales (bounded, shared).

pub mod domain;
pub mod per_sale;
pub mod ports;
