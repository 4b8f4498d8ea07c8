//! Rows to domain types, by column name, and the SQL both sales and settlement use.

use super::OrDbError;
use flashflow::domain::sale::Checkout;
use flashflow::domain::waiting_room::WaitingRoom;
use flashflow::domain::{
    BuyerId, OrderMessage, OrderState, OrderStatus, SaleDefinition, SaleId, Settlement,
};
use flashflow::ports::DbError;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio_postgres::Row;
use uuid::Uuid;

/// The orders among `$1` (uuid[]) already recorded, in this round (`orders`) or an earlier one
/// (`orders_archive`): where an order id is looked up, it is looked up in both.
pub(super) const RECORDED_IN_ANY_ROUND: &str =
    "SELECT order_id, sale_id, buyer, quantity, status, duplicate_of, pay_by FROM orders
      WHERE order_id = ANY($1)
     UNION ALL
     SELECT order_id, sale_id, buyer, quantity, status, duplicate_of, pay_by FROM orders_archive
      WHERE order_id = ANY($1)";

/// Record orders in their round's history, as rejected, unless recorded there already: earlier
/// rounds' orders arriving late (settle) and those a forced reset cancelled (`cancel_orders`).
/// Parameters as [`ArchiveRows`]; returns the rows inserted.
pub(super) const INSERT_ARCHIVED: &str =
    "INSERT INTO orders_archive (order_id, sale_id, round, buyer, quantity, status,
                                 idempotency_key, reserved_at, settled_at)
     SELECT d.*, now() FROM unnest($1::uuid[], $2::text[], $3::int[], $4::text[],
                          $5::int[], $6::text[], $7::text[], $8::timestamptz[])
          AS d(order_id, sale_id, round, buyer, quantity, status, key, reserved_at)
      WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.order_id = d.order_id)
     ON CONFLICT (order_id) DO NOTHING
     RETURNING order_id, sale_id, buyer, quantity, status, duplicate_of, pay_by";

/// An order row (`order_id, sale_id, buyer, quantity, status, duplicate_of, pay_by`) as buyers
/// see it.
///
/// # Errors
/// [`DbError::Query`] when a stored value does not parse (the schema's checks make that a bug).
pub(super) fn order_status(r: &Row) -> Result<OrderStatus, DbError> {
    let order_id: Uuid = r.try_get("order_id").or_db()?;
    let bad =
        |what: &str| DbError::Query(format!("order {order_id}: stored {what} is invalid").into());
    Ok(OrderStatus {
        order_id,
        sale_id: SaleId::parse(r.try_get("sale_id").or_db()?).map_err(|_| bad("sale id"))?,
        buyer: BuyerId::parse(r.try_get("buyer").or_db()?).map_err(|_| bad("buyer"))?,
        quantity: r.try_get::<_, i32>("quantity").or_db()? as u32,
        status: OrderState::parse(r.try_get("status").or_db()?).map_err(|_| bad("status"))?,
        duplicate_of: r.try_get("duplicate_of").or_db()?,
        pay_by_ms: r
            .try_get::<_, Option<SystemTime>>("pay_by")
            .or_db()?
            .map(time_to_ms),
    })
}

/// The columns [`sale_definition`] reads.
pub(super) const SALE_COLUMNS: &str =
    "name, stock, per_user_limit, opens_at, closes_at, attempts_per_minute, hold_seconds, price,
     currency, queue_opens_at, admission_seconds, admit_per_second, pow_bits,
     entry_policy::text AS entry_policy";

/// A sale's definition from a row with [`SALE_COLUMNS`].
///
/// # Errors
/// [`DbError::Query`] when a column is missing or of another type.
pub(super) fn sale_definition(id: &SaleId, r: &Row) -> Result<SaleDefinition, DbError> {
    Ok(SaleDefinition {
        id: id.clone(),
        name: r.try_get("name").or_db()?,
        stock: r.try_get::<_, i32>("stock").or_db()? as u32,
        per_user_limit: r.try_get::<_, i32>("per_user_limit").or_db()? as u32,
        opens_at_ms: r
            .try_get::<_, Option<SystemTime>>("opens_at")
            .or_db()?
            .map(time_to_ms),
        closes_at_ms: r
            .try_get::<_, Option<SystemTime>>("closes_at")
            .or_db()?
            .map(time_to_ms),
        attempts_per_minute: r
            .try_get::<_, Option<i32>>("attempts_per_minute")
            .or_db()?
            .map(|n| n as u32),
        checkout: match (
            r.try_get::<_, Option<i32>>("hold_seconds").or_db()?,
            r.try_get::<_, Option<i64>>("price").or_db()?,
            r.try_get::<_, Option<String>>("currency").or_db()?,
        ) {
            (Some(hold), Some(price), Some(currency)) => Some(Checkout {
                hold_seconds: hold as u32,
                price: price as u64,
                currency,
            }),
            _ => None,
        },
        waiting_room: match r
            .try_get::<_, Option<SystemTime>>("queue_opens_at")
            .or_db()?
        {
            Some(opens) => Some(WaitingRoom {
                opens_at_ms: time_to_ms(opens),
                admission_seconds: r.try_get::<_, i32>("admission_seconds").or_db()? as u32,
                admit_per_second: r
                    .try_get::<_, Option<i32>>("admit_per_second")
                    .or_db()?
                    .map(|n| n as u32),
                pow_bits: r.try_get::<_, i16>("pow_bits").or_db()? as u8,
                entry: r
                    .try_get::<_, Option<String>>("entry_policy")
                    .or_db()?
                    .map(|json| {
                        serde_json::from_str(&json).map_err(|e| {
                            DbError::Query(
                                format!("sale {id}: a malformed entry policy: {e}").into(),
                            )
                        })
                    })
                    .transpose()?,
            }),
            None => None,
        },
    })
}

/// Column arrays for a set-based insert into `orders` (`unnest`).
#[derive(Default)]
pub(super) struct OrderRows {
    pub ids: Vec<Uuid>,
    pub sales: Vec<String>,
    pub buyers: Vec<String>,
    pub quantities: Vec<i32>,
    pub statuses: Vec<&'static str>,
    pub keys: Vec<Option<String>>,
    pub reserved_at: Vec<SystemTime>,
    pub duplicate_of: Vec<Option<Uuid>>,
    pub pay_by: Vec<Option<SystemTime>>,
}

impl OrderRows {
    /// One order; `hold_ms` is its sale's hold (a checkout sale), which a held order's `pay_by`
    /// follows from.
    pub fn push(&mut self, o: &OrderMessage, settled: Settlement, hold_ms: Option<i64>) {
        self.ids.push(o.order_id);
        self.sales.push(o.sale_id.to_string());
        self.buyers.push(o.buyer.as_str().to_owned());
        self.quantities.push(o.quantity.get() as i32);
        self.statuses.push(settled.as_str());
        self.keys
            .push(o.idempotency_key.as_ref().map(|k| k.as_str().to_owned()));
        self.reserved_at.push(ms_to_time(o.reserved_at_ms));
        self.duplicate_of.push(match settled {
            Settlement::Duplicate { original } => Some(original),
            _ => None,
        });
        self.pay_by.push(match (settled, hold_ms) {
            (Settlement::Held, Some(hold)) => Some(ms_to_time(o.reserved_at_ms + hold)),
            _ => None,
        });
    }
}

/// Column arrays for [`INSERT_ARCHIVED`]: orders recorded as rejected in their own round.
#[derive(Default)]
pub(super) struct ArchiveRows {
    pub ids: Vec<Uuid>,
    pub sales: Vec<String>,
    pub rounds: Vec<i32>,
    pub buyers: Vec<String>,
    pub quantities: Vec<i32>,
    pub statuses: Vec<&'static str>,
    pub keys: Vec<Option<String>>,
    pub reserved_at: Vec<SystemTime>,
}

impl ArchiveRows {
    pub fn push(&mut self, o: &OrderMessage) {
        self.ids.push(o.order_id);
        self.sales.push(o.sale_id.to_string());
        self.rounds.push(o.round as i32);
        self.buyers.push(o.buyer.as_str().to_owned());
        self.quantities.push(o.quantity.get() as i32);
        self.statuses.push(Settlement::Stale.as_str());
        self.keys
            .push(o.idempotency_key.as_ref().map(|k| k.as_str().to_owned()));
        self.reserved_at.push(ms_to_time(o.reserved_at_ms));
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Insert them ([`INSERT_ARCHIVED`]); returns the rows inserted.
    ///
    /// # Errors
    /// [`DbError`] when the statement fails.
    pub async fn insert(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
    ) -> Result<Vec<OrderStatus>, DbError> {
        if self.is_empty() {
            return Ok(Vec::new());
        }
        tx.query(
            INSERT_ARCHIVED,
            &[
                &self.ids,
                &self.sales,
                &self.rounds,
                &self.buyers,
                &self.quantities,
                &self.statuses,
                &self.keys,
                &self.reserved_at,
            ],
        )
        .await
        .or_db()?
        .iter()
        .map(order_status)
        .collect()
    }
}

/// The orders among `ids` already recorded, in any round ([`RECORDED_IN_ANY_ROUND`]).
///
/// # Errors
/// [`DbError`] when the statement fails.
pub(super) async fn recorded_orders(
    client: &impl tokio_postgres::GenericClient,
    ids: &[Uuid],
) -> Result<Vec<OrderStatus>, DbError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    client
        .query(RECORDED_IN_ANY_ROUND, &[&ids])
        .await
        .or_db()?
        .iter()
        .map(order_status)
        .collect()
}

pub(crate) fn ms_to_time(ms: i64) -> SystemTime {
    if ms >= 0 {
        UNIX_EPOCH + Duration::from_millis(ms as u64)
    } else {
        UNIX_EPOCH - Duration::from_millis(ms.unsigned_abs())
    }
}

pub(crate) fn time_to_ms(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}
