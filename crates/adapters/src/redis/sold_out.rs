//! The sold-out fast path: a buy process's memory of the sales that are sold out or closed, so
//! that the requests that come after the last unit (more than 99% of a drop's) are answered
//! without a Redis round trip.
//!
//! The rules, each kept by [`SoldOutCache`] and tested below:
//! - An entry is learned from a snapshot Redis takes atomically (the sale's state and the
//!   idempotency keys the sale has seen), never inferred from one buyer's answer.
//! - It answers only what the script would answer the same way: a request without an
//!   Idempotency-Key, or with a key the sale has not seen. A key it has seen may name an order,
//!   so that request goes to the script, which answers the order.
//! - It lives at most `max_age` (a setting, at most 1 s): a frozen Lambda, a lost invalidation
//!   or a store without invalidations can keep it no longer than that.
//! - An invalidation of its sale (stock returned, reset, rehydrate) removes it, and voids a
//!   snapshot of that sale under way: an entry is never installed after the news that would have
//!   removed it. Another sale's news voids nothing, so sales that wake often elsewhere never keep
//!   a sold-out sale from being learned.
//! - A reconnect or a lagged invalidation stream clears everything.
//! - It can only say "sold out" or "closed" a little too long. It never reserves: the script
//!   stays the authority for every unit.
//!
//! # Layout
//! - [`SoldOutCache`]: the entries, the epoch, the answer; [`Snapshot`]: what Redis said.
//! - The Redis side (the snapshot script, `CLIENT TRACKING`) is in `adapters/redis/fast_path.rs`.

use flashflow::domain::rehydrate::idem_field;
use flashflow::domain::{BuyerId, IdempotencyKey, Refusal, SaleId};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;
use std::time::{Duration, Instant};

/// The longest an entry may live, whatever the setting says: a returned unit is offered again
/// within this even when no invalidation arrives.
pub const MAX_AGE_LIMIT: Duration = Duration::from_secs(1);

/// A sale's state as Redis reported it in one atomic read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// `SoldOut` or `Closed`: the answer the script gives to every new request.
    pub refusal: Refusal,
    /// The sale's idempotency fields (`buyer \n key`), or `None` when there are more than the
    /// snapshot carries: then every keyed request goes to the script.
    pub seen_keys: Option<HashSet<String>>,
}

struct Entry {
    snapshot: Snapshot,
    learned: Instant,
}

#[derive(Default)]
struct Inner {
    /// Bumped by every clear: a snapshot begun under an older epoch is not installed.
    epoch: u64,
    entries: HashMap<SaleId, Entry>,
    /// Sales whose snapshot is being read (one read in flight per sale), and whether news of
    /// the sale arrived since it began (then it is not installed).
    learning: HashMap<SaleId, bool>,
}

/// What [`SoldOutCache::lookup`] found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Lookup {
    /// The answer from memory, if any.
    pub refusal: Option<Refusal>,
    /// The entry is past half its age and nobody is re-reading it.
    pub refresh: bool,
}

/// A snapshot read under way: hand it back to [`SoldOutCache::learned`].
#[derive(Debug)]
#[must_use]
pub struct Learning {
    sale: SaleId,
    epoch: u64,
}

impl Learning {
    /// The sale being read.
    pub fn sale(&self) -> &SaleId {
        &self.sale
    }
}

/// Per-process memory of sold-out and closed sales (see the module's rules).
pub struct SoldOutCache {
    max_age: Duration,
    inner: RwLock<Inner>,
    answered: AtomicU64,
    invalidations: AtomicU64,
}

impl SoldOutCache {
    /// A cache whose entries live at most `max_age` (capped at [`MAX_AGE_LIMIT`]).
    pub fn new(max_age: Duration) -> Self {
        Self {
            max_age: max_age.min(MAX_AGE_LIMIT),
            inner: RwLock::default(),
            answered: AtomicU64::new(0),
            invalidations: AtomicU64::new(0),
        }
    }

    /// The refusal for this request, when a fresh entry answers it; `None` sends it to the script.
    /// An entry past half its age asks for a new snapshot ([`SoldOutCache::refresh`]), so a sale
    /// that stays sold out is re-read before its entry ends and no request falls to the script.
    pub fn answer(
        &self,
        sale: &SaleId,
        buyer: &BuyerId,
        key: Option<&IdempotencyKey>,
    ) -> Option<Refusal> {
        self.lookup(sale, buyer, key).refusal
    }

    /// [`SoldOutCache::answer`], and whether the entry is past half its age with no read under
    /// way: then the caller starts one ([`SoldOutCache::refresh`]).
    pub fn lookup(&self, sale: &SaleId, buyer: &BuyerId, key: Option<&IdempotencyKey>) -> Lookup {
        let inner = self.read();
        let Some(entry) = inner.entries.get(sale) else {
            return Lookup::default();
        };
        let age = entry.learned.elapsed();
        if age >= self.max_age {
            return Lookup::default();
        }
        Lookup {
            refusal: self.answer_entry(entry, buyer, key),
            refresh: age >= self.max_age / 2 && !inner.learning.contains_key(sale),
        }
    }

    fn answer_entry(
        &self,
        entry: &Entry,
        buyer: &BuyerId,
        key: Option<&IdempotencyKey>,
    ) -> Option<Refusal> {
        if let Some(key) = key {
            let seen = entry.snapshot.seen_keys.as_ref()?;
            if seen.contains(&idem_field(buyer, key)) {
                return None;
            }
        }
        self.answered.fetch_add(1, Ordering::Relaxed);
        Some(entry.snapshot.refusal.clone())
    }

    /// Start learning `sale` after the script refused with sold out or closed, unless a fresh
    /// entry or another read is already there. The snapshot must be read after this returns.
    pub fn begin(&self, sale: &SaleId) -> Option<Learning> {
        if self.has_fresh(sale) {
            return None;
        }
        self.begin_read(sale)
    }

    /// Start re-reading `sale`, whose entry is past half its age, unless a read is under way.
    /// The entry keeps answering meanwhile; the new snapshot replaces it.
    pub fn refresh(&self, sale: &SaleId) -> Option<Learning> {
        self.begin_read(sale)
    }

    fn begin_read(&self, sale: &SaleId) -> Option<Learning> {
        let mut inner = self.write();
        if inner.learning.contains_key(sale) {
            return None;
        }
        inner.learning.insert(sale.clone(), false);
        Some(Learning {
            sale: sale.clone(),
            epoch: inner.epoch,
        })
    }

    /// Finish a read begun by [`SoldOutCache::begin`] or [`SoldOutCache::refresh`]: install
    /// `snapshot` unless news of the sale (or a clear) arrived since the read began; `None` (the
    /// sale is buyable, or the read failed) removes the sale's entry.
    pub fn learned(&self, learning: Learning, snapshot: Option<Snapshot>) {
        let mut inner = self.write();
        let voided = inner.learning.remove(&learning.sale).unwrap_or(true);
        match snapshot {
            Some(snapshot) if !voided && inner.epoch == learning.epoch => {
                inner.entries.insert(
                    learning.sale,
                    Entry {
                        snapshot,
                        learned: Instant::now(),
                    },
                );
            }
            Some(_) => {}
            // Buyable (or unread): a refreshed entry must not outlive the news.
            None => {
                inner.entries.remove(&learning.sale);
            }
        }
    }

    /// The sale may be buyable again: forget it, and void a read of it under way.
    pub fn invalidate(&self, sale: &SaleId) {
        let mut inner = self.write();
        if let Some(voided) = inner.learning.get_mut(sale) {
            *voided = true;
        }
        inner.entries.remove(sale);
        self.invalidations.fetch_add(1, Ordering::Relaxed);
    }

    /// Invalidations may have been missed (a reconnect, a lagged stream): forget everything.
    pub fn clear(&self) {
        let mut inner = self.write();
        inner.epoch += 1;
        inner.entries.clear();
        self.invalidations.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether a fresh entry stands for `sale` (for tests and the live view).
    pub fn has_fresh(&self, sale: &SaleId) -> bool {
        self.age(sale).is_some()
    }

    /// How long ago the fresh entry for `sale` was learned, if one stands (for tests: an entry
    /// that went away before its age bound was removed by news, not by age).
    pub fn age(&self, sale: &SaleId) -> Option<Duration> {
        self.read()
            .entries
            .get(sale)
            .map(|e| e.learned.elapsed())
            .filter(|age| *age < self.max_age)
    }

    /// Requests answered from memory so far.
    pub fn answered(&self) -> u64 {
        self.answered.load(Ordering::Relaxed)
    }

    /// Invalidations (and clears) processed so far.
    pub fn invalidations(&self) -> u64 {
        self.invalidations.load(Ordering::Relaxed)
    }

    /// The configured bound on an entry's age.
    pub fn max_age(&self) -> Duration {
        self.max_age
    }

    // A poisoned lock only means a panic elsewhere while holding it; the map is still whole
    // (every update is one insert or remove), so it is used as is.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sale() -> SaleId {
        SaleId::parse("drop").unwrap()
    }
    fn buyer() -> BuyerId {
        BuyerId::parse("ada").unwrap()
    }
    fn key(k: &str) -> IdempotencyKey {
        IdempotencyKey::parse(k).unwrap()
    }
    fn sold_out(keys: Option<&[&str]>) -> Option<Snapshot> {
        Some(Snapshot {
            refusal: Refusal::SoldOut,
            seen_keys: keys.map(|ks| ks.iter().map(|k| idem_field(&buyer(), &key(k))).collect()),
        })
    }
    fn learn(cache: &SoldOutCache, snapshot: Option<Snapshot>) {
        let l = cache.begin(&sale()).expect("nothing learned yet");
        cache.learned(l, snapshot);
    }

    #[test]
    fn a_learned_sold_out_sale_is_answered_from_memory_until_its_age_bound() {
        let cache = SoldOutCache::new(Duration::from_millis(50));
        assert_eq!(cache.answer(&sale(), &buyer(), None), None);
        learn(&cache, sold_out(Some(&[])));
        assert_eq!(
            cache.answer(&sale(), &buyer(), None),
            Some(Refusal::SoldOut)
        );
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(cache.answer(&sale(), &buyer(), None), None);
        assert_eq!(cache.answered(), 1);
    }

    #[test]
    fn an_invalidation_removes_the_entry_at_once() {
        let cache = SoldOutCache::new(MAX_AGE_LIMIT);
        learn(&cache, sold_out(Some(&[])));
        cache.invalidate(&sale());
        assert_eq!(cache.answer(&sale(), &buyer(), None), None);
    }

    #[test]
    fn an_invalidation_during_the_read_voids_the_snapshot() {
        let cache = SoldOutCache::new(MAX_AGE_LIMIT);
        let l = cache.begin(&sale()).unwrap();
        cache.invalidate(&sale());
        cache.learned(l, sold_out(Some(&[])));
        assert_eq!(cache.answer(&sale(), &buyer(), None), None);
        // The next read, begun after the news, is installed.
        learn(&cache, sold_out(Some(&[])));
        assert!(cache.has_fresh(&sale()));
    }

    #[test]
    fn news_of_another_sale_does_not_void_a_read_under_way() {
        let cache = SoldOutCache::new(MAX_AGE_LIMIT);
        let l = cache.begin(&sale()).unwrap();
        cache.invalidate(&SaleId::parse("elsewhere").unwrap());
        cache.learned(l, sold_out(Some(&[])));
        assert!(cache.has_fresh(&sale()));
    }

    #[test]
    fn a_clear_forgets_every_sale_and_voids_reads_under_way() {
        let cache = SoldOutCache::new(MAX_AGE_LIMIT);
        learn(&cache, sold_out(Some(&[])));
        let other = SaleId::parse("other").unwrap();
        let l = cache.begin(&other).unwrap();
        cache.clear();
        cache.learned(l, sold_out(Some(&[])));
        assert!(!cache.has_fresh(&sale()));
        assert!(!cache.has_fresh(&other));
    }

    #[test]
    fn a_key_the_sale_has_seen_goes_to_the_script_and_a_new_key_is_answered() {
        let cache = SoldOutCache::new(MAX_AGE_LIMIT);
        learn(&cache, sold_out(Some(&["k-1"])));
        assert_eq!(cache.answer(&sale(), &buyer(), Some(&key("k-1"))), None);
        assert_eq!(
            cache.answer(&sale(), &buyer(), Some(&key("k-2"))),
            Some(Refusal::SoldOut)
        );
        // The same key of another buyer is another field.
        let bob = BuyerId::parse("bob").unwrap();
        assert_eq!(
            cache.answer(&sale(), &bob, Some(&key("k-1"))),
            Some(Refusal::SoldOut)
        );
    }

    #[test]
    fn without_the_key_list_every_keyed_request_goes_to_the_script() {
        let cache = SoldOutCache::new(MAX_AGE_LIMIT);
        learn(&cache, sold_out(None));
        assert_eq!(cache.answer(&sale(), &buyer(), Some(&key("new"))), None);
        assert_eq!(
            cache.answer(&sale(), &buyer(), None),
            Some(Refusal::SoldOut)
        );
    }

    #[test]
    fn one_read_is_in_flight_per_sale_and_a_buyable_sale_installs_nothing() {
        let cache = SoldOutCache::new(MAX_AGE_LIMIT);
        let l = cache.begin(&sale()).unwrap();
        assert!(cache.begin(&sale()).is_none());
        cache.learned(l, None);
        assert!(!cache.has_fresh(&sale()));
        assert!(cache.begin(&sale()).is_some());
    }

    #[test]
    fn a_refresh_that_finds_the_sale_buyable_ends_the_entry() {
        let cache = SoldOutCache::new(MAX_AGE_LIMIT);
        learn(&cache, sold_out(Some(&[])));
        let l = cache.refresh(&sale()).unwrap();
        cache.learned(l, None);
        assert_eq!(cache.answer(&sale(), &buyer(), None), None);
    }

    #[test]
    fn an_entry_past_half_its_age_asks_once_for_a_new_snapshot_and_answers_meanwhile() {
        let cache = SoldOutCache::new(Duration::from_millis(100));
        learn(&cache, sold_out(Some(&[])));
        assert!(!cache.lookup(&sale(), &buyer(), None).refresh);
        std::thread::sleep(Duration::from_millis(55));
        let due = cache.lookup(&sale(), &buyer(), None);
        assert_eq!(due.refusal, Some(Refusal::SoldOut));
        assert!(due.refresh);
        let l = cache.refresh(&sale()).expect("no read under way");
        assert!(
            !cache.lookup(&sale(), &buyer(), None).refresh,
            "one at a time"
        );
        cache.learned(l, sold_out(Some(&[])));
        std::thread::sleep(Duration::from_millis(55));
        assert_eq!(
            cache.answer(&sale(), &buyer(), None),
            Some(Refusal::SoldOut),
            "renewed: 110 ms after the first read, within the second's age"
        );
    }

    #[test]
    fn the_age_bound_is_capped_at_one_second() {
        assert_eq!(
            SoldOutCache::new(Duration::from_secs(30)).max_age(),
            MAX_AGE_LIMIT
        );
    }
}
