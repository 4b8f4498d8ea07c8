//! Stripe: the payment provider of checkout sales, behind the [`Payments`](flashflow::ports::Payments)
//! port.
//!
//! # Layout
//! - [`client`]: the REST calls checkout needs (PaymentIntents, Refunds) against
//!   `STRIPE_API_BASE`, and the webhook read as a port event.
//! - [`signature`]: the `Stripe-Signature` check of a webhook, before anything in it is believed.

pub mod client;
pub mod signature;

pub use client::{Stripe, StripeSettings};
