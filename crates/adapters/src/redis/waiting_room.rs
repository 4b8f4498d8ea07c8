//! A sale's waiting room in Redis: its terms given on every load (`queue_load.lua`), places
//! (`queue_join.lua`), the inlet's steps (`queue_step.lua`), the operator's controls
//! (`queue_control.lua`) and the draw made final with its join list (`queue_claim_draw.lua`,
//! `queue_finalize.lua`).
//! Every key carries the sale's hash tag.

use super::OrStoreError;
use super::{failed, RedisStore, SaleKeys};
use flashflow::domain::waiting_room::draw::{BeaconRound, FinalDraw, Seed};
use flashflow::domain::waiting_room::join_list::Hash;
use flashflow::domain::waiting_room::queue::{Batch, QueueState, MAX_OVERBOOKING, MAX_TICK_MS};
use flashflow::domain::waiting_room::tokens::{TicketPlace, CHALLENGE_MS};
use flashflow::domain::waiting_room::{MAX_JOINS_PER_MINUTE, STEP_EVERY_MS};
use flashflow::domain::{BuyerId, SaleDefinition, SaleId};
use flashflow::ports::HOLDS_END_WITHIN;
use flashflow::ports::{
    JoinLists, JoinOutcome, QueueControls, QueueJoins, QueueSteps, SpentAdmissions, StoreError,
};
use fred::prelude::*;
use fred::types::{ClusterHash, CustomCommand};
use std::collections::HashMap;

/// At most one step of a queue per this many ms, whoever asks.
pub const STEP_MS: i64 = STEP_EVERY_MS;

/// A queue's epoch: random, below 2^53 (a JSON number any client reads whole), never 0 (the state
/// of a queue loaded by an earlier version).
pub(crate) fn new_epoch() -> u64 {
    (uuid::Uuid::new_v4().as_u64_pair().0 >> 11).max(1)
}

impl RedisStore {
    /// Give the sale its waiting room's terms (and a seed, kept if it has one).
    pub(super) async fn load_room(
        &self,
        def: &SaleDefinition,
        seed: Option<&Seed>,
    ) -> Result<(), StoreError> {
        let Some(room) = &def.waiting_room else {
            return Ok(());
        };
        let seed = seed.ok_or_else(|| failed("a waiting room's load needs its seed".into()))?;
        let keys = SaleKeys::new(&def.id);
        let _: String = self
            .queue_load
            .evalsha_with_reload(
                &self.client,
                [vec![keys.sale.clone(), keys.room_seed()], keys.room_all()].concat(),
                vec![
                    room.opens_at_ms.to_string(),
                    def.opens_at_ms.unwrap_or_default().to_string(),
                    room.admission_ms().to_string(),
                    room.admit_per_second
                        .map_or(String::new(), |p| p.to_string()),
                    room.pow_bits.to_string(),
                    seed.hex(),
                    seed.commitment(),
                    def.closes_at_ms.map_or(String::new(), |c| c.to_string()),
                    new_epoch().to_string(),
                    room.entry
                        .as_ref()
                        .map(serde_json::to_string)
                        .transpose()
                        .map_err(|e| failed(format!("an entry policy as JSON: {e}")))?
                        .unwrap_or_default(),
                ],
            )
            .await
            .or_store()?;
        Ok(())
    }
}

impl QueueJoins for RedisStore {
    async fn join(
        &self,
        sale: &SaleId,
        buyer: &BuyerId,
        requeue: Option<u64>,
        challenge: Option<&str>,
        entry_tag: Option<&str>,
    ) -> Result<JoinOutcome, StoreError> {
        let keys = SaleKeys::new(sale);
        // A used challenge is remembered while it could be answered (it expires within
        // CHALLENGE_MS of being issued), and no longer.
        let challenge_expires = flashflow::domain::EpochMs::now().get() + CHALLENGE_MS;
        let reply: Vec<String> = self
            .queue_join
            .evalsha_with_reload(
                &self.client,
                vec![
                    keys.room(),
                    keys.room_places(),
                    keys.room_challenges(),
                    keys.room_joins(),
                    keys.room_seed(),
                    keys.room_entries(),
                ],
                vec![
                    buyer.as_str().to_owned(),
                    requeue.map_or(String::new(), |n| n.to_string()),
                    challenge.unwrap_or_default().to_owned(),
                    challenge_expires.to_string(),
                    MAX_JOINS_PER_MINUTE.to_string(),
                    entry_tag.unwrap_or_default().to_owned(),
                ],
            )
            .await
            .or_store()?;
        let field = |i: usize| reply.get(i).map_or("", String::as_str);
        let (status, detail) = (field(0), field(1));
        let number = |text: &str| -> Result<i64, StoreError> {
            text.parse()
                .map_err(|_| failed(format!("queue_join.lua: bad number {text:?}")))
        };
        let place = || -> Result<TicketPlace, StoreError> {
            Ok(TicketPlace {
                index: number(detail)? as u64,
                epoch: number(field(2)).unwrap_or(0) as u64,
            })
        };
        if matches!(status, "JOINED" | "EXISTING") {
            // A place answered is a promise (an existing one too: its join may be in doubt).
            self.durable(&keys).await?;
        }
        Ok(match status {
            "JOINED" => JoinOutcome::Joined(place()?),
            "EXISTING" => JoinOutcome::Existing(place()?),
            "NO_QUEUE" => JoinOutcome::NoQueue,
            "NOT_OPEN" => JoinOutcome::NotOpen {
                opens_at_ms: number(detail)?,
            },
            "CLOSED" => JoinOutcome::Closed {
                closes_at_ms: number(detail)?,
            },
            "REUSED" => JoinOutcome::ChallengeReused,
            "ALREADY_ENTERED" => JoinOutcome::AlreadyEntered,
            "TOO_MANY" => JoinOutcome::TooMany {
                retry_after_s: number(detail)?.clamp(1, 60) as u32,
            },
            other => return Err(failed(format!("queue_join.lua: unknown status {other:?}"))),
        })
    }
}

impl QueueSteps for RedisStore {
    async fn step(&self, sale: &SaleId) -> Result<Option<QueueState>, StoreError> {
        self.run_step(sale, &[]).await
    }

    async fn peek(&self, sale: &SaleId) -> Result<Option<QueueState>, StoreError> {
        let now = flashflow::domain::EpochMs::now().get().to_string();
        self.run_step(sale, &["peek".to_owned(), now]).await
    }
}

impl RedisStore {
    async fn run_step(
        &self,
        sale: &SaleId,
        mode: &[String],
    ) -> Result<Option<QueueState>, StoreError> {
        let keys = SaleKeys::new(sale);
        // Read first, from keys the step does not write (the queue function's user may only
        // read them): a step a few milliseconds behind a buy is caught up by the next one.
        let grace = HOLDS_END_WITHIN.as_millis() as i64;
        let open_since = flashflow::domain::EpochMs::now().get() - grace;
        let pipeline = self.client.pipeline();
        let _: () = pipeline.hget(&keys.sale, "remaining").await.or_store()?;
        let _: () = pipeline.get(keys.room_used()).await.or_store()?;
        let _: () = pipeline
            .zcount(keys.holds(), open_since as f64, f64::INFINITY)
            .await
            .or_store()?;
        let (remaining, used, held): (Option<i64>, Option<i64>, i64) =
            pipeline.all().await.or_store()?;
        let mut args = vec![
            STEP_MS.to_string(),
            MAX_TICK_MS.to_string(),
            MAX_OVERBOOKING.to_string(),
            remaining.unwrap_or(0).to_string(),
            used.unwrap_or(0).to_string(),
            held.to_string(),
        ];
        args.extend_from_slice(mode);
        let reply: Vec<String> = self
            .queue_step
            .evalsha_with_reload(
                &self.client,
                vec![
                    keys.room(),
                    keys.room_batches(),
                    keys.room_batch_uses(),
                    keys.room_seed(),
                ],
                args,
            )
            .await
            .or_store()?;
        if reply.is_empty() {
            return Ok(None);
        }
        if mode.is_empty() {
            // A step may admit: the admissions it hands out are promises.
            self.durable(&keys).await?;
        }
        parse_state(reply).map(Some)
    }
}

impl SpentAdmissions for RedisStore {
    async fn spent_by(&self, sale: &SaleId, index: u64) -> Result<Option<uuid::Uuid>, StoreError> {
        let keys = SaleKeys::new(sale);
        let order: Option<String> = self
            .client
            .hget(keys.room_spent(), index)
            .await
            .or_store()?;
        order
            .map(|o| {
                uuid::Uuid::parse_str(&o)
                    .map_err(|_| failed(format!("wr:spent: not an order id {o:?}")))
            })
            .transpose()
    }
}

impl QueueControls for RedisStore {
    async fn control(
        &self,
        sale: &SaleId,
        paused: Option<bool>,
        pace: Option<Option<u32>>,
    ) -> Result<bool, StoreError> {
        let keys = SaleKeys::new(sale);
        let done: i64 = self
            .queue_control
            .evalsha_with_reload(
                &self.client,
                vec![keys.room()],
                vec![
                    match paused {
                        Some(true) => "1".to_owned(),
                        Some(false) => "0".to_owned(),
                        None => String::new(),
                    },
                    match pace {
                        None => String::new(),
                        Some(None) => "auto".to_owned(),
                        Some(Some(n)) => n.to_string(),
                    },
                ],
            )
            .await
            .or_store()?;
        Ok(done == 1)
    }
}

/// Places read per HSCAN call: a few ms of Redis' time each, so the cohort's read never holds
/// Redis up for long, whatever the queue's size.
const SCAN_COUNT: u32 = 1_000;

impl JoinLists for RedisStore {
    async fn cohort(
        &self,
        sale: &SaleId,
        epoch: u64,
        cohort: u64,
    ) -> Result<Option<Vec<Option<BuyerId>>>, StoreError> {
        let keys = SaleKeys::new(sale);
        let places = keys.room_places();
        let hscan = CustomCommand::new_static("HSCAN", ClusterHash::FirstKey, false);
        let mut buyers: Vec<Option<BuyerId>> = vec![None; cohort as usize];
        let mut cursor = "0".to_owned();
        loop {
            let (next, page): (String, Vec<String>) = self
                .client
                .custom(
                    hscan.clone(),
                    vec![
                        places.clone(),
                        cursor,
                        "COUNT".to_owned(),
                        SCAN_COUNT.to_string(),
                    ],
                )
                .await
                .or_store()?;
            for pair in page.chunks(2) {
                let [buyer, index] = pair else { continue };
                let Ok(index) = index.parse::<u64>() else {
                    return Err(failed(format!("wr:places: bad index {index:?}")));
                };
                if let Some(slot) = buyers.get_mut(index as usize) {
                    *slot = BuyerId::parse(buyer).ok();
                }
            }
            if next == "0" {
                break;
            }
            cursor = next;
        }
        // Read after the places: a queue lost and rebuilt meanwhile is not this epoch's.
        let now: Option<String> = self.client.hget(keys.room(), "epoch").await.or_store()?;
        Ok((now.as_deref() == Some(epoch.to_string().as_str())).then_some(buyers))
    }

    async fn claim_finalize(
        &self,
        sale: &SaleId,
        epoch: u64,
        lease_ms: i64,
    ) -> Result<bool, StoreError> {
        let keys = SaleKeys::new(sale);
        let taken: i64 = self
            .queue_claim_draw
            .evalsha_with_reload(
                &self.client,
                vec![keys.room()],
                vec![epoch.to_string(), lease_ms.to_string()],
            )
            .await
            .or_store()?;
        Ok(taken == 1)
    }

    async fn finalize(
        &self,
        sale: &SaleId,
        epoch: u64,
        draw: &FinalDraw,
        leaves: &[Hash],
    ) -> Result<bool, StoreError> {
        let keys = SaleKeys::new(sale);
        let (round, randomness, signature) = match &draw.beacon {
            Some(b) => (
                b.round.to_string(),
                hex::encode(b.randomness),
                hex::encode(&b.signature),
            ),
            None => Default::default(),
        };
        let blob: Vec<u8> = leaves.concat();
        let args: Vec<Value> = vec![
            epoch.to_string().into(),
            hex::encode(draw.join_root).into(),
            round.into(),
            randomness.into(),
            signature.into(),
            Value::Bytes(blob.into()),
        ];
        let done: i64 = self
            .queue_finalize
            .evalsha_with_reload(&self.client, vec![keys.room(), keys.room_leaves()], args)
            .await
            .or_store()?;
        if done == 1 {
            // The order it fixes is published: a promise, kept through a failover.
            self.durable(&keys).await?;
        }
        Ok(done == 1)
    }

    async fn leaves(&self, sale: &SaleId, epoch: u64) -> Result<Option<Vec<Hash>>, StoreError> {
        let keys = SaleKeys::new(sale);
        let pipeline = self.client.pipeline();
        let _: () = pipeline.hget(keys.room(), "epoch").await.or_store()?;
        let _: () = pipeline.get(keys.room_leaves()).await.or_store()?;
        let (at, blob): (Option<String>, Option<Vec<u8>>) = pipeline.all().await.or_store()?;
        if at.as_deref() != Some(epoch.to_string().as_str()) {
            return Ok(None);
        }
        let Some(blob) = blob else { return Ok(None) };
        if blob.len() % 32 != 0 {
            return Err(failed(format!(
                "wr:leaves: {} bytes is not whole leaves",
                blob.len()
            )));
        }
        Ok(Some(
            blob.chunks_exact(32)
                .map(|c| {
                    let mut h = [0u8; 32];
                    h.copy_from_slice(c);
                    h
                })
                .collect(),
        ))
    }
}

/// `queue_step.lua`'s reply: field/value pairs, then `batches` and the live batches.
fn parse_state(reply: Vec<String>) -> Result<QueueState, StoreError> {
    let split = reply
        .iter()
        .position(|f| f == "batches")
        .ok_or_else(|| failed("queue_step.lua: no batches".into()))?;
    let fields: HashMap<&str, &str> = reply[..split]
        .chunks(2)
        .filter_map(|p| Some((p.first()?.as_str(), p.get(1)?.as_str())))
        .collect();
    let text = |k: &str| fields.get(k).copied().unwrap_or_default();
    let int = |k: &str| -> Result<i64, StoreError> {
        let v = text(k);
        if v.is_empty() {
            return Ok(0);
        }
        v.parse()
            .map_err(|_| failed(format!("queue_step.lua: bad {k} {v:?}")))
    };
    let batches = reply[split + 1..]
        .iter()
        .map(|b| parse_batch(b))
        .collect::<Result<Vec<_>, _>>()?;
    let drawn = match (text("cohort"), fields.get("seed")) {
        ("", _) | (_, None) => None,
        (_, Some(seed)) => Some((
            Seed::from_hex(seed).ok_or_else(|| failed("queue_step.lua: bad seed".into()))?,
            int("cohort")? as u64,
        )),
    };
    let final_draw = match (&drawn, text("join_root")) {
        (Some((seed, _)), root) if !root.is_empty() => Some(parse_final(seed, &fields)?),
        _ => None,
    };
    Ok(QueueState {
        final_draw,
        now_ms: int("now_ms")?,
        opens_at_ms: int("opens_ms")?,
        sale_opens_at_ms: int("sale_opens_ms")?,
        admission_ms: int("admission_ms")?,
        pow_bits: int("pow_bits")? as u8,
        commitment: text("commitment").to_owned(),
        drawn,
        joined: int("joined")? as u64,
        admitted: int("admitted")? as u64,
        used: int("used")? as u64,
        expired: int("expired")? as u64,
        batches,
        paused: !text("paused").is_empty(),
        pace: text("pace").parse().ok(),
        admit_rate: text("rate").parse().unwrap_or(0.0),
        sold_out: text("sold_out") == "1",
        remaining: int("remaining")?,
        held: int("held")?.max(0) as u64,
        closed: text("closed") == "1",
        epoch: int("epoch")? as u64,
        entry: match text("entry") {
            "" => None,
            json => Some(
                serde_json::from_str(json)
                    .map_err(|e| failed(format!("queue_step.lua: bad entry policy: {e}")))?,
            ),
        },
        stepped: (int("stepped")? as u64, int("stepped_expired")? as u64),
    })
}

/// The final draw's fields (`queue_finalize.lua`): the root, and the round unless it fell back.
fn parse_final(seed: &Seed, fields: &HashMap<&str, &str>) -> Result<FinalDraw, StoreError> {
    let text = |k: &str| fields.get(k).copied().unwrap_or_default();
    let bad = |k: &str| failed(format!("queue_step.lua: bad {k} {:?}", text(k)));
    let hash = |k: &str| -> Result<Hash, StoreError> {
        hex::decode(text(k))
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| bad(k))
    };
    let beacon = match text("beacon_round") {
        "" => None,
        round => Some(BeaconRound {
            round: round.parse().map_err(|_| bad("beacon_round"))?,
            randomness: hash("beacon_randomness")?,
            signature: hex::decode(text("beacon_signature"))
                .map_err(|_| bad("beacon_signature"))?,
        }),
    };
    Ok(FinalDraw::new(seed, hash("join_root")?, beacon))
}

fn parse_batch(b: &str) -> Result<Batch, StoreError> {
    let n: Vec<i64> = b
        .split(' ')
        .map(str::parse)
        .collect::<Result<_, _>>()
        .map_err(|_| failed(format!("queue_step.lua: bad batch {b:?}")))?;
    match n.as_slice() {
        [id, first, last, expires_ms] => Ok(Batch {
            id: *id as u64,
            first: *first as u64,
            last: *last as u64,
            expires_ms: *expires_ms,
        }),
        _ => Err(failed(format!("queue_step.lua: bad batch {b:?}"))),
    }
}
