//! Stripe: the payment provider of checkout sales (issue 17, being built).
//!
//! # Layout
//! - [`signature`]: the `Stripe-Signature` check of a webhook, before anything in it is believed.
//!
//! The REST client (PaymentIntents, Refunds against `STRIPE_API_BASE`) comes with the checkout
//! routes that use it.

pub mod signature;
