//! The insider (`make bench-insider`): someone who knows a draw's seed before the opening (the
//! operator, or whoever reads Redis) adds up to `max_joins` joins at the last moment, choosing how
//! many so that one of theirs lands first. Their chance of place 1 over many draws, under the
//! draw of the seed alone (`ff-draw-v1`) and under today's (`ff-draw-v2`: the seed, a beacon round
//! nobody holds before the opening, and the join list's root), beside anyone adding the same
//! joins blind.
//!
//! The insider is given everything but the round: the seed and every ticket (so they can compute
//! every join list's root, as one holding the waiting room's key could). Under v2 they search
//! the same way with a guessed round, the best they can do; the real round then comes. Pure
//! computation with the domain's own draw and join list: no service involved, so the figures
//! depend on nothing but the algorithm and the number of draws.

use flashflow::domain::waiting_room::draw::{order, BeaconRound, FinalDraw, Seed};
use flashflow::domain::waiting_room::join_list::{leaf, Hash};
use sha2::{Digest, Sha256};

/// The run's settings.
#[derive(clap::Args)]
pub struct Insider {
    /// Honest joiners before the opening.
    #[arg(long, default_value_t = 2_000)]
    pub honest: u32,
    /// The most joins the insider (or the blind joiner) adds at the end.
    #[arg(long, default_value_t = 60)]
    pub max_joins: u32,
    /// Draws simulated (each a new seed, new tickets, a new round).
    #[arg(long, default_value_t = 5_000)]
    pub draws: u32,
}

/// 32 bytes named by `parts`: the run is the same every time.
fn bytes(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

fn node(left: &Hash, right: &Hash) -> Hash {
    bytes(&[&[1], left, right])
}

/// RFC 6962's root of a growing list, a leaf at a time: the perfect subtrees of its binary
/// decomposition (Certificate Transparency's compact range), so each root costs a few hashes
/// where building the tree anew would cost the whole list.
#[derive(Default, Clone)]
struct Roots {
    /// (height, hash), left to right, heights decreasing.
    stack: Vec<(u32, Hash)>,
}

impl Roots {
    fn push(&mut self, leaf: Hash) {
        let mut at = (0, leaf);
        while let Some(&(h, left)) = self.stack.last() {
            if h != at.0 {
                break;
            }
            self.stack.pop();
            at = (h + 1, node(&left, &at.1));
        }
        self.stack.push(at);
    }

    fn root(&self) -> Hash {
        let mut it = self.stack.iter().rev();
        let Some(&(_, mut r)) = it.next() else {
            return bytes(&[]);
        };
        for (_, left) in it {
            r = node(left, &r);
        }
        r
    }
}

/// Whether the first place of `n` under `key` is one of the last `n - honest` joins.
fn insider_first(key: &Seed, n: u32, honest: u32) -> bool {
    order(key, n).first().is_some_and(|first| *first >= honest)
}

fn round(randomness: [u8; 32]) -> BeaconRound {
    BeaconRound {
        round: 1,
        randomness,
        signature: Vec::new(),
    }
}

/// One draw's outcomes: (blind, insider under v1, insider under v2).
fn one_draw(s: &Insider, d: u32) -> (bool, bool, bool) {
    let tag = d.to_be_bytes();
    let seed = Seed::new(bytes(&[b"seed", &tag]));
    let n = s.honest + s.max_joins;
    // Blind: the most joins, the seed unknown (so its draw is as good as any key).
    let blind = insider_first(&Seed::new(bytes(&[b"blind", &tag])), n, s.honest);
    // v1: the order is the seed's alone; the insider tries each count of joins.
    let v1 = (1..=s.max_joins).any(|k| insider_first(&seed, s.honest + k, s.honest));
    // v2: every ticket known, the round guessed; the count chosen, then the real round comes.
    let ticket = |i: u32| leaf(&format!("ticket-{d}-{i}"));
    let mut roots = Roots::default();
    for i in 0..s.honest {
        roots.push(ticket(i));
    }
    let guess = round([0; 32]);
    let mut chosen = (s.max_joins, Hash::default());
    let mut tried = roots.clone();
    for k in 1..=s.max_joins {
        tried.push(ticket(s.honest + k - 1));
        let root = tried.root();
        chosen = (k, root);
        let key = FinalDraw::new(&seed, root, Some(guess.clone())).key;
        if insider_first(&key, s.honest + k, s.honest) {
            break;
        }
    }
    let real = round(bytes(&[b"beacon", &tag]));
    let (k, root) = chosen;
    let v2 = insider_first(
        &FinalDraw::new(&seed, root, Some(real)).key,
        s.honest + k,
        s.honest,
    );
    (blind, v1, v2)
}

/// Run the draws and print the table.
pub fn run(s: &Insider) {
    let (mut blind, mut v1, mut v2) = (0u32, 0u32, 0u32);
    for d in 0..s.draws {
        let (b, one, two) = one_draw(s, d);
        blind += u32::from(b);
        v1 += u32::from(one);
        v2 += u32::from(two);
    }
    let n = f64::from(s.draws);
    let line = |who: &str, wins: u32| {
        let p = f64::from(wins) / n;
        let half = 1.96 * (p * (1.0 - p) / n).sqrt();
        println!(
            "| {who} | {wins} of {} | {:.1}% (95%: {:.1}–{:.1}%) |",
            s.draws,
            p * 100.0,
            ((p - half) * 100.0).max(0.0),
            (p + half) * 100.0
        );
    };
    println!(
        "The insider: {} honest joiners, up to {} last-moment joins, {} draws",
        s.honest, s.max_joins, s.draws
    );
    println!("| who | place 1 | chance |");
    println!("|---|---:|---:|");
    line(&format!("anyone adding {} joins blind", s.max_joins), blind);
    line("an insider knowing the seed, ff-draw-v1 (seed alone)", v1);
    line(
        "the same insider, ff-draw-v2 (seed, beacon round, join root)",
        v2,
    );
    println!(
        "expected for {} joins blind: {:.1}%",
        s.max_joins,
        f64::from(s.max_joins) * 100.0 / f64::from(s.honest + s.max_joins)
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use flashflow::domain::waiting_room::join_list::JoinList;

    #[test]
    fn the_growing_roots_are_the_join_lists_roots() {
        let mut roots = Roots::default();
        let mut leaves = Vec::new();
        assert_eq!(roots.root(), JoinList::new(vec![]).root());
        for i in 0..70 {
            let l = leaf(&format!("t{i}"));
            roots.push(l);
            leaves.push(l);
            assert_eq!(
                roots.root(),
                JoinList::new(leaves.clone()).root(),
                "{} leaves",
                i + 1
            );
        }
    }
}
