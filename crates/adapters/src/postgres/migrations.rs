//! The embedded schema migrations: applied in order, each once, under an advisory lock (so
//! concurrent cold starts do not race; per schema, so isolated test schemas migrate in parallel),
//! each recorded with the SHA-256 of its text. A migration edited after it was applied is refused
//! at start: the database would not be what the code believes.
//!
//! Why not a runner crate (refinery, sqlx): they keep their own history table and naming, so
//! adopting one would re-apply these migrations on every existing database; this one is 60 lines.

use super::OrDbError;
use flashflow::ports::DbError;
use sha2::{Digest, Sha256};
use tokio_postgres::Client;
use tracing::info;

/// Embedded migrations, applied in order, each once.
pub(super) const MIGRATIONS: &[(&str, &str)] = &[
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
    (
        "0004_attempts_per_minute",
        include_str!("../../migrations/0004_attempts_per_minute.sql"),
    ),
    (
        "0005_checkout",
        include_str!("../../migrations/0005_checkout.sql"),
    ),
    (
        "0006_orders_without_sale_fk",
        include_str!("../../migrations/0006_orders_without_sale_fk.sql"),
    ),
    (
        "0007_hold_retries",
        include_str!("../../migrations/0007_hold_retries.sql"),
    ),
    (
        "0008_waiting_room",
        include_str!("../../migrations/0008_waiting_room.sql"),
    ),
    (
        "0009_draw_seed",
        include_str!("../../migrations/0009_draw_seed.sql"),
    ),
    (
        "0010_entry_policy",
        include_str!("../../migrations/0010_entry_policy.sql"),
    ),
];

/// The checksum recorded for a migration's text.
fn checksum(sql: &str) -> String {
    hex::encode(Sha256::digest(sql.as_bytes()))
}

/// Apply the migrations not yet applied, and check the applied ones against their checksums
/// (an applied migration recorded before checksums were kept gets its checksum recorded now).
///
/// # Errors
/// [`DbError::Config`] naming the migration whose text changed since it was applied; other
/// [`DbError`]s when a statement fails (nothing of this call is then applied).
pub(super) async fn migrate(client: &mut Client) -> Result<(), DbError> {
    let tx = client.transaction().await.or_db()?;
    tx.batch_execute(
        "SELECT pg_advisory_xact_lock(hashtext('flashflow-migrate:' || current_schema()));
         CREATE TABLE IF NOT EXISTS schema_migrations (
             version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now());
         ALTER TABLE schema_migrations ADD COLUMN IF NOT EXISTS checksum text",
    )
    .await
    .or_db()?;
    let applied: Vec<(String, Option<String>)> = tx
        .query("SELECT version, checksum FROM schema_migrations", &[])
        .await
        .or_db()?
        .iter()
        .map(|r| (r.get("version"), r.get("checksum")))
        .collect();
    for (version, sql) in MIGRATIONS {
        let sum = checksum(sql);
        match applied.iter().find(|(v, _)| v == version) {
            Some((_, Some(recorded))) if *recorded != sum => {
                return Err(DbError::Config(
                    format!(
                        "migration {version} was edited after it was applied \
                         (recorded checksum {recorded}, now {sum}): add a new migration instead"
                    )
                    .into(),
                ));
            }
            Some((_, Some(_))) => {}
            Some((_, None)) => {
                tx.execute(
                    "UPDATE schema_migrations SET checksum = $2 WHERE version = $1",
                    &[version, &sum],
                )
                .await
                .or_db()?;
            }
            None => {
                tx.batch_execute(sql).await.or_db()?;
                tx.execute(
                    "INSERT INTO schema_migrations (version, checksum) VALUES ($1, $2)",
                    &[version, &sum],
                )
                .await
                .or_db()?;
                info!(version, "applied migration");
            }
        }
    }
    tx.commit().await.or_db()?;
    Ok(())
}
