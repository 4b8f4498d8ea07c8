//! Time as the system carries it: epoch milliseconds, read from one clock.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A moment in epoch milliseconds (UTC), the unit Redis' scripts, the outbox index and the API's
/// timestamps use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EpochMs(pub i64);

impl EpochMs {
    /// Now, from the system clock.
    pub fn now() -> Self {
        Self(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64),
        )
    }

    /// `d` later.
    pub fn plus(self, d: Duration) -> Self {
        Self(self.0.saturating_add(d.as_millis() as i64))
    }

    /// `d` earlier.
    pub fn minus(self, d: Duration) -> Self {
        Self(self.0.saturating_sub(d.as_millis() as i64))
    }

    /// The milliseconds themselves.
    pub fn get(self) -> i64 {
        self.0
    }
}

impl std::fmt::Display for EpochMs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_move_by_durations() {
        let t = EpochMs(1_000);
        assert_eq!(t.plus(Duration::from_secs(2)), EpochMs(3_000));
        assert_eq!(t.minus(Duration::from_millis(1)).get(), 999);
        assert!(EpochMs::now() > EpochMs(1_700_000_000_000));
    }
}
