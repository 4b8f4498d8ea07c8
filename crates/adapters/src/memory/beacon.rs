//! A beacon in memory: a round every `period_ms`, out once its time has passed, its randomness
//! a hash of its number (no signature: nothing here is checked, so nothing is believed but in
//! tests). Its rounds can be held back (not out yet) or the beacon switched to "unavailable", to
//! test the draw's wait and its fallback.

use flashflow::domain::waiting_room::draw::BeaconRound;
use flashflow::domain::EpochMs;
use flashflow::ports::{Beacon, BeaconError};
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The chain's name in records.
pub const MEMORY_CHAIN: &str = "memory";

#[derive(Debug, Clone)]
pub struct MemoryBeacon {
    /// Round 1's time (ms) and the time between rounds.
    genesis_ms: i64,
    period_ms: i64,
    down: Arc<AtomicBool>,
    held: Arc<AtomicBool>,
}

impl Default for MemoryBeacon {
    /// A round every 100 ms.
    fn default() -> Self {
        Self::every(100)
    }
}

impl MemoryBeacon {
    pub fn every(period_ms: i64) -> Self {
        Self {
            genesis_ms: 0,
            period_ms: period_ms.max(1),
            down: Arc::default(),
            held: Arc::default(),
        }
    }

    /// Hold every round back, as if not out yet (`true`), or let them out.
    pub fn hold(&self, held: bool) {
        self.held.store(held, Ordering::SeqCst);
    }

    /// Make every fetch fail (`true`) or work again.
    pub fn set_unavailable(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    fn time_of(&self, round: u64) -> i64 {
        self.genesis_ms + (round.saturating_sub(1) as i64) * self.period_ms
    }
}

impl Beacon for MemoryBeacon {
    fn chain(&self) -> &str {
        MEMORY_CHAIN
    }

    fn round_at(&self, ms: i64) -> u64 {
        let after = (ms - self.genesis_ms).max(0);
        (after as u64).div_ceil(self.period_ms as u64) + 1
    }

    fn round_url(&self, round: u64) -> String {
        format!("memory:/public/{round}")
    }

    async fn round(&self, round: u64) -> Result<Option<BeaconRound>, BeaconError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(BeaconError::Unavailable("the memory beacon is down".into()));
        }
        if self.held.load(Ordering::SeqCst) || EpochMs::now().get() < self.time_of(round) {
            return Ok(None);
        }
        let mut h = Sha256::new();
        h.update(b"memory-beacon");
        h.update(round.to_be_bytes());
        Ok(Some(BeaconRound {
            round,
            randomness: h.finalize().into(),
            signature: Vec::new(),
        }))
    }
}
