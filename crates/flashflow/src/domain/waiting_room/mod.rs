//! The waiting room: a queue in front of a sale's opening. Whoever joins between the queue's
//! opening and the sale's is in the pre-queue, ordered at the sale's opening by a random draw
//! anyone can check; later joiners queue behind them, first come first served. The inlet admits
//! places at a pace tied to the stock, and an admission token lets its buyer buy.
//!
//! Pure rules, no I/O: the caller brings the randomness, the clock and the queue's state.
//!
//! # Layout
//! - `mod.rs`: a sale's waiting-room terms and their validation.
//! - [`draw`]: the seed, its commitment, the beacon round and the permutation (`ff-draw-v2`).
//! - [`join_list`]: the committed join list, a Merkle tree over a pre-queue's tickets (RFC 6962),
//!   its proofs and their check; the draw's order depends on its root.
//! - [`entry`]: who may join: the claims a joiner's identity must carry, one place per claim value.
//! - [`tokens`]: tickets, admission tokens and proof-of-work challenges, signed with one key.
//! - [`queue`]: the queue's state as Redis keeps it, where a place stands, and the inlet's pace.

pub mod draw;
pub mod entry;
pub mod join_list;
pub mod queue;
pub mod tokens;

use super::timefmt::parse_ms;
use super::InvalidInput;
use serde::{Deserialize, Serialize};

/// Shortest and longest time an admission may be used in, in seconds.
pub const ADMISSION_SECONDS: std::ops::RangeInclusive<u32> = 60..=1800;
/// Slowest and fastest configured pace, places per second.
pub const ADMIT_PER_SECOND: std::ops::RangeInclusive<u32> = 1..=100_000;
/// The most proof-of-work a sale may ask of a joiner, in leading zero bits: what a mid-range
/// phone finds in about 2 s (2^19 hashes; measured by `make bench-pow` in headless Chromium with
/// the CPU throttled 4x: 1.4 s on average, docs/api.md). More prices out people, not bots.
pub const MAX_POW_BITS: u8 = 19;
/// Joins one buyer may make in a minute (a re-join included): past it `429`, nothing stored, so
/// no buyer grows a queue's memory by joining over and over.
pub const MAX_JOINS_PER_MINUTE: u32 = 10;
/// A queue moves at most once per this many ms, whoever reads it.
pub const STEP_EVERY_MS: i64 = 1_000;

/// A sale's waiting room, validated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WaitingRoom {
    /// When joining opens (ms since the epoch); before the sale's own opening.
    pub opens_at_ms: i64,
    /// How long an admission may be used.
    pub admission_seconds: u32,
    /// Places admitted per second; `None`: as fast as the stock allows.
    #[serde(default)]
    pub admit_per_second: Option<u32>,
    /// Leading zero bits a join's proof of work needs (0: none).
    #[serde(default)]
    pub pow_bits: u8,
    /// Who may join (`None`: any buyer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry: Option<entry::Entry>,
}

impl WaitingRoom {
    pub fn admission_ms(&self) -> i64 {
        i64::from(self.admission_seconds) * 1000
    }
}

/// A waiting room as an operator sends it, inside `POST /admin/sales`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewWaitingRoom {
    pub opens_at: String,
    #[serde(deserialize_with = "super::integer::required")]
    pub admission_seconds: i64,
    #[serde(default, deserialize_with = "super::integer::optional")]
    pub admit_per_second: Option<i64>,
    #[serde(default, deserialize_with = "super::integer::optional")]
    pub pow_bits: Option<i64>,
    #[serde(default)]
    pub entry: Option<entry::NewEntry>,
}

impl NewWaitingRoom {
    /// The waiting room of a sale opening at `sale_opens_at_ms`.
    ///
    /// # Errors
    /// `invalid_waiting_room` when the sale has no opening or the queue does not open before it;
    /// `invalid_queue_opens_at`, `invalid_admission_seconds`, `invalid_admit_per_second`,
    /// `invalid_pow_bits` for each field out of its range; `invalid_entry` for the entry policy's
    /// (see [`entry::NewEntry::validate`]).
    pub fn validate(self, sale_opens_at_ms: Option<i64>) -> Result<WaitingRoom, InvalidInput> {
        let opens_at_ms = parse_ms(
            &self.opens_at,
            "waiting_room.opens_at",
            "invalid_queue_opens_at",
        )?;
        let Some(sale_opens) = sale_opens_at_ms else {
            return Err(InvalidInput::new(
                "invalid_waiting_room",
                "a sale with a waiting room needs an opens_at: the draw happens then",
            ));
        };
        if opens_at_ms >= sale_opens {
            return Err(InvalidInput::new(
                "invalid_queue_opens_at",
                "waiting_room.opens_at must be before the sale's opens_at",
            ));
        }
        let admission_seconds = u32::try_from(self.admission_seconds)
            .ok()
            .filter(|s| ADMISSION_SECONDS.contains(s))
            .ok_or_else(|| {
                InvalidInput::new(
                    "invalid_admission_seconds",
                    format!(
                        "waiting_room.admission_seconds must be an integer from {} to {}",
                        ADMISSION_SECONDS.start(),
                        ADMISSION_SECONDS.end()
                    ),
                )
            })?;
        let admit_per_second = self
            .admit_per_second
            .map(|n| {
                u32::try_from(n)
                    .ok()
                    .filter(|n| ADMIT_PER_SECOND.contains(n))
                    .ok_or_else(|| {
                        InvalidInput::new(
                            "invalid_admit_per_second",
                            format!(
                                "waiting_room.admit_per_second must be an integer from {} to {} \
                                 (leave it out to admit as fast as the stock allows)",
                                ADMIT_PER_SECOND.start(),
                                ADMIT_PER_SECOND.end()
                            ),
                        )
                    })
            })
            .transpose()?;
        let pow_bits = match self.pow_bits {
            None => 0,
            Some(n) if (0..=i64::from(MAX_POW_BITS)).contains(&n) => n as u8,
            Some(_) => {
                return Err(InvalidInput::new(
                    "invalid_pow_bits",
                    format!("waiting_room.pow_bits must be an integer from 0 to {MAX_POW_BITS}"),
                ))
            }
        };
        let entry = self.entry.map(entry::NewEntry::validate).transpose()?;
        Ok(WaitingRoom {
            opens_at_ms,
            admission_seconds,
            admit_per_second,
            pow_bits,
            entry: entry.flatten(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sale opens at 2026-12-01T00:00:00Z.
    const SALE_OPENS: i64 = 1_796_083_200_000;

    fn room(json: &str) -> Result<WaitingRoom, InvalidInput> {
        serde_json::from_str::<NewWaitingRoom>(json)
            .unwrap()
            .validate(Some(SALE_OPENS))
    }

    #[test]
    fn a_waiting_room_opening_before_the_sale_is_taken_with_its_defaults() {
        let r = room(r#"{"opens_at":"2026-11-30T08:00:00Z","admission_seconds":120}"#).unwrap();
        assert_eq!(r.admission_seconds, 120);
        assert_eq!((r.admit_per_second, r.pow_bits), (None, 0));
        assert!(r.opens_at_ms < SALE_OPENS);
    }

    #[test]
    fn each_bad_waiting_room_field_gets_its_own_error_code() {
        let cases = [
            (
                r#"{"opens_at":"soon","admission_seconds":120}"#,
                "invalid_queue_opens_at",
            ),
            (
                r#"{"opens_at":"2027-01-01T00:00:00Z","admission_seconds":120}"#,
                "invalid_queue_opens_at",
            ),
            (
                r#"{"opens_at":"2026-11-30T08:00:00Z","admission_seconds":59}"#,
                "invalid_admission_seconds",
            ),
            (
                r#"{"opens_at":"2026-11-30T08:00:00Z","admission_seconds":1801}"#,
                "invalid_admission_seconds",
            ),
            (
                r#"{"opens_at":"2026-11-30T08:00:00Z","admission_seconds":60,"admit_per_second":0}"#,
                "invalid_admit_per_second",
            ),
            (
                r#"{"opens_at":"2026-11-30T08:00:00Z","admission_seconds":60,"admit_per_second":100001}"#,
                "invalid_admit_per_second",
            ),
            (
                r#"{"opens_at":"2026-11-30T08:00:00Z","admission_seconds":60,"pow_bits":20}"#,
                "invalid_pow_bits",
            ),
            (
                r#"{"opens_at":"2026-11-30T08:00:00Z","admission_seconds":60,"pow_bits":-1}"#,
                "invalid_pow_bits",
            ),
        ];
        for (json, code) in cases {
            assert_eq!(room(json).unwrap_err().code, code, "{json}");
        }
    }

    #[test]
    fn a_sale_without_an_opening_cannot_have_a_waiting_room() {
        let err = serde_json::from_str::<NewWaitingRoom>(
            r#"{"opens_at":"2026-11-30T08:00:00Z","admission_seconds":120}"#,
        )
        .unwrap()
        .validate(None)
        .unwrap_err();
        assert_eq!(err.code, "invalid_waiting_room");
    }
}
