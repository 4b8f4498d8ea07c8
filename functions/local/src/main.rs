//! `flashflow-local api`: the buy and operator handlers served over plain HTTP on one port, with the
//! routes API Gateway would give them. Same handler code as the Lambdas; see `flashflow::local`.
//!
//! Settings: those of the buy and operator functions, plus `LISTEN_ADDR` (default 127.0.0.1:3000).

use anyhow::Context;
use flashflow::api::buy::{BuyHandler, BuySettings};
use flashflow::api::operator::OperatorHandler;
use flashflow::{aws, config, db::Db, local, queue::SqsPublisher, store::RedisStore};
use std::sync::Arc;
use std::time::Duration;
use tracing::info;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    lambda_http::tracing::init_default_subscriber();
    match std::env::args().nth(1).as_deref() {
        Some("api") => api().await,
        _ => anyhow::bail!("usage: flashflow-local api"),
    }
}

async fn api() -> anyhow::Result<()> {
    let redis = config::redis()?;
    let queue_url = config::required("ORDERS_QUEUE_URL", "the SQS queue that settle reads")?;
    let database_url = config::required("DATABASE_URL", "postgres://user@host:5432/db")?;
    let settings = BuySettings {
        trust_user_header: config::flag("TRUST_USER_HEADER", false)?,
    };
    let token = config::optional("OPERATOR_TOKEN");
    let addr = config::optional("LISTEN_ADDR").unwrap_or_else(|| "127.0.0.1:3000".into());

    let db = Db::new(&database_url)?;
    db.migrate().await.context("migrating Postgres")?;
    let store = RedisStore::connect(&redis)?;
    store
        .ready(Duration::from_secs(5))
        .await
        .context("connecting to Redis")?;
    let sqs = aws_sdk_sqs::Client::new(&aws::sdk_config().await);
    let buy = Arc::new(BuyHandler::new(
        store.clone(),
        SqsPublisher::new(sqs, queue_url),
        settings,
    ));
    let operator = Arc::new(OperatorHandler::new(db, store, token));

    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    info!(%addr, "serving the FlashFlow API");
    local::serve(listener, move |req| {
        let buy = Arc::clone(&buy);
        let operator = Arc::clone(&operator);
        async move {
            if req.uri().path().starts_with("/admin/") {
                operator.handle(req).await
            } else {
                buy.handle(req).await
            }
        }
    })
    .await?;
    Ok(())
}
