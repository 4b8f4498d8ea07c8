//! The order-status function: `GET /orders/{order_id}`, `GET /admin/orders/{order_id}`,
//! `GET /sales/{sale_id}`, and the pages (`/shop/{sale_id}`, `/admin/live/{sale_id}`,
//! `/pages/{file}`): every read a page makes of the buyer's side.

use super::StartupError;
use crate::adapters::dynamodb::{DynamoStatusStore, StatusSettings};
use crate::adapters::redis::RedisSettings;
use crate::api::orders::{self, OrdersSettings, OrdersState};
use crate::api::pages::{self, PagesSettings};
use aws_config::SdkConfig;
use axum::Router;

crate::composite! {
    /// What the order-status function reads.
    pub struct Settings {
        redis: RedisSettings,
        status: StatusSettings,
        callers: OrdersSettings,
        pages: PagesSettings,
    }
}

/// The order-status routes on DynamoDB (settled orders) and the Redis outbox (pending ones), the
/// public sale view (Redis) and the pages.
///
/// # Errors
/// [`StartupError`] when a client cannot be built.
pub async fn routes(sdk: &SdkConfig, settings: &Settings) -> Result<Router, StartupError> {
    let store = super::redis(sdk, &settings.redis).await?;
    let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
    Ok(orders::routes(OrdersState {
        status: DynamoStatusStore::new(dynamodb, &settings.status.table),
        store,
        trust_user_header: settings.callers.trust_user_header.get(),
        operator_token: settings.callers.operator_token.clone(),
    })
    .merge(pages::routes(settings.pages.clone())))
}
