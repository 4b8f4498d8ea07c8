//! Settlement: an SQS batch of order messages into the ledger, then the status into the status
//! store and the reservation out of the outbox.

use crate::domain::{OrderMessage, OrderState, OrderStatus, SaleId, Settlement};
use crate::ports::{Ledger, ReservationStore, StatusStore};
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use std::collections::{BTreeMap, HashSet};
use tracing::{error, info, warn};
use uuid::Uuid;

/// The settle handler: one per function instance (it owns the instance's Postgres connection).
pub struct Settler<L, S, R> {
    ledger: L,
    status: S,
    store: R,
}

/// What one batch did, for logs and tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BatchReport {
    pub confirmed: usize,
    pub rejected: usize,
    /// Message ids reported back to SQS as failed.
    pub failed: Vec<String>,
}

impl<L: Ledger, S: StatusStore, R: ReservationStore> Settler<L, S, R> {
    pub fn new(ledger: L, status: S, store: R) -> Self {
        Self {
            ledger,
            status,
            store,
        }
    }

    /// Settle one SQS batch. Never fails as a whole: every problem is a failed message id, so SQS
    /// redelivers exactly those (and its redrive policy moves poison messages to the DLQ).
    pub async fn handle(&self, event: SqsEvent) -> SqsBatchResponse {
        let report = self.settle(event).await;
        let mut resp = SqsBatchResponse::default();
        resp.batch_item_failures = report
            .failed
            .into_iter()
            .map(|id| {
                let mut f = BatchItemFailure::default();
                f.item_identifier = id;
                f
            })
            .collect();
        resp
    }

    /// [`Settler::handle`], with the counts.
    pub async fn settle(&self, event: SqsEvent) -> BatchReport {
        let mut report = BatchReport::default();
        // message id -> order; each body is parsed on its own so one bad message fails alone.
        let mut orders: Vec<(String, OrderMessage)> = Vec::with_capacity(event.records.len());
        for record in event.records {
            let id = record.message_id.unwrap_or_default();
            match record.body.as_deref().map(OrderMessage::parse) {
                Some(Ok(order)) => orders.push((id, order)),
                Some(Err(e)) => {
                    warn!(message_id = %id, error = %e, "poison message");
                    report.failed.push(id);
                }
                None => {
                    warn!(message_id = %id, "message without a body");
                    report.failed.push(id);
                }
            }
        }
        if orders.is_empty() {
            return report;
        }

        let messages: Vec<OrderMessage> = orders.iter().map(|(_, o)| o.clone()).collect();
        let outcome = match self.ledger.settle_orders(&messages).await {
            Ok(outcome) => outcome,
            Err(e) => {
                error!(error = %e, batch = orders.len(), "settling failed, the batch will be redelivered");
                report.failed.extend(orders.into_iter().map(|(id, _)| id));
                return report;
            }
        };
        let settled_as = |o: &OrderMessage| {
            outcome
                .get(&o.order_id)
                .copied()
                .unwrap_or(Settlement::UnknownSale)
        };

        let mut statuses = Vec::new();
        let mut written: HashSet<Uuid> = HashSet::new();
        let mut by_sale: BTreeMap<SaleId, Vec<Uuid>> = BTreeMap::new();
        for (_, o) in &orders {
            let Some(state) = OrderState::settled(settled_as(o)) else {
                continue;
            };
            if !written.insert(o.order_id) {
                continue;
            }
            match state {
                OrderState::Confirmed => report.confirmed += 1,
                _ => report.rejected += 1,
            }
            statuses.push(OrderStatus::of(o, state));
            by_sale
                .entry(o.sale_id.clone())
                .or_default()
                .push(o.order_id);
        }
        let status_failed: HashSet<Uuid> = self.status.put_all(&statuses).await.into_iter().collect();

        for (sale, ids) in &by_sale {
            // Entries whose status write failed stay: their message is retried anyway.
            let done: Vec<Uuid> = ids
                .iter()
                .filter(|id| !status_failed.contains(id))
                .copied()
                .collect();
            if let Err(e) = self.store.remove_from_outbox(sale, &done).await {
                // Not a failure of the message: the sweeper re-sends it and settle absorbs that.
                warn!(sale = %sale, error = %e, "outbox cleanup failed");
            }
        }

        for (id, o) in &orders {
            if settled_as(o) == Settlement::UnknownSale {
                warn!(message_id = %id, sale = %o.sale_id, "order for a sale Postgres does not know");
                report.failed.push(id.clone());
            } else if status_failed.contains(&o.order_id) {
                report.failed.push(id.clone());
            }
        }
        info!(
            confirmed = report.confirmed,
            rejected = report.rejected,
            failed = report.failed.len(),
            "batch settled"
        );
        report
    }
}
