//! The operator function: create, show and reset sales (`/admin/...`, IAM-authorized in AWS).
//!
//! Settings: `DATABASE_URL` (and optional `DATABASE_CA_FILE`, `DATABASE_SECRET_ARN`), `REDIS_URL`
//! (and optional `REDIS_CA_FILE`, `REDIS_SECRET_ARN`), optional
//! `ORDERS_TABLE` (statuses of orders a forced reset cancels), optional `OPERATOR_TOKEN` (bearer
//! token accepted in addition to IAM), `SALE_RESET_ENABLED` (false), `REDIS_COMMAND_TIMEOUT_MS`.
//! Migrations run at start.

use anyhow::Context;
use flashflow::adapters::{dynamodb::DynamoStatusStore, postgres::Db, redis::RedisStore};
use flashflow::api::{self, operator};
use flashflow::{aws, config};
use lambda_http::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();

    let sdk = aws::sdk_config().await;
    let database = config::database_from(&sdk).await?;
    let redis = config::redis_from(&sdk).await?;
    let token = config::optional("OPERATOR_TOKEN");
    let table = config::required("ORDERS_TABLE", "the DynamoDB order-status table")?;
    let allow_reset = config::flag("SALE_RESET_ENABLED", false)?;

    let db = Db::from_settings(&database)?;
    db.migrate().await.context("migrating Postgres")?;
    let store = RedisStore::connect(&redis)?;
    let status = DynamoStatusStore::new(aws_sdk_dynamodb::Client::new(&sdk), table);
    let app = api::app(operator::routes(operator::OperatorState {
        db,
        store,
        status,
        token,
        allow_reset,
    }));
    lambda_http::run(app).await
}
