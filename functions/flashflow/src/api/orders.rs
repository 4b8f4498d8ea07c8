//! `GET /orders/{order_id}` (buyers) and `GET /admin/orders/{order_id}` (operators): an order's
//! status. Settled orders come from DynamoDB; reserved, unsettled ones from the Redis outbox.

use super::identity::{caller, Caller};
use super::{json_response, ApiError};
use crate::domain::{InvalidInput, OrderMessage};
use crate::status::{DynamoStatusStore, OrderStatus};
use crate::store::RedisStore;
use lambda_http::{Body, Request, RequestExt, Response};
use uuid::Uuid;

/// The order-status handler.
pub struct OrdersHandler {
    status: DynamoStatusStore,
    store: RedisStore,
    trust_user_header: bool,
    operator_token: Option<String>,
}

impl OrdersHandler {
    pub fn new(
        status: DynamoStatusStore,
        store: RedisStore,
        trust_user_header: bool,
        operator_token: Option<String>,
    ) -> Self {
        Self {
            status,
            store,
            trust_user_header,
            operator_token,
        }
    }

    /// Handle one request; never fails, every error is an HTTP response.
    pub async fn handle(&self, req: Request) -> Response<Body> {
        match self.order(&req).await {
            Ok(status) => json_response(200, &status),
            Err(e) => e.into_response(),
        }
    }

    async fn order(&self, req: &Request) -> Result<OrderStatus, ApiError> {
        if req.method() != http::Method::GET {
            return Err(ApiError::MethodNotAllowed { allow: "GET" });
        }
        let order_id = order_id(req)?;
        let who = caller(req, self.trust_user_header, self.operator_token.as_deref())?;
        let found = match self
            .status
            .get(order_id)
            .await
            .map_err(|e| ApiError::Unavailable(e.to_string()))?
        {
            Some(settled) => Some(settled),
            None => self.store.find_pending(&order_id).await?.and_then(|body| {
                OrderMessage::parse(&body).ok().map(|o| OrderStatus {
                    order_id,
                    sale_id: o.sale_id.to_string(),
                    buyer: o.buyer.as_str().to_owned(),
                    quantity: o.quantity,
                    status: "PENDING".into(),
                })
            }),
        };
        match (found, who) {
            (Some(s), Caller::Operator) => Ok(s),
            (Some(s), Caller::Buyer(b)) if s.buyer == b.as_str() => Ok(s),
            // Someone else's order looks exactly like no order: ids are not an oracle.
            _ => Err(ApiError::NotFound {
                code: "order_not_found",
                message: format!("no order {order_id} for this caller"),
            }),
        }
    }
}

fn order_id(req: &Request) -> Result<Uuid, ApiError> {
    let raw = match req.path_parameters_ref().and_then(|p| p.first("order_id")) {
        Some(id) => id.to_owned(),
        None => {
            let path = req.uri().path().trim_matches('/');
            match path.split('/').collect::<Vec<_>>().as_slice() {
                ["orders", id] | ["admin", "orders", id] => (*id).to_owned(),
                _ => {
                    return Err(ApiError::NotFound {
                        code: "route_not_found",
                        message: "use GET /orders/{order_id}".into(),
                    })
                }
            }
        }
    };
    Uuid::parse_str(&raw)
        .map_err(|_| InvalidInput::new("invalid_order_id", "order id must be a UUID").into())
}
