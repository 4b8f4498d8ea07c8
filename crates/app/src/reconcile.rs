//! The outbox sweeper: re-sends reservations that stayed in a sale's outbox longer than a
//! threshold (the send failed, or the buy process died after the script). A re-sent order may
//! arrive twice; settle is idempotent, so that is harmless.
//!
//! It runs on the ports (the outbox, the sale cache's registry, the queue), so its tests run on
//! the in-memory adapters as well as against Redis and LocalStack.

use flashflow::domain::EpochMs;
use flashflow::domain::SaleId;
use flashflow::ports::{LiveSales, OrderPublisher, OutboxSweep, SaleRetirement, StoreError};
use flashflow_settings::Millis;
use tracing::{info, warn};

/// How much one sweep may do per sale, so a huge backlog cannot make one run exceed its time.
const PAGE: usize = 100;
const MAX_PER_SALE: usize = 10_000;

/// When the sweeper re-sends an outbox entry.
///
/// Buy marks an entry as in the queue once its send succeeded; the sweeper re-sends an entry only
/// when that mark is missing and the entry is older than `grace` (the send failed, or the process
/// died before it), or when the mark has run out: `in_queue_for` is the queue's message retention,
/// after which a message that was never settled can no longer be in the queue. Settle never lets a
/// good order's message reach the DLQ (an unavailable database re-queues it), so retention is the
/// only way out of the queue but settlement. During a settle outage of any length the queue thus
/// holds one message per pending order.
///
/// Settings: `OUTBOX_THRESHOLD_MS` (60000), `OUTBOX_IN_QUEUE_MS` (4 days),
/// `FINISHED_SALE_TTL_MS` (a day).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(default)]
pub struct SweepTiming {
    #[serde(rename = "outbox_threshold_ms")]
    pub grace: Millis,
    #[serde(rename = "outbox_in_queue_ms")]
    pub in_queue_for: Millis,
    /// How long a finished sale's keys stay in Redis once its outbox is empty (replays are
    /// answered from them until then; the ledger and the status store keep everything).
    #[serde(rename = "finished_sale_ttl_ms")]
    pub finished_ttl: Millis,
}

impl flashflow_settings::FromEnv for SweepTiming {}

impl Default for SweepTiming {
    fn default() -> Self {
        Self {
            grace: Millis::secs(60),
            in_queue_for: flashflow::ports::IN_QUEUE_FOR.into(),
            finished_ttl: Millis::secs(24 * 3600),
        }
    }
}

/// What one sweep did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SweepReport {
    pub sales: usize,
    pub resent: usize,
    pub send_failed: usize,
    /// Index entries whose order had been settled meanwhile.
    pub forgotten: usize,
    /// Sales dropped from the registry, their keys given an expiry: sold out or closed, nothing
    /// left to settle.
    pub retired: usize,
}

/// Re-send the outbox entries whose message may be lost (see [`SweepTiming`]), in every sale
/// Redis holds.
///
/// # Errors
/// [`StoreError`] when Redis fails (a failed send is counted, not an error: the next sweep retries).
pub async fn sweep<C: OutboxSweep + LiveSales + SaleRetirement, Q: OrderPublisher>(
    store: &C,
    queue: &Q,
    timing: SweepTiming,
) -> Result<SweepReport, StoreError> {
    sweep_sales(store, queue, timing, &store.sales().await?).await
}

/// [`sweep`], for the given sales only.
///
/// # Errors
/// [`StoreError`] when Redis fails.
pub async fn sweep_sales<C: OutboxSweep + SaleRetirement, Q: OrderPublisher>(
    store: &C,
    queue: &Q,
    timing: SweepTiming,
    sales: &[SaleId],
) -> Result<SweepReport, StoreError> {
    let mut report = SweepReport::default();
    let now = EpochMs::now();
    let before = now.minus(timing.grace.get());
    let until = now.plus(timing.in_queue_for.get());
    for sale in sales {
        report.sales += 1;
        let mut done = 0;
        while done < MAX_PER_SALE {
            let page = store.stale(sale, before, PAGE).await?;
            if page.is_empty() {
                break;
            }
            done += page.len();
            let (live, gone): (Vec<_>, Vec<_>) = page.into_iter().partition(|(_, m)| m.is_some());
            let gone: Vec<String> = gone.into_iter().map(|(id, _)| id).collect();
            let (ids, bodies): (Vec<String>, Vec<String>) = live
                .into_iter()
                .map(|(id, m)| (id, m.unwrap_or_default()))
                .unzip();
            let failed = queue.publish_many(&bodies).await;
            let resent: Vec<String> = ids
                .iter()
                .enumerate()
                .filter(|(i, _)| !failed.contains(i))
                .map(|(_, id)| id.clone())
                .collect();
            report.resent += resent.len();
            report.send_failed += failed.len();
            report.forgotten += gone.len();
            store.touch(sale, &resent, &gone, until).await?;
            if !failed.is_empty() {
                warn!(sale = %sale, failed = failed.len(), "re-send failed, next sweep retries");
                break;
            }
        }
        if store
            .retire_if_finished(sale, now, timing.finished_ttl.get())
            .await?
        {
            report.retired += 1;
        }
    }
    if report.resent + report.send_failed + report.forgotten + report.retired > 0 {
        info!(
            resent = report.resent,
            send_failed = report.send_failed,
            forgotten = report.forgotten,
            retired = report.retired,
            "outbox swept"
        );
    }
    Ok(report)
}

#[cfg(test)]
#[path = "reconcile_tests.rs"]
mod tests;
