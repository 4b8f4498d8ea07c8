//! The Sybil sweep (`make bench-entry`): a bot with many made-up identities in a waiting room,
//! with and without an entry policy of one place per phone number.
//!
//! Each run is a sale of its own on the local Redis: `people` people, each with a verified phone
//! number of their own except `households` % of them, who share one with another person (a
//! household's phone); and a bot whose `bot_ids` identities carry `bot_phones` verified numbers
//! between them (0: the sale has no policy, today's behaviour). Everyone joins before the opening
//! through the queue's use case (`Queue::join`: the policy, the keyed hash, `queue_join.lua`),
//! in one interleaved arrival order; then the sale opens, the draw is made, and the units go to
//! the first `stock` places of the drawn order (as the inlet admits them: everyone admitted
//! buys). Prints the bot's share of places and of units, the honest people merged (refused
//! because a household member entered first) and the joins per second.
//!
//! Through the use case rather than over HTTP: who gets a place and a unit depends only on the
//! policy, the store and the draw, and 12 runs of 5,000 joiners take seconds here. The draw's
//! beacon is the in-memory one (a round every 100 ms): the sweep measures who gets in, not the
//! beacon (`make bench-insider` is about the draw).

use flashflow::domain::waiting_room::draw::{self, Seed};
use flashflow::domain::waiting_room::entry::{Claims, Entry};
use flashflow::domain::waiting_room::WaitingRoom;
use flashflow::domain::{BuyerId, EpochMs, SaleDefinition, SaleId};
use flashflow::ports::QueueSteps;
use flashflow_adapters::memory::MemoryBeacon;
use flashflow_adapters::redis::{RedisSettings, RedisStore, SaleKeys};
use flashflow_app::metrics::Metrics;
use flashflow_app::waiting_room::{Queue, QueueError};
use flashflow_settings::FromEnv;
use fred::interfaces::{HashesInterface, KeysInterface};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Draws of the same places with other seeds, for the bot's expected units.
const DRAWS: u32 = 1_000;

/// The sweep's settings.
#[derive(clap::Args)]
pub struct Sweep {
    #[arg(long, default_value_t = 5_000)]
    pub people: usize,
    #[arg(long, default_value_t = 500)]
    pub stock: u32,
    /// Percent of people who share their phone number with one other person.
    #[arg(long, default_value_t = 5)]
    pub households: usize,
    #[arg(long, value_delimiter = ',', default_value = "10,100,1000")]
    pub bot_ids: Vec<usize>,
    /// The bot's phone numbers (0: the sale has no entry policy).
    #[arg(long, value_delimiter = ',', default_value = "0,1,3,10")]
    pub bot_phones: Vec<usize>,
    /// Alternating runs of the people alone, without and with the policy, for its cost.
    #[arg(long, default_value_t = 5)]
    pub cost_runs: usize,
}

/// One run's outcome.
struct Run {
    bot_places: usize,
    cohort: u64,
    bot_units: usize,
    /// The bot's units over [`DRAWS`] draws of the same places with other seeds: the expectation
    /// one draw is a sample of.
    bot_units_mean: f64,
    units: usize,
    merged: usize,
    refused_bot: usize,
    joins_per_s: f64,
}

/// Who a joiner is: a bot identity or a person, and the claims their token carries.
struct Joiner {
    buyer: BuyerId,
    bot: bool,
    claims: Claims,
}

fn claims(phone: String) -> Claims {
    [
        ("phone_number".to_owned(), phone),
        ("phone_number_verified".to_owned(), "true".to_owned()),
    ]
    .into()
}

/// Everyone who joins one run, in arrival order: the bot's identities spread evenly among the
/// people (a fixed shuffle, index × a prime, so runs compare).
fn joiners(people: usize, households: usize, bot_ids: usize, bot_phones: usize) -> Vec<Joiner> {
    // Pairs (2j, 2j+1) for the first `households` % of people share 2j's number.
    let shared = (people * households / 100) / 2 * 2;
    let mut all: Vec<Joiner> = (0..people)
        .map(|i| {
            let owner = if i < shared && i % 2 == 1 { i - 1 } else { i };
            Joiner {
                buyer: BuyerId::parse(&format!("person-{i}")).expect("a valid id"),
                bot: false,
                claims: claims(format!("+1 555 {owner:07}")),
            }
        })
        .collect();
    all.extend((0..bot_ids).map(|i| Joiner {
        buyer: BuyerId::parse(&format!("bot-{i}")).expect("a valid id"),
        bot: true,
        claims: claims(format!("+1 999 {:07}", i % bot_phones.max(1))),
    }));
    let n = all.len();
    let mut order: Vec<(usize, Joiner)> = all
        .into_iter()
        .enumerate()
        .map(|(i, j)| ((i * 7919) % n.max(1), j))
        .collect();
    order.sort_by_key(|(k, _)| *k);
    order.into_iter().map(|(_, j)| j).collect()
}

/// A sale whose queue is open and whose opening (the draw) is an hour away, until [`open`].
async fn new_sale(store: &RedisStore, stock: u32, entry: Option<Entry>) -> anyhow::Result<SaleId> {
    let now = EpochMs::now().get();
    let id = SaleId::parse(&format!("sybil-{}", uuid::Uuid::new_v4().simple()))?;
    let def = SaleDefinition::new(id.clone(), stock)
        .with_window(Some(now + 3_600_000), None)
        .with_waiting_room(WaitingRoom {
            opens_at_ms: now - 60_000,
            admission_seconds: 600,
            admit_per_second: None,
            pow_bits: 0,
            entry,
        });
    crate::waiting_room::load_fresh(store, &def, stock).await?;
    Ok(id)
}

/// The opening now, as the clock would bring it (the bench's Redis user may write the hash).
async fn open(store: &RedisStore, sale: &SaleId) -> anyhow::Result<()> {
    let keys = SaleKeys::new(sale);
    let _: i64 = store
        .client()
        .hset(keys.room(), ("sale_opens_ms", EpochMs::now().get()))
        .await?;
    Ok(())
}

async fn run(
    store: &RedisStore,
    queue: &Arc<Queue<RedisStore, MemoryBeacon>>,
    s: &Sweep,
    households: usize,
    bot_ids: usize,
    bot_phones: usize,
) -> anyhow::Result<Run> {
    let entry = (bot_phones > 0).then(|| Entry {
        require_claims: [("phone_number_verified".to_owned(), "true".to_owned())].into(),
        one_per: Some("phone_number".into()),
    });
    let sale = new_sale(store, s.stock, entry).await?;
    let all = joiners(s.people, households, bot_ids, bot_phones);
    let started = Instant::now();
    // (join index, bot) of each place taken; refusals counted apart.
    let mut placed: Vec<(u64, bool)> = Vec::new();
    let (mut merged, mut refused_bot) = (0, 0);
    for chunk in all.chunks(128) {
        let mut joins = tokio::task::JoinSet::new();
        for j in chunk {
            let (queue, sale) = (Arc::clone(queue), sale.clone());
            let (buyer, claims, bot) = (j.buyer.clone(), j.claims.clone(), j.bot);
            joins.spawn(async move { (bot, queue.join(&sale, &buyer, &claims, None).await) });
        }
        while let Some(done) = joins.join_next().await {
            match done? {
                (bot, Ok((_, view))) => {
                    placed.push((view.join_index.unwrap_or(u64::MAX), bot));
                }
                (true, Err(QueueError::AlreadyEntered { .. })) => refused_bot += 1,
                (false, Err(QueueError::AlreadyEntered { .. })) => merged += 1,
                (_, Err(e)) => anyhow::bail!("a join failed: {e}"),
            }
        }
    }
    let joins_per_s = all.len() as f64 / started.elapsed().as_secs_f64();
    open(store, &sale).await?;
    // The draw is final once its round is out (the next 100 ms) and a reader made it so.
    while queue.draw(&sale).await?.state != "drawn" {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let state = store
        .step(&sale)
        .await?
        .ok_or_else(|| anyhow::anyhow!("the sale lost its queue"))?;
    let cohort = state.drawn.map_or(0, |(_, n)| n);
    let key = state
        .final_draw
        .ok_or_else(|| anyhow::anyhow!("no final draw"))?
        .key;
    let places = draw::places(&key, cohort as u32);
    let units = (s.stock as usize).min(places.len());
    let bot_units = placed
        .iter()
        .filter(|(index, bot)| {
            *bot && places
                .get(*index as usize)
                .is_some_and(|p| *p as usize <= units)
        })
        .count();
    let bot_places = placed.iter().filter(|(_, bot)| *bot).count();
    let bot_indexes: Vec<usize> = placed
        .iter()
        .filter(|(index, bot)| *bot && *index < cohort)
        .map(|(index, _)| *index as usize)
        .collect();
    let mut total = 0usize;
    for d in 0..DRAWS {
        let mut bytes = [0u8; 32];
        bytes[..4].copy_from_slice(&d.to_be_bytes());
        let other = draw::places(&Seed::new(bytes), cohort as u32);
        total += bot_indexes
            .iter()
            .filter(|i| other[**i] as usize <= units)
            .count();
    }
    let bot_units_mean = total as f64 / f64::from(DRAWS);
    let keys = SaleKeys::new(&sale);
    let mut gone = keys.room_all();
    gone.extend([keys.room_seed(), keys.sale.clone()]);
    let _: i64 = store.client().unlink(gone).await?;
    Ok(Run {
        bot_places,
        cohort,
        bot_units,
        bot_units_mean,
        units,
        merged,
        refused_bot,
        joins_per_s,
    })
}

fn pct(n: usize, of: u64) -> f64 {
    if of == 0 {
        0.0
    } else {
        n as f64 * 100.0 / of as f64
    }
}

/// Run the sweep and print its table.
pub async fn sweep(s: Sweep) -> anyhow::Result<()> {
    let store = RedisStore::connect(&RedisSettings::from_env()?)?;
    store.ready(Duration::from_secs(5)).await?;
    let key = std::env::var("ADMISSION_KEY")?;
    let keys = flashflow::domain::waiting_room::tokens::TokenKeys::new(key.as_bytes())
        .ok_or_else(|| anyhow::anyhow!("ADMISSION_KEY is too short"))?;
    let queue = Arc::new(Queue::new(
        store.clone(),
        MemoryBeacon::default(),
        keys,
        Metrics::new("queue"),
    ));
    println!(
        "Sybil sweep: {} people ({}% share a phone with one other), {} units; one place per phone \
         number vs no policy",
        s.people, s.households, s.stock
    );
    println!(
        "| bot ids | the bot's phones | bot's places | bot's share of places | bot's units (this \
         draw) | bot's share of units, mean of {DRAWS} draws | bot joins refused | people merged \
         (409) | joins/s |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|");
    for &ids in &s.bot_ids {
        for &phones in &s.bot_phones {
            let r = run(&store, &queue, &s, s.households, ids, phones).await?;
            println!(
                "| {ids} | {} | {} | {:.2}% | {} of {} | {:.2}% | {} | {} | {:.0} |",
                if phones == 0 {
                    "no policy".to_owned()
                } else {
                    phones.to_string()
                },
                r.bot_places,
                pct(r.bot_places, r.cohort),
                r.bot_units,
                r.units,
                r.bot_units_mean * 100.0 / r.units.max(1) as f64,
                r.refused_bot,
                r.merged,
                r.joins_per_s
            );
        }
    }
    if s.cost_runs > 0 {
        // The people alone, nobody sharing a number: the same joins, with and without the policy
        // (its check, the keyed hash, the script's one more read and write), alternating.
        let (mut without, mut with) = (Vec::new(), Vec::new());
        for _ in 0..s.cost_runs {
            without.push(run(&store, &queue, &s, 0, 0, 0).await?.joins_per_s);
            with.push(run(&store, &queue, &s, 0, 0, 1).await?.joins_per_s);
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let (a, b) = (median(&mut without), median(&mut with));
        println!(
            "the policy's cost: {} joins of {} people through the use case, {} runs each \
             alternating: {a:.0} joins/s without, {b:.0} with (median), ratio {:.2}",
            s.people,
            s.people,
            s.cost_runs,
            b / a
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_household_shares_one_number_and_the_bots_ids_share_theirs() {
        let all = joiners(10, 40, 6, 3);
        let phones = |bot: bool| {
            let mut p: Vec<&str> = all
                .iter()
                .filter(|j| j.bot == bot)
                .map(|j| j.claims["phone_number"].as_str())
                .collect();
            p.sort_unstable();
            p.dedup();
            p.len()
        };
        assert_eq!(all.len(), 16);
        assert_eq!(phones(false), 8, "two pairs of ten people share a number");
        assert_eq!(phones(true), 3);
    }
}
