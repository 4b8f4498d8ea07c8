//! The order-status function: `GET /orders/{order_id}` for buyers (JWT) and
//! `GET /admin/orders/{order_id}` for operators (IAM).
//!
//! Settings: `REDIS_URL`, `ORDERS_TABLE`, optional `OPERATOR_TOKEN`, `TRUST_USER_HEADER` (local only).

use flashflow::api::orders::OrdersHandler;
use flashflow::{aws, config, status::DynamoStatusStore, store::RedisStore};
use lambda_http::{service_fn, Error, Request};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();

    let redis = config::redis()?;
    let table = config::required("ORDERS_TABLE", "the DynamoDB order-status table")?;
    let trust_user_header = config::flag("TRUST_USER_HEADER", false)?;
    let token = config::optional("OPERATOR_TOKEN");

    let store = RedisStore::connect(&redis)?;
    let dynamodb = aws_sdk_dynamodb::Client::new(&aws::sdk_config().await);
    let handler = Arc::new(OrdersHandler::new(
        DynamoStatusStore::new(dynamodb, table),
        store,
        trust_user_header,
        token,
    ));

    lambda_http::run(service_fn(move |req: Request| {
        let handler = Arc::clone(&handler);
        async move { Ok::<_, Error>(handler.handle(req).await) }
    }))
    .await
}
