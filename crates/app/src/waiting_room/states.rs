//! Each sale's queue state as one process knows it: read from the store (which steps the queue as
//! it answers) at most once per [`FRESH_FOR`] per sale, whatever the number of polls, and the
//! draw's places and its join list computed once. A poll costs no store round trip: while one
//! request refreshes a stale state, the others answer from the state they have.

use flashflow::domain::waiting_room::draw;
use flashflow::domain::waiting_room::join_list::JoinList;
use flashflow::domain::waiting_room::queue::QueueState;
use flashflow::domain::waiting_room::tokens::EntryKey;
use flashflow::domain::SaleId;
use flashflow::per_sale::PerSale;
use flashflow::ports::{QueueSteps, StoreError};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

/// How long a state read from the store answers polls.
pub const FRESH_FOR: Duration = Duration::from_millis(500);

/// One read of a sale's queue.
#[derive(Debug)]
pub struct Snapshot {
    /// `None`: the sale has no waiting room.
    pub state: Option<QueueState>,
    read_at: Instant,
    /// The pre-queue's places, once the draw is final (computed on first use).
    places: Arc<OnceLock<Vec<u32>>>,
    /// The final draw's join list, for proofs (read from the store on first use; `None` when
    /// the store's leaves do not give the published root).
    join_list: Arc<tokio::sync::OnceCell<Option<Arc<JoinList>>>>,
    /// Whether a request has tried to make this read's draw final.
    finalizing: AtomicBool,
    /// Whether what the read's step did was counted.
    counted: AtomicBool,
    /// The sale's key for entry tags (made on first use).
    entry_key: OnceLock<EntryKey>,
}

impl Snapshot {
    /// `true` for the first caller only: the one that counts what this read's step did.
    pub fn claim_step(&self) -> bool {
        !self.counted.swap(true, Ordering::SeqCst)
    }

    /// The pre-queue's places (empty before the draw is final).
    pub fn places(&self) -> &[u32] {
        match self.state.as_ref().map(|s| (&s.drawn, &s.final_draw)) {
            Some((Some((_, cohort)), Some(fin))) => self
                .places
                .get_or_init(|| draw::places(&fin.key, *cohort as u32)),
            _ => &[],
        }
    }

    /// `true` for the first caller only, while the sale is drawn and its draw not final: the
    /// one that tries to make it final.
    pub fn claim_finalize(&self) -> bool {
        let waiting = self
            .state
            .as_ref()
            .is_some_and(|s| s.drawn.is_some() && s.final_draw.is_none());
        waiting && !self.finalizing.swap(true, Ordering::SeqCst)
    }

    /// The final draw's join list, read by `load` on first use.
    pub async fn join_list<F, E>(&self, load: F) -> Result<Option<Arc<JoinList>>, E>
    where
        F: std::future::Future<Output = Result<Option<Arc<JoinList>>, E>>,
    {
        self.join_list.get_or_try_init(|| load).await.cloned()
    }

    /// The sale's key for the entry policy's tags, made by `make` on first use.
    pub fn entry_key(&self, make: impl FnOnce() -> EntryKey) -> &EntryKey {
        self.entry_key.get_or_init(make)
    }

    /// The state as of `now_ms` by this process's clock: admissions expire as time passes
    /// between reads.
    pub fn at(&self, now_ms: i64) -> Option<QueueState> {
        let mut s = self.state.clone()?;
        s.now_ms = s.now_ms.max(now_ms);
        Some(s)
    }
}

#[derive(Default)]
struct Slot {
    current: RwLock<Option<Arc<Snapshot>>>,
    /// Held by the one request refreshing the slot.
    refreshing: tokio::sync::Mutex<()>,
    /// Epochs of queues this sale had and lost (a Redis loss, then a rebuild): their tickets are
    /// told to rejoin without asking the store again.
    lost_epochs: std::sync::Mutex<Vec<u64>>,
}

/// The queue states of the sales this process serves (bounded: when full, the sales without a
/// waiting room, where made-up ids land, are forgotten first).
pub struct States {
    slots: PerSale<Slot>,
}

impl Default for States {
    fn default() -> Self {
        Self {
            slots: PerSale::default().with_keep(Slot::has_waiting_room),
        }
    }
}

impl Slot {
    fn has_waiting_room(&self) -> bool {
        self.current
            .read()
            .ok()
            .and_then(|c| c.as_ref().map(|c| c.state.is_some()))
            .unwrap_or(false)
    }
}

impl States {
    /// The sale's state: the one in hand while fresh (or while another request refreshes it),
    /// else read from `store`.
    ///
    /// # Errors
    /// [`StoreError`] when there was no state in hand and the store failed.
    pub async fn get<W: QueueSteps>(
        &self,
        store: &W,
        sale: &SaleId,
    ) -> Result<Arc<Snapshot>, StoreError> {
        let slot = self.slot(sale);
        let held = slot.current.read().ok().and_then(|c| c.clone());
        if let Some(s) = &held {
            if s.read_at.elapsed() < FRESH_FOR {
                return Ok(Arc::clone(s));
            }
        }
        let _refreshing = match (slot.refreshing.try_lock(), &held) {
            (Ok(guard), _) => guard,
            // Someone else is reading the store: answer from what is in hand.
            (Err(_), Some(s)) => return Ok(Arc::clone(s)),
            (Err(_), None) => slot.refreshing.lock().await,
        };
        // Refreshed while this request waited for the lock.
        if let Some(s) = slot.current.read().ok().and_then(|c| c.clone()) {
            if s.read_at.elapsed() < FRESH_FOR {
                return Ok(s);
            }
        }
        Self::read(&slot, store, sale, held).await
    }

    /// The sale's state read from `store` anew, unless another request read it since `held`:
    /// for a place whose queue is not the one in hand (the state in hand may predate a rebuild).
    ///
    /// # Errors
    /// [`StoreError`] when the store failed.
    pub async fn reread<W: QueueSteps>(
        &self,
        store: &W,
        sale: &SaleId,
        held: &Arc<Snapshot>,
    ) -> Result<Arc<Snapshot>, StoreError> {
        let slot = self.slot(sale);
        let _refreshing = slot.refreshing.lock().await;
        if let Some(s) = slot.current.read().ok().and_then(|c| c.clone()) {
            if !Arc::ptr_eq(&s, held) {
                return Ok(s);
            }
        }
        Self::read(&slot, store, sale, Some(Arc::clone(held))).await
    }

    /// Whether `epoch` is of a queue `sale` had and lost.
    pub fn is_lost(&self, sale: &SaleId, epoch: u64) -> bool {
        let slot = self.slot(sale);
        let lost = slot.lost_epochs.lock().map(|l| l.contains(&epoch));
        lost.unwrap_or(false)
    }

    /// Remember that `epoch` is of a queue `sale` lost (the last few: a sale loses its queue
    /// only when Redis loses its data).
    pub fn mark_lost(&self, sale: &SaleId, epoch: u64) {
        const KEEP: usize = 8;
        if let Ok(mut lost) = self.slot(sale).lost_epochs.lock() {
            if !lost.contains(&epoch) {
                if lost.len() == KEEP {
                    lost.remove(0);
                }
                lost.push(epoch);
            }
        }
    }

    /// Step the sale's queue in `store` and keep what it answered (the refreshing lock held).
    async fn read<W: QueueSteps>(
        slot: &Slot,
        store: &W,
        sale: &SaleId,
        held: Option<Arc<Snapshot>>,
    ) -> Result<Arc<Snapshot>, StoreError> {
        let state = match store.step(sale).await {
            Ok(state) => state,
            // A stale state answers better than an error while the store is away.
            Err(e) => return held.ok_or(e),
        };
        let same_draw = |old: &Snapshot| {
            let key = |s: &Option<QueueState>| {
                let s = s.as_ref()?;
                let cohort = s.drawn.as_ref()?.1;
                Some((s.epoch, s.final_draw.as_ref()?.key.hex(), cohort))
            };
            key(&old.state).is_some() && key(&old.state) == key(&state)
        };
        let (places, join_list) = match &held {
            Some(old) if same_draw(old) => (Arc::clone(&old.places), Arc::clone(&old.join_list)),
            _ => Default::default(),
        };
        let snapshot = Arc::new(Snapshot {
            state,
            read_at: Instant::now(),
            places,
            join_list,
            finalizing: AtomicBool::new(false),
            counted: AtomicBool::new(false),
            entry_key: OnceLock::new(),
        });
        if let Ok(mut current) = slot.current.write() {
            *current = Some(Arc::clone(&snapshot));
        }
        Ok(snapshot)
    }

    fn slot(&self, sale: &SaleId) -> Arc<Slot> {
        self.slots.get_or_insert_with(sale, Slot::default)
    }
}
