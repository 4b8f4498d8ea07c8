//! The DynamoDB adapter of the order-status read model: what buyers poll. Written by settle after
//! commit.

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use aws_sdk_dynamodb::Client;
use flashflow::domain::{BuyerId, OrderState, OrderStatus, SaleId};
use flashflow::ports::{StatusError, StatusStore};
use std::collections::HashMap;
use std::time::Duration;
use uuid::Uuid;

/// The order-status table: `ORDERS_TABLE`.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct StatusSettings {
    #[serde(rename = "orders_table")]
    pub table: String,
}

impl flashflow_settings::FromEnv for StatusSettings {}

/// DynamoDB adapter. The endpoint comes from `AWS_ENDPOINT_URL_DYNAMODB` when set.
#[derive(Clone, Debug)]
pub struct DynamoStatusStore {
    client: Client,
    table: String,
}

const BATCH: usize = 25;

impl DynamoStatusStore {
    /// The status table the settings name, on the SDK's configuration.
    pub fn from_settings(sdk: &aws_config::SdkConfig, settings: &StatusSettings) -> Self {
        Self::new(Client::new(sdk), &settings.table)
    }

    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// [`StatusStore::put_newer`], logged; the order when it was not written.
    async fn put_one(&self, s: &OrderStatus) -> Option<Uuid> {
        let written = self.put_newer(s).await;
        if let Err(e) = &written {
            tracing::warn!(order = %s.order_id, error = %e, "status write failed");
        }
        written.err().map(|_| s.order_id)
    }

    /// One `BatchWriteItem` of up to [`BATCH`] items, its unprocessed items retried a few times
    /// (50 ms doubling); returns the orders still unwritten.
    async fn write_batch(&self, mut pending: Vec<WriteRequest>) -> Vec<Uuid> {
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
        pending.iter().filter_map(order_id_of).collect()
    }
}

/// Status writes in flight at once for one settle batch: each `BatchWriteItem` takes a few
/// milliseconds, and a batch of 1,000 orders is 40 of them (one after the other, they were most
/// of a batch's time).
const WRITES_IN_FLIGHT: usize = 8;

impl StatusStore for DynamoStatusStore {
    /// Batched writes (25 per call, [`WRITES_IN_FLIGHT`] calls at once), retrying unprocessed
    /// items a few times. A checkout order's status can change after settlement, so it is
    /// written by [`StatusStore::put_newer`] instead, one call per order.
    async fn put_all(&self, items: &[OrderStatus]) -> Vec<Uuid> {
        use futures_util::stream::{self, StreamExt};
        let (changing, fixed): (Vec<&OrderStatus>, Vec<&OrderStatus>) =
            items.iter().partition(|s| s.pay_by_ms.is_some());
        // The futures are made first, then run at most WRITES_IN_FLIGHT at once.
        let one_by_one: Vec<_> = changing.into_iter().map(|s| self.put_one(s)).collect();
        let batches: Vec<_> = fixed
            .chunks(BATCH)
            .map(|chunk| {
                self.write_batch(chunk.iter().copied().filter_map(write_request).collect())
            })
            .collect();
        let mut failed: Vec<Uuid> = stream::iter(one_by_one)
            .buffer_unordered(WRITES_IN_FLIGHT)
            .collect::<Vec<Option<Uuid>>>()
            .await
            .into_iter()
            .flatten()
            .collect();
        let unwritten: Vec<Vec<Uuid>> = stream::iter(batches)
            .buffer_unordered(WRITES_IN_FLIGHT)
            .collect()
            .await;
        failed.extend(unwritten.into_iter().flatten());
        failed
    }

    /// `PutItem` on the condition that the item is absent or of a lower rank.
    async fn put_newer(&self, status: &OrderStatus) -> Result<(), StatusError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item(status)))
            .condition_expression("attribute_not_exists(order_id) OR #rank < :rank")
            .expression_attribute_names("#rank", "rank")
            .expression_attribute_values(
                ":rank",
                AttributeValue::N(status.status.rank().to_string()),
            )
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(StatusError(Box::new(e))),
        }
    }

    async fn get(&self, order_id: Uuid) -> Result<Option<OrderStatus>, StatusError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("order_id", AttributeValue::S(order_id.to_string()))
            .send()
            .await
            .map_err(|e| StatusError(Box::new(e)))?;
        out.item.map(|item| from_item(order_id, &item)).transpose()
    }
}

fn write_request(s: &OrderStatus) -> Option<WriteRequest> {
    let put = PutRequest::builder().set_item(Some(item(s))).build().ok()?;
    Some(WriteRequest::builder().put_request(put).build())
}

/// The item of one order's status; `rank` orders its states (see [`OrderState::rank`]).
fn item(s: &OrderStatus) -> HashMap<String, AttributeValue> {
    let now_ms = flashflow::domain::EpochMs::now();
    let mut item = HashMap::from([
        (
            "order_id".to_string(),
            AttributeValue::S(s.order_id.to_string()),
        ),
        (
            "sale_id".to_string(),
            AttributeValue::S(s.sale_id.to_string()),
        ),
        (
            "buyer".to_string(),
            AttributeValue::S(s.buyer.as_str().to_owned()),
        ),
        (
            "quantity".to_string(),
            AttributeValue::N(s.quantity.to_string()),
        ),
        (
            "status".to_string(),
            AttributeValue::S(s.status.as_str().to_owned()),
        ),
        (
            "rank".to_string(),
            AttributeValue::N(s.status.rank().to_string()),
        ),
        (
            "updated_at_ms".to_string(),
            AttributeValue::N(now_ms.to_string()),
        ),
    ]);
    if let Some(original) = s.duplicate_of {
        item.insert(
            "duplicate_of".to_string(),
            AttributeValue::S(original.to_string()),
        );
    }
    if let Some(pay_by) = s.pay_by_ms {
        item.insert(
            "pay_by_ms".to_string(),
            AttributeValue::N(pay_by.to_string()),
        );
    }
    item
}

/// An item as written by [`write_request`]; anything else is an error, never a made-up status.
fn from_item(
    order_id: Uuid,
    item: &HashMap<String, AttributeValue>,
) -> Result<OrderStatus, StatusError> {
    let bad = |field: &str| StatusError(format!("item {order_id}: bad or missing {field}").into());
    let s = |k: &str| {
        item.get(k)
            .and_then(|v| v.as_s().ok())
            .ok_or_else(|| bad(k))
    };
    Ok(OrderStatus {
        order_id,
        sale_id: SaleId::parse(s("sale_id")?).map_err(|_| bad("sale_id"))?,
        buyer: BuyerId::parse(s("buyer")?).map_err(|_| bad("buyer"))?,
        quantity: item
            .get("quantity")
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| bad("quantity"))?,
        status: OrderState::parse(s("status")?).map_err(|_| bad("status"))?,
        duplicate_of: optional(item, "duplicate_of", |v| v.as_s().ok()?.parse().ok())
            .map_err(bad)?,
        pay_by_ms: optional(item, "pay_by_ms", |v| v.as_n().ok()?.parse().ok()).map_err(bad)?,
    })
}

/// An optional attribute: absent is `None`; present but unreadable is the attribute's name.
fn optional<T>(
    item: &HashMap<String, AttributeValue>,
    name: &'static str,
    read: impl Fn(&AttributeValue) -> Option<T>,
) -> Result<Option<T>, &'static str> {
    item.get(name).map(|v| read(v).ok_or(name)).transpose()
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
