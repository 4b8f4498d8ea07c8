//! The order-status function's wiring (`GET /orders/{order_id}`, `GET /admin/orders/{order_id}`,
//! `GET /sales/{sale_id}`, and the pages: `/shop/{sale_id}`, `/admin/live/{sale_id}`,
//! `/pages/{file}`): every read a page makes of the buyer's side. Shared by its Lambda and
//! `flashflow-local`.

use axum::Router;
use flashflow_adapters::aws::SdkConfig;
use flashflow_adapters::clients::{redis, StartupError};
use flashflow_adapters::dynamodb::{DynamoStatusStore, StatusSettings};
use flashflow_adapters::redis::RedisSettings;
use flashflow_http::orders::{self, OrdersSettings, OrdersState};
use flashflow_http::pages::{self, PagesSettings};

flashflow_settings::composite! {
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
    let store = redis(sdk, &settings.redis).await?;
    Ok(orders::routes(OrdersState {
        status: DynamoStatusStore::from_settings(sdk, &settings.status),
        store,
        trust_user_header: settings.callers.trust_user_header.get(),
        operator_token: settings.callers.operator_token.clone(),
    })
    .merge(pages::routes(settings.pages.clone())))
}
