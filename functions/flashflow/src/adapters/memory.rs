//! In-memory adapters of every port, for fast handler tests that need no service. They follow the
//! same domain rules as the real adapters; each can be switched to "unavailable" to test outages.

use crate::domain::rehydrate::KeyHolder;
use crate::domain::reservation::{check, LiveRules};
use crate::domain::settlement::{allocate, SaleBook};
use crate::domain::{
    BuyerId, IdempotencyKey, OrderMessage, OrderState, OrderStatus, Quantity, Refusal, Reservation,
    ReserveRequest, SaleDefinition, SaleId, Settled, Settlement, ORDER_MESSAGE_VERSION,
};
use crate::ports::{
    DbError, Ledger, OrderPublisher, PublishError, ReservationStore, StatusError, StatusStore,
    StoreError,
};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use uuid::Uuid;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A test that panicked while holding the lock has already failed; keep the data usable.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

use crate::timefmt::now_ms;

#[derive(Debug)]
struct MemSale {
    rules: LiveRules,
    bought: HashMap<BuyerId, u32>,
    keys: HashMap<(BuyerId, IdempotencyKey), (Uuid, Quantity, Option<OrderState>)>,
    outbox: BTreeMap<Uuid, String>,
}

/// The reservation store in memory. Cloning shares the data.
#[derive(Clone, Default)]
pub struct MemoryStore {
    sales: Arc<Mutex<HashMap<SaleId, MemSale>>>,
    marks: Arc<Mutex<HashMap<Uuid, i64>>>,
    down: Arc<AtomicBool>,
}

impl MemoryStore {
    /// Load a sale with `available` stock left (as the Redis adapter's `load_sale` does for a new sale).
    pub fn load_sale(&self, def: &SaleDefinition, available: u32) {
        lock(&self.sales).insert(
            def.id.clone(),
            MemSale {
                rules: LiveRules {
                    remaining: i64::from(available),
                    per_user_limit: def.per_user_limit,
                    opens_at_ms: def.opens_at_ms,
                    closes_at_ms: def.closes_at_ms,
                },
                bought: HashMap::new(),
                keys: HashMap::new(),
                outbox: BTreeMap::new(),
            },
        );
    }

    /// Stock left to reserve, or `None` for an unknown sale.
    pub fn remaining(&self, sale: &SaleId) -> Option<i64> {
        lock(&self.sales).get(sale).map(|s| s.rules.remaining)
    }

    /// The sale's outbox: order id → message.
    pub fn outbox(&self, sale: &SaleId) -> BTreeMap<Uuid, String> {
        lock(&self.sales)
            .get(sale)
            .map(|s| s.outbox.clone())
            .unwrap_or_default()
    }

    /// Until when the order was marked as in the queue ([`ReservationStore::mark_sent`]).
    pub fn marked_until(&self, order_id: Uuid) -> Option<i64> {
        lock(&self.marks).get(&order_id).copied()
    }

    /// Make every call fail as if the store were unreachable (or work again).
    pub fn set_unavailable(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    fn up(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            Err(StoreError::Unavailable("memory store switched off".into()))
        } else {
            Ok(())
        }
    }
}

impl ReservationStore for MemoryStore {
    async fn reserve(&self, req: &ReserveRequest) -> Result<Reservation, StoreError> {
        self.up()?;
        let mut sales = lock(&self.sales);
        let Some(sale) = sales.get_mut(&req.sale) else {
            return Ok(Reservation::Refused(Refusal::UnknownSale));
        };
        let key = req.idempotency_key.clone().map(|k| (req.buyer.clone(), k));
        if let Some((order_id, quantity, state)) = key.as_ref().and_then(|k| sale.keys.get(k)) {
            return Ok(if *quantity == req.quantity {
                Reservation::Duplicate {
                    order_id: *order_id,
                    state: *state,
                }
            } else {
                Reservation::Refused(Refusal::KeyReused {
                    order_id: *order_id,
                })
            });
        }
        let now = now_ms();
        let bought = sale.bought.get(&req.buyer).copied().unwrap_or(0);
        if let Err(refusal) = check(&sale.rules, bought, req.quantity, now) {
            return Ok(Reservation::Refused(refusal));
        }
        sale.rules.remaining -= i64::from(req.quantity.get());
        *sale.bought.entry(req.buyer.clone()).or_default() += req.quantity.get();
        if let Some(k) = key {
            sale.keys.insert(k, (req.order_id, req.quantity, None));
        }
        let message = OrderMessage {
            v: ORDER_MESSAGE_VERSION,
            order_id: req.order_id,
            sale_id: req.sale.clone(),
            buyer: req.buyer.clone(),
            quantity: req.quantity,
            reserved_at_ms: now,
            idempotency_key: req.idempotency_key.clone(),
            round: 1,
        }
        .to_json();
        sale.outbox.insert(req.order_id, message.clone());
        Ok(Reservation::Reserved {
            order_id: req.order_id,
            message,
        })
    }

    async fn find_pending(&self, order_id: Uuid) -> Result<Option<OrderMessage>, StoreError> {
        self.up()?;
        Ok(lock(&self.sales)
            .values()
            .find_map(|s| s.outbox.get(&order_id))
            .and_then(|body| OrderMessage::parse(body).ok()))
    }

    async fn mark_sent(&self, _: &SaleId, order_id: Uuid, until_ms: i64) -> Result<(), StoreError> {
        self.up()?;
        lock(&self.marks).insert(order_id, until_ms);
        Ok(())
    }

    async fn remove_from_outbox(
        &self,
        sale: &SaleId,
        order_ids: &[Uuid],
        keys: &[KeyHolder],
    ) -> Result<(), StoreError> {
        self.up()?;
        if let Some(s) = lock(&self.sales).get_mut(sale) {
            for id in order_ids {
                s.outbox.remove(id);
            }
            // The in-memory store holds one round, the first.
            for k in keys.iter().filter(|k| k.round == 1) {
                if let Ok(q) = Quantity::new(i64::from(k.quantity)) {
                    s.keys.insert(
                        (k.buyer.clone(), k.key.clone()),
                        (k.order_id, q, Some(k.state)),
                    );
                }
            }
        }
        Ok(())
    }
}

/// The order queue in memory. Cloning shares the data.
#[derive(Clone, Default)]
pub struct MemoryQueue {
    sent: Arc<Mutex<Vec<String>>>,
    later: Arc<Mutex<Vec<(String, std::time::Duration)>>>,
    down: Arc<AtomicBool>,
}

impl MemoryQueue {
    /// Every message accepted so far, in order.
    pub fn sent(&self) -> Vec<String> {
        lock(&self.sent).clone()
    }

    /// Every message sent for later, with its delay.
    pub fn later(&self) -> Vec<(String, std::time::Duration)> {
        lock(&self.later).clone()
    }

    /// Refuse every message (or accept again).
    pub fn set_unavailable(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }
}

impl OrderPublisher for MemoryQueue {
    async fn publish(&self, message: &str) -> Result<(), PublishError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(PublishError("memory queue switched off".into()));
        }
        lock(&self.sent).push(message.to_owned());
        Ok(())
    }

    async fn publish_later(&self, messages: &[String], delay: std::time::Duration) -> Vec<usize> {
        if self.down.load(Ordering::SeqCst) {
            return (0..messages.len()).collect();
        }
        lock(&self.later).extend(messages.iter().map(|m| (m.clone(), delay)));
        Vec::new()
    }
}

/// The order-status store in memory. Cloning shares the data.
#[derive(Clone, Default)]
pub struct MemoryStatus {
    items: Arc<Mutex<HashMap<Uuid, OrderStatus>>>,
    down: Arc<AtomicBool>,
}

impl MemoryStatus {
    /// Fail every call (or work again).
    pub fn set_unavailable(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// How many statuses are stored.
    pub fn len(&self) -> usize {
        lock(&self.items).len()
    }

    /// Whether no status is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl StatusStore for MemoryStatus {
    async fn get(&self, order_id: Uuid) -> Result<Option<OrderStatus>, StatusError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(StatusError("memory status store switched off".into()));
        }
        Ok(lock(&self.items).get(&order_id).cloned())
    }

    async fn put_all(&self, items: &[OrderStatus]) -> Vec<Uuid> {
        if self.down.load(Ordering::SeqCst) {
            return items.iter().map(|s| s.order_id).collect();
        }
        let mut stored = lock(&self.items);
        for s in items {
            stored.insert(s.order_id, s.clone());
        }
        Vec::new()
    }
}

#[derive(Debug, Default)]
struct Books {
    /// sale → (stock, confirmed quantity, per-user limit)
    sales: HashMap<SaleId, (u32, u32, u32)>,
    orders: HashMap<Uuid, (OrderMessage, Settlement)>,
}

/// The ledger in memory. Cloning shares the data.
#[derive(Clone, Default)]
pub struct MemoryLedger {
    books: Arc<Mutex<Books>>,
    down: Arc<AtomicBool>,
    refused: Arc<Mutex<Vec<BuyerId>>>,
    calls: Arc<std::sync::atomic::AtomicUsize>,
}

impl MemoryLedger {
    pub fn create_sale(&self, def: &SaleDefinition) {
        lock(&self.books)
            .sales
            .entry(def.id.clone())
            .or_insert((def.stock, 0, def.per_user_limit));
    }

    /// Fail every call as if the database were unreachable (or work again).
    pub fn set_unavailable(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// Refuse (as a statement refusing its data would) any batch holding an order of `buyer`.
    pub fn refuse_buyer(&self, buyer: &str) {
        if let Ok(b) = BuyerId::parse(buyer) {
            lock(&self.refused).push(b);
        }
    }

    /// How many times `settle_orders` was called.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// Recorded outcomes of a sale's orders: (confirmed, rejected, confirmed quantity).
    pub fn counts(&self, sale: &SaleId) -> (usize, usize, u32) {
        let books = lock(&self.books);
        let mine = || books.orders.values().filter(|(o, _)| &o.sale_id == sale);
        (
            mine().filter(|(_, s)| *s == Settlement::Confirmed).count(),
            mine().filter(|(_, s)| *s == Settlement::Rejected).count(),
            books.sales.get(sale).map_or(0, |s| s.1),
        )
    }
}

impl Ledger for MemoryLedger {
    async fn settle_orders(
        &self,
        orders: &[OrderMessage],
    ) -> Result<HashMap<Uuid, Settled>, DbError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.down.load(Ordering::SeqCst) {
            return Err(DbError::Unavailable("memory ledger switched off".into()));
        }
        let refused = lock(&self.refused);
        if let Some(o) = orders.iter().find(|o| refused.contains(&o.buyer)) {
            return Err(DbError::Query(format!("refused order {}", o.order_id)));
        }
        drop(refused);
        let mut books = lock(&self.books);
        let recorded = |o: &OrderMessage, s: Settlement| match OrderState::settled(s) {
            Some(state) => Settled::Recorded(OrderStatus {
                duplicate_of: match s {
                    Settlement::Duplicate { original } => Some(original),
                    _ => None,
                },
                ..OrderStatus::of(o, state)
            }),
            None => Settled::UnknownSale,
        };
        let mut outcome: HashMap<Uuid, Settled> = orders
            .iter()
            .filter_map(|o| {
                let (kept, s) = books.orders.get(&o.order_id)?;
                Some((o.order_id, recorded(kept, *s)))
            })
            .collect();
        let mut sale_books: HashMap<SaleId, SaleBook> = books
            .sales
            .iter()
            .map(|(id, (stock, confirmed, limit))| {
                let mut book = SaleBook {
                    available: i64::from(stock - confirmed),
                    per_user_limit: i64::from(*limit),
                    round: 1,
                    ..SaleBook::default()
                };
                for (o, s) in books.orders.values().filter(|(o, _)| &o.sale_id == id) {
                    if *s == Settlement::Confirmed {
                        *book.bought.entry(o.buyer.clone()).or_default() +=
                            i64::from(o.quantity.get());
                    }
                    if let (Some(k), false) = (
                        &o.idempotency_key,
                        matches!(s, Settlement::Duplicate { .. }),
                    ) {
                        book.keys.insert((o.buyer.clone(), k.clone()), o.order_id);
                    }
                }
                (id.clone(), book)
            })
            .collect();
        let fresh = orders.iter().filter(|o| !outcome.contains_key(&o.order_id));
        for (o, settled) in allocate(&mut sale_books, fresh) {
            outcome.insert(o.order_id, recorded(o, settled));
            if let Settlement::Duplicate { original } = settled {
                if let Some((kept, s)) = books.orders.get(&original) {
                    outcome.insert(original, recorded(kept, *s));
                }
            }
            if settled == Settlement::UnknownSale {
                continue;
            }
            if settled == Settlement::Confirmed {
                if let Some(sale) = books.sales.get_mut(&o.sale_id) {
                    sale.1 += o.quantity.get();
                }
            }
            books.orders.insert(o.order_id, (o.clone(), settled));
        }
        Ok(outcome)
    }
}
