//! Operator work on a sale that spans the ledger, the sale cache (Redis) and the status store:
//! rebuilding the cache from the ledger after it lost a sale, and resetting a sale safely. It runs
//! on the ports, so its tests run on the in-memory adapters as well as on the real ones.

use crate::domain::rehydrate::plan;
use crate::domain::{OrderMessage, SaleId};
use crate::ports::{
    DbError, PendingOrders, ResetStart, SaleLedger, SaleLoader, SaleResets, StatusStore, StoreError,
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
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// What a rehydration found and did.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
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

/// Make Redis hold the sale as the ledger and the outbox say (see
/// [`crate::domain::rehydrate`]). Safe on a live sale: it never raises the remaining stock and
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
    let p = plan(
        r.definition.stock,
        r.taken_for_redis(),
        r.round,
        &ledger.bought,
        &ledger.keys,
        &pending,
    );
    let loaded_anew = store.rehydrate(&r.definition, &p).await?;
    let done = Rehydrated {
        loaded_anew,
        remaining: p.remaining,
        buyers: p.buyers.len(),
        idempotency_keys: p.keys.len(),
        pending: pending.len(),
    };
    info!(sale = %id, loaded_anew, remaining = done.remaining, buyers = done.buyers,
        keys = done.idempotency_keys, pending = done.pending, "sale rehydrated");
    Ok(done)
}

/// What a reset did.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
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
/// [`AdminError::NotFound`], [`AdminError::Pending`] and [`AdminError::Held`] (nothing changed), or store and database
/// failures (the sale may stay frozen until the reset is run again).
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
    let def = db
        .reset_sale(id, stock, round)
        .await?
        .ok_or_else(|| AdminError::NotFound(id.clone()))?;
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
mod tests {
    use super::*;
    use crate::adapters::memory::{MemoryLedger, MemoryStatus, MemoryStore};
    use crate::domain::{BuyerId, Quantity, Reservation, ReserveRequest, SaleDefinition};
    use crate::ports::prelude::*;

    struct World {
        ledger: MemoryLedger,
        store: MemoryStore,
        status: MemoryStatus,
        def: SaleDefinition,
    }

    async fn world(stock: u32) -> World {
        let def = crate::testing::contract::sale(&SaleId::parse("admin-sale").unwrap(), stock);
        let w = World {
            ledger: MemoryLedger::default(),
            store: MemoryStore::default(),
            status: MemoryStatus::default(),
            def,
        };
        w.ledger.create_sale(&w.def).await.unwrap();
        rehydrate(&w.ledger, &w.store, &w.def.id).await.unwrap();
        w
    }

    async fn buy(w: &World, buyer: &str) -> Reservation {
        let req = ReserveRequest {
            order_id: uuid::Uuid::now_v7(),
            sale: w.def.id.clone(),
            buyer: BuyerId::parse(buyer).unwrap(),
            quantity: Quantity::default(),
            idempotency_key: None,
        };
        w.store.reserve(&req).await.unwrap()
    }

    #[tokio::test]
    async fn a_cache_that_lost_the_sale_is_rebuilt_from_the_ledger_with_each_buyers_count() {
        use crate::ports::Ledger;
        let w = world(3).await;
        let Reservation::Reserved { message, .. } = buy(&w, "a").await else {
            panic!("reserved");
        };
        let settled = crate::domain::OrderMessage::parse(&message).unwrap();
        w.ledger.settle_orders(&[settled]).await.unwrap();
        w.store.flush();
        let done = rehydrate(&w.ledger, &w.store, &w.def.id).await.unwrap();
        assert!(done.loaded_anew);
        assert_eq!((done.remaining, done.buyers), (2, 1));
        assert!(
            matches!(buy(&w, "a").await, Reservation::Refused(_)),
            "the buyer's limit survived the loss"
        );
        let again = rehydrate(&w.ledger, &w.store, &w.def.id).await.unwrap();
        assert!(!again.loaded_anew, "a live sale is not loaded anew");
    }

    #[tokio::test]
    async fn a_rebuild_of_a_live_sale_never_hands_out_its_pending_stock_again() {
        let w = world(2).await;
        assert!(matches!(buy(&w, "a").await, Reservation::Reserved { .. }));
        let done = rehydrate(&w.ledger, &w.store, &w.def.id).await.unwrap();
        assert_eq!((done.remaining, done.pending), (1, 1));
        assert_eq!(w.store.remaining(&w.def.id), Some(1));
    }

    #[tokio::test]
    async fn a_reset_is_refused_while_orders_are_pending_and_a_forced_one_records_them() {
        let w = world(2).await;
        assert!(matches!(buy(&w, "a").await, Reservation::Reserved { .. }));
        let refused = reset(&w.ledger, &w.store, &w.status, &w.def.id, None, false).await;
        assert!(matches!(
            refused,
            Err(AdminError::Pending { pending: 1, .. })
        ));
        assert_eq!(w.ledger.sale(&w.def.id).await.unwrap().unwrap().round, 1);
        let done = reset(&w.ledger, &w.store, &w.status, &w.def.id, Some(5), true)
            .await
            .unwrap();
        assert_eq!(
            (done.round, done.cancelled, done.status_write_failures),
            (2, 1, 0)
        );
        assert_eq!(w.status.len(), 1, "the cancelled order's status is written");
        let live = w.store.live_sale(&w.def.id).await.unwrap().unwrap();
        assert_eq!((live.stock, live.remaining, live.pending), (5, 5, 0));
    }

    #[tokio::test]
    async fn a_reset_stopped_after_the_freeze_takes_no_buys_and_running_it_again_finishes_it() {
        let w = world(2).await;
        let Reservation::Reserved { order_id, .. } = buy(&w, "a").await else {
            panic!("reserved");
        };
        // A forced reset that died after its first step.
        let started = w.store.begin_reset(&w.def.id, 2, true).await.unwrap();
        assert!(
            matches!(started, ResetStart::Frozen { round: 2, ref dropped } if dropped.len() == 1)
        );
        let req = ReserveRequest {
            order_id: uuid::Uuid::now_v7(),
            sale: w.def.id.clone(),
            buyer: BuyerId::parse("b").unwrap(),
            quantity: Quantity::default(),
            idempotency_key: None,
        };
        assert!(
            matches!(w.store.reserve(&req).await, Err(StoreError::Unavailable(_))),
            "a frozen sale takes no buy"
        );
        // Run again (even unforced): it resumes the reset under way.
        let done = reset(&w.ledger, &w.store, &w.status, &w.def.id, None, false)
            .await
            .unwrap();
        assert_eq!((done.round, done.cancelled), (2, 1));
        assert_eq!(
            w.status.get(order_id).await.unwrap().unwrap().status,
            crate::domain::OrderState::Rejected,
            "the order moved aside is recorded"
        );
        assert!(matches!(
            w.store.reserve(&req).await,
            Ok(Reservation::Reserved { .. })
        ));
    }

    #[tokio::test]
    async fn a_reset_stopped_after_the_ledger_moved_resumes_in_the_same_round() {
        let w = world(2).await;
        assert!(matches!(buy(&w, "a").await, Reservation::Reserved { .. }));
        w.store.begin_reset(&w.def.id, 2, true).await.unwrap();
        w.ledger.reset_sale(&w.def.id, None, 2).await.unwrap();
        let done = reset(&w.ledger, &w.store, &w.status, &w.def.id, None, true)
            .await
            .unwrap();
        assert_eq!((done.round, done.cancelled), (2, 1), "not a second round");
        assert_eq!(w.ledger.sale(&w.def.id).await.unwrap().unwrap().round, 2);
        let live = w.store.live_sale(&w.def.id).await.unwrap().unwrap();
        assert_eq!((live.remaining, live.pending), (2, 0));
    }

    #[tokio::test]
    async fn a_reset_that_is_not_forced_changes_nothing_while_an_order_is_pending() {
        let w = world(2).await;
        assert!(matches!(buy(&w, "a").await, Reservation::Reserved { .. }));
        assert!(matches!(
            reset(&w.ledger, &w.store, &w.status, &w.def.id, None, false).await,
            Err(AdminError::Pending { .. })
        ));
        assert!(
            matches!(buy(&w, "b").await, Reservation::Reserved { .. }),
            "not frozen: buys go on"
        );
        assert_eq!(w.store.outbox(&w.def.id).len(), 2);
    }

    #[tokio::test]
    async fn operator_work_on_an_unknown_sale_is_not_found() {
        let w = world(1).await;
        let other = SaleId::parse("nobody").unwrap();
        assert!(matches!(
            rehydrate(&w.ledger, &w.store, &other).await,
            Err(AdminError::NotFound(_))
        ));
        assert!(matches!(
            reset(&w.ledger, &w.store, &w.status, &other, None, true).await,
            Err(AdminError::NotFound(_))
        ));
    }
}
