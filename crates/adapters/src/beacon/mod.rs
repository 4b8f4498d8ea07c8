//! A public randomness beacon's rounds, checked: drand's `bls-unchained-g1-rfc9380` scheme, the
//! one its quicknet chain runs (a round every 3 s). A round's signature is a BLS signature on G1
//! of `SHA-256(be64(round))` under the chain's public key (G2), with the domain separation tag of
//! RFC 9380's G1 ciphersuite; its randomness is `SHA-256(signature)`. Nobody holds a round before
//! the chain's threshold of nodes signs it, and nobody can sign it but them: a draw that mixes in
//! a round fixed in advance cannot be steered by whoever knows the draw's seed.
//!
//! Checked here, at the boundary, as Stripe's webhook signature is checked in its adapter: a
//! round not signed by the chain is never believed. The local stack runs a stand-in with its own
//! key (`flashflow-local beacon`, signing with [`Signer`]); its rounds are checked exactly as the
//! real chain's (a unit test checks a real quicknet round). Behind the `beacon` feature: only what
//! reads a beacon links BLS (`blst`, C and assembly).
//!
//! # Layout
//! - `mod.rs`: [`Chain`] and its check of a round, [`Signer`] for the local stand-in.
//! - [`client`]: [`Drand`], the [`flashflow::ports::Beacon`] port over a chain's HTTP API.

pub mod client;

pub use client::{Drand, DrandSettings};

use sha2::{Digest, Sha256};

/// The scheme this module checks.
pub const SCHEME: &str = "bls-unchained-g1-rfc9380";
/// RFC 9380's hash-to-curve suite for BLS signatures on G1 (drand's quicknet).
pub const DST: &[u8] = b"BLS_SIG_BLS12381G1_XMD:SHA-256_SSWU_RO_NUL_";

/// drand's quicknet on the League of Entropy mainnet (`https://api.drand.sh/<hash>/info`).
pub const QUICKNET_HASH: &str = "52db9ba70e0cc0f6eaf7803dd07447a1f5477735fd3f661792ba94600c84e971";
pub const QUICKNET_PUBLIC_KEY: &str = "83cf0f2896adee7eb8b5f01fcad3912212c437e0073e911fb90022d3e760183c8c4b450b6a0a6c3ac6a5776a2d1064510d1fec758c921cc22b0e17e63aaf4bcb5ed66304de9cf809bd274ca73bab4af5a6e9c76a4bc09e76eae8991ef5ece45a";
pub const QUICKNET_GENESIS: u64 = 1_692_803_367;
pub const QUICKNET_PERIOD: u64 = 3;

/// A beacon chain: its public key (G2, compressed, 96 bytes), first round's time and period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    /// The chain's hash (hex), as its `/info` names it.
    pub hash: String,
    pub public_key: Vec<u8>,
    /// Round 1's time, seconds since the epoch.
    pub genesis_time: u64,
    /// Seconds between rounds.
    pub period: u64,
}

/// One round as the chain's `/public/{round}` gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Round {
    pub round: u64,
    /// G1, compressed, 48 bytes.
    pub signature: Vec<u8>,
    /// `SHA-256(signature)`.
    pub randomness: [u8; 32],
}

/// Why a round is not believed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BadRound {
    #[error("the chain's public key is not a point of G2")]
    BadKey,
    #[error("the signature is not a point of G1")]
    BadSignature,
    #[error("the signature is not the chain's for this round")]
    NotSigned,
}

impl Chain {
    /// drand's quicknet.
    pub fn quicknet() -> Self {
        Self {
            hash: QUICKNET_HASH.into(),
            public_key: hex::decode(QUICKNET_PUBLIC_KEY).unwrap_or_default(),
            genesis_time: QUICKNET_GENESIS,
            period: QUICKNET_PERIOD,
        }
    }

    /// The first round emitted at or after `time_s` (round 1 at genesis).
    pub fn round_at(&self, time_s: u64) -> u64 {
        if time_s <= self.genesis_time {
            return 1;
        }
        (time_s - self.genesis_time).div_ceil(self.period.max(1)) + 1
    }

    /// When `round` is emitted, seconds since the epoch.
    pub fn time_of(&self, round: u64) -> u64 {
        self.genesis_time + round.saturating_sub(1) * self.period
    }

    /// `round` with `signature`, checked against this chain's key; its randomness.
    ///
    /// # Errors
    /// [`BadRound`] for a key or signature that is not a curve point, or a signature that is not
    /// the chain's for this round.
    pub fn check(&self, round: u64, signature: &[u8]) -> Result<Round, BadRound> {
        let key = blst::min_sig::PublicKey::key_validate(&self.public_key)
            .map_err(|_| BadRound::BadKey)?;
        let sig =
            blst::min_sig::Signature::from_bytes(signature).map_err(|_| BadRound::BadSignature)?;
        let message = Sha256::digest(round.to_be_bytes());
        match sig.verify(true, &message, DST, &[], &key, true) {
            blst::BLST_ERROR::BLST_SUCCESS => Ok(Round {
                round,
                signature: signature.to_vec(),
                randomness: Sha256::digest(signature).into(),
            }),
            _ => Err(BadRound::NotSigned),
        }
    }
}

/// A chain's signer, for the local stand-in: a key from `seed` (at least 32 bytes).
pub struct Signer {
    key: blst::min_sig::SecretKey,
}

impl Signer {
    /// `None` for a seed shorter than 32 bytes.
    pub fn from_seed(seed: &[u8]) -> Option<Self> {
        Some(Self {
            key: blst::min_sig::SecretKey::key_gen(seed, &[]).ok()?,
        })
    }

    /// The chain's public key (G2, compressed).
    pub fn public_key(&self) -> Vec<u8> {
        self.key.sk_to_pk().compress().to_vec()
    }

    /// `round`'s signature (G1, compressed).
    pub fn sign(&self, round: u64) -> Vec<u8> {
        let message = Sha256::digest(round.to_be_bytes());
        self.key.sign(&message, DST, &[]).compress().to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Round 657,413 of drand's quicknet, as `https://api.drand.sh/<quicknet>/public/657413` gives it.
    const ROUND: u64 = 657_413;
    const SIGNATURE: &str = "b713718a38ae728dfd477991af2822e08d2f305e47718cef9f7848ce4050e7be41076862b98fad56e91a6b85b89cd97b";
    const RANDOMNESS: &str = "fc1873a13f3545aeade8401532ef5519920652eee6b0d2b19ca12643b87b3587";

    #[test]
    fn a_real_quicknet_round_checks_out_and_gives_its_published_randomness() {
        let round = Chain::quicknet()
            .check(ROUND, &hex::decode(SIGNATURE).unwrap())
            .unwrap();
        assert_eq!(hex::encode(round.randomness), RANDOMNESS);
    }

    #[test]
    fn a_quicknet_signature_does_not_pass_for_another_round() {
        assert_eq!(
            Chain::quicknet().check(ROUND + 1, &hex::decode(SIGNATURE).unwrap()),
            Err(BadRound::NotSigned)
        );
    }

    #[test]
    fn a_local_chains_rounds_check_out_under_its_key_and_no_other() {
        let signer = Signer::from_seed(&[7u8; 32]).unwrap();
        let chain = Chain {
            hash: "local".into(),
            public_key: signer.public_key(),
            genesis_time: QUICKNET_GENESIS,
            period: 3,
        };
        let sig = signer.sign(42);
        assert_eq!(chain.check(42, &sig).unwrap().round, 42);
        assert_eq!(chain.check(43, &sig), Err(BadRound::NotSigned));
        assert_eq!(
            Chain::quicknet().check(42, &sig),
            Err(BadRound::NotSigned),
            "the real chain's key does not take the local signer's rounds"
        );
        assert_eq!(chain.check(42, &[0u8; 48]), Err(BadRound::BadSignature));
    }

    #[test]
    fn the_first_round_at_or_after_a_time_is_the_one_emitted_then() {
        let c = Chain::quicknet();
        assert_eq!(c.round_at(QUICKNET_GENESIS), 1);
        assert_eq!(c.round_at(QUICKNET_GENESIS + 1), 2);
        assert_eq!(c.round_at(QUICKNET_GENESIS + 3), 2);
        assert_eq!(c.round_at(QUICKNET_GENESIS + 4), 3);
        for t in [QUICKNET_GENESIS + 10, 1_796_083_200] {
            let r = c.round_at(t);
            assert!(c.time_of(r) >= t && c.time_of(r) < t + 3, "{t}: round {r}");
        }
    }
}
