//! The committed join list: a Merkle tree over a pre-queue's tickets, so that each buyer can check
//! that their entry is in the list a draw used, and anyone holding the leaves can check the
//! cohort. The tree is Certificate Transparency's (RFC 6962 §2.1, RFC 9162 §2.1), chosen because
//! it is specified to the byte, with audit paths and their check, for any number of leaves:
//!
//! - leaf `i` is `SHA-256(0x00 ‖ ticket_i)`, `ticket_i` the ticket (its text) of join index `i`;
//! - a node is `SHA-256(0x01 ‖ left ‖ right)`; `MTH` of `n > 1` leaves splits them at `k`, the
//!   largest power of two below `n`; the root of no leaf is `SHA-256("")`;
//! - a leaf's proof is its audit path, the sibling hashes from the leaf up.
//!
//! Built here level by level (a level's unpaired last node moves up as it is), which gives the
//! same tree as RFC 6962's recursion (a unit test compares them) and keeps every node, so a
//! proof costs a lookup per level.
//!
//! Written here rather than taken from a crate: the few lines of it must match the documented
//! tree exactly (docs/api.md has them in Python), and the check is RFC 9162's own algorithm.

use sha2::{Digest, Sha256};

/// A node or leaf hash.
pub type Hash = [u8; 32];

/// The leaf of `ticket`: `SHA-256(0x00 ‖ ticket)`.
pub fn leaf(ticket: &str) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(ticket.as_bytes());
    h.finalize().into()
}

fn node(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// A join list's tree: every level, leaves first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinList {
    levels: Vec<Vec<Hash>>,
}

impl JoinList {
    /// The tree of `leaves` (join index order).
    pub fn new(leaves: Vec<Hash>) -> Self {
        let mut levels = vec![leaves];
        while levels.last().is_some_and(|l| l.len() > 1) {
            let below = levels.last().map(Vec::as_slice).unwrap_or_default();
            let up = below
                .chunks(2)
                .map(|pair| match pair {
                    [l, r] => node(l, r),
                    [alone] => *alone,
                    _ => unreachable!("chunks of two"),
                })
                .collect();
            levels.push(up);
        }
        Self { levels }
    }

    /// The leaves, in join index order.
    pub fn leaves(&self) -> &[Hash] {
        self.levels.first().map_or(&[], Vec::as_slice)
    }

    /// How many leaves.
    pub fn len(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The root (`SHA-256("")` for no leaf).
    pub fn root(&self) -> Hash {
        match self.levels.last().and_then(|l| l.first()) {
            Some(root) => *root,
            None => Sha256::digest([]).into(),
        }
    }

    /// The audit path of leaf `index`, from the leaf up; `None` past the last leaf.
    pub fn proof(&self, index: u64) -> Option<Vec<Hash>> {
        if index >= self.len() {
            return None;
        }
        let mut at = index as usize;
        let mut path = Vec::new();
        for level in &self.levels[..self.levels.len() - 1] {
            let sibling = at ^ 1;
            // The unpaired last node of a level has no sibling there: it moves up as it is.
            if sibling < level.len() {
                path.push(level[sibling]);
            }
            at /= 2;
        }
        Some(path)
    }
}

/// Whether `proof` shows leaf `leaf` at `index` in a tree of `size` leaves with `root` (RFC 9162
/// §2.1.3.2).
pub fn verify(root: &Hash, index: u64, size: u64, leaf: &Hash, proof: &[Hash]) -> bool {
    if index >= size {
        return false;
    }
    let (mut f, mut s) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if s == 0 {
            return false;
        }
        if f & 1 == 1 || f == s {
            r = node(p, &r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = node(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    s == 0 && r == *root
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6962's MTH, as the RFC writes it.
    fn mth(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => Sha256::digest([]).into(),
            1 => leaves[0],
            n => {
                let k = 1 << (usize::BITS - 1 - (n - 1).leading_zeros());
                node(&mth(&leaves[..k]), &mth(&leaves[k..]))
            }
        }
    }

    fn tickets(n: usize) -> Vec<Hash> {
        (0..n).map(|i| leaf(&format!("ticket-{i}"))).collect()
    }

    #[test]
    fn the_tree_is_rfc_6962s_for_every_size() {
        for n in 0..=70 {
            let leaves = tickets(n);
            assert_eq!(
                JoinList::new(leaves.clone()).root(),
                mth(&leaves),
                "{n} leaves"
            );
        }
    }

    #[test]
    fn every_leafs_proof_checks_out_and_no_other_leaf_passes_with_it() {
        for n in 1..=40u64 {
            let leaves = tickets(n as usize);
            let list = JoinList::new(leaves.clone());
            for i in 0..n {
                let proof = list.proof(i).unwrap();
                assert!(
                    verify(&list.root(), i, n, &leaves[i as usize], &proof),
                    "{i} of {n}"
                );
                let other = leaf("someone else");
                assert!(!verify(&list.root(), i, n, &other, &proof), "{i} of {n}");
                if n > 1 {
                    let j = (i + 1) % n;
                    assert!(
                        !verify(&list.root(), j, n, &leaves[i as usize], &proof),
                        "{i} as {j} of {n}"
                    );
                }
            }
            assert_eq!(list.proof(n), None);
        }
    }

    /// The size is bound by the root it is published with, not by the path alone: a path one
    /// level too long for the size given fails.
    #[test]
    fn a_proof_does_not_pass_for_a_list_too_small_to_hold_it() {
        let list = JoinList::new(tickets(9));
        let proof = list.proof(3).unwrap();
        let l = leaf("ticket-3");
        assert!(verify(&list.root(), 3, 9, &l, &proof));
        assert!(!verify(&list.root(), 3, 8, &l, &proof));
        assert!(
            !verify(&list.root(), 3, 3, &l, &proof),
            "index past the size"
        );
    }

    /// The root of five tickets as RFC 6962's MTH in a few lines of Python computes it (the
    /// leaves `ticket-0`..`ticket-4`): the Rust and the documented tree must not drift.
    #[test]
    fn the_tree_is_the_documented_one() {
        assert_eq!(
            hex::encode(JoinList::new(tickets(5)).root()),
            "c2743a501608b898488976759ae98c01129af3f017311dc7e6e339c384a287af"
        );
    }
}
