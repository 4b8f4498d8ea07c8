//! A public randomness beacon (drand): rounds nobody holds before the chain's nodes sign them,
//! each checked against the chain's key before it is believed.

use super::BoxError;
use crate::domain::waiting_room::draw::BeaconRound;
use std::future::Future;

/// Why no round came.
#[derive(Debug, thiserror::Error)]
pub enum BeaconError {
    /// The beacon could not be reached or answered something that is not a round.
    #[error("the beacon is unavailable")]
    Unavailable(#[source] BoxError),
    /// The round's signature is not the chain's: never believed.
    #[error("the beacon's round {round} is not signed by its chain")]
    Forged { round: u64 },
}

/// One beacon chain.
pub trait Beacon: Send + Sync + 'static {
    /// The chain's hash (hex), as its `/info` names it.
    fn chain(&self) -> &str;

    /// The first round emitted at or after `ms` (ms since the epoch).
    fn round_at(&self, ms: i64) -> u64;

    /// Where anyone reads `round` (the chain's public HTTP API).
    fn round_url(&self, round: u64) -> String;

    /// `round`, checked against the chain's key; `None` while it is not out yet.
    ///
    /// # Errors
    /// [`BeaconError`]: unreachable, or a round whose signature does not check.
    fn round(
        &self,
        round: u64,
    ) -> impl Future<Output = Result<Option<BeaconRound>, BeaconError>> + Send;
}
