//! Sold-out answers per sale since the last flush, for the live view. One per buy process (a
//! Lambda instance, the local server); each sale's count is flushed to the store at most once a
//! second, off the answer's path. The hot path takes a shared read lock and adds to an atomic:
//! sold-out answers on every core do not queue behind one another. A frozen instance keeps up to
//! a second of counts until its next sold-out answer.

use flashflow::domain::SaleId;
use flashflow::per_sale::PerSale;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How often a sale's count is flushed at most.
const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// The counts of one process.
pub struct SoldOutTally {
    sales: PerSale<SaleTally>,
    /// The clock the flushes are timed by.
    start: Instant,
}

impl Default for SoldOutTally {
    fn default() -> Self {
        Self {
            sales: PerSale::default(),
            start: Instant::now(),
        }
    }
}

struct SaleTally {
    count: AtomicU64,
    /// When the count was last taken (ms since `start`); [`NEVER_FLUSHED`] at first, so that a
    /// view watching a new sale sees it move at once.
    flushed_ms: AtomicU64,
}

const NEVER_FLUSHED: u64 = u64::MAX;

impl SoldOutTally {
    /// Count one sold-out answer for `sale`; at most once a second, the count to flush.
    pub fn count(&self, sale: &SaleId) -> Option<Vec<(SaleId, u64)>> {
        let now = self.start.elapsed().as_millis() as u64;
        let t = self.sales.get_or_insert_with(sale, || SaleTally {
            count: AtomicU64::new(0),
            flushed_ms: AtomicU64::new(NEVER_FLUSHED),
        });
        t.count.fetch_add(1, Ordering::Relaxed);
        let last = t.flushed_ms.load(Ordering::Relaxed);
        if last != NEVER_FLUSHED && now.saturating_sub(last) < FLUSH_EVERY.as_millis() as u64 {
            return None;
        }
        // One answer takes the count; the others that saw it due lose the exchange.
        t.flushed_ms
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .ok()?;
        Some(vec![(sale.clone(), t.count.swap(0, Ordering::Relaxed))])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_answer_flushes_at_once_and_the_next_wait_for_the_second_to_pass() {
        let tally = SoldOutTally::default();
        let sale = SaleId::parse("drop").unwrap();
        assert_eq!(tally.count(&sale), Some(vec![(sale.clone(), 1)]));
        assert_eq!(tally.count(&sale), None);
        assert_eq!(tally.count(&sale), None);
        let other = SaleId::parse("other").unwrap();
        assert_eq!(
            tally.count(&other),
            Some(vec![(other, 1)]),
            "each sale its own"
        );
    }

    #[test]
    fn counts_held_back_are_flushed_with_the_next_due_answer() {
        let tally = SoldOutTally {
            sales: PerSale::default(),
            start: Instant::now() - Duration::from_secs(10),
        };
        let sale = SaleId::parse("drop").unwrap();
        tally.count(&sale);
        tally.count(&sale);
        tally.count(&sale);
        // Pretend the last flush was a second and more ago.
        let t = tally.sales.get(&sale).unwrap();
        t.flushed_ms.store(0, Ordering::Relaxed);
        assert_eq!(tally.count(&sale), Some(vec![(sale, 3)]));
    }
}
