//! Postgres' side in memory: sales, this round's orders and the archive of earlier rounds,
//! settled by the same allocation rule.

use super::{lock, switched_off};
use flashflow::domain::rehydrate::KeyHolder;
use flashflow::domain::settlement::{allocate, SaleBook};
use flashflow::domain::{
    BuyerId, EpochMs, OrderMessage, OrderState, OrderStatus, SaleDefinition, SaleId, Settled,
    Settlement,
};
use flashflow::ports::{
    CreateOutcome, DbError, Ledger, LedgerOfSale, LedgerReset, SaleLedger, SaleRecord,
};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use uuid::Uuid;

#[derive(Debug)]
struct LedgerSale {
    definition: SaleDefinition,
    confirmed: u32,
    /// Quantity of this round's held orders (a checkout sale; this ledger never ends a hold).
    held: u32,
    round: u32,
}

#[derive(Debug, Default)]
struct Books {
    sales: HashMap<SaleId, LedgerSale>,
    /// Each sale's waiting-room draw seed, once given.
    draw_seeds: HashMap<SaleId, flashflow::domain::waiting_room::draw::Seed>,
    /// This round's orders of every sale.
    orders: HashMap<Uuid, (OrderMessage, Settlement)>,
    /// Earlier rounds' orders (and orders recorded there directly).
    archive: HashMap<Uuid, (OrderMessage, Settlement)>,
}

impl Books {
    fn recorded(&self, id: &Uuid) -> Option<OrderStatus> {
        self.orders
            .get(id)
            .or_else(|| self.archive.get(id))
            .and_then(|(o, s)| status_of(o, *s))
    }

    fn record(&self, id: &SaleId) -> Option<SaleRecord> {
        let sale = self.sales.get(id)?;
        let mine = || self.orders.values().filter(|(o, _)| &o.sale_id == id);
        let count = |want: fn(&Settlement) -> bool| mine().filter(|(_, s)| want(s)).count() as u64;
        Some(SaleRecord {
            definition: sale.definition.clone(),
            confirmed_quantity: sale.confirmed,
            confirmed_orders: count(|s| *s == Settlement::Confirmed),
            rejected_orders: count(|s| *s == Settlement::Rejected),
            duplicate_orders: count(|s| matches!(s, Settlement::Duplicate { .. })),
            round: sale.round,
            checkout: flashflow::ports::CheckoutCounts {
                held_quantity: sale.held,
                held_orders: count(|s| *s == Settlement::Held),
                ..Default::default()
            },
        })
    }
}

fn status_of(o: &OrderMessage, s: Settlement) -> Option<OrderStatus> {
    Some(OrderStatus {
        duplicate_of: match s {
            Settlement::Duplicate { original } => Some(original),
            _ => None,
        },
        ..OrderStatus::of(o, OrderState::settled(s)?)
    })
}

/// What the ledger recorded of a sale's orders this round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LedgerCounts {
    pub confirmed_orders: usize,
    pub rejected_orders: usize,
    pub confirmed_quantity: u32,
}

/// The ledger in memory. Cloning shares the data.
#[derive(Clone, Default)]
pub struct MemoryLedger {
    books: Arc<Mutex<Books>>,
    down: Arc<AtomicBool>,
    refused: Arc<Mutex<Vec<BuyerId>>>,
    calls: Arc<AtomicUsize>,
}

impl MemoryLedger {
    /// Add a sale at once (what [`SaleLedger::create_sale`] does).
    pub fn create_sale_now(&self, def: &SaleDefinition) {
        lock(&self.books)
            .sales
            .entry(def.id.clone())
            .or_insert(LedgerSale {
                definition: def.clone(),
                confirmed: 0,
                held: 0,
                round: 1,
            });
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

    /// What is recorded of a sale's orders this round.
    pub fn counts(&self, sale: &SaleId) -> LedgerCounts {
        let books = lock(&self.books);
        let record = books.record(sale);
        LedgerCounts {
            confirmed_orders: record.as_ref().map_or(0, |r| r.confirmed_orders as usize),
            rejected_orders: record.as_ref().map_or(0, |r| r.rejected_orders as usize),
            confirmed_quantity: record.map_or(0, |r| r.confirmed_quantity),
        }
    }

    /// Whether the order is recorded (this round or an earlier one).
    pub fn is_recorded(&self, order_id: Uuid) -> bool {
        lock(&self.books).recorded(&order_id).is_some()
    }

    fn up(&self) -> Result<(), DbError> {
        if self.down.load(Ordering::SeqCst) {
            Err(DbError::Unavailable(switched_off("memory ledger")))
        } else {
            Ok(())
        }
    }
}

impl Ledger for MemoryLedger {
    async fn settle_orders(
        &self,
        orders: &[OrderMessage],
    ) -> Result<HashMap<Uuid, Settled>, DbError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.up()?;
        if let Some(o) = orders
            .iter()
            .find(|o| lock(&self.refused).contains(&o.buyer))
        {
            return Err(DbError::Query(
                format!("refused order {}", o.order_id).into(),
            ));
        }
        let mut books = lock(&self.books);
        let mut outcome: HashMap<Uuid, Settled> = orders
            .iter()
            .filter_map(|o| Some((o.order_id, Settled::Recorded(books.recorded(&o.order_id)?))))
            .collect();
        let mut sale_books: HashMap<SaleId, SaleBook> = books
            .sales
            .iter()
            .map(|(id, sale)| {
                let mut book = SaleBook {
                    available: i64::from(sale.definition.stock)
                        - i64::from(sale.confirmed)
                        - i64::from(sale.held),
                    hold_ms: sale.definition.checkout.as_ref().map(|c| c.hold_ms()),
                    per_user_limit: i64::from(sale.definition.per_user_limit),
                    round: sale.round,
                    ..SaleBook::default()
                };
                for (o, s) in books.orders.values().filter(|(o, _)| &o.sale_id == id) {
                    if matches!(s, Settlement::Confirmed | Settlement::Held) {
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
            match settled {
                Settlement::UnknownSale => {
                    outcome.insert(o.order_id, Settled::UnknownSale);
                    continue;
                }
                Settlement::Stale => {
                    books.archive.insert(o.order_id, (o.clone(), settled));
                }
                _ => {
                    if let Some(sale) = books.sales.get_mut(&o.sale_id) {
                        match settled {
                            Settlement::Confirmed => sale.confirmed += o.quantity.get(),
                            Settlement::Held => sale.held += o.quantity.get(),
                            _ => {}
                        }
                    }
                    books.orders.insert(o.order_id, (o.clone(), settled));
                }
            }
            if let Some(status) = books.recorded(&o.order_id) {
                outcome.insert(o.order_id, Settled::Recorded(status));
            }
            if let Settlement::Duplicate { original } = settled {
                if let Some(status) = books.recorded(&original) {
                    outcome.insert(original, Settled::Recorded(status));
                }
            }
        }
        Ok(outcome)
    }
}

impl SaleLedger for MemoryLedger {
    async fn draw_seed(
        &self,
        id: &SaleId,
        fresh: &flashflow::domain::waiting_room::draw::Seed,
    ) -> Result<Option<flashflow::domain::waiting_room::draw::Seed>, DbError> {
        self.up()?;
        let mut books = lock(&self.books);
        if !books.sales.contains_key(id) {
            return Ok(None);
        }
        Ok(Some(
            books
                .draw_seeds
                .entry(id.clone())
                .or_insert_with(|| fresh.clone())
                .clone(),
        ))
    }

    async fn create_sale(&self, def: &SaleDefinition) -> Result<CreateOutcome, DbError> {
        self.up()?;
        let mut books = lock(&self.books);
        if let Some(existing) = books.record(&def.id) {
            return Ok(if existing.definition == *def {
                CreateOutcome::AlreadyExists(existing)
            } else {
                CreateOutcome::Conflict(existing)
            });
        }
        books.sales.insert(
            def.id.clone(),
            LedgerSale {
                definition: def.clone(),
                confirmed: 0,
                held: 0,
                round: 1,
            },
        );
        Ok(CreateOutcome::Created)
    }

    async fn sale(&self, id: &SaleId) -> Result<Option<SaleRecord>, DbError> {
        self.up()?;
        Ok(lock(&self.books).record(id))
    }

    async fn reset_sale(
        &self,
        id: &SaleId,
        stock: Option<u32>,
        round: u32,
    ) -> Result<LedgerReset, DbError> {
        self.up()?;
        let mut books = lock(&self.books);
        let Some(now) = books.sales.get(id).map(|s| s.round) else {
            return Ok(LedgerReset::NoSuchSale);
        };
        if now == round {
            let def = books.sales.get(id).map(|s| s.definition.clone());
            return Ok(def.map_or(LedgerReset::NoSuchSale, LedgerReset::Started));
        }
        if now + 1 != round {
            return Err(DbError::Raced {
                what: format!("sale {id} (in round {now}, not before round {round})"),
            });
        }
        // This ledger never ends a hold (checkout's holds are `MemoryHolds`): a held order here
        // stays in play.
        let held = books
            .orders
            .values()
            .filter(|(o, s)| &o.sale_id == id && *s == Settlement::Held)
            .count();
        if held > 0 {
            return Ok(LedgerReset::OrdersInPlay(held as u64));
        }
        let moved: Vec<Uuid> = books
            .orders
            .iter()
            .filter(|(_, (o, _))| &o.sale_id == id)
            .map(|(k, _)| *k)
            .collect();
        for k in moved {
            if let Some(v) = books.orders.remove(&k) {
                books.archive.insert(k, v);
            }
        }
        let Some(sale) = books.sales.get_mut(id) else {
            return Ok(LedgerReset::NoSuchSale);
        };
        sale.confirmed = 0;
        sale.held = 0;
        sale.round += 1;
        if let Some(stock) = stock {
            sale.definition.stock = stock;
        }
        Ok(LedgerReset::Started(sale.definition.clone()))
    }

    async fn cancel_orders(&self, orders: &[OrderMessage]) -> Result<Vec<OrderStatus>, DbError> {
        self.up()?;
        let mut books = lock(&self.books);
        for o in orders {
            if books.recorded(&o.order_id).is_none() {
                books
                    .archive
                    .insert(o.order_id, (o.clone(), Settlement::Stale));
            }
        }
        Ok(orders
            .iter()
            .filter_map(|o| books.recorded(&o.order_id))
            .collect())
    }

    async fn ledger_of(
        &self,
        id: &SaleId,
        pending: &[Uuid],
    ) -> Result<Option<LedgerOfSale>, DbError> {
        self.up()?;
        let books = lock(&self.books);
        let Some(record) = books.record(id) else {
            return Ok(None);
        };
        let mine: Vec<&(OrderMessage, Settlement)> = books
            .orders
            .values()
            .filter(|(o, _)| &o.sale_id == id)
            .collect();
        let mut bought: HashMap<BuyerId, i64> = HashMap::new();
        for (o, _) in mine.iter().filter(|(_, s)| *s == Settlement::Confirmed) {
            *bought.entry(o.buyer.clone()).or_default() += i64::from(o.quantity.get());
        }
        let keys = mine
            .iter()
            .filter(|(_, s)| !matches!(s, Settlement::Duplicate { .. }))
            .filter_map(|(o, s)| {
                Some(KeyHolder {
                    buyer: o.buyer.clone(),
                    key: o.idempotency_key.clone()?,
                    order_id: o.order_id,
                    quantity: o.quantity.get(),
                    state: OrderState::settled(*s)?,
                    round: record.round,
                })
            })
            .collect();
        // This ledger never ends a hold: every held order may still give its unit back.
        let holds = mine
            .iter()
            .filter(|(_, s)| *s == Settlement::Held)
            .filter_map(|(o, _)| Some((o.order_id, EpochMs(o.pay_by_ms?))))
            .collect();
        let settled = pending
            .iter()
            .filter(|id| books.recorded(id).is_some())
            .copied()
            .collect();
        Ok(Some(LedgerOfSale {
            record,
            bought: bought.into_iter().collect(),
            keys,
            holds,
            // This ledger never ends a hold.
            ended: Vec::new(),
            settled,
        }))
    }
}
