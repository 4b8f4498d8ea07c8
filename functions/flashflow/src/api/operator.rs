//! The operator API: create, show and reset sales. Postgres holds the sale; Redis gets a copy of
//! what the buy script needs.
//!
//! Routes: `POST /admin/sales`, `GET /admin/sales/{id}`, `POST /admin/sales/{id}/reset`.
//! In AWS the routes sit behind IAM authorization; the handler also accepts a bearer token when
//! `OPERATOR_TOKEN` is set (the local stack uses that).

use super::{json_body, json_response, parse_json, ApiError};
use crate::db::{CreateOutcome, Db, SaleRecord};
use crate::domain::{InvalidInput, SaleDefinition, SaleId, MAX_QUANTITY};
use crate::store::RedisStore;
use crate::timefmt::{format_ms, parse_ms};
use lambda_http::{Body, Request, Response};
use serde::{Deserialize, Serialize};
use tracing::info;

const MAX_OPERATOR_BODY: usize = 16 * 1024;
/// Largest stock one sale may have; far above any flash sale, well inside Postgres' `integer`.
pub const MAX_STOCK: u32 = 10_000_000;
const MAX_NAME_LEN: usize = 200;

/// The operator handler.
pub struct OperatorHandler {
    db: Db,
    store: RedisStore,
    token: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateSale {
    id: String,
    name: String,
    stock: i64,
    per_user_limit: i64,
    opens_at: Option<String>,
    closes_at: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ResetSale {
    stock: Option<i64>,
}

/// A sale as the operator sees it.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SaleView {
    pub id: String,
    pub name: String,
    pub stock: u32,
    pub per_user_limit: u32,
    pub opens_at: Option<String>,
    pub closes_at: Option<String>,
    /// Whether Redis holds the sale (false after Redis lost its data, until it is loaded again).
    pub loaded: bool,
    /// Stock Redis can still hand out.
    pub remaining: Option<i64>,
    /// Quantity reserved in Redis so far (stock - remaining).
    pub reserved: Option<i64>,
    /// Reservations not yet settled.
    pub pending: Option<i64>,
    /// Settled in Postgres.
    pub settled: Settled,
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Settled {
    pub confirmed_quantity: u32,
    pub confirmed_orders: u64,
    pub rejected_orders: u64,
}

impl OperatorHandler {
    /// `token`: when `Some`, `Authorization: Bearer <token>` also authorizes a request.
    pub fn new(db: Db, store: RedisStore, token: Option<String>) -> Self {
        Self { db, store, token }
    }

    /// Handle one request; never fails, every error is an HTTP response.
    pub async fn handle(&self, req: Request) -> Response<Body> {
        match self.route(&req).await {
            Ok((status, view)) => json_response(status, &view),
            Err(e) => e.into_response(),
        }
    }

    async fn route(&self, req: &Request) -> Result<(u16, SaleView), ApiError> {
        super::identity::operator(req, self.token.as_deref())?;
        let path = req.uri().path().trim_matches('/').to_owned();
        let segments: Vec<&str> = path.split('/').collect();
        let method = req.method();
        match segments.as_slice() {
            ["admin", "sales"] if method == http::Method::POST => self.create(req).await,
            ["admin", "sales"] => Err(ApiError::MethodNotAllowed { allow: "POST" }),
            ["admin", "sales", id] if method == http::Method::GET => {
                Ok((200, self.show(&SaleId::parse(id)?).await?))
            }
            ["admin", "sales", _] => Err(ApiError::MethodNotAllowed { allow: "GET" }),
            ["admin", "sales", id, "reset"] if method == http::Method::POST => {
                self.reset(&SaleId::parse(id)?, req).await
            }
            ["admin", "sales", _, "reset"] => Err(ApiError::MethodNotAllowed { allow: "POST" }),
            _ => Err(ApiError::NotFound {
                code: "route_not_found",
                message: "operator routes: POST /admin/sales, GET /admin/sales/{id}, POST /admin/sales/{id}/reset".into(),
            }),
        }
    }

    async fn create(&self, req: &Request) -> Result<(u16, SaleView), ApiError> {
        let bytes = json_body(req, MAX_OPERATOR_BODY)?.ok_or_else(|| {
            InvalidInput::new("invalid_body", "body must be a JSON sale definition")
        })?;
        let def = validate(parse_json::<CreateSale>(bytes, "invalid_body")?)?;
        let (status, record) = match self.db.create_sale(&def).await? {
            CreateOutcome::Created => (201, None),
            CreateOutcome::AlreadyExists(existing) => (200, Some(existing)),
            CreateOutcome::Conflict(_) => {
                return Err(ApiError::Conflict {
                    code: "sale_exists",
                    message: format!("a different sale with id {} already exists", def.id),
                })
            }
        };
        let available = record.as_ref().map_or(def.stock, SaleRecord::available);
        // Loading after the insert: a retry of a create whose Redis load failed finishes the job.
        let fresh = self.store.load_sale(&def, available).await?;
        info!(sale = %def.id, stock = def.stock, fresh, "sale created");
        Ok((status, self.show(&def.id).await?))
    }

    async fn show(&self, id: &SaleId) -> Result<SaleView, ApiError> {
        let record = self.db.sale(id).await?.ok_or_else(|| ApiError::NotFound {
            code: "sale_not_found",
            message: format!("no sale with id {id}"),
        })?;
        let live = self.store.live_sale(id).await?;
        let d = &record.definition;
        Ok(SaleView {
            id: d.id.to_string(),
            name: d.name.clone(),
            stock: d.stock,
            per_user_limit: d.per_user_limit,
            opens_at: d.opens_at_ms.map(format_ms),
            closes_at: d.closes_at_ms.map(format_ms),
            loaded: live.is_some(),
            remaining: live.as_ref().map(|l| l.remaining),
            reserved: live.as_ref().map(|l| l.stock - l.remaining),
            pending: live.as_ref().map(|l| l.pending),
            settled: Settled {
                confirmed_quantity: record.confirmed_quantity,
                confirmed_orders: record.confirmed_orders,
                rejected_orders: record.rejected_orders,
            },
        })
    }

    async fn reset(&self, id: &SaleId, req: &Request) -> Result<(u16, SaleView), ApiError> {
        let body = match json_body(req, MAX_OPERATOR_BODY)? {
            None => ResetSale::default(),
            Some(bytes) => parse_json::<ResetSale>(bytes, "invalid_body")?,
        };
        let stock = body.stock.map(valid_stock).transpose()?;
        let def = self
            .db
            .reset_sale(id, stock)
            .await?
            .ok_or_else(|| ApiError::NotFound {
                code: "sale_not_found",
                message: format!("no sale with id {id}"),
            })?;
        self.store.reset_sale(&def).await?;
        info!(sale = %id, stock = def.stock, "sale reset");
        Ok((200, self.show(id).await?))
    }
}

fn valid_stock(n: i64) -> Result<u32, InvalidInput> {
    if (0..=i64::from(MAX_STOCK)).contains(&n) {
        Ok(n as u32)
    } else {
        Err(InvalidInput::new(
            "invalid_stock",
            format!("stock must be an integer from 0 to {MAX_STOCK}"),
        ))
    }
}

fn validate(c: CreateSale) -> Result<SaleDefinition, InvalidInput> {
    let id = SaleId::parse(&c.id)?;
    let name = c.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > MAX_NAME_LEN || name.chars().any(char::is_control)
    {
        return Err(InvalidInput::new(
            "invalid_name",
            format!("name must be 1-{MAX_NAME_LEN} characters without control characters"),
        ));
    }
    let stock = valid_stock(c.stock)?;
    if !(1..=i64::from(MAX_QUANTITY)).contains(&c.per_user_limit) {
        return Err(InvalidInput::new(
            "invalid_per_user_limit",
            format!("per_user_limit must be an integer from 1 to {MAX_QUANTITY}"),
        ));
    }
    let opens_at_ms = c
        .opens_at
        .as_deref()
        .map(|s| parse_ms(s, "opens_at", "invalid_opens_at"))
        .transpose()?;
    let closes_at_ms = c
        .closes_at
        .as_deref()
        .map(|s| parse_ms(s, "closes_at", "invalid_closes_at"))
        .transpose()?;
    if let (Some(o), Some(cl)) = (opens_at_ms, closes_at_ms) {
        if o >= cl {
            return Err(InvalidInput::new(
                "invalid_window",
                "opens_at must be before closes_at",
            ));
        }
    }
    Ok(SaleDefinition {
        id,
        name,
        stock,
        per_user_limit: c.per_user_limit as u32,
        opens_at_ms,
        closes_at_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(json: &str) -> Result<SaleDefinition, InvalidInput> {
        validate(serde_json::from_str(json).unwrap())
    }

    #[test]
    fn a_sale_whose_window_closes_before_it_opens_is_refused() {
        let err = create(
            r#"{"id":"s","name":"n","stock":1,"per_user_limit":1,
            "opens_at":"2026-12-01T10:00:00Z","closes_at":"2026-12-01T09:00:00Z"}"#,
        )
        .unwrap_err();
        assert_eq!(err.code, "invalid_window");
    }

    #[test]
    fn each_bad_sale_field_gets_its_own_error_code() {
        let base = r#"{"id":"s","name":"n","stock":1,"per_user_limit":1}"#;
        assert!(create(base).is_ok());
        for (from, to, code) in [
            (r#""id":"s""#, r#""id":"a b""#, "invalid_sale_id"),
            (r#""name":"n""#, r#""name":"  ""#, "invalid_name"),
            (r#""stock":1"#, r#""stock":-1"#, "invalid_stock"),
            (r#""stock":1"#, r#""stock":10000001"#, "invalid_stock"),
            (
                r#""per_user_limit":1"#,
                r#""per_user_limit":0"#,
                "invalid_per_user_limit",
            ),
        ] {
            assert_eq!(
                create(&base.replace(from, to)).unwrap_err().code,
                code,
                "{to}"
            );
        }
    }
}
