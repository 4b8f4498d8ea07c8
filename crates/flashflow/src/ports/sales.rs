//! Sale administration, on both sides: what the reservation script reads (the cache) and what
//! the ledger holds (the authority).

use super::{DbError, StoreError};
use crate::domain::rehydrate::{KeyHolder, Plan};
use crate::domain::waiting_room::draw::Seed;
use crate::domain::EpochMs;
use crate::domain::{BuyerId, OrderMessage, OrderStatus, SaleDefinition, SaleId};
use std::collections::HashSet;
use std::future::Future;
use std::time::Duration;
use uuid::Uuid;

/// Live counters of a sale as the cache holds them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveSale {
    pub stock: i64,
    pub remaining: i64,
    /// Reservations not yet settled (the outbox).
    pub pending: i64,
    pub per_user_limit: Option<i64>,
    pub opens_at: Option<EpochMs>,
    pub closes_at: Option<EpochMs>,
    /// What the storefront shows (absent for a sale loaded by an older version).
    pub shown: Option<crate::domain::sale::ShownSale>,
    /// Buys answered sold out so far, as the buy processes counted them (see [`AnswerTally`]).
    pub sold_out_answers: i64,
    /// When the sale's waiting room opens, if it has one.
    pub queue_opens_at: Option<EpochMs>,
    /// Who may join the waiting room (`None`: any buyer), so the storefront can say so first.
    pub entry: Option<crate::domain::waiting_room::entry::Entry>,
}

/// Counts of answers the buy processes gave, per sale, for the live view: added in batches, off
/// the buyers' path, so counting costs the hot path nothing.
pub trait AnswerTally: Send + Sync + 'static {
    /// Add `n` sold-out answers to each sale's count.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails (the counts are then lost: they feed a view only).
    fn add_sold_out(
        &self,
        counts: &[(SaleId, u64)],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// What [`SaleResets::begin_reset`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResetStart {
    /// Orders are reserved and not settled: nothing changed.
    Pending(i64),
    /// The sale is frozen for the reset to `round` (or the store does not hold it); `dropped` are
    /// the order messages moved out of its outbox, still to be recorded.
    Frozen { round: u32, dropped: Vec<String> },
}

/// The sale as the reservation script sees it (Redis): loaded from the ledger, rebuilt after a
/// loss ([`SaleLoader`]), reset to a new round ([`SaleResets`]), read ([`LiveSales`]), retired
/// when finished ([`SaleRetirement`]); [`SaleCache`] is all of them.
pub trait SaleLoader: Send + Sync + 'static {
    /// Make the cache hold the sale as `plan` says: buyers' counts and idempotency keys first,
    /// then the sale itself, so buys (refused as an unknown sale until then) start against the
    /// complete state. On a live sale of the same round it never raises the remaining stock and
    /// never lowers a count. Returns whether the sale was loaded anew (it was missing, or from
    /// another round).
    ///
    /// # Errors
    /// [`StoreError`] when the store fails; the call can be repeated.
    fn rehydrate(
        &self,
        def: &SaleDefinition,
        plan: &Plan,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// A sale's next round in the cache.
pub trait SaleResets: Send + Sync + 'static {
    /// Begin a reset to `round`, in one step with its pending check: when orders are reserved
    /// and not settled and `force` is off, nothing changes ([`ResetStart::Pending`]); otherwise
    /// the sale is frozen (buys are refused, nothing reserved, until
    /// [`SaleResets::finish_reset`]) and its outbox is moved aside for the caller to record. When a
    /// reset is already under way this answers that one's round and orders, whatever `round` and
    /// `force` say, so a reset that stopped half-way is resumed by running it again.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails; then nothing changed, or the sale is frozen and the
    /// call can be repeated.
    fn begin_reset(
        &self,
        sale: &SaleId,
        round: u32,
        force: bool,
    ) -> impl Future<Output = Result<ResetStart, StoreError>> + Send;

    /// Finish the reset to `round` begun by [`SaleResets::begin_reset`]: full stock, no buyers,
    /// keys or outbox, and buys are taken again. Repeating it changes nothing.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails (the call can be repeated), or when a reset to another
    /// round is under way.
    fn finish_reset(
        &self,
        def: &SaleDefinition,
        round: u32,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Start the sale's `round` at once, forced: [`SaleResets::begin_reset`] then
    /// [`SaleResets::finish_reset`]. Returns the outbox's messages as they were, reserved orders
    /// the caller must still record. For tests and tools; the operator's reset is
    /// `flashflow_app::admin::reset`.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails.
    fn reset_sale(
        &self,
        def: &SaleDefinition,
        round: u32,
    ) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send {
        async move {
            let dropped = match self.begin_reset(&def.id, round, true).await? {
                ResetStart::Frozen { dropped, .. } => dropped,
                ResetStart::Pending(_) => Vec::new(),
            };
            self.finish_reset(def, round).await?;
            Ok(dropped)
        }
    }
}

/// The sales the cache holds and their counters.
pub trait LiveSales: Send + Sync + 'static {
    /// The sale's live counters, or `None` when the cache does not hold the sale.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails.
    fn live_sale(
        &self,
        sale: &SaleId,
    ) -> impl Future<Output = Result<Option<LiveSale>, StoreError>> + Send;

    /// The sales the cache holds.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails.
    fn sales(&self) -> impl Future<Output = Result<Vec<SaleId>, StoreError>> + Send;
}

/// Sales a Redis failover paused (`REDIS_PAUSE_ON_FAILOVER`): the store's node was promoted since
/// their counts were rebuilt, so it may lack the old primary's last writes; buys take nothing
/// until the operator rebuilds them from the ledger.
pub trait FailoverPauses: Send + Sync + 'static {
    /// Whether a failover paused `sale` (always `false` when pausing is off, or for a sale the
    /// store does not hold).
    ///
    /// # Errors
    /// [`StoreError`] when the store fails.
    fn paused_by_failover(
        &self,
        sale: &SaleId,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// How long past its last hold's `pay_by` a checkout sale may still get units back: the expiry
/// job (every minute) ends every hold well within it. Until then the sale is not finished.
pub const HOLDS_END_WITHIN: Duration = Duration::from_secs(600);

/// Finished sales leave the cache.
pub trait SaleRetirement: Send + Sync + 'static {
    /// Retire a finished sale (sold out or closed at `now`, nothing in its outbox, and for a
    /// checkout sale no hold that may still end and give units back: its last `pay_by` is more
    /// than [`HOLDS_END_WITHIN`] before `now`): its keys
    /// expire after `ttl` and it leaves [`LiveSales::sales`]. Returns whether it was retired.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails.
    fn retire_if_finished(
        &self,
        sale: &SaleId,
        now: EpochMs,
        ttl: Duration,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// The whole sale cache.
pub trait SaleCache: SaleLoader + SaleResets + LiveSales + SaleRetirement {}

impl<T: SaleLoader + SaleResets + LiveSales + SaleRetirement> SaleCache for T {}

/// What [`SaleLedger::create_sale`] found.
#[derive(Debug)]
pub enum CreateOutcome {
    Created,
    /// The same sale was created before (a retried request).
    AlreadyExists(SaleRecord),
    /// A different sale already has this id.
    Conflict(SaleRecord),
}

/// What [`SaleLedger::reset_sale`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LedgerReset {
    /// The sale is in the asked round now (or was already): its definition.
    Started(SaleDefinition),
    /// No such sale.
    NoSuchSale,
    /// Nothing changed: these orders are held for payment or their follow-up is not done yet.
    OrdersInPlay(u64),
}

impl LedgerReset {
    /// The definition, when the round started.
    pub fn started(self) -> Option<SaleDefinition> {
        match self {
            Self::Started(def) => Some(def),
            _ => None,
        }
    }
}

/// A sale as the ledger holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaleRecord {
    pub definition: SaleDefinition,
    pub confirmed_quantity: u32,
    pub confirmed_orders: u64,
    pub rejected_orders: u64,
    pub duplicate_orders: u64,
    /// Incremented by every reset.
    pub round: u32,
    /// A checkout sale's counts (all 0 for an instant sale).
    pub checkout: CheckoutCounts,
}

/// Where a checkout sale's orders stand in the ledger.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
pub struct CheckoutCounts {
    /// Quantity of held orders (waiting for payment).
    pub held_quantity: u32,
    pub held_orders: u64,
    pub expired_orders: u64,
    pub cancelled_orders: u64,
    pub refunded_orders: u64,
    /// Quantity of ended holds (expired, cancelled) whose units Postgres took back but Redis did
    /// not yet: the expiry job gives them back there, so a rebuild of Redis counts them as taken.
    pub unreturned_quantity: u32,
}

impl SaleRecord {
    /// What may still be sold according to the ledger (neither confirmed nor held).
    pub fn available(&self) -> u32 {
        self.definition
            .stock
            .saturating_sub(self.confirmed_quantity + self.checkout.held_quantity)
    }

    /// What a rebuild of Redis counts as taken: confirmed, held, and returned in Postgres only.
    pub fn taken_for_redis(&self) -> u32 {
        self.confirmed_quantity + self.checkout.held_quantity + self.checkout.unreturned_quantity
    }
}

/// What [`SaleLedger::ledger_of`] found.
#[derive(Debug, Clone)]
pub struct LedgerOfSale {
    pub record: SaleRecord,
    /// Each buyer's confirmed or held quantity in this round (an ended hold's unit is back for
    /// its buyer too: Redis keeps the larger of this and its own count, so a live sale's buyer
    /// keeps the hold counted until its return reaches Redis).
    pub bought: Vec<(BuyerId, i64)>,
    /// Each idempotency key's order in this round.
    pub keys: Vec<KeyHolder>,
    /// This round's holds whose unit may still come back (held, or ended with the unit not yet
    /// back in Redis), each with its `pay_by`.
    pub holds: Vec<(Uuid, EpochMs)>,
    /// This round's ended holds (expired, cancelled, refunded), whatever their return's flag.
    pub ended: Vec<Uuid>,
    /// Those of the asked-for order ids that are recorded (in any round).
    pub settled: HashSet<Uuid>,
}

/// The sale as the ledger holds it (Postgres), for operators.
pub trait SaleLedger: Send + Sync + 'static {
    /// Insert a sale, or find the identical one already there.
    ///
    /// # Errors
    /// [`DbError`] when the database fails.
    fn create_sale(
        &self,
        def: &SaleDefinition,
    ) -> impl Future<Output = Result<CreateOutcome, DbError>> + Send;

    /// A sale with its settlement counters, or `None`.
    ///
    /// # Errors
    /// [`DbError`] when the database fails.
    fn sale(&self, id: &SaleId)
        -> impl Future<Output = Result<Option<SaleRecord>, DbError>> + Send;

    /// Start the sale's `round`, the one after its current one: its orders move to the archive
    /// (kept, and still the answer for their ids), its confirmed count goes back to zero, and
    /// optionally a new stock is set. When the sale is in `round` already (a repeated reset),
    /// nothing changes. Refused, in the same transaction, while an order is held for payment or
    /// an ended hold's follow-up is not done: archived, its payment could not be recorded.
    ///
    /// # Errors
    /// [`DbError::Raced`] when the sale is in neither round (another reset ran); [`DbError`] when
    /// the database fails; then nothing changed.
    fn reset_sale(
        &self,
        id: &SaleId,
        stock: Option<u32>,
        round: u32,
    ) -> impl Future<Output = Result<LedgerReset, DbError>> + Send;

    /// Record reserved orders that a forced reset took out of the cache before they settled: as
    /// rejected, in their round's history, unless already recorded. Returns every one's status as
    /// recorded, for the status store.
    ///
    /// # Errors
    /// [`DbError`] when the database fails.
    fn cancel_orders(
        &self,
        orders: &[OrderMessage],
    ) -> impl Future<Output = Result<Vec<OrderStatus>, DbError>> + Send;

    /// What this round of the sale holds, for rebuilding the cache: the sale, each buyer's
    /// confirmed quantity, each idempotency key's order, and which of `pending` (order ids from
    /// the outbox) are already recorded.
    ///
    /// # Errors
    /// [`DbError`] when the database fails.
    fn ledger_of(
        &self,
        id: &SaleId,
        pending: &[Uuid],
    ) -> impl Future<Output = Result<Option<LedgerOfSale>, DbError>> + Send;

    /// The sale's waiting-room draw seed: the one it was given before, or else `fresh`, given now
    /// and kept (whoever asks first; never replaced, so the published commitment survives any
    /// loss of Redis). `None` for a sale the ledger does not have.
    ///
    /// # Errors
    /// [`DbError`] when the database fails.
    fn draw_seed(
        &self,
        id: &SaleId,
        fresh: &Seed,
    ) -> impl Future<Output = Result<Option<Seed>, DbError>> + Send;
}
