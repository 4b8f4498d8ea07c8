//! A process's memory about sales, one value per sale: the building block of the per-process
//! caches (buy's sold-out tally, its admission gate's sales with a waiting room, the queue
//! function's states).
//!
//! What they share, written once here:
//! - the hot path takes a shared read lock and clones an `Arc`: requests on every core for a sale
//!   already known never queue behind one another;
//! - a sale is added on first use, under the write lock, made once even when two requests race;
//! - it is bounded: made-up sale ids cannot grow a process without limit. When full, entries the
//!   owner does not want to keep go first ([`PerSale::with_keep`]); a sale that still does not
//!   fit is served a value of its own that is not remembered (the caller works as if the process
//!   had just started, which each cache must already survive);
//! - a poisoned lock (a panic while holding it) leaves the map usable: it holds only whole values.
//!
//! The sold-out fast path's memory (`flashflow-adapters`' `redis::sold_out`) is not built on it:
//! its entries, in-flight reads and epoch change together under one lock.

use crate::domain::SaleId;
use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

/// Sales remembered per process unless the owner says otherwise.
pub const DEFAULT_MAX_SALES: usize = 10_000;

/// One `V` per sale, shared, bounded (see the module's rules).
pub struct PerSale<V> {
    map: RwLock<HashMap<SaleId, Arc<V>>>,
    max: usize,
    keep: fn(&V) -> bool,
}

impl<V> Default for PerSale<V> {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_SALES)
    }
}

impl<V> std::fmt::Debug for PerSale<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PerSale")
            .field("sales", &self.len())
            .field("max", &self.max)
            .finish()
    }
}

impl<V> PerSale<V> {
    /// At most `max` sales (at least one).
    pub fn new(max: usize) -> Self {
        Self {
            map: RwLock::default(),
            max: max.max(1),
            keep: |_| false,
        }
    }

    /// When full, entries for which `keep` is false are forgotten first.
    #[must_use]
    pub fn with_keep(mut self, keep: fn(&V) -> bool) -> Self {
        self.keep = keep;
        self
    }

    /// The sale's value, if this process holds one.
    pub fn get(&self, sale: &SaleId) -> Option<Arc<V>> {
        self.read().get(sale).cloned()
    }

    /// The sale's value, made with `make` on first use.
    pub fn get_or_insert_with(&self, sale: &SaleId, make: impl FnOnce() -> V) -> Arc<V> {
        if let Some(v) = self.get(sale) {
            return v;
        }
        let mut map = self.map.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(v) = map.get(sale) {
            return Arc::clone(v);
        }
        if map.len() >= self.max {
            let keep = self.keep;
            map.retain(|_, v| keep(v));
        }
        let value = Arc::new(make());
        if map.len() < self.max {
            map.insert(sale.clone(), Arc::clone(&value));
        }
        value
    }

    /// Whether the process holds a value for the sale.
    pub fn contains(&self, sale: &SaleId) -> bool {
        self.read().contains_key(sale)
    }

    /// Forget the sale.
    pub fn remove(&self, sale: &SaleId) {
        self.map
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(sale);
    }

    /// How many sales are held.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// Whether no sale is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every sale with its value (a copy: the map is not held while the caller works).
    pub fn entries(&self) -> Vec<(SaleId, Arc<V>)> {
        self.read()
            .iter()
            .map(|(k, v)| (k.clone(), Arc::clone(v)))
            .collect()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<SaleId, Arc<V>>> {
        self.map.read().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn sale(n: u32) -> SaleId {
        SaleId::parse(&format!("s{n}")).unwrap()
    }

    #[test]
    fn a_value_is_made_once_and_then_shared() {
        let per_sale: PerSale<AtomicU32> = PerSale::new(4);
        let made = AtomicU32::new(0);
        let a = per_sale.get_or_insert_with(&sale(1), || {
            made.fetch_add(1, Ordering::SeqCst);
            AtomicU32::new(0)
        });
        a.fetch_add(5, Ordering::SeqCst);
        let b = per_sale.get_or_insert_with(&sale(1), || {
            made.fetch_add(1, Ordering::SeqCst);
            AtomicU32::new(0)
        });
        assert_eq!(b.load(Ordering::SeqCst), 5);
        assert_eq!(made.load(Ordering::SeqCst), 1);
        assert!(per_sale.contains(&sale(1)) && !per_sale.contains(&sale(2)));
    }

    #[test]
    fn a_full_map_forgets_what_it_need_not_keep_and_never_grows_past_its_bound() {
        let per_sale: PerSale<u32> = PerSale::new(3).with_keep(|v| *v % 2 == 0);
        for n in 0..3 {
            per_sale.get_or_insert_with(&sale(n), || n);
        }
        // Full: the odd value goes, the even ones stay, the new one is remembered.
        per_sale.get_or_insert_with(&sale(10), || 10);
        assert!(per_sale.contains(&sale(0)) && per_sale.contains(&sale(2)));
        assert!(!per_sale.contains(&sale(1)));
        assert!(per_sale.contains(&sale(10)));
        // Full of values it keeps: a newcomer is served but not remembered.
        let v = per_sale.get_or_insert_with(&sale(12), || 12);
        assert_eq!(*v, 12);
        assert_eq!(per_sale.len(), 3);
        assert!(!per_sale.contains(&sale(12)));
    }

    #[test]
    fn a_sale_removed_is_made_anew() {
        let per_sale: PerSale<u32> = PerSale::default();
        per_sale.get_or_insert_with(&sale(1), || 1);
        per_sale.remove(&sale(1));
        assert!(per_sale.is_empty());
        assert_eq!(*per_sale.get_or_insert_with(&sale(1), || 2), 2);
        assert_eq!(per_sale.entries().len(), 1);
    }
}
