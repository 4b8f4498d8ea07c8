//! Stripe: the payment provider of checkout sales.
//!
//! # Layout
//! - [`client`]: the REST calls checkout needs (PaymentIntents, Refunds) against
//!   `STRIPE_API_BASE`.
//! - [`signature`]: the `Stripe-Signature` check of a webhook, before anything in it is believed.

pub mod client;
pub mod signature;

pub use client::{
    Cancelled, IntentStatus, NewPaymentIntent, PaymentIntent, Stripe, StripeError, StripeSettings,
};
