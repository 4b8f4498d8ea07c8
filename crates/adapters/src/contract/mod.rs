//! The ports' contracts: what every adapter must do, written once, one behaviour per test. The
//! unit tests run them on the in-memory adapters, the integration tests on Redis, Postgres,
//! DynamoDB Local, LocalStack and localstripe, so the fast tests' fakes cannot drift from the
//! real thing.
//!
//! Each module holds one port's behaviours as `pub async fn`s named as sentences, and a macro
//! that makes one `#[tokio::test]` of each for an adapter: `store_contract!(make)`, where `make`
//! is an async expression giving a fresh adapter (and what the behaviours need); a failure names
//! the broken rule. A unit test checks that every behaviour of a module is in its macro.
//!
//! # Layout
//! - [`store`]: the reservation store, the outbox and the sale cache (Redis).
//! - [`ledger`]: settlement and the sale's records (Postgres).
//! - [`holds`]: checkout's held orders in the ledger (Postgres).
//! - [`status`]: the order-status read model (DynamoDB).
//! - [`publisher`]: the order queue (SQS).
//! - [`payments`]: the payment provider (Stripe).
//! - [`waiting_room`]: a sale's queue: places, the draw, the inlet, the controls (Redis).

pub mod holds;
pub mod ledger;
pub mod payments;
pub mod publisher;
pub mod status;
pub mod store;
pub mod waiting_room;

use flashflow::domain::rehydrate::Plan;
use flashflow::domain::waiting_room::draw::Seed;
use flashflow::domain::{
    BuyerId, IdempotencyKey, OrderMessage, Quantity, ReserveRequest, SaleDefinition, SaleId,
    ORDER_MESSAGE_VERSION,
};
use flashflow::ports::{SaleLoader, StoreError};
use std::future::Future;
use uuid::Uuid;

/// A draw's seed nobody can guess (two random UUIDs' bytes), for sales tests load.
pub fn random_seed() -> Seed {
    let mut bytes = [0u8; 32];
    bytes[..16].copy_from_slice(Uuid::new_v4().as_bytes());
    bytes[16..].copy_from_slice(Uuid::new_v4().as_bytes());
    Seed::new(bytes)
}

/// Loading a new sale in tests and tools: the operator's path is the admin use case's rehydrate,
/// from the ledger; this one loads the first round with `available` units and nothing sold (a
/// waiting room gets a [`random_seed`]).
pub trait LoadForTests: SaleLoader {
    /// [`SaleLoader::rehydrate`] with an empty ledger.
    ///
    /// # Errors
    /// As [`SaleLoader::rehydrate`].
    fn load_sale(
        &self,
        def: &SaleDefinition,
        available: u32,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        let plan = Plan {
            remaining: i64::from(available),
            remaining_if_new: i64::from(available),
            returned: Vec::new(),
            round: 1,
            buyers: Vec::new(),
            keys: Vec::new(),
            holds: Vec::new(),
            draw_seed: def.waiting_room.as_ref().map(|_| random_seed()),
        };
        async move { self.rehydrate(def, &plan).await }
    }
}

impl<T: SaleLoader> LoadForTests for T {}

/// A sale of `stock` with a limit of one per buyer, always open.
pub fn sale(id: &SaleId, stock: u32) -> SaleDefinition {
    SaleDefinition::new(id.clone(), stock).with_name("contract")
}

/// A checkout sale of `stock` (a limit of five per buyer, holds of a minute at 1.00 EUR).
pub fn checkout_sale(id: &SaleId, stock: u32) -> SaleDefinition {
    SaleDefinition {
        per_user_limit: 5,
        checkout: Some(flashflow::domain::sale::Checkout {
            hold_seconds: 60,
            price: 100,
            currency: "eur".into(),
        }),
        ..sale(id, stock)
    }
}

/// A sale id no other test uses.
pub fn fresh_sale_id() -> SaleId {
    SaleId::parse(&format!("c-{}", Uuid::new_v4().simple())).expect("a valid id")
}

/// A buy of `quantity` by `buyer`, with an Idempotency-Key when given.
pub fn buy(sale: &SaleId, buyer: &str, quantity: i64, key: Option<&str>) -> ReserveRequest {
    ReserveRequest {
        admission: None,
        order_id: Uuid::now_v7(),
        sale: sale.clone(),
        buyer: BuyerId::parse(buyer).expect("a valid buyer"),
        quantity: Quantity::new(quantity).expect("a valid quantity"),
        idempotency_key: key.map(|k| IdempotencyKey::parse(k).expect("a valid key")),
        signature: None,
    }
}

/// An order message of `sale` by `buyer`, reserved `at` ms after a fixed instant.
pub fn order(sale: &SaleId, buyer: &str, at: i64, key: Option<&str>, round: u32) -> OrderMessage {
    OrderMessage {
        v: ORDER_MESSAGE_VERSION,
        order_id: Uuid::now_v7(),
        sale_id: sale.clone(),
        buyer: BuyerId::parse(buyer).unwrap(),
        quantity: Quantity::default(),
        reserved_at_ms: 1_795_773_600_000 + at,
        idempotency_key: key.map(|k| IdempotencyKey::parse(k).unwrap()),
        round,
        pay_by_ms: None,
        sig: None,
    }
}

/// One `#[tokio::test]` per behaviour: `$make` (an async expression) gives what each takes.
#[doc(hidden)]
#[macro_export]
macro_rules! contract_tests {
    ($module:ident, $make:expr, [$($name:ident),* $(,)?]) => {
        $(
            #[tokio::test]
            async fn $name() {
                let under_test = $make.await;
                $crate::contract::$module::$name(&under_test).await;
            }
        )*
    };
}

/// The `pub async fn`s of a contract module's source, for the check that its macro lists them.
#[cfg(test)]
fn behaviours(source: &str) -> Vec<String> {
    source
        .lines()
        .filter_map(|l| l.strip_prefix("pub async fn "))
        .map(|l| l.split(['<', '(']).next().unwrap_or_default().to_owned())
        .collect()
}

/// The names a contract macro lists.
#[cfg(test)]
fn listed(source: &str) -> Vec<String> {
    let list = source
        .split("contract_tests!(")
        .nth(1)
        .and_then(|rest| rest.split('[').nth(1))
        .and_then(|rest| rest.split(']').next())
        .unwrap_or_default();
    list.split(',')
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_behaviour_of_every_contract_is_in_its_macro() {
        for (module, source) in [
            ("store", include_str!("store.rs")),
            ("ledger", include_str!("ledger.rs")),
            ("holds", include_str!("holds.rs")),
            ("status", include_str!("status.rs")),
            ("publisher", include_str!("publisher.rs")),
            ("payments", include_str!("payments.rs")),
            ("waiting_room", include_str!("waiting_room.rs")),
        ] {
            let (mut have, mut listed) = (super::behaviours(source), super::listed(source));
            have.sort();
            listed.sort();
            assert!(!have.is_empty(), "{module}");
            assert_eq!(
                have, listed,
                "{module}: the behaviours and its macro's list differ"
            );
        }
    }
}
