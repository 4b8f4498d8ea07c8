//! Operator work on a sale that spans the ledger, the sale cache (Redis) and the status store:
//! rebuilding the cache from the ledger after it lost a sale, and resetting a sale safely. It runs
//! on the ports, so its tests run on the in-memory adapters as well as on the real ones.

use flashflow::domain::rehydrate::plan;
use flashflow::domain::{OrderMessage, SaleId};
use flashflow::ports::{
    DbError, FailoverPauses, LedgerReset, PendingOrders, QueueDepths, ResetStart, SaleLedger,
    SaleLoader, SaleResets, StatusStore, StoreError,
};
use serde::Serialize;
use tracing::{info, warn};

/// Why an operator action on a sale did not happen.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("no sale with id {0}")]
    NotFound(SaleId),
    /// Reset refused: orders were answered 202 and are not settled yet.
    #[error("sale {sale} has {pending} reserved orders not settled yet")]
    Pending { sale: SaleId, pending: i64 },
    /// Reset refused: a checkout sale has orders held for payment. A reset would archive them
    /// while their buyers can still pay, and such a payment could not be recorded.
    #[error("sale {sale} has {held} orders held for payment")]
    Held { sale: SaleId, held: u64 },
    /// The reset began (the sale is frozen: buys answer 503, nothing is taken) and then found
    /// orders still in play in the ledger (a hold, or a return or status still being written);
    /// it resumes where it stopped when run again once they end.
    #[error("sale {sale}'s reset waits for {in_play} orders in play")]
    ResetWaits { sale: SaleId, in_play: u64 },
    /// Reset refused: the sale's waiting room published its draw's commitment for this round;
    /// a second round would reuse a seed that may be revealed.
    #[error("sale {0} has a waiting room")]
    WaitingRoom(SaleId),
    /// Rebuild refused: a Redis failover paused the sale and the orders queue is not empty (or
    /// could not be asked). Orders the old primary answered may be in it and nowhere else (the
    /// promoted node may lack their reservations, the ledger has not recorded them yet): a
    /// rebuild now would not count them, and the sale would promise units Postgres then refuses.
    #[error("sale {sale} was paused by a failover; the orders queue holds {in_queue:?} messages")]
    QueueNotDrained { sale: SaleId, in_queue: Option<i64> },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// What a rehydration found and did.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Rehydrated {
    /// Redis did not hold the sale (or held an earlier round) and got it anew.
    pub loaded_anew: bool,
    /// Stock Redis may still hand out after the rebuild.
    pub remaining: i64,
    pub buyers: usize,
    pub idempotency_keys: usize,
    /// Outbox entries not in the ledger yet, counted as reserved.
    pub pending: usize,
}

/// [`rehydrate`], but a sale a Redis failover paused (`REDIS_PAUSE_ON_FAILOVER`) only once the
/// orders queue is empty, unless `force`d: by then settle has recorded every order that was in
/// flight, so the rebuild counts them all, and the sale resumes with counts Postgres agrees with.
///
/// # Errors
/// [`AdminError::QueueNotDrained`] while messages wait (ask again once settle drained them);
/// otherwise as [`rehydrate`].
pub async fn rebuild<
    L: SaleLedger,
    C: SaleLoader + PendingOrders + FailoverPauses,
    Q: QueueDepths,
>(
    db: &L,
    store: &C,
    queue: &Q,
    id: &SaleId,
    force: bool,
) -> Result<Rehydrated, AdminError> {
    if !force && store.paused_by_failover(id).await? {
        let (in_queue, _) = queue.depths().await;
        if in_queue != Some(0) {
            info!(sale = %id, ?in_queue, "failover pause: the rebuild waits for the queue to drain");
            return Err(AdminError::QueueNotDrained {
                sale: id.clone(),
                in_queue,
            });
        }
    }
    rehydrate(db, store, id).await
}

/// Make Redis hold the sale as the ledger and the outbox say (see
/// [`flashflow::domain::rehydrate`]). Safe on a live sale: it never raises the remaining stock and
/// never lowers a buyer's count. Also the way a sale is loaded after it is created.
///
/// # Errors
/// [`AdminError::NotFound`] for a sale the ledger does not have; store or database failures
/// (the call can be repeated).
pub async fn rehydrate<L: SaleLedger, C: SaleLoader + PendingOrders>(
    db: &L,
    store: &C,
    id: &SaleId,
) -> Result<Rehydrated, AdminError> {
    // The outbox before the ledger: an order settled in between is then in both, and counted once.
    let outbox: Vec<OrderMessage> = store
        .entries(id)
        .await?
        .into_iter()
        .filter_map(|(order, body)| match OrderMessage::parse(&body) {
            Ok(m) => Some(m),
            Err(e) => {
                warn!(sale = %id, order = %order, error = %e, "unreadable outbox entry skipped");
                None
            }
        })
        .collect();
    let ids: Vec<uuid::Uuid> = outbox.iter().map(|o| o.order_id).collect();
    let ledger = db
        .ledger_of(id, &ids)
        .await?
        .ok_or_else(|| AdminError::NotFound(id.clone()))?;
    let pending: Vec<OrderMessage> = outbox
        .into_iter()
        .filter(|o| !ledger.settled.contains(&o.order_id))
        .collect();
    let r = &ledger.record;
    let mut p = plan(
        r.definition.stock,
        r.taken_for_redis(),
        r.checkout.unreturned_quantity,
        r.round,
        &ledger.bought,
        &ledger.keys,
        &ledger.holds,
        &ledger.ended,
        &pending,
    );
    if r.definition.waiting_room.is_some() {
        // The ledger's seed, given once: a rebuild restores the queue's published commitment.
        p.draw_seed = db.draw_seed(id, &fresh_seed()?).await?;
    }
    let loaded_anew = store.rehydrate(&r.definition, &p).await?;
    let done = Rehydrated {
        loaded_anew,
        remaining: if loaded_anew {
            p.remaining_if_new
        } else {
            p.remaining
        },
        buyers: p.buyers.len(),
        idempotency_keys: p.keys.len(),
        pending: pending.len(),
    };
    info!(sale = %id, loaded_anew, remaining = done.remaining, buyers = done.buyers,
        keys = done.idempotency_keys, pending = done.pending, "sale rehydrated");
    Ok(done)
}

/// 32 bytes from the operating system's generator: a draw's seed nobody can guess.
fn fresh_seed() -> Result<flashflow::domain::waiting_room::draw::Seed, AdminError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| AdminError::Store(StoreError::Failed(e.to_string().into())))?;
    Ok(flashflow::domain::waiting_room::draw::Seed::new(bytes))
}

/// What a reset did.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Reset {
    /// The round that starts now.
    pub round: u32,
    /// Reserved, unsettled orders of the earlier round recorded as rejected (forced reset).
    pub cancelled: usize,
    /// Of those, statuses the status store did not take (the orders are recorded in Postgres;
    /// their status reads as not found until written).
    pub status_write_failures: usize,
}

/// Start the sale's next round. Refused while orders are reserved and unsettled, unless
/// `force`: then those orders are recorded as rejected, and their statuses written, instead of
/// being forgotten. Settled history moves to the archive, where it keeps answering for its order
/// ids; messages of the earlier round still in flight settle there, as rejected.
///
/// The steps, each safe to repeat: the cache checks for pending orders and freezes the sale in
/// one atomic step (from then on no buy is taken, so none answered 202 can be caught by the
/// reset unless forced); the ledger starts the round and records the orders moved aside; the
/// cache starts the round and takes buys again. When a step fails the sale stays frozen (buys
/// answer 503, nothing reserved) and running the reset again resumes it where it stopped.
///
/// # Errors
/// [`AdminError::NotFound`], [`AdminError::Pending`] and [`AdminError::Held`] (nothing changed);
/// [`AdminError::ResetWaits`], store and database failures (the sale may stay frozen until the
/// reset is run again).
pub async fn reset<L: SaleLedger, C: SaleResets, S: StatusStore>(
    db: &L,
    store: &C,
    status: &S,
    id: &SaleId,
    stock: Option<u32>,
    force: bool,
) -> Result<Reset, AdminError> {
    let record = db
        .sale(id)
        .await?
        .ok_or_else(|| AdminError::NotFound(id.clone()))?;
    if record.definition.waiting_room.is_some() {
        return Err(AdminError::WaitingRoom(id.clone()));
    }
    if record.checkout.held_orders > 0 {
        return Err(AdminError::Held {
            sale: id.clone(),
            held: record.checkout.held_orders,
        });
    }
    let (round, dropped) = match store.begin_reset(id, record.round + 1, force).await? {
        ResetStart::Pending(pending) => {
            return Err(AdminError::Pending {
                sale: id.clone(),
                pending,
            })
        }
        ResetStart::Frozen { round, dropped } => (round, dropped),
    };
    let def = match db.reset_sale(id, stock, round).await? {
        LedgerReset::Started(def) => def,
        LedgerReset::NoSuchSale => return Err(AdminError::NotFound(id.clone())),
        // A hold settled after the look above, or a return or status is still being written:
        // the sale stays frozen (buys answer 503, nothing is taken) until the reset is run again
        // once they have ended. The answer says so: the reset did begin.
        LedgerReset::OrdersInPlay(in_play) => {
            warn!(sale = %id, in_play, "reset waits: orders in play");
            return Err(AdminError::ResetWaits {
                sale: id.clone(),
                in_play,
            });
        }
    };
    let orders: Vec<OrderMessage> = dropped
        .iter()
        .filter_map(|body| OrderMessage::parse(body).ok())
        .filter(|o| o.round < round)
        .collect();
    let cancelled = db.cancel_orders(&orders).await?;
    store.finish_reset(&def, round).await?;
    let failures = status.put_all(&cancelled).await.len();
    if failures > 0 {
        warn!(sale = %id, failures, "statuses of cancelled orders not written");
    }
    info!(sale = %id, round, stock = def.stock, cancelled = cancelled.len(), "sale reset");
    Ok(Reset {
        round,
        cancelled: cancelled.len(),
        status_write_failures: failures,
    })
}

#[cfg(test)]
#[path = "admin_tests.rs"]
mod tests;
