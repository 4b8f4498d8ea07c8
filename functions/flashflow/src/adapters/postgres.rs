//! The Postgres adapter: the authority for sales and settled orders. Schema migrations are embedded.

use crate::domain::settlement::{allocate, distinct_ids, SaleBook};
use crate::domain::{
    BuyerId, IdempotencyKey, OrderMessage, OrderState, OrderStatus, SaleDefinition, SaleId,
    Settled, Settlement,
};
use crate::ports::{DbError, Ledger};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{Mutex, MutexGuard};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Statement};
use tokio_postgres_rustls::MakeRustlsConnect;
use tracing::{error, info};

/// Embedded migrations, applied in order, each once.
const MIGRATIONS: &[(&str, &str)] = &[
    (
        "0001_sales_and_orders",
        include_str!("../../migrations/0001_sales_and_orders.sql"),
    ),
    (
        "0002_limits_keys_rounds",
        include_str!("../../migrations/0002_limits_keys_rounds.sql"),
    ),
    (
        "0003_buyer_lookup_index",
        include_str!("../../migrations/0003_buyer_lookup_index.sql"),
    ),
];

impl From<tokio_postgres::Error> for DbError {
    fn from(e: tokio_postgres::Error) -> Self {
        use tokio_postgres::error::SqlState;
        // Only a broken connection means "unavailable"; a statement that gave up for reasons of
        // time or concurrency is "busy"; any other failed statement is a query error.
        let io = std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>());
        let detail = match e.as_db_error() {
            Some(db) => format!("{}: {}", db.code().code(), db.message()),
            None => e.to_string(),
        };
        let busy = [
            SqlState::LOCK_NOT_AVAILABLE,
            SqlState::QUERY_CANCELED,
            SqlState::T_R_DEADLOCK_DETECTED,
            SqlState::T_R_SERIALIZATION_FAILURE,
            SqlState::TOO_MANY_CONNECTIONS,
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CANNOT_CONNECT_NOW,
        ];
        if e.is_closed() || io {
            Self::Unavailable(detail)
        } else if e.code().is_some_and(|c| busy.contains(c)) {
            Self::Busy(detail)
        } else {
            Self::Query(detail)
        }
    }
}

/// One Postgres connection per function instance, reused across invocations and replaced when it
/// breaks. Lambda runs one invocation per instance at a time, so a pool buys nothing there; the
/// connection is held exclusively while in use, so transactions are possible.
pub struct Db {
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    client: Mutex<Option<Client>>,
    timeouts: Timeouts,
    /// Counts connections made, so statements prepared on an earlier one are never used.
    generation: AtomicU64,
    /// Statements prepared on connection `.0`.
    statements: std::sync::Mutex<(u64, HashMap<&'static str, Statement>)>,
}

/// Limits set on every session, so a stuck lock or a runaway statement fails cleanly (as
/// [`DbError::Busy`]) instead of holding the caller until its own deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Postgres' `statement_timeout`.
    pub statement: Duration,
    /// Postgres' `lock_timeout`.
    pub lock: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            statement: Duration::from_secs(10),
            lock: Duration::from_secs(3),
        }
    }
}

/// Exclusive use of the instance's connection.
pub struct Conn<'a>(MutexGuard<'a, Option<Client>>);

impl std::ops::Deref for Conn<'_> {
    type Target = Client;
    fn deref(&self) -> &Client {
        self.0.as_ref().expect("Conn always holds a client")
    }
}

impl std::ops::DerefMut for Conn<'_> {
    fn deref_mut(&mut self) -> &mut Client {
        self.0.as_mut().expect("Conn always holds a client")
    }
}

/// Where and how to reach Postgres; see [`crate::config::database`].
#[derive(Debug, Clone, Default)]
pub struct DatabaseSettings {
    pub url: String,
    pub ca_file: Option<String>,
    /// Secrets Manager id of the user and password, read by [`DatabaseSettings::with_secret`].
    pub secret: Option<String>,
    /// User and password (they replace any in the URL).
    pub auth: Option<crate::secrets::Credentials>,
}

impl DatabaseSettings {
    /// Fill [`DatabaseSettings::auth`] from the configured secret, if any.
    ///
    /// # Errors
    /// [`crate::secrets::SecretError`] when the secret cannot be read or parsed.
    pub async fn with_secret(
        mut self,
        sdk: &aws_config::SdkConfig,
    ) -> Result<Self, crate::secrets::SecretError> {
        if let Some(auth) = crate::secrets::read_optional(sdk, self.secret.as_deref()).await? {
            self.auth = Some(auth);
        }
        Ok(self)
    }
}

impl Db {
    /// Parse the URL (`postgres://user@host:port/db?sslmode=require&options=-csearch_path%3Dschema`).
    /// Connects lazily. TLS follows the URL's `sslmode` as libpq does (`prefer` by default);
    /// `verify-full`/`verify-ca` force TLS and verify the server against the system roots.
    ///
    /// # Errors
    /// [`DbError::Config`] when the URL does not parse.
    pub fn new(url: &str) -> Result<Self, DbError> {
        Self::with_ca_file(url, None)
    }

    /// As [`Db::new`], and with a `ca_file`: TLS forced, the server's certificate and host name
    /// verified against its PEM certificates (for RDS: its CA bundle).
    ///
    /// # Errors
    /// [`DbError::Config`] when the URL does not parse or the file holds no usable certificate.
    pub fn with_ca_file(url: &str, ca_file: Option<&str>) -> Result<Self, DbError> {
        let policy = super::pgtls::policy(url, ca_file)?;
        let mut config: tokio_postgres::Config = policy
            .url
            .parse()
            .map_err(|e| DbError::Config(format!("invalid DATABASE_URL: {e}")))?;
        if policy.required {
            config.ssl_mode(tokio_postgres::config::SslMode::Require);
        }
        config.connect_timeout(Duration::from_secs(3));
        config.application_name("flashflow");
        Ok(Self {
            config,
            tls: super::pgtls::connector(policy.verify.as_ref().map(Option::as_deref))?,
            client: Mutex::new(None),
            timeouts: Timeouts::default(),
            generation: AtomicU64::new(0),
            statements: std::sync::Mutex::new((0, HashMap::new())),
        })
    }

    /// [`Db::with_ca_file`] for `settings`, with its credentials.
    ///
    /// # Errors
    /// As [`Db::with_ca_file`].
    pub fn from_settings(settings: &DatabaseSettings) -> Result<Self, DbError> {
        let mut db = Self::with_ca_file(&settings.url, settings.ca_file.as_deref())?;
        if let Some(auth) = &settings.auth {
            if let Some(user) = &auth.username {
                db.config.user(user);
            }
            db.config.password(&auth.password);
        }
        Ok(db)
    }

    /// Use these session limits for connections made from now on.
    pub fn with_timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// Connect (if needed) and apply pending migrations.
    ///
    /// # Errors
    /// [`DbError`] when the database is unreachable or a migration fails.
    pub async fn migrate(&self) -> Result<(), DbError> {
        let mut conn = self.client().await?;
        migrate(&mut conn).await
    }

    /// The live connection, held exclusively until dropped: the cached one, or a new one when it
    /// broke.
    ///
    /// # Errors
    /// [`DbError::Unavailable`] when no connection can be made.
    pub async fn client(&self) -> Result<Conn<'_>, DbError> {
        let mut guard = self.client.lock().await;
        if guard.as_ref().is_none_or(Client::is_closed) {
            *guard = Some(self.connect_new().await?);
        }
        Ok(Conn(guard))
    }

    /// `sql` prepared on the current connection (number `generation`), once per connection: a
    /// prepared statement saves a round trip and the planning on every later use.
    async fn prepared(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        generation: u64,
        sql: &'static str,
    ) -> Result<Statement, DbError> {
        {
            let cache = self.statements.lock().unwrap_or_else(|p| p.into_inner());
            if cache.0 == generation {
                if let Some(stmt) = cache.1.get(sql) {
                    return Ok(stmt.clone());
                }
            }
        }
        let stmt = tx.prepare(sql).await?;
        let mut cache = self.statements.lock().unwrap_or_else(|p| p.into_inner());
        if cache.0 != generation {
            *cache = (generation, HashMap::new());
        }
        cache.1.insert(sql, stmt.clone());
        Ok(stmt)
    }

    async fn connect_new(&self) -> Result<Client, DbError> {
        let (client, connection) = self
            .config
            .connect(self.tls.clone())
            .await
            .map_err(|e| DbError::Unavailable(e.to_string()))?;
        self.generation.fetch_add(1, Ordering::AcqRel);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                error!(error = %e, "postgres connection closed");
            }
        });
        client
            .batch_execute(&format!(
                "SET statement_timeout = {}; SET lock_timeout = {}; SET plan_cache_mode = force_custom_plan",
                self.timeouts.statement.as_millis(),
                self.timeouts.lock.as_millis()
            ))
            .await?;
        Ok(client)
    }

    /// Drop the cached connection, so the next use connects anew.
    async fn forget_connection(&self) {
        *self.client.lock().await = None;
    }

    /// Insert a sale, or find the identical one already there.
    ///
    /// # Errors
    /// [`DbError`] when the database fails.
    pub async fn create_sale(&self, def: &SaleDefinition) -> Result<CreateOutcome, DbError> {
        let inserted = self
            .client()
            .await?
            .execute(
                "INSERT INTO sales (id, name, stock, per_user_limit, opens_at, closes_at)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
                &[
                    &def.id.as_str(),
                    &def.name,
                    &(def.stock as i32),
                    &(def.per_user_limit as i32),
                    &def.opens_at_ms.map(ms_to_time),
                    &def.closes_at_ms.map(ms_to_time),
                ],
            )
            .await?;
        if inserted == 1 {
            return Ok(CreateOutcome::Created);
        }
        match self.sale(&def.id).await? {
            Some(existing) if existing.definition == *def => {
                Ok(CreateOutcome::AlreadyExists(existing))
            }
            Some(existing) => Ok(CreateOutcome::Conflict(existing)),
            // Deleted between the insert and the read: rare enough to let the caller retry.
            None => Err(DbError::Config("sale vanished while being created".into())),
        }
    }

    /// A sale with its settlement counters, or `None`.
    ///
    /// # Errors
    /// [`DbError`] when the database fails.
    pub async fn sale(&self, id: &SaleId) -> Result<Option<SaleRecord>, DbError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT s.name, s.stock, s.per_user_limit, s.opens_at, s.closes_at, s.confirmed,
                        count(o.*) FILTER (WHERE o.status = 'CONFIRMED') AS confirmed_orders,
                        count(o.*) FILTER (WHERE o.status = 'REJECTED') AS rejected_orders,
                        count(o.*) FILTER (WHERE o.status = 'DUPLICATE') AS duplicate_orders,
                        s.round
                   FROM sales s LEFT JOIN orders o ON o.sale_id = s.id
                  WHERE s.id = $1
                  GROUP BY s.id",
                &[&id.as_str()],
            )
            .await?;
        Ok(row.map(|r| SaleRecord {
            definition: definition_from_row(id, &r),
            confirmed_quantity: r.get::<_, i32>(5) as u32,
            confirmed_orders: r.get::<_, i64>(6) as u64,
            rejected_orders: r.get::<_, i64>(7) as u64,
            duplicate_orders: r.get::<_, i64>(8) as u64,
            round: r.get::<_, i32>(9) as u32,
        }))
    }

    /// Start the sale's next round: its orders move to `orders_archive` (kept, and still the
    /// answer for their ids), its confirmed count goes back to zero, and optionally a new stock
    /// is set. Messages of the earlier round that arrive later are recorded there as rejected.
    /// Returns the definition and the new round, or `None` when the sale does not exist.
    ///
    /// # Errors
    /// [`DbError`] when the database fails; then nothing changed.
    pub async fn reset_sale(
        &self,
        id: &SaleId,
        stock: Option<u32>,
    ) -> Result<Option<(SaleDefinition, u32)>, DbError> {
        let mut conn = self.client().await?;
        let tx = conn.transaction().await?;
        // The sale row first, as settle does: a batch in progress finishes before the move.
        if tx
            .query_opt(
                "SELECT 1 FROM sales WHERE id = $1 FOR UPDATE",
                &[&id.as_str()],
            )
            .await?
            .is_none()
        {
            return Ok(None);
        }
        tx.execute(
            "WITH moved AS (DELETE FROM orders WHERE sale_id = $1 RETURNING *)
             INSERT INTO orders_archive (order_id, sale_id, round, buyer, quantity, status,
                                         idempotency_key, duplicate_of, reserved_at, settled_at)
             SELECT m.order_id, m.sale_id, s.round, m.buyer, m.quantity, m.status,
                    m.idempotency_key, m.duplicate_of, m.reserved_at, m.settled_at
               FROM moved m JOIN sales s ON s.id = m.sale_id",
            &[&id.as_str()],
        )
        .await?;
        let row = tx
            .query_one(
                "UPDATE sales SET confirmed = 0, stock = COALESCE($2, stock), round = round + 1
                  WHERE id = $1
                  RETURNING name, stock, per_user_limit, opens_at, closes_at, round",
                &[&id.as_str(), &stock.map(|s| s as i32)],
            )
            .await?;
        tx.commit().await?;
        Ok(Some((
            definition_from_row(id, &row),
            row.get::<_, i32>(5) as u32,
        )))
    }

    /// Record reserved orders that a forced reset took out of Redis before they settled: as
    /// rejected, in their round's history, unless already recorded. Returns every one's status as
    /// recorded, for the status store.
    ///
    /// # Errors
    /// [`DbError`] when the database fails.
    pub async fn cancel_orders(
        &self,
        orders: &[OrderMessage],
    ) -> Result<Vec<OrderStatus>, DbError> {
        if orders.is_empty() {
            return Ok(Vec::new());
        }
        let mut rows = InsertRows::default();
        for o in orders {
            rows.push(o, Settlement::Stale);
        }
        let mut conn = self.client().await?;
        let tx = conn.transaction().await?;
        tx.execute(
            "INSERT INTO orders_archive (order_id, sale_id, round, buyer, quantity, status,
                                         idempotency_key, reserved_at, settled_at)
             SELECT d.*, now() FROM unnest($1::uuid[], $2::text[], $3::int[], $4::text[],
                                  $5::int[], $6::text[], $7::text[], $8::timestamptz[])
                  AS d(order_id, sale_id, round, buyer, quantity, status, key, reserved_at)
              WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.order_id = d.order_id)
             ON CONFLICT (order_id) DO NOTHING",
            &[
                &rows.ids,
                &rows.sales,
                &rows.rounds,
                &rows.buyers,
                &rows.quantities,
                &rows.statuses,
                &rows.keys,
                &rows.reserved_at,
            ],
        )
        .await?;
        let recorded = recorded_orders(&tx, &rows.ids).await?;
        tx.commit().await?;
        Ok(recorded)
    }

    /// What this round of the sale holds, for rebuilding Redis after it lost the sale: the
    /// sale, each buyer's confirmed quantity, each idempotency key's order, and which of
    /// `pending` (order ids from the outbox) are already recorded.
    ///
    /// # Errors
    /// [`DbError`] when the database fails.
    pub async fn ledger_of(
        &self,
        id: &SaleId,
        pending: &[uuid::Uuid],
    ) -> Result<Option<LedgerOfSale>, DbError> {
        let Some(record) = self.sale(id).await? else {
            return Ok(None);
        };
        let round = record.round;
        let client = self.client().await?;
        let bought = client
            .query(
                "SELECT buyer, sum(quantity)::bigint FROM orders
                  WHERE sale_id = $1 AND status = 'CONFIRMED' GROUP BY buyer",
                &[&id.as_str()],
            )
            .await?
            .iter()
            .filter_map(|r| Some((BuyerId::parse(r.get(0)).ok()?, r.get::<_, i64>(1))))
            .collect();
        let keys = client
            .query(
                "SELECT buyer, idempotency_key, order_id, quantity, status FROM orders
                  WHERE sale_id = $1 AND idempotency_key IS NOT NULL AND status <> 'DUPLICATE'",
                &[&id.as_str()],
            )
            .await?
            .iter()
            .filter_map(|r| {
                Some(KeyHolder {
                    buyer: BuyerId::parse(r.get(0)).ok()?,
                    key: IdempotencyKey::parse(r.get(1)).ok()?,
                    order_id: r.get(2),
                    quantity: r.get::<_, i32>(3) as u32,
                    state: OrderState::parse(r.get(4)).ok()?,
                    round,
                })
            })
            .collect();
        let settled = client
            .query(
                "SELECT order_id FROM orders WHERE order_id = ANY($1)
                 UNION ALL SELECT order_id FROM orders_archive WHERE order_id = ANY($1)",
                &[&pending],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        Ok(Some(LedgerOfSale {
            record,
            bought,
            keys,
            settled,
        }))
    }
}

/// What [`Db::ledger_of`] found.
#[derive(Debug, Clone)]
pub struct LedgerOfSale {
    pub record: SaleRecord,
    pub bought: Vec<(BuyerId, i64)>,
    pub keys: Vec<KeyHolder>,
    /// Those of the asked-for order ids that are recorded (in any round).
    pub settled: std::collections::HashSet<uuid::Uuid>,
}

pub use crate::domain::rehydrate::KeyHolder;

/// A sale's definition from a row whose first columns are
/// `name, stock, per_user_limit, opens_at, closes_at`.
fn definition_from_row(id: &SaleId, r: &tokio_postgres::Row) -> SaleDefinition {
    SaleDefinition {
        id: id.clone(),
        name: r.get(0),
        stock: r.get::<_, i32>(1) as u32,
        per_user_limit: r.get::<_, i32>(2) as u32,
        opens_at_ms: r.get::<_, Option<SystemTime>>(3).map(time_to_ms),
        closes_at_ms: r.get::<_, Option<SystemTime>>(4).map(time_to_ms),
    }
}

/// What [`Db::create_sale`] found.
#[derive(Debug)]
pub enum CreateOutcome {
    Created,
    /// The same sale was created before (a retried request).
    AlreadyExists(SaleRecord),
    /// A different sale already has this id.
    Conflict(SaleRecord),
}

/// A sale as Postgres holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaleRecord {
    pub definition: SaleDefinition,
    pub confirmed_quantity: u32,
    pub confirmed_orders: u64,
    pub rejected_orders: u64,
    pub duplicate_orders: u64,
    /// Incremented by every reset.
    pub round: u32,
}

impl SaleRecord {
    /// What may still be sold according to Postgres.
    pub fn available(&self) -> u32 {
        self.definition
            .stock
            .saturating_sub(self.confirmed_quantity)
    }
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

/// Apply the embedded migrations not yet applied, under an advisory lock so that concurrent cold
/// starts do not race. The lock is per schema, so isolated test schemas migrate in parallel.
async fn migrate(client: &mut Client) -> Result<(), DbError> {
    let tx = client.transaction().await?;
    tx.batch_execute(
        "SELECT pg_advisory_xact_lock(hashtext('flashflow-migrate:' || current_schema()));
         CREATE TABLE IF NOT EXISTS schema_migrations (
             version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
    )
    .await?;
    let applied: Vec<String> = tx
        .query("SELECT version FROM schema_migrations", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    for (version, sql) in MIGRATIONS {
        if applied.iter().any(|a| a == version) {
            continue;
        }
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO schema_migrations (version) VALUES ($1)",
            &[version],
        )
        .await?;
        info!(version, "applied migration");
    }
    tx.commit().await?;
    Ok(())
}

impl Ledger for Db {
    /// A connection that broke (e.g. while a Lambda instance was frozen) is replaced and the batch
    /// tried once more before the failure is reported; settling is idempotent, so a retry after a
    /// commit whose answer was lost records nothing twice.
    async fn settle_orders(
        &self,
        orders: &[OrderMessage],
    ) -> Result<HashMap<uuid::Uuid, Settled>, DbError> {
        match self.settle_once(orders).await {
            Err(DbError::Unavailable(e)) => {
                tracing::warn!(error = %e, "postgres connection lost, reconnecting once");
                self.forget_connection().await;
                self.settle_once(orders).await
            }
            other => other,
        }
    }
}

impl Db {
    /// One transaction, a handful of statements whatever the batch size. The sale rows are locked
    /// (in id order) for the transaction, so concurrent batches of one sale serialize and the
    /// buyers' totals and keys read here cannot change before the commit. `sales.confirmed` and
    /// its `CHECK (confirmed <= stock)` make Postgres the second guard against overselling, the
    /// unique index on (sale, buyer, key) the second guard against recording a request twice.
    async fn settle_once(
        &self,
        orders: &[OrderMessage],
    ) -> Result<HashMap<uuid::Uuid, Settled>, DbError> {
        let mut outcome: HashMap<uuid::Uuid, Settled> = HashMap::new();
        if orders.is_empty() {
            return Ok(outcome);
        }
        let mut sale_ids: Vec<&str> = orders.iter().map(|o| o.sale_id.as_str()).collect();
        sale_ids.sort_unstable();
        sale_ids.dedup();
        let order_ids = distinct_ids(orders);

        // The buyers and keys of every order, recorded or not: reading a few more totals costs
        // nothing and lets all the reads go in one round trip.
        let sales: Vec<&str> = orders.iter().map(|o| o.sale_id.as_str()).collect();
        let buyers: Vec<&str> = orders.iter().map(|o| o.buyer.as_str()).collect();
        let keyed: Vec<&OrderMessage> = orders
            .iter()
            .filter(|o| o.idempotency_key.is_some())
            .collect();
        let keyed_sales: Vec<&str> = keyed.iter().map(|o| o.sale_id.as_str()).collect();
        let keyed_buyers: Vec<&str> = keyed.iter().map(|o| o.buyer.as_str()).collect();
        let keys: Vec<&str> = keyed
            .iter()
            .filter_map(|o| o.idempotency_key.as_ref().map(|k| k.as_str()))
            .collect();

        let mut conn = self.client().await?;
        // Read while holding the connection: it cannot be replaced meanwhile.
        let generation = self.generation.load(Ordering::Acquire);
        let tx = conn.transaction().await?;
        let lock = self.prepared(&tx, generation, LOCK_SALES).await?;
        let recorded_stmt = self.prepared(&tx, generation, RECORDED_ORDERS).await?;
        let bought = self.prepared(&tx, generation, BOUGHT).await?;
        let key_holders = self.prepared(&tx, generation, KEY_HOLDERS).await?;
        // Pipelined on the one connection, executed in this order: the sale rows are locked
        // before the totals and keys are read, so nothing read here changes before the commit.
        let lock_params: [&Param<'_>; 1] = [&sale_ids];
        let recorded_params: [&Param<'_>; 1] = [&order_ids];
        let bought_params: [&Param<'_>; 2] = [&sales, &buyers];
        let key_params: [&Param<'_>; 3] = [&keyed_sales, &keyed_buyers, &keys];
        let (sale_rows, recorded_rows, bought_rows, key_rows) = tokio::join!(
            tx.query(&lock, &lock_params),
            tx.query(&recorded_stmt, &recorded_params),
            tx.query(&bought, &bought_params),
            async {
                if keys.is_empty() {
                    Ok(Vec::new())
                } else {
                    tx.query(&key_holders, &key_params).await
                }
            },
        );
        // In statement order: when the lock fails (lock_timeout), the others only report the
        // aborted transaction, and it is the lock's error that says what happened.
        let (sale_rows, recorded_rows, bought_rows, key_rows) =
            (sale_rows?, recorded_rows?, bought_rows?, key_rows?);
        let mut books: HashMap<SaleId, SaleBook> = HashMap::new();
        for r in sale_rows {
            if let Ok(id) = SaleId::parse(r.get(0)) {
                let book = SaleBook {
                    available: i64::from(r.get::<_, i32>(1) - r.get::<_, i32>(2)),
                    per_user_limit: i64::from(r.get::<_, i32>(3)),
                    round: r.get::<_, i32>(4) as u32,
                    ..SaleBook::default()
                };
                books.insert(id, book);
            }
        }
        for r in &recorded_rows {
            let recorded = recorded(r)?;
            outcome.insert(recorded.order_id, Settled::Recorded(recorded));
        }
        for r in bought_rows {
            if let (Ok(sale), Ok(buyer)) = (SaleId::parse(r.get(0)), BuyerId::parse(r.get(1))) {
                if let Some(book) = books.get_mut(&sale) {
                    book.bought.insert(buyer, r.get(2));
                }
            }
        }
        let mut originals = Vec::new();
        for r in key_rows {
            let original = recorded(&r)?;
            if let (Some(book), Ok(key)) = (
                books.get_mut(&original.sale_id),
                IdempotencyKey::parse(r.get(6)),
            ) {
                book.keys
                    .insert((original.buyer.clone(), key), original.order_id);
            }
            originals.push(original);
        }

        let mut rows = InsertRows::default();
        let mut stale = InsertRows::default();
        for (o, settled) in allocate(
            &mut books,
            orders.iter().filter(|o| !outcome.contains_key(&o.order_id)),
        ) {
            match settled {
                Settlement::UnknownSale => {
                    outcome.insert(o.order_id, Settled::UnknownSale);
                }
                Settlement::Stale => stale.push(o, settled),
                _ => rows.push(o, settled),
            }
        }

        let mut confirmed: HashMap<String, i32> = HashMap::new();
        if !rows.ids.is_empty() {
            let insert = self.prepared(&tx, generation, INSERT_ORDERS).await?;
            let inserted = tx
                .query(
                    &insert,
                    &[
                        &rows.ids,
                        &rows.sales,
                        &rows.buyers,
                        &rows.quantities,
                        &rows.statuses,
                        &rows.keys,
                        &rows.reserved_at,
                        &rows.duplicate_of,
                    ],
                )
                .await?;
            for r in &inserted {
                let recorded = recorded(r)?;
                if recorded.status == OrderState::Confirmed {
                    *confirmed.entry(recorded.sale_id.to_string()).or_default() +=
                        recorded.quantity as i32;
                }
                outcome.insert(recorded.order_id, Settled::Recorded(recorded));
            }
        }
        if !stale.ids.is_empty() {
            // An earlier round's order goes to that round's history, as rejected.
            let rounds: Vec<i32> = stale.rounds.clone();
            let inserted = tx
                .query(
                    "INSERT INTO orders_archive (order_id, sale_id, round, buyer, quantity, status,
                                                 idempotency_key, reserved_at, settled_at)
                     SELECT d.*, now() FROM unnest($1::uuid[], $2::text[], $3::int[], $4::text[],
                                          $5::int[], $6::text[], $7::text[], $8::timestamptz[]) AS d
                     ON CONFLICT (order_id) DO NOTHING
                     RETURNING order_id, sale_id, buyer, quantity, status, duplicate_of",
                    &[
                        &stale.ids,
                        &stale.sales,
                        &rounds,
                        &stale.buyers,
                        &stale.quantities,
                        &stale.statuses,
                        &stale.keys,
                        &stale.reserved_at,
                    ],
                )
                .await?;
            for r in &inserted {
                let recorded = recorded(r)?;
                outcome.insert(recorded.order_id, Settled::Recorded(recorded));
            }
        }
        // Inserted meanwhile by another transaction (ON CONFLICT): read what it recorded.
        let missing: Vec<uuid::Uuid> = rows
            .ids
            .iter()
            .chain(&stale.ids)
            .filter(|id| !outcome.contains_key(id))
            .copied()
            .collect();
        for recorded in recorded_orders(&tx, &missing).await? {
            outcome.insert(recorded.order_id, Settled::Recorded(recorded));
        }
        // The originals of duplicates, so settle can answer a replay with the order that counts.
        for original in originals {
            outcome
                .entry(original.order_id)
                .or_insert(Settled::Recorded(original));
        }
        if !confirmed.is_empty() {
            let (sales, quantities): (Vec<String>, Vec<i32>) = confirmed.into_iter().unzip();
            let update = self.prepared(&tx, generation, ADD_CONFIRMED).await?;
            tx.execute(&update, &[&sales, &quantities]).await?;
        }
        tx.commit().await?;
        Ok(outcome)
    }
}

/// Columns of an order as buyers see it, for [`recorded`].
const RECORDED: &str = "order_id, sale_id, buyer, quantity, status, duplicate_of";

/// A statement parameter.
type Param<'a> = dyn ToSql + Sync + 'a;

/// Settlement's reads, prepared once per connection (see [`Db::prepared`]).
const LOCK_SALES: &str = "SELECT id, stock, confirmed, per_user_limit, round FROM sales
                           WHERE id = ANY($1) ORDER BY id FOR UPDATE";
const RECORDED_ORDERS: &str =
    "SELECT order_id, sale_id, buyer, quantity, status, duplicate_of FROM orders
      WHERE order_id = ANY($1)
     UNION ALL
     SELECT order_id, sale_id, buyer, quantity, status, duplicate_of FROM orders_archive
      WHERE order_id = ANY($1)";
const INSERT_ORDERS: &str =
    "INSERT INTO orders (order_id, sale_id, buyer, quantity, status, idempotency_key, reserved_at,
                         duplicate_of)
     SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int[], $5::text[], $6::text[],
                          $7::timestamptz[], $8::uuid[])
     ON CONFLICT (order_id) DO NOTHING
     RETURNING order_id, sale_id, buyer, quantity, status, duplicate_of";
const ADD_CONFIRMED: &str = "UPDATE sales s SET confirmed = s.confirmed + d.q
                               FROM unnest($1::text[], $2::int[]) AS d(id, q) WHERE s.id = d.id";
/// Each buyer's confirmed quantity in this round of the sale.
const BOUGHT: &str = "SELECT o.sale_id, o.buyer, sum(o.quantity)::bigint FROM orders o
                        JOIN (SELECT DISTINCT * FROM unnest($1::text[], $2::text[])) AS b(sale_id, buyer)
                          ON o.sale_id = b.sale_id AND o.buyer = b.buyer
                       WHERE o.status = 'CONFIRMED'
                       GROUP BY o.sale_id, o.buyer";
/// The order each (buyer, idempotency key) belongs to in this round of the sale.
const KEY_HOLDERS: &str =
    "SELECT o.order_id, o.sale_id, o.buyer, o.quantity, o.status, o.duplicate_of,
            o.idempotency_key FROM orders o
       JOIN (SELECT DISTINCT * FROM unnest($1::text[], $2::text[], $3::text[]))
            AS k(sale_id, buyer, key)
         ON o.sale_id = k.sale_id AND o.buyer = k.buyer AND o.idempotency_key = k.key
      WHERE o.status <> 'DUPLICATE'";

/// The orders among `ids` already recorded, in this round or an archived one.
async fn recorded_orders(
    tx: &tokio_postgres::Transaction<'_>,
    ids: &[uuid::Uuid],
) -> Result<Vec<OrderStatus>, DbError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    tx.query(
        &format!(
            "SELECT {RECORDED} FROM orders WHERE order_id = ANY($1)
             UNION ALL SELECT {RECORDED} FROM orders_archive WHERE order_id = ANY($1)"
        ),
        &[&ids],
    )
    .await?
    .iter()
    .map(recorded)
    .collect()
}

/// An order row ([`RECORDED`]) as buyers see it.
fn recorded(r: &tokio_postgres::Row) -> Result<OrderStatus, DbError> {
    let order_id: uuid::Uuid = r.get(0);
    let bad = |what: &str| DbError::Query(format!("order {order_id}: stored {what} is invalid"));
    Ok(OrderStatus {
        order_id,
        sale_id: SaleId::parse(r.get(1)).map_err(|_| bad("sale id"))?,
        buyer: BuyerId::parse(r.get(2)).map_err(|_| bad("buyer"))?,
        quantity: r.get::<_, i32>(3) as u32,
        status: OrderState::parse(r.get(4)).map_err(|_| bad("status"))?,
        duplicate_of: r.get(5),
    })
}

/// Column arrays for the set-based insert.
#[derive(Default)]
struct InsertRows {
    ids: Vec<uuid::Uuid>,
    sales: Vec<String>,
    buyers: Vec<String>,
    quantities: Vec<i32>,
    statuses: Vec<&'static str>,
    keys: Vec<Option<String>>,
    reserved_at: Vec<SystemTime>,
    duplicate_of: Vec<Option<uuid::Uuid>>,
    rounds: Vec<i32>,
}

impl InsertRows {
    fn push(&mut self, o: &OrderMessage, status: Settlement) {
        self.ids.push(o.order_id);
        self.sales.push(o.sale_id.to_string());
        self.buyers.push(o.buyer.as_str().to_owned());
        self.quantities.push(o.quantity.get() as i32);
        self.statuses.push(status.as_str());
        self.keys
            .push(o.idempotency_key.as_ref().map(|k| k.as_str().to_owned()));
        self.reserved_at.push(ms_to_time(o.reserved_at_ms));
        self.duplicate_of.push(match status {
            Settlement::Duplicate { original } => Some(original),
            _ => None,
        });
        self.rounds.push(o.round as i32);
    }
}
