//! Redis' side in memory: the same keys a sale has there (sale fields, buyers, idempotency
//! entries, outbox and its index), changed by the same rules as the Lua scripts.

use super::waiting_room::MemRoom;
use super::{lock, switched_off};
use flashflow::domain::rehydrate::{idem_field, idem_value, KeyHolder, Plan};
use flashflow::domain::reservation::{
    attempt, check, not_admitted, not_open_yet, replay, Attempts, KeyEntry, LiveRules,
};
use flashflow::domain::EpochMs;
use flashflow::domain::{
    OrderMessage, Refusal, Reservation, ReserveRequest, SaleDefinition, SaleId,
    ORDER_MESSAGE_VERSION,
};
use flashflow::ports::{
    FailoverPauses, LiveSale, LiveSales, OutboxSweep, PendingOrders, ReservationStore, ResetStart,
    SaleLoader, SaleResets, SaleRetirement, SentMarks, SettledOrders, StaleEntry, StoreError,
    HOLDS_END_WITHIN,
};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use uuid::Uuid;

/// One sale's keys.
#[derive(Debug, Default)]
pub(super) struct MemSale {
    stock: i64,
    pub(super) remaining: i64,
    limit: u32,
    opens_ms: Option<i64>,
    closes_ms: Option<i64>,
    round: u32,
    buyers: HashMap<String, i64>,
    idem: HashMap<String, String>,
    outbox: BTreeMap<Uuid, String>,
    outbox_at: HashMap<Uuid, i64>,
    /// Given an expiry by a retirement.
    expiring: bool,
    /// Attempts per buyer per minute, when the sale limits them.
    attempts_limit: Option<u32>,
    attempts: HashMap<String, Attempts>,
    /// The round a reset under way starts (`begin_reset.lua`'s `resetting`).
    resetting: Option<u32>,
    /// The outbox moved aside by that reset.
    stash: BTreeMap<Uuid, String>,
    /// A checkout sale's hold.
    pub(super) hold_ms: Option<i64>,
    shown: Option<flashflow::domain::sale::ShownSale>,
    sold_out_answers: i64,
    /// Checkout's ended holds whose units came back (`return_stock.lua`'s `returned` hash).
    returned: std::collections::HashSet<Uuid>,
    /// A checkout sale's last reservation's `pay_by` (`reserve.lua`'s `holds_until`).
    pub(super) holds_until: Option<i64>,
    /// A checkout sale's open holds: order id → pay_by (`ff:{sale}:holds`).
    pub(super) holds: BTreeMap<Uuid, i64>,
    /// When its waiting room opens, if it has one: buys need an admission (the `wr` flag).
    queue_opens_ms: Option<i64>,
    /// The waiting room's queue (its keys outlive a load without one, as in Redis).
    room: Option<MemRoom>,
}

impl MemSale {
    fn define(&mut self, def: &SaleDefinition, round: u32) {
        self.stock = i64::from(def.stock);
        self.limit = def.per_user_limit;
        self.opens_ms = def.opens_at_ms;
        self.closes_ms = def.closes_at_ms;
        self.attempts_limit = def.attempts_per_minute;
        self.hold_ms = def.checkout.as_ref().map(|c| c.hold_ms());
        self.shown = Some(flashflow::domain::sale::ShownSale::of(def));
        self.queue_opens_ms = def.waiting_room.as_ref().map(|w| w.opens_at_ms);
        self.round = round;
    }
}

#[derive(Debug, Default)]
struct Keys {
    sales: HashMap<SaleId, MemSale>,
    registry: BTreeSet<SaleId>,
    /// `ff:loaded`: set with the first sale, gone only when the data is lost.
    loaded: bool,
    /// The order keys: each reserved order's message (kept forever here, not for a while).
    orders: HashMap<Uuid, String>,
}

/// The reservation store, the outbox and the sale cache in memory. Cloning shares the data.
#[derive(Clone, Default)]
pub struct MemoryStore {
    keys: Arc<Mutex<Keys>>,
    /// Every `mark_sent` call's mark, whether or not the entry exists (a spy for tests).
    marks: Arc<Mutex<HashMap<Uuid, i64>>>,
    marked: Arc<Notify>,
    down: Arc<AtomicBool>,
    /// Reservations still to run whose answer is then lost (a timeout after the script ran).
    lost_answers: Arc<AtomicUsize>,
}

impl MemoryStore {
    /// Load a new sale with `available` stock at once (a waiting room gets a random seed).
    pub fn load_sale_now(&self, def: &SaleDefinition, available: u32) {
        let mut keys = lock(&self.keys);
        let sale = keys.sales.entry(def.id.clone()).or_default();
        *sale = MemSale::default();
        sale.define(def, 1);
        MemRoom::load(&mut sale.room, def, Some(&crate::contract::random_seed()));
        sale.remaining = i64::from(available);
        keys.registry.insert(def.id.clone());
        keys.loaded = true;
    }

    /// Stock left to reserve, or `None` for an unknown sale.
    pub fn remaining(&self, sale: &SaleId) -> Option<i64> {
        lock(&self.keys).sales.get(sale).map(|s| s.remaining)
    }

    /// The sale's outbox: order id → message.
    pub fn outbox(&self, sale: &SaleId) -> BTreeMap<Uuid, String> {
        lock(&self.keys)
            .sales
            .get(sale)
            .map(|s| s.outbox.clone())
            .unwrap_or_default()
    }

    /// Until when the order was marked as in the queue ([`Outbox::mark_sent`]).
    pub fn marked_until(&self, order_id: Uuid) -> Option<i64> {
        lock(&self.marks).get(&order_id).copied()
    }

    /// Wait (at most `timeout`) until the order is marked as in the queue.
    pub async fn wait_marked(&self, order_id: Uuid, timeout: Duration) -> Option<i64> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Created before the check, so a mark made in between still wakes it.
            let notified = self.marked.notified();
            if let Some(until) = self.marked_until(order_id) {
                return Some(until);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }

    /// Forget every sale, as a Redis that lost its data.
    pub fn flush(&self) {
        *lock(&self.keys) = Keys::default();
    }

    /// Make every call fail as if the store were unreachable (or work again).
    pub fn set_unavailable(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// The next `n` reservations run, and then their answer is lost, as when Redis ran the
    /// script but the reply did not arrive in time.
    pub fn lose_answers(&self, n: usize) {
        self.lost_answers.store(n, Ordering::SeqCst);
    }

    fn up(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            Err(StoreError::Unavailable(switched_off("memory store")))
        } else {
            Ok(())
        }
    }
}

impl ReservationStore for MemoryStore {
    async fn reserve(&self, req: &ReserveRequest) -> Result<Reservation, StoreError> {
        let answer = self.reserve_now(req)?;
        let lost = self
            .lost_answers
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if lost.is_ok() {
            return Err(StoreError::InDoubt("the answer was lost".into()));
        }
        Ok(answer)
    }
}

impl MemoryStore {
    /// `reserve.lua`'s rules, in its order.
    fn reserve_now(&self, req: &ReserveRequest) -> Result<Reservation, StoreError> {
        self.up()?;
        let mut keys = lock(&self.keys);
        if keys.orders.contains_key(&req.order_id) {
            // The message while it is in the outbox; once it left (settled, or moved aside by a
            // reset) the order stands and there is nothing to send again.
            let message = keys
                .sales
                .get(&req.sale)
                .and_then(|s| s.outbox.get(&req.order_id));
            return Ok(match message {
                Some(message) => Reservation::Reserved {
                    order_id: req.order_id,
                    message: message.clone(),
                    pay_by_ms: OrderMessage::parse(message).ok().and_then(|m| m.pay_by_ms),
                },
                None => Reservation::Duplicate {
                    order_id: req.order_id,
                    state: None,
                },
            });
        }
        let loaded = keys.loaded;
        let Some(sale) = keys.sales.get_mut(&req.sale) else {
            if !loaded {
                return Err(StoreError::Unavailable("memory store lost its data".into()));
            }
            return Ok(Reservation::Refused(Refusal::UnknownSale));
        };
        if let Some(round) = sale.resetting {
            return Err(StoreError::Unavailable(
                format!("the sale is being reset to round {round}").into(),
            ));
        }
        let field = req
            .idempotency_key
            .as_ref()
            .map(|k| idem_field(&req.buyer, k));
        if let Some(held) = field.as_ref().and_then(|f| sale.idem.get(f)) {
            let held = KeyEntry::parse(held).ok_or_else(|| {
                StoreError::Failed(format!("unreadable idempotency entry {held:?}").into())
            })?;
            return Ok(replay(held, req.quantity));
        }
        let now = EpochMs::now().get();
        let room = sale.room.as_ref().filter(|_| sale.queue_opens_ms.is_some());
        let spent_by = |index| room.and_then(|r| r.spent.get(&index).copied());
        if let Some(refusal) =
            not_admitted(room.map(|r| r.epoch), req.admission.as_ref(), spent_by, now)
        {
            return Ok(Reservation::Refused(refusal));
        }
        if let Some(refusal) = not_open_yet(sale.opens_ms, now) {
            return Ok(Reservation::Refused(refusal));
        }
        if let Some(limit) = sale.attempts_limit {
            let seen = sale.attempts.get(req.buyer.as_str()).copied();
            match attempt(seen, limit, now) {
                Ok(counted) => {
                    sale.attempts.insert(req.buyer.as_str().to_owned(), counted);
                }
                Err(refusal) => return Ok(Reservation::Refused(refusal)),
            }
        }
        let bought = sale.buyers.get(req.buyer.as_str()).copied().unwrap_or(0);
        let rules = LiveRules {
            remaining: sale.remaining,
            per_user_limit: sale.limit,
            opens_at_ms: sale.opens_ms,
            closes_at_ms: sale.closes_ms,
        };
        if let Err(refusal) = check(&rules, bought.max(0) as u32, req.quantity, now) {
            return Ok(Reservation::Refused(refusal));
        }
        let q = req.quantity.get();
        // The admission is spent by this reservation: counted once as used, not as a no-show.
        if let (Some(a), Some(room)) = (&req.admission, sale.room.as_mut()) {
            room.spend(a.index, a.batch, req.order_id);
        }
        sale.remaining -= i64::from(q);
        *sale
            .buyers
            .entry(req.buyer.as_str().to_owned())
            .or_default() += i64::from(q);
        if let Some(f) = field {
            sale.idem.insert(f, idem_value(req.order_id, q, None));
        }
        let message = OrderMessage {
            v: ORDER_MESSAGE_VERSION,
            order_id: req.order_id,
            sale_id: req.sale.clone(),
            buyer: req.buyer.clone(),
            quantity: req.quantity,
            reserved_at_ms: now,
            idempotency_key: req.idempotency_key.clone(),
            round: sale.round,
            pay_by_ms: sale.hold_ms.map(|h| now + h),
            sig: req.signature.clone(),
        };
        let pay_by_ms = message.pay_by_ms;
        sale.holds_until = sale.holds_until.max(pay_by_ms);
        if let Some(pay_by) = pay_by_ms {
            sale.holds.insert(req.order_id, pay_by);
        }
        let message = message.to_json();
        sale.outbox.insert(req.order_id, message.clone());
        sale.outbox_at.insert(req.order_id, now);
        keys.orders.insert(req.order_id, message.clone());
        Ok(Reservation::Reserved {
            order_id: req.order_id,
            message,
            pay_by_ms,
        })
    }
}

impl PendingOrders for MemoryStore {
    async fn find_pending(&self, order_id: Uuid) -> Result<Option<OrderMessage>, StoreError> {
        self.up()?;
        let keys = lock(&self.keys);
        Ok(keys
            .registry
            .iter()
            .filter_map(|id| keys.sales.get(id))
            .find_map(|s| s.outbox.get(&order_id))
            .and_then(|body| OrderMessage::parse(body).ok()))
    }

    async fn entries(&self, sale: &SaleId) -> Result<Vec<(String, String)>, StoreError> {
        self.up()?;
        Ok(self
            .outbox(sale)
            .into_iter()
            .map(|(id, m)| (id.to_string(), m))
            .collect())
    }
}

impl SentMarks for MemoryStore {
    async fn mark_sent(
        &self,
        sale: &SaleId,
        order_ids: &[Uuid],
        until: EpochMs,
    ) -> Result<(), StoreError> {
        self.up()?;
        lock(&self.marks).extend(order_ids.iter().map(|id| (*id, until.get())));
        let ids: Vec<String> = order_ids.iter().map(Uuid::to_string).collect();
        self.touch(sale, &ids, &[], until).await?;
        self.marked.notify_waiters();
        Ok(())
    }
}

impl SettledOrders for MemoryStore {
    async fn remove_settled(
        &self,
        sale: &SaleId,
        order_ids: &[Uuid],
        keys: &[KeyHolder],
    ) -> Result<(), StoreError> {
        self.up()?;
        let mut all = lock(&self.keys);
        let Some(s) = all.sales.get_mut(sale) else {
            return Ok(());
        };
        for id in order_ids {
            s.outbox.remove(id);
            s.outbox_at.remove(id);
        }
        // As `settled.lua`: only keys of the round the sale is in.
        for k in keys.iter().filter(|k| k.round == s.round) {
            s.idem.insert(
                idem_field(&k.buyer, &k.key),
                idem_value(k.order_id, k.quantity, Some(k.state)),
            );
        }
        Ok(())
    }
}

impl OutboxSweep for MemoryStore {
    async fn stale(
        &self,
        sale: &SaleId,
        before: EpochMs,
        limit: usize,
    ) -> Result<Vec<StaleEntry>, StoreError> {
        self.up()?;
        let all = lock(&self.keys);
        let Some(s) = all.sales.get(sale) else {
            return Ok(Vec::new());
        };
        let mut due: Vec<(i64, Uuid)> = s
            .outbox_at
            .iter()
            .filter(|(_, at)| **at < before.get())
            .map(|(id, at)| (*at, *id))
            .collect();
        due.sort();
        Ok(due
            .into_iter()
            .take(limit)
            .map(|(_, id)| (id.to_string(), s.outbox.get(&id).cloned()))
            .collect())
    }

    async fn touch(
        &self,
        sale: &SaleId,
        resent: &[String],
        gone: &[String],
        until: EpochMs,
    ) -> Result<(), StoreError> {
        self.up()?;
        let mut all = lock(&self.keys);
        let Some(s) = all.sales.get_mut(sale) else {
            return Ok(());
        };
        for id in resent.iter().filter_map(|id| id.parse::<Uuid>().ok()) {
            if let Some(at) = s.outbox_at.get_mut(&id) {
                *at = until.get();
            }
        }
        for id in gone.iter().filter_map(|id| id.parse::<Uuid>().ok()) {
            s.outbox_at.remove(&id);
        }
        Ok(())
    }
}

impl SaleLoader for MemoryStore {
    /// `rehydrate.lua`'s rules.
    async fn rehydrate(&self, def: &SaleDefinition, plan: &Plan) -> Result<bool, StoreError> {
        self.up()?;
        let mut all = lock(&self.keys);
        let s = all.sales.entry(def.id.clone()).or_default();
        let fresh = s.round == 0 || s.round != plan.round;
        for (buyer, n) in &plan.buyers {
            let have = s.buyers.entry(buyer.clone()).or_default();
            *have = (*have).max(*n);
        }
        for (field, value, authoritative) in &plan.keys {
            if *authoritative || !s.idem.contains_key(field) {
                s.idem.insert(field.clone(), value.clone());
            }
        }
        for (order, pay_by) in &plan.holds {
            if !s.returned.contains(order) {
                s.holds.insert(*order, pay_by.get());
                s.holds_until = s.holds_until.max(Some(pay_by.get()));
            }
        }
        s.define(def, plan.round);
        MemRoom::load(&mut s.room, def, plan.draw_seed.as_ref());
        if fresh {
            s.remaining = plan.remaining_if_new;
            for order in &plan.returned {
                s.returned.insert(*order);
                s.holds.remove(order);
            }
        } else if plan.remaining < s.remaining {
            s.remaining = plan.remaining;
        }
        s.expiring = false;
        all.registry.insert(def.id.clone());
        all.loaded = true;
        Ok(fresh)
    }
}

impl SaleResets for MemoryStore {
    /// `begin_reset.lua`'s rules.
    async fn begin_reset(
        &self,
        sale: &SaleId,
        round: u32,
        force: bool,
    ) -> Result<ResetStart, StoreError> {
        self.up()?;
        let mut all = lock(&self.keys);
        let Some(s) = all.sales.get_mut(sale) else {
            return Ok(ResetStart::Frozen {
                round,
                dropped: Vec::new(),
            });
        };
        if s.resetting.is_none() {
            if !s.outbox.is_empty() && !force {
                return Ok(ResetStart::Pending(s.outbox.len() as i64));
            }
            s.stash = std::mem::take(&mut s.outbox);
            s.outbox_at.clear();
            s.resetting = Some(round);
        }
        Ok(ResetStart::Frozen {
            round: s.resetting.unwrap_or(round),
            dropped: s.stash.values().cloned().collect(),
        })
    }

    /// `finish_reset.lua`'s rules.
    async fn finish_reset(&self, def: &SaleDefinition, round: u32) -> Result<(), StoreError> {
        self.up()?;
        let mut all = lock(&self.keys);
        let s = all.sales.entry(def.id.clone()).or_default();
        match s.resetting {
            Some(r) if r != round => {
                return Err(StoreError::Failed(
                    format!("a reset to round {r} is under way, not {round}").into(),
                ))
            }
            None if s.round == round => return Ok(()),
            _ => {}
        }
        *s = MemSale::default();
        s.define(def, round);
        s.remaining = i64::from(def.stock);
        all.registry.insert(def.id.clone());
        all.loaded = true;
        Ok(())
    }
}

impl LiveSales for MemoryStore {
    async fn live_sale(&self, sale: &SaleId) -> Result<Option<LiveSale>, StoreError> {
        self.up()?;
        Ok(lock(&self.keys).sales.get(sale).map(|s| LiveSale {
            stock: s.stock,
            remaining: s.remaining,
            pending: s.outbox.len() as i64,
            per_user_limit: Some(i64::from(s.limit)),
            opens_at: s.opens_ms.map(EpochMs),
            closes_at: s.closes_ms.map(EpochMs),
            shown: s.shown.clone(),
            sold_out_answers: s.sold_out_answers,
            queue_opens_at: s.queue_opens_ms.map(EpochMs),
            entry: s.room.as_ref().and_then(|r| r.entry().cloned()),
        }))
    }

    async fn sales(&self) -> Result<Vec<SaleId>, StoreError> {
        self.up()?;
        Ok(lock(&self.keys).registry.iter().cloned().collect())
    }
}

impl FailoverPauses for MemoryStore {
    /// One process's memory has no replica to fail over to.
    async fn paused_by_failover(&self, _sale: &SaleId) -> Result<bool, StoreError> {
        self.up()?;
        Ok(false)
    }
}

impl SaleRetirement for MemoryStore {
    /// `retire.lua`'s rules (the expiry itself is only recorded).
    async fn retire_if_finished(
        &self,
        sale: &SaleId,
        now: EpochMs,
        _ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.up()?;
        let mut all = lock(&self.keys);
        if let Some(s) = all.sales.get_mut(sale) {
            if !s.outbox.is_empty() || !s.outbox_at.is_empty() {
                return Ok(false);
            }
            let closed = s.closes_ms.is_some_and(|c| now.get() >= c);
            if s.remaining > 0 && !closed {
                return Ok(false);
            }
            let holds_end = s
                .holds_until
                .map(|t| t + HOLDS_END_WITHIN.as_millis() as i64);
            if holds_end.is_some_and(|t| now.get() < t) {
                return Ok(false);
            }
            s.expiring = true;
        }
        all.registry.remove(sale);
        Ok(true)
    }
}

impl flashflow::ports::AnswerTally for MemoryStore {
    async fn add_sold_out(&self, counts: &[(SaleId, u64)]) -> Result<(), StoreError> {
        self.up()?;
        let mut keys = lock(&self.keys);
        for (sale, n) in counts {
            if let Some(s) = keys.sales.get_mut(sale) {
                s.sold_out_answers += *n as i64;
            }
        }
        Ok(())
    }
}

impl flashflow::ports::ReturnStock for MemoryStore {
    async fn return_stock(
        &self,
        hold: &flashflow::ports::HoldRecord,
    ) -> Result<flashflow::ports::Returned, StoreError> {
        use flashflow::ports::Returned;
        self.up()?;
        let o = &hold.status;
        let mut keys = lock(&self.keys);
        let Some(sale) = keys.sales.get_mut(&o.sale_id) else {
            return Ok(Returned::NotLoaded);
        };
        if sale.round != hold.round {
            return Ok(Returned::Before);
        }
        sale.holds.remove(&o.order_id);
        // A paid hold gives nothing back; it only stops being open.
        if o.status == flashflow::domain::OrderState::Confirmed {
            return Ok(Returned::Now);
        }
        if !sale.returned.insert(o.order_id) {
            return Ok(Returned::Before);
        }
        let qty = i64::from(o.quantity);
        sale.remaining += qty;
        // Buyable again: live, whatever a retirement said.
        sale.expiring = false;
        let buyer = o.buyer.as_str().to_owned();
        let left = sale.buyers.get(&buyer).copied().unwrap_or(0) - qty;
        if left <= 0 {
            sale.buyers.remove(&buyer);
        } else {
            sale.buyers.insert(buyer, left);
        }
        keys.registry.insert(o.sale_id.clone());
        Ok(Returned::Now)
    }
}

impl flashflow::ports::QueueSteps for MemoryStore {
    async fn step(
        &self,
        sale: &SaleId,
    ) -> Result<Option<flashflow::domain::waiting_room::queue::QueueState>, StoreError> {
        self.step_room(sale, false)
    }

    async fn peek(
        &self,
        sale: &SaleId,
    ) -> Result<Option<flashflow::domain::waiting_room::queue::QueueState>, StoreError> {
        self.step_room(sale, true)
    }
}

impl MemoryStore {
    fn step_room(
        &self,
        sale: &SaleId,
        peek: bool,
    ) -> Result<Option<flashflow::domain::waiting_room::queue::QueueState>, StoreError> {
        self.up()?;
        let now = EpochMs::now().get();
        let mut keys = lock(&self.keys);
        let Some(s) = keys.sales.get_mut(sale) else {
            return Ok(None);
        };
        let Some(mut room) = s.room.take() else {
            return Ok(None);
        };
        let state = room.step(s, now, peek);
        s.room = Some(room);
        Ok(Some(state))
    }
}

impl flashflow::ports::QueueJoins for MemoryStore {
    async fn join(
        &self,
        sale: &SaleId,
        buyer: &flashflow::domain::BuyerId,
        requeue: Option<u64>,
        challenge: Option<&str>,
        entry_tag: Option<&str>,
    ) -> Result<flashflow::ports::JoinOutcome, StoreError> {
        self.up()?;
        let now = EpochMs::now().get();
        let mut keys = lock(&self.keys);
        Ok(
            match keys.sales.get_mut(sale).and_then(|s| s.room.as_mut()) {
                None => flashflow::ports::JoinOutcome::NoQueue,
                Some(room) => room.join(buyer.as_str(), requeue, challenge, entry_tag, now),
            },
        )
    }
}

impl flashflow::ports::JoinLists for MemoryStore {
    async fn cohort(
        &self,
        sale: &SaleId,
        epoch: u64,
        cohort: u64,
    ) -> Result<Option<Vec<Option<flashflow::domain::BuyerId>>>, StoreError> {
        self.up()?;
        let keys = lock(&self.keys);
        let room = keys.sales.get(sale).and_then(|s| s.room.as_ref());
        Ok(room.and_then(|r| r.cohort(epoch, cohort)).map(|buyers| {
            buyers
                .into_iter()
                .map(|b| b.and_then(|b| flashflow::domain::BuyerId::parse(&b).ok()))
                .collect()
        }))
    }

    async fn claim_finalize(
        &self,
        sale: &SaleId,
        epoch: u64,
        lease_ms: i64,
    ) -> Result<bool, StoreError> {
        self.up()?;
        let now = EpochMs::now().get();
        let mut keys = lock(&self.keys);
        let room = keys.sales.get_mut(sale).and_then(|s| s.room.as_mut());
        Ok(room.is_some_and(|r| r.claim_finalize(epoch, lease_ms, now)))
    }

    async fn finalize(
        &self,
        sale: &SaleId,
        epoch: u64,
        draw: &flashflow::domain::waiting_room::draw::FinalDraw,
        leaves: &[flashflow::domain::waiting_room::join_list::Hash],
    ) -> Result<bool, StoreError> {
        self.up()?;
        let mut keys = lock(&self.keys);
        let room = keys.sales.get_mut(sale).and_then(|s| s.room.as_mut());
        Ok(room.is_some_and(|r| r.finalize(epoch, draw, leaves)))
    }

    async fn leaves(
        &self,
        sale: &SaleId,
        epoch: u64,
    ) -> Result<Option<Vec<flashflow::domain::waiting_room::join_list::Hash>>, StoreError> {
        self.up()?;
        let keys = lock(&self.keys);
        let room = keys.sales.get(sale).and_then(|s| s.room.as_ref());
        Ok(room.and_then(|r| r.leaves(epoch)))
    }
}

impl flashflow::ports::SpentAdmissions for MemoryStore {
    async fn spent_by(&self, sale: &SaleId, index: u64) -> Result<Option<Uuid>, StoreError> {
        self.up()?;
        let keys = lock(&self.keys);
        Ok(keys
            .sales
            .get(sale)
            .and_then(|s| s.room.as_ref())
            .and_then(|r| r.spent.get(&index).copied()))
    }
}

impl flashflow::ports::QueueControls for MemoryStore {
    async fn control(
        &self,
        sale: &SaleId,
        paused: Option<bool>,
        pace: Option<Option<u32>>,
    ) -> Result<bool, StoreError> {
        self.up()?;
        let mut keys = lock(&self.keys);
        Ok(
            match keys.sales.get_mut(sale).and_then(|s| s.room.as_mut()) {
                None => false,
                Some(room) => {
                    room.control(paused, pace);
                    true
                }
            },
        )
    }
}
