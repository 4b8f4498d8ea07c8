//! The order-status read model in DynamoDB: what buyers poll. Written by settle after commit.

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use aws_sdk_dynamodb::Client;
use std::collections::HashMap;
use std::time::Duration;
use uuid::Uuid;

/// One order's status as buyers see it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OrderStatus {
    pub order_id: Uuid,
    pub sale_id: String,
    pub buyer: String,
    pub quantity: u32,
    /// PENDING, CONFIRMED or REJECTED.
    pub status: String,
}

/// DynamoDB failed.
#[derive(Debug, thiserror::Error)]
#[error("dynamodb: {0}")]
pub struct StatusError(pub String);

/// DynamoDB adapter. The endpoint comes from `AWS_ENDPOINT_URL_DYNAMODB` when set.
#[derive(Clone, Debug)]
pub struct DynamoStatusStore {
    client: Client,
    table: String,
}

const BATCH: usize = 25;

impl DynamoStatusStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// Write the statuses with batched writes (25 per call), retrying unprocessed items a few
    /// times. Returns the order ids that could not be written.
    pub async fn put_all(&self, items: &[OrderStatus]) -> Vec<Uuid> {
        let mut failed = Vec::new();
        for chunk in items.chunks(BATCH) {
            let mut pending: Vec<WriteRequest> =
                chunk.iter().filter_map(|s| self.write_request(s)).collect();
            let mut attempt = 0;
            while !pending.is_empty() {
                attempt += 1;
                let result = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, pending.clone())
                    .send()
                    .await;
                match result {
                    Ok(out) => {
                        pending = out
                            .unprocessed_items
                            .and_then(|mut m| m.remove(&self.table))
                            .unwrap_or_default();
                    }
                    Err(e) => {
                        tracing::warn!(error = %aws_sdk_dynamodb::error::DisplayErrorContext(&e), "batch write failed");
                    }
                }
                if pending.is_empty() || attempt >= 4 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
            }
            failed.extend(pending.iter().filter_map(order_id_of));
        }
        failed
    }

    fn write_request(&self, s: &OrderStatus) -> Option<WriteRequest> {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        let item = HashMap::from([
            (
                "order_id".to_string(),
                AttributeValue::S(s.order_id.to_string()),
            ),
            ("sale_id".to_string(), AttributeValue::S(s.sale_id.clone())),
            ("buyer".to_string(), AttributeValue::S(s.buyer.clone())),
            (
                "quantity".to_string(),
                AttributeValue::N(s.quantity.to_string()),
            ),
            ("status".to_string(), AttributeValue::S(s.status.clone())),
            (
                "updated_at_ms".to_string(),
                AttributeValue::N(now_ms.to_string()),
            ),
        ]);
        let put = PutRequest::builder().set_item(Some(item)).build().ok()?;
        Some(WriteRequest::builder().put_request(put).build())
    }

    /// The order's status, or `None` when DynamoDB has none (not settled yet, or unknown).
    ///
    /// # Errors
    /// [`StatusError`] when DynamoDB fails.
    pub async fn get(&self, order_id: Uuid) -> Result<Option<OrderStatus>, StatusError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("order_id", AttributeValue::S(order_id.to_string()))
            .send()
            .await
            .map_err(|e| {
                StatusError(aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string())
            })?;
        let Some(item) = out.item else {
            return Ok(None);
        };
        let s = |k: &str| {
            item.get(k)
                .and_then(|v| v.as_s().ok())
                .cloned()
                .unwrap_or_default()
        };
        Ok(Some(OrderStatus {
            order_id,
            sale_id: s("sale_id"),
            buyer: s("buyer"),
            quantity: item
                .get("quantity")
                .and_then(|v| v.as_n().ok())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0),
            status: s("status"),
        }))
    }
}

fn order_id_of(w: &WriteRequest) -> Option<Uuid> {
    w.put_request()?
        .item()
        .get("order_id")?
        .as_s()
        .ok()?
        .parse()
        .ok()
}
