//! The draw (`ff-draw-v2`): the order of the pre-queue, from a seed fixed and committed to when
//! the sale is created, a public beacon's round nobody holds before the sale opens, and the root
//! of the committed join list; revealed once the draw is done.
//!
//! The algorithm, so anyone can recompute it (docs/api.md has it in a dozen lines of Python):
//! 1. The commitment is `hex(SHA-256(seed))`, published from the moment the queue opens, with
//!    the beacon's chain and round: the first round at or after the sale's opening.
//! 2. The draw's key is `SHA-256(seed ‖ randomness ‖ join_root)`: `randomness` the round's (32
//!    bytes, checked against the chain's key), `join_root` the root of the pre-queue's join list
//!    ([`super::join_list`]). When the round could not be had within [`BEACON_WAIT_MS`] of the
//!    opening the key is `SHA-256(seed ‖ join_root)`, and the record says so.
//! 3. The random stream is the blocks `SHA-256(key ‖ be64(0))`, `SHA-256(key ‖ be64(1))`, …,
//!    each read as four big-endian `u64`s, in order.
//! 4. `below(m)`: the next `x` of the stream with `x < m × ⌊2^64 / m⌋` (others skipped), `x mod m`.
//! 5. Fisher–Yates: `order = [0, 1, …, n-1]` (join indexes, in arrival order); for `i` from
//!    `n-1` down to 1, swap `order[i]` with `order[below(i + 1)]`.
//! 6. `order[k]` is the join index at place `k + 1`: `order[0]` is first in line.
//!
//! Every permutation of the `n` joiners is equally likely, whatever their arrival order; no one
//! (the operator included) can choose the seed after seeing who joined, and whoever knows the
//! seed early still cannot tell which join list would put them first: the round is signed by the
//! beacon's nodes only after the list is closed.

use super::join_list::Hash;
use sha2::{Digest, Sha256};

/// The algorithm's name, as `GET /sales/{id}/queue/draw` says it.
pub const ALGORITHM: &str = "ff-draw-v2";

/// How long after the sale's opening a draw waits for its beacon round before it is made without
/// one (quicknet signs a round every 3 s; a round late by this much means the beacon is out of
/// reach, and the sale cannot wait on it for ever).
pub const BEACON_WAIT_MS: i64 = 30_000;

/// A beacon round, checked against its chain's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BeaconRound {
    pub round: u64,
    /// `SHA-256(signature)`.
    pub randomness: [u8; 32],
    pub signature: Vec<u8>,
}

/// A draw made final: its join list's root and the round mixed in (`None`: the fallback).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinalDraw {
    pub join_root: Hash,
    pub beacon: Option<BeaconRound>,
    /// The order's key (step 2), from the seed and the two above.
    pub key: Seed,
}

impl FinalDraw {
    pub fn new(seed: &Seed, join_root: Hash, beacon: Option<BeaconRound>) -> Self {
        let mut h = Sha256::new();
        h.update(seed.0);
        if let Some(b) = &beacon {
            h.update(b.randomness);
        }
        h.update(join_root);
        Self {
            join_root,
            beacon,
            key: Seed(h.finalize().into()),
        }
    }
}

/// A draw's seed: 32 random bytes chosen when the sale is created.
#[derive(Clone, PartialEq, Eq)]
pub struct Seed([u8; 32]);

impl std::fmt::Debug for Seed {
    // A seed is secret until its draw: it never reaches a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Seed(…)")
    }
}

impl Seed {
    pub fn new(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// A seed from its hex form, as stored and revealed.
    pub fn from_hex(hex_seed: &str) -> Option<Self> {
        let bytes = hex::decode(hex_seed).ok()?;
        Some(Self(bytes.try_into().ok()?))
    }

    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// `hex(SHA-256(seed))`.
    pub fn commitment(&self) -> String {
        hex::encode(Sha256::digest(self.0))
    }
}

/// The random stream of step 2.
struct Stream<'a> {
    seed: &'a Seed,
    block: u64,
    words: [u64; 4],
    next: usize,
}

impl<'a> Stream<'a> {
    fn new(seed: &'a Seed) -> Self {
        Self {
            seed,
            block: 0,
            words: [0; 4],
            next: 4,
        }
    }

    fn next_u64(&mut self) -> u64 {
        if self.next == 4 {
            let mut h = Sha256::new();
            h.update(self.seed.0);
            h.update(self.block.to_be_bytes());
            let digest = h.finalize();
            for (i, w) in self.words.iter_mut().enumerate() {
                let mut b = [0u8; 8];
                b.copy_from_slice(&digest[i * 8..i * 8 + 8]);
                *w = u64::from_be_bytes(b);
            }
            self.block += 1;
            self.next = 0;
        }
        self.next += 1;
        self.words[self.next - 1]
    }

    /// Uniform in `0..m` (step 3): rejection keeps every value equally likely.
    fn below(&mut self, m: u64) -> u64 {
        let limit = (u64::MAX / m) * m;
        loop {
            let x = self.next_u64();
            if x < limit {
                return x % m;
            }
        }
    }
}

/// The pre-queue's order under the draw's `key` ([`FinalDraw::key`]): `order[k]` is the join
/// index at place `k + 1`.
pub fn order(seed: &Seed, joiners: u32) -> Vec<u32> {
    let mut order: Vec<u32> = (0..joiners).collect();
    let mut stream = Stream::new(seed);
    for i in (1..joiners as usize).rev() {
        let j = stream.below(i as u64 + 1) as usize;
        order.swap(i, j);
    }
    order
}

/// Each join index's place (1-based): the inverse of [`order`].
pub fn places(seed: &Seed, joiners: u32) -> Vec<u32> {
    let order = order(seed, joiners);
    let mut places = vec![0; order.len()];
    for (k, index) in order.into_iter().enumerate() {
        places[index as usize] = k as u32 + 1;
    }
    places
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed(byte: u8) -> Seed {
        Seed::new([byte; 32])
    }

    /// Spearman's rank correlation of two rankings of the same n items (no ties).
    fn spearman(a: &[u32], b: &[u32]) -> f64 {
        let n = a.len() as f64;
        let d2: f64 = a
            .iter()
            .zip(b)
            .map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2))
            .sum();
        1.0 - 6.0 * d2 / (n * (n * n - 1.0))
    }

    #[test]
    fn the_places_of_ten_thousand_joiners_are_a_permutation_of_one_to_ten_thousand() {
        let places = places(&seed(7), 10_000);
        let mut sorted = places.clone();
        sorted.sort_unstable();
        assert_eq!(
            sorted,
            (1..=10_000).collect::<Vec<u32>>(),
            "no gaps, no ties"
        );
    }

    #[test]
    fn a_joiners_place_does_not_follow_their_arrival() {
        let arrival: Vec<u32> = (1..=10_000).collect();
        for s in 0..5 {
            let rho = spearman(&arrival, &places(&seed(s), 10_000));
            assert!(rho.abs() < 0.05, "seed {s}: rho {rho}");
        }
    }

    #[test]
    fn the_published_seed_reproduces_every_place_and_matches_its_commitment() {
        let s = seed(42);
        let revealed = Seed::from_hex(&s.hex()).unwrap();
        assert_eq!(places(&revealed, 10_000), places(&s, 10_000));
        assert_eq!(
            s.commitment(),
            hex::encode(Sha256::digest([42u8; 32])),
            "the commitment is SHA-256 of the seed"
        );
        assert_ne!(
            places(&seed(43), 100),
            places(&s, 100),
            "another seed, another draw"
        );
    }

    /// The order the documented algorithm gives (docs/api.md's Python, run on the same seed):
    /// the Rust and the documentation must not drift apart.
    #[test]
    fn the_draw_is_the_documented_algorithm() {
        assert_eq!(order(&seed(1), 10), vec![0, 5, 2, 3, 7, 4, 6, 9, 1, 8]);
    }

    /// The key of step 2 as docs/api.md's Python computes it (seed 01…, randomness 02…, root
    /// 03…), and the order it gives; and the fallback's key, without a round.
    #[test]
    fn the_v2_key_and_order_are_the_documented_algorithm() {
        let round = BeaconRound {
            round: 7,
            randomness: [2; 32],
            signature: vec![],
        };
        let fin = FinalDraw::new(&seed(1), [3; 32], Some(round));
        assert_eq!(
            fin.key.hex(),
            "8a2e491356cfdb05a1d13785e0794d7cd163f91af79a146c976b1d2ac643b679"
        );
        assert_eq!(order(&fin.key, 10), vec![9, 0, 1, 4, 5, 6, 8, 3, 7, 2]);
        let fallback = FinalDraw::new(&seed(1), [3; 32], None);
        assert_eq!(
            fallback.key.hex(),
            "7d87fc68f80962fa1f08c9a964bd55c07bda6d8c59de1429b520b1cfcd648146"
        );
    }

    #[test]
    fn every_place_is_equally_likely_for_the_first_joiner() {
        // 6,000 draws of 6 joiners: the first joiner lands in each place about 1,000 times.
        let mut counts = [0u32; 6];
        for s in 0..6_000u32 {
            let mut bytes = [0u8; 32];
            bytes[..4].copy_from_slice(&s.to_be_bytes());
            counts[places(&Seed::new(bytes), 6)[0] as usize - 1] += 1;
        }
        for c in counts {
            assert!((850..1150).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn no_joiner_or_one_joiner_is_its_own_draw() {
        assert!(order(&seed(1), 0).is_empty());
        assert_eq!(order(&seed(1), 1), vec![0]);
    }
}
