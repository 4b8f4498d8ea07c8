//! `POST /sales/{sale_id}/buy`: reserve in Redis, hand the order to the queue, answer `202`.

use super::{json_body, json_response, parse_json, single_header, ApiError};
use crate::domain::{IdempotencyKey, Quantity, SaleId};
use crate::queue::OrderPublisher;
use crate::store::{Reservation, ReservationStore, ReserveRequest};
use lambda_http::{Body, Request, RequestExt, Response};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};
use uuid::Uuid;

/// A buy body is `{"quantity": n}` at most; anything much larger is not a buy.
pub const MAX_BUY_BODY: usize = 1024;

/// Settings of the buy handler.
#[derive(Debug, Clone, Default)]
pub struct BuySettings {
    /// Accept the buyer from the `X-User-Id` header when no JWT claim is present. For local use
    /// only: in AWS the API Gateway JWT authorizer supplies the buyer.
    pub trust_user_header: bool,
}

/// The buy handler with its two ports.
pub struct BuyHandler<S, P> {
    store: S,
    publisher: P,
    settings: BuySettings,
}

/// The `202` body.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Accepted {
    pub order_id: Uuid,
    pub sale_id: String,
    pub status: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BuyBody {
    quantity: Option<i64>,
}

impl<S: ReservationStore, P: OrderPublisher> BuyHandler<S, P> {
    pub fn new(store: S, publisher: P, settings: BuySettings) -> Self {
        Self {
            store,
            publisher,
            settings,
        }
    }

    /// Handle one request; never fails, every error is an HTTP response.
    pub async fn handle(&self, req: Request) -> Response<Body> {
        match self.buy(&req).await {
            Ok(accepted) => json_response(202, &accepted),
            Err(e) => e.into_response(),
        }
    }

    async fn buy(&self, req: &Request) -> Result<Accepted, ApiError> {
        if req.method() != http::Method::POST {
            return Err(ApiError::MethodNotAllowed { allow: "POST" });
        }
        let sale = sale_id(req)?;
        let buyer = super::identity::buyer(req, self.settings.trust_user_header)?;
        let idempotency_key = single_header(req, "idempotency-key", "invalid_idempotency_key")?
            .map(IdempotencyKey::parse)
            .transpose()?;
        let quantity = match json_body(req, MAX_BUY_BODY)? {
            None => Quantity::default(),
            Some(bytes) => match parse_json::<BuyBody>(bytes, "invalid_body")?.quantity {
                None => Quantity::default(),
                Some(n) => Quantity::new(n)?,
            },
        };

        let request = ReserveRequest {
            order_id: Uuid::now_v7(),
            sale,
            buyer,
            quantity,
            idempotency_key,
        };
        match self.store.reserve(&request).await? {
            Reservation::Reserved { order_id, message } => {
                // A failed send is not the buyer's problem: the reservation is in the outbox and
                // the sweeper delivers it.
                if let Err(e) = self.publisher.publish(&message).await {
                    warn!(sale = %request.sale, order = %order_id, error = %e, "send failed, left in outbox");
                }
                info!(sale = %request.sale, order = %order_id, quantity = quantity.get(), "reserved");
                Ok(accepted(order_id, &request.sale))
            }
            Reservation::Duplicate { order_id } => {
                info!(sale = %request.sale, order = %order_id, "idempotent replay");
                Ok(accepted(order_id, &request.sale))
            }
            Reservation::Refused(r) => Err(ApiError::Refused(r)),
        }
    }
}

fn accepted(order_id: Uuid, sale: &SaleId) -> Accepted {
    Accepted {
        order_id,
        sale_id: sale.to_string(),
        status: "PENDING".into(),
    }
}

/// The sale id from API Gateway's path parameters, or from the path `/sales/{id}/buy`.
fn sale_id(req: &Request) -> Result<SaleId, ApiError> {
    if let Some(id) = req.path_parameters_ref().and_then(|p| p.first("sale_id")) {
        return Ok(SaleId::parse(id)?);
    }
    let segments: Vec<&str> = req.uri().path().trim_matches('/').split('/').collect();
    match segments.as_slice() {
        ["sales", id, "buy"] => Ok(SaleId::parse(id)?),
        _ => Err(ApiError::NotFound {
            code: "route_not_found",
            message: "use POST /sales/{sale_id}/buy".into(),
        }),
    }
}
