//! The order-status function: `GET /orders/{order_id}` for buyers (JWT) and
//! `GET /admin/orders/{order_id}` for operators (IAM).
//!
//! Settings: `REDIS_URL` (and optional `REDIS_CA_FILE`, `REDIS_SECRET_ARN`), `ORDERS_TABLE`, optional `OPERATOR_TOKEN`, `TRUST_USER_HEADER` (local only).

use flashflow::adapters::{dynamodb::DynamoStatusStore, redis::RedisStore};
use flashflow::api::{self, orders};
use flashflow::{aws, config};
use lambda_http::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();

    let sdk = aws::sdk_config().await;
    let redis = config::redis_from(&sdk).await?;
    let table = config::required("ORDERS_TABLE", "the DynamoDB order-status table")?;
    let trust_user_header = config::flag("TRUST_USER_HEADER", false)?;
    let operator_token = config::optional("OPERATOR_TOKEN");

    let store = RedisStore::connect(&redis)?;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let app = api::app(orders::routes(orders::OrdersState {
        status: DynamoStatusStore::new(dynamodb, table),
        store,
        trust_user_header,
        operator_token,
    }));
    lambda_http::run(app).await
}
