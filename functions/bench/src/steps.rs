//! Where settlement's time goes: a `tracing` layer that adds up how long each of the product's
//! step spans lived (`settle.*`, `ledger.*`: see `flashflow_app::settle::STEPS` and
//! `flashflow_adapters::postgres::LEDGER_STEPS`). The product only names its steps; measuring
//! them is this bench's business.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::span::{Attributes, Id};
use tracing::Subscriber;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// Each step span's total lifetime and how many there were, by span name.
#[derive(Clone, Default)]
pub struct StepTimes {
    totals: Arc<Mutex<HashMap<&'static str, (Duration, u32)>>>,
}

/// When a span was made (kept in its extensions until it closes).
struct Born(Instant);

impl StepTimes {
    /// Forget what was measured so far (between two runs).
    pub fn reset(&self) {
        self.totals.lock().expect("step totals").clear();
    }

    /// Each of `steps` (span name, what it does) with its mean time per span.
    pub fn means(&self, steps: &[(&'static str, &'static str)]) -> Vec<(&'static str, Duration)> {
        let totals = self.totals.lock().expect("step totals");
        steps
            .iter()
            .map(|(name, what)| {
                let (total, n) = totals.get(name).copied().unwrap_or_default();
                (*what, total / n.max(1))
            })
            .collect()
    }

    fn is_step(name: &str) -> bool {
        name.starts_with("settle.") || name.starts_with("ledger.")
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for StepTimes {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if Self::is_step(attrs.metadata().name()) {
            if let Some(span) = ctx.span(id) {
                span.extensions_mut().insert(Born(Instant::now()));
            }
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let Some(born) = span.extensions().get::<Born>().map(|b| b.0) else {
            return;
        };
        let mut totals = self.totals.lock().expect("step totals");
        let entry = totals.entry(span.metadata().name()).or_default();
        entry.0 += born.elapsed();
        entry.1 += 1;
    }
}
