//! The domain: validated types and the rules of a flash sale, free of any I/O.
//!
//! # Layout
//! - [`ids`]: sale id, buyer, idempotency key, quantity.
//! - [`integer`]: integers in a JSON body as JSON Schema counts them (`2.0` is 2).
//! - [`sale`]: a sale's definition and the validation of an operator's request for one.
//! - [`message`]: the order message (outbox, SQS), with its one definition and version.
//! - [`money`]: the currencies the payment provider charges in, their minor units and limits.
//! - [`reservation`]: what a buy asks for, the reservation rule and its outcomes.
//! - [`settlement`]: first come, first served allocation of a batch against the remaining stock.
//! - [`rehydrate`]: rebuilding a sale in Redis from the ledger and the outbox.
//! - [`status`]: an order's status as buyers see it.
//! - [`schema`]: the ids' OpenAPI schemas, made of the limits above.
//! - [`checkout`]: what payment, cancel and expiry do to a held order.
//! - [`clock`]: [`EpochMs`], a moment as the system carries it.
//! - [`signing`]: the order signature that lets settle tell buy's messages from anyone else's.
//! - [`timefmt`]: RFC 3339 to and from epoch milliseconds.
//! - [`waiting_room`]: the queue in front of an opening: its terms, the draw, tokens, the inlet.

pub mod checkout;
pub mod clock;
pub mod ids;
pub mod integer;
pub mod message;
pub mod money;
pub mod rehydrate;
pub mod reservation;
pub mod sale;
pub mod schema;
pub mod settlement;
pub mod signing;
pub mod status;
pub mod timefmt;
pub mod waiting_room;

pub use clock::EpochMs;
pub use ids::*;
pub use message::{OrderMessage, ORDER_MESSAGE_VERSION};
pub use reservation::{Refusal, Reservation, ReserveRequest};
pub use sale::SaleDefinition;
pub use settlement::{Settled, Settlement};
pub use status::{OrderState, OrderStatus};

/// Why a piece of client input (or a queue message) was refused. The message is meant for the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct InvalidInput {
    /// Stable, machine-readable error code, e.g. `invalid_sale_id`.
    pub code: &'static str,
    /// Human-readable explanation.
    pub message: String,
}

impl InvalidInput {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}
