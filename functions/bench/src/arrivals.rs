//! `arrivals`: the opening of a sale as an open arrival rate, as k6's `ramping-arrival-rate`
//! (bench/opening.js) shapes it: the rate climbs from 0 to RATE in the ramp, holds, and falls back
//! to 0 in the ramp; each arrival is one buy of a distinct buyer, sent when it is due whether or
//! not the server kept up. An arrival due while `max_in_flight` requests are waiting is dropped
//! (k6's `dropped_iterations`, with its `maxVUs`).
//!
//! Written here rather than used from k6 for the pinned opening (`make bench-opening`,
//! `LOADGEN=rust`): pinned to one core beside the emulators, k6 (a JavaScript runtime per VU)
//! drops arrivals on its own, against the ceiling server too, so the pinned figures measured k6.
//! This sends each arrival from one task on a small runtime (a few µs of CPU a request).
//!
//! Latency is timed from the arrival's due time to the whole answer: the load generator's own lag,
//! when it has any, is counted against the server measured, as a buyer would feel it, never hidden.
//! Writes a summary shaped as k6's (`metrics.http_reqs.values.count`, …), so one script reads both.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::json;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What one opening sends.
pub struct Opening {
    /// The buy URL (`…/sales/{sale}/buy`).
    pub url: String,
    /// Arrivals a second at the hold.
    pub rate: f64,
    /// How long the rate climbs from 0 (and falls back to 0 at the end).
    pub ramp: Duration,
    /// How long it holds at `rate`.
    pub hold: Duration,
    /// Requests waiting at once before an arrival is dropped (k6's `maxVUs`).
    pub max_in_flight: usize,
    /// The buyers' ids are `{prefix}-{n}`.
    pub prefix: String,
}

impl Opening {
    /// When arrival `n` (from 0) is due, from the start: the `n+1`-th unit of the rate's integral
    /// (a linear climb, a hold, a linear fall); `None` past the end.
    pub fn due(&self, n: u64) -> Option<Duration> {
        let (r, up, hold) = (self.rate, self.ramp.as_secs_f64(), self.hold.as_secs_f64());
        let k = n as f64 + 1.0;
        let climbed = r * up / 2.0;
        let held = r * hold;
        let t = if k <= climbed {
            // r/up * t²/2 = k
            (2.0 * k * up / r).sqrt()
        } else if k <= climbed + held {
            up + (k - climbed) / r
        } else if k <= 2.0 * climbed + held {
            // the fall: r*s - r/up * s²/2 = k - climbed - held, s in [0, up]
            let rest = k - climbed - held;
            let s = up - (up * up - 2.0 * rest * up / r).max(0.0).sqrt();
            up + hold + s
        } else {
            return None;
        };
        Some(Duration::from_secs_f64(t))
    }
}

/// What the opening saw.
#[derive(Default)]
struct Seen {
    in_flight: AtomicUsize,
    dropped: AtomicU64,
    /// Answers by status (0 = no answer: a connection error).
    statuses: Mutex<std::collections::BTreeMap<u16, u64>>,
    /// Each answered request's latency from its due time, in µs, with its due time (ms from the
    /// start): where in the opening the slow answers were.
    latencies: Mutex<Vec<(u64, u64)>>,
}

/// Run `o`; returns its summary, shaped as k6's.
pub async fn run(o: Opening) -> anyhow::Result<serde_json::Value> {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Client<HttpConnector, Empty<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(o.max_in_flight)
        .build(connector);
    let uri: http::Uri = o.url.parse()?;
    let seen = Arc::new(Seen::default());
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let mut n = 0u64;
    while let Some(due) = o.due(n) {
        let at = start + due;
        if at > Instant::now() {
            tokio::time::sleep_until(at.into()).await;
        }
        // Every arrival due by now goes out now (the timer's grain is a millisecond: at 5,000/s
        // five arrivals share one).
        while let Some(due) = o.due(n) {
            let at = start + due;
            if at > Instant::now() {
                break;
            }
            n += 1;
            if seen.in_flight.load(Relaxed) >= o.max_in_flight {
                seen.dropped.fetch_add(1, Relaxed);
                continue;
            }
            seen.in_flight.fetch_add(1, Relaxed);
            let due = at - start;
            let req = http::Request::post(uri.clone())
                .header("x-user-id", format!("{}-{n}", o.prefix))
                .body(Empty::new())?;
            let (client, seen) = (client.clone(), Arc::clone(&seen));
            tasks.spawn(async move {
                let status = match client.request(req).await {
                    Ok(resp) => {
                        let status = resp.status().as_u16();
                        match resp.into_body().collect().await {
                            Ok(_) => status,
                            Err(_) => 0,
                        }
                    }
                    Err(_) => 0,
                };
                let took = at.elapsed().as_micros() as u64;
                seen.in_flight.fetch_sub(1, Relaxed);
                *seen
                    .statuses
                    .lock()
                    .expect("statuses")
                    .entry(status)
                    .or_default() += 1;
                if status != 0 {
                    let due_ms = due.as_millis() as u64;
                    seen.latencies
                        .lock()
                        .expect("latencies")
                        .push((took, due_ms));
                }
            });
        }
        // Finished tasks are reaped as they end, not all at the close.
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    Ok(summary(&seen))
}

/// The k6-shaped summary: requests, dropped arrivals, failed rate, p50/p99/max in ms, and the
/// answers by status (202 accepted, 409 sold out).
fn summary(seen: &Seen) -> serde_json::Value {
    let statuses = seen.statuses.lock().expect("statuses").clone();
    let mut lat = std::mem::take(&mut *seen.latencies.lock().expect("latencies"));
    lat.sort_unstable();
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return 0.0;
        }
        let i = ((p * lat.len() as f64).ceil() as usize).clamp(1, lat.len()) - 1;
        lat[i].0 as f64 / 1000.0
    };
    // The slowest 1%, by the 100 ms of the opening they were due in.
    let mut slow = std::collections::BTreeMap::<u64, u64>::new();
    for (_, due_ms) in lat.iter().skip(lat.len() - lat.len() / 100) {
        *slow.entry(due_ms / 100 * 100).or_default() += 1;
    }
    let requests: u64 = statuses.values().sum();
    let count = |s: u16| statuses.get(&s).copied().unwrap_or(0);
    let failed = requests - count(202) - count(409);
    json!({
        "metrics": {
            "http_reqs": {"values": {"count": requests}},
            "dropped_iterations": {"values": {"count": seen.dropped.load(Relaxed)}},
            "http_req_failed": {"values": {"rate": if requests == 0 { 0.0 } else { failed as f64 / requests as f64 }}},
            "http_req_duration": {"values": {"med": pct(0.5), "p(99)": pct(0.99), "max": pct(1.0)}},
            "buy_accepted": {"values": {"count": count(202)}},
            "buy_sold_out": {"values": {"count": count(409)}},
        },
        "slowest_1pct_by_due_ms": slow.iter().map(|(t, n)| (t.to_string(), json!(n))).collect::<serde_json::Map<_, _>>(),
        "statuses": statuses.iter().map(|(s, n)| (s.to_string(), json!(n))).collect::<serde_json::Map<_, _>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opening() -> Opening {
        Opening {
            url: String::new(),
            rate: 5000.0,
            ramp: Duration::from_millis(200),
            hold: Duration::from_secs(3),
            max_in_flight: 1000,
            prefix: "t".into(),
        }
    }

    #[test]
    fn the_arrivals_number_the_rates_integral() {
        let o = opening();
        let total = (0..).take_while(|&n| o.due(n).is_some()).count();
        // 500 in each ramp, 15,000 held
        assert_eq!(total, 16_000);
    }

    #[test]
    fn the_arrivals_come_in_order_and_end_with_the_last_ramp() {
        let o = opening();
        let dues: Vec<_> = (0..16_000).map(|n| o.due(n).unwrap()).collect();
        assert!(dues.windows(2).all(|w| w[0] <= w[1]));
        assert!(*dues.last().unwrap() <= Duration::from_millis(3400));
        // the hold: 5,000 a second
        let held = dues
            .iter()
            .filter(|d| **d >= Duration::from_secs(1) && **d < Duration::from_secs(2))
            .count();
        assert!((4999..=5001).contains(&held), "{held}");
    }
}
