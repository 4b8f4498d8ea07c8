//! Business metrics as CloudWatch Embedded Metric Format (EMF) lines: one JSON object per line on
//! standard output, which Lambda ships to CloudWatch Logs and CloudWatch turns into metrics
//! (namespace `FlashFlow`, dimension `Service`). Off AWS they are plain JSON log lines.
//!
//! Counting is one atomic add, so the buy path pays nothing measurable; lines are written by
//! [`Metrics::flush`]: after each invocation in Lambda (a frozen instance must not hold counts),
//! every few seconds in the long-running local server.
//!
//! A maintained crate (`metrics_cloudwatch_embedded`) exists, but it wraps the Lambda handler
//! itself and brings the `metrics` facade's registry; counters plus one `serde_json` line are all
//! this needs.

use serde_json::{json, Map, Value};
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// CloudWatch namespace of every metric.
pub const NAMESPACE: &str = "FlashFlow";

/// What is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    /// A buy answered 202 (a new reservation).
    Accepted,
    /// A buy refused: no stock left.
    SoldOut,
    /// A buy refused: the buyer's limit.
    LimitReached,
    /// A buy answered 503: a store was unavailable.
    Unavailable,
    /// Orders settled as confirmed.
    Confirmed,
    /// Orders settled as rejected (no stock in the ledger, limit, stale round, unknown sale).
    Rejected,
    /// Messages reported as batch item failures (retried, or the DLQ in the end).
    Failed,
    /// Checkout orders settled as held (waiting for payment).
    Held,
    /// Held orders paid (confirmed).
    Paid,
    /// Holds that ran out unpaid.
    Expired,
    /// Holds the buyer cancelled.
    Cancelled,
    /// Payments refunded (paid after the hold ended, or through a second intent).
    Refunded,
    /// Holds past `pay_by` the expiry job could not end yet (the payment provider unreachable, a payment being
    /// processed): the expiry's lag.
    ExpiryDeferred,
    /// Holds still held well past `pay_by` after an expiry run (a gauge: the run's count).
    HoldsOverdue,
    /// Places taken in a waiting room's queue (first joins and joins again after an expiry).
    Joined,
    /// Places the inlet admitted.
    Admitted,
    /// Buys that used an admission.
    AdmissionUsed,
    /// Admissions that expired unused (no-shows).
    AdmissionExpired,
    /// Buys refused for want of a valid admission (`403 not_admitted`).
    NotAdmitted,
}

const COUNTS: [Count; 19] = [
    Count::Accepted,
    Count::SoldOut,
    Count::LimitReached,
    Count::Unavailable,
    Count::Confirmed,
    Count::Rejected,
    Count::Failed,
    Count::Held,
    Count::Paid,
    Count::Expired,
    Count::Cancelled,
    Count::Refunded,
    Count::ExpiryDeferred,
    Count::HoldsOverdue,
    Count::Joined,
    Count::Admitted,
    Count::AdmissionUsed,
    Count::AdmissionExpired,
    Count::NotAdmitted,
];

impl Count {
    /// The metric's CloudWatch name.
    pub fn name(self) -> &'static str {
        match self {
            Count::Accepted => "Accepted",
            Count::SoldOut => "SoldOut",
            Count::LimitReached => "LimitReached",
            Count::Unavailable => "Unavailable",
            Count::Confirmed => "Confirmed",
            Count::Rejected => "Rejected",
            Count::Failed => "Failed",
            Count::Held => "Held",
            Count::Paid => "Paid",
            Count::Expired => "Expired",
            Count::Cancelled => "Cancelled",
            Count::Refunded => "Refunded",
            Count::ExpiryDeferred => "ExpiryDeferred",
            Count::HoldsOverdue => "HoldsOverdue",
            Count::Joined => "Joined",
            Count::Admitted => "Admitted",
            Count::AdmissionUsed => "AdmissionUsed",
            Count::AdmissionExpired => "AdmissionExpired",
            Count::NotAdmitted => "NotAdmitted",
        }
    }
}

/// EMF allows at most 100 values of one metric in one line.
const MAX_DURATIONS: usize = 100;

/// Where lines go.
#[derive(Clone)]
enum Sink {
    Stdout,
    #[cfg(test)]
    Memory(Arc<Mutex<Vec<String>>>),
}

/// The counters of one service. Cheap to clone (shared).
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    service: &'static str,
    counts: [AtomicU64; COUNTS.len()],
    durations: Mutex<Vec<f64>>,
    sink: Sink,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("service", &self.inner.service)
            .finish()
    }
}

impl Metrics {
    /// Metrics of `service` (the `Service` dimension: `buy`, `settle`, …), written to stdout.
    pub fn new(service: &'static str) -> Self {
        Self::with_sink(service, Sink::Stdout)
    }

    /// Metrics whose lines are kept in memory, returned with the buffer (for tests).
    #[cfg(test)]
    pub(crate) fn in_memory(service: &'static str) -> (Self, Arc<Mutex<Vec<String>>>) {
        let lines = Arc::new(Mutex::new(Vec::new()));
        (
            Self::with_sink(service, Sink::Memory(Arc::clone(&lines))),
            lines,
        )
    }

    fn with_sink(service: &'static str, sink: Sink) -> Self {
        Self {
            inner: Arc::new(Inner {
                service,
                counts: Default::default(),
                durations: Mutex::new(Vec::new()),
                sink,
            }),
        }
    }

    /// Add `n` to a count.
    pub fn add(&self, what: Count, n: u64) {
        if n > 0 {
            let i = COUNTS.iter().position(|c| *c == what).unwrap_or(0);
            self.inner.counts[i].fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Record one settle batch's duration (`BatchDuration`, milliseconds).
    pub fn batch_duration(&self, d: Duration) {
        let mut durations = self
            .inner
            .durations
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if durations.len() < MAX_DURATIONS {
            durations.push(d.as_secs_f64() * 1000.0);
        }
    }

    /// Write what was counted since the last flush as one EMF line, and start again from zero.
    /// Writes nothing when nothing happened.
    pub fn flush(&self) {
        if let Some(line) = self.take_line() {
            match &self.inner.sink {
                Sink::Stdout => {
                    // Straight to stdout, not through tracing: EMF must be the whole log line.
                    let mut out = std::io::stdout().lock();
                    let _ = writeln!(out, "{line}");
                }
                #[cfg(test)]
                Sink::Memory(lines) => lines.lock().unwrap_or_else(|p| p.into_inner()).push(line),
            }
        }
    }

    /// Flush every `every` until the process ends (the long-running local server).
    pub fn flush_every(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let metrics = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                metrics.flush();
            }
        })
    }

    fn take_line(&self) -> Option<String> {
        let mut names = Vec::new();
        let mut fields = Map::new();
        for (i, what) in COUNTS.iter().enumerate() {
            let n = self.inner.counts[i].swap(0, Ordering::Relaxed);
            if n > 0 {
                names.push(json!({"Name": what.name(), "Unit": "Count"}));
                fields.insert(what.name().into(), json!(n));
            }
        }
        let durations = std::mem::take(
            &mut *self
                .inner
                .durations
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        );
        if !durations.is_empty() {
            names.push(json!({"Name": "BatchDuration", "Unit": "Milliseconds"}));
            fields.insert("BatchDuration".into(), json!(durations));
        }
        if names.is_empty() {
            return None;
        }
        let now = flashflow::domain::EpochMs::now().get();
        fields.insert(
            "_aws".into(),
            json!({
                "Timestamp": now,
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": [["Service"]],
                    "Metrics": names,
                }],
            }),
        );
        fields.insert("Service".into(), json!(self.inner.service));
        Some(Value::Object(fields).to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_line(lines: &Mutex<Vec<String>>) -> Value {
        let lines = lines.lock().unwrap();
        assert_eq!(lines.len(), 1, "{lines:?}");
        serde_json::from_str(&lines[0]).unwrap()
    }

    #[test]
    fn a_flush_writes_one_emf_line_with_every_count_declared() {
        let (m, lines) = Metrics::in_memory("buy");
        m.add(Count::Accepted, 2);
        m.add(Count::SoldOut, 1);
        m.add(Count::Accepted, 1);
        m.flush();
        let v = one_line(&lines);
        assert_eq!(v["Service"], "buy");
        assert_eq!(v["Accepted"], 3);
        assert_eq!(v["SoldOut"], 1);
        assert!(v.get("Confirmed").is_none(), "zero counts are left out");
        let directive = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], NAMESPACE);
        assert_eq!(directive["Dimensions"], json!([["Service"]]));
        let declared: Vec<&str> = directive["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
            .collect();
        assert_eq!(declared, ["Accepted", "SoldOut"]);
        assert!(v["_aws"]["Timestamp"].as_u64().unwrap() > 1_600_000_000_000);
    }

    #[test]
    fn counts_start_again_from_zero_and_an_idle_flush_writes_nothing() {
        let (m, lines) = Metrics::in_memory("settle");
        m.add(Count::Confirmed, 5);
        m.batch_duration(Duration::from_millis(12));
        m.flush();
        m.flush();
        let v = one_line(&lines);
        assert_eq!(v["Confirmed"], 5);
        assert_eq!(v["BatchDuration"], json!([12.0]));
    }

    #[test]
    fn at_most_a_hundred_durations_go_in_one_line() {
        let (m, lines) = Metrics::in_memory("settle");
        for _ in 0..150 {
            m.batch_duration(Duration::from_millis(1));
        }
        m.flush();
        assert_eq!(
            one_line(&lines)["BatchDuration"].as_array().unwrap().len(),
            100
        );
    }
}
