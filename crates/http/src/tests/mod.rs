//! Handler tests on the in-memory adapters: the routers exactly as the Lambdas run them, no
//! service needed. The same routers run against Redis, SQS, DynamoDB and Postgres in the
//! integration tests (`functions/local/tests/integration`).
//!
//! # Layout
//! - this file: what every test here shares (a sale, the `events/` fixtures).
//! - `buying`: buy's answers, its retries, its refusals and its bad input.
//! - `order_status`: an order's status and who may read it.
//! - `operating`: the operator's routes, credentials and bodies.
//! - `error_mapping`: every error's status, code and what it hides.
//! - `declared_routes`: the routers against `template.yaml` (routes, Redis users).
//! - `properties`: any request, generated, gets an answer that keeps the contract.
//! - `storefront`: the storefront, the live view and the public sale.

use super::orders::OrdersState;
use super::*;
use crate::testing::{call, event, request};
use axum::http::{Method, Request};
use flashflow::domain::{OrderMessage, OrderState, OrderStatus, SaleDefinition, SaleId};
use flashflow::ports::StatusStore;
use flashflow_adapters::memory::{MemoryQueue, MemoryStatus, MemoryStore};

const BUY_EVENT: &str = include_str!("../../../../events/apigw-buy.json");
const BUY_NO_IDENTITY_EVENT: &str = include_str!("../../../../events/apigw-buy-no-identity.json");
const ORDER_STATUS_EVENT: &str = include_str!("../../../../events/apigw-order-status.json");
const TEMPLATE: &str = include_str!("../../../../template.yaml");

fn sale(id: &str, stock: u32, limit: u32) -> SaleDefinition {
    SaleDefinition::new(SaleId::parse(id).unwrap(), stock)
        .with_name("test")
        .with_limit(limit)
}

mod buying;
mod declared_routes;
mod error_mapping;
mod operating;
mod order_status;
mod properties;
mod storefront;
