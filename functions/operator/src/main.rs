//! The operator function: create, show and reset sales (`/admin/...`, IAM-authorized in AWS).
//!
//! Settings: `DATABASE_URL` (and optional `DATABASE_CA_FILE`), `REDIS_URL`, optional
//! `OPERATOR_TOKEN` (bearer token accepted in addition to IAM), `REDIS_COMMAND_TIMEOUT_MS`.
//! Migrations run at start.

use anyhow::Context;
use flashflow::adapters::{postgres::Db, redis::RedisStore};
use flashflow::api::{self, operator};
use flashflow::config;
use lambda_http::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();

    let (database_url, ca_file) = config::database()?;
    let redis = config::redis()?;
    let token = config::optional("OPERATOR_TOKEN");

    let db = Db::with_ca_file(&database_url, ca_file.as_deref())?;
    db.migrate().await.context("migrating Postgres")?;
    let store = RedisStore::connect(&redis)?;
    let app = api::app(operator::routes(operator::OperatorState {
        db,
        store,
        token,
    }));
    lambda_http::run(app).await
}
