//! Operator tools for the dead-letter queue: look at what is there, and send it back to the order
//! queue once the cause is fixed (settle records each order once, however often it arrives).
//!
//! The same with the AWS CLI: `aws sqs receive-message --queue-url $ORDERS_DLQ_URL
//! --attribute-names All --message-attribute-names All --visibility-timeout 0` to look, and
//! `aws sqs start-message-move-task --source-arn <dlq arn>` to redrive (LocalStack: `awslocal`).

use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName,
    SendMessageBatchRequestEntry,
};
use aws_sdk_sqs::Client;

/// A message in the DLQ, as the operator sees it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeadLetter {
    pub message_id: String,
    pub body: String,
    /// How often it was received before it landed here.
    pub receive_count: Option<u32>,
    /// Whether it carries the order signature attribute.
    pub signed: bool,
}

/// A DLQ tool failed.
#[derive(Debug, thiserror::Error)]
#[error("sqs: {0}")]
pub struct DlqError(String);

fn sqs_error<E: std::error::Error + 'static>(e: aws_sdk_sqs::error::SdkError<E>) -> DlqError {
    DlqError(aws_sdk_sqs::error::DisplayErrorContext(e).to_string())
}

async fn receive(sqs: &Client, queue: &str, visibility: i32) -> Result<Vec<Message>, DlqError> {
    Ok(sqs
        .receive_message()
        .queue_url(queue)
        .max_number_of_messages(10)
        .visibility_timeout(visibility)
        .wait_time_seconds(1)
        .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
        .message_attribute_names("All")
        .send()
        .await
        .map_err(sqs_error)?
        .messages
        .unwrap_or_default())
}

/// Up to `max` messages of the DLQ, left where they are (each is hidden for a second while read).
///
/// # Errors
/// [`DlqError`] when SQS fails.
pub async fn show(sqs: &Client, dlq: &str, max: usize) -> Result<Vec<DeadLetter>, DlqError> {
    let mut seen = std::collections::BTreeMap::new();
    for _ in 0..max.div_ceil(10).max(1) * 2 {
        let got = receive(sqs, dlq, 1).await?;
        if got.is_empty() {
            break;
        }
        for m in got {
            let id = m.message_id.clone().unwrap_or_default();
            seen.entry(id.clone()).or_insert_with(|| DeadLetter {
                message_id: id,
                body: m.body.clone().unwrap_or_default(),
                receive_count: m
                    .attributes
                    .as_ref()
                    .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                    .and_then(|v| v.parse().ok()),
                signed: m
                    .body
                    .as_deref()
                    .and_then(|b| flashflow::domain::OrderMessage::parse(b).ok())
                    .is_some_and(|o| o.sig.is_some()),
            });
        }
        if seen.len() >= max {
            break;
        }
    }
    Ok(seen.into_values().take(max).collect())
}

/// Move every message of the DLQ back to `queue`, body (with buy's signature inside) and
/// attributes as they are; each is deleted from the DLQ only after the queue accepted it. Returns how many moved.
///
/// # Errors
/// [`DlqError`] when SQS fails; what moved before stays moved.
pub async fn redrive(sqs: &Client, dlq: &str, queue: &str) -> Result<usize, DlqError> {
    let mut moved = 0;
    loop {
        let batch = receive(sqs, dlq, 30).await?;
        if batch.is_empty() {
            return Ok(moved);
        }
        let entries: Vec<SendMessageBatchRequestEntry> = batch
            .iter()
            .enumerate()
            .filter_map(|(i, m)| {
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(m.body.clone().unwrap_or_default())
                    .set_message_attributes(m.message_attributes.clone())
                    .build()
                    .ok()
            })
            .collect();
        let sent = sqs
            .send_message_batch()
            .queue_url(queue)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(sqs_error)?;
        let deletes: Vec<DeleteMessageBatchRequestEntry> = sent
            .successful()
            .iter()
            .filter_map(|ok| {
                let m = batch.get(ok.id().parse::<usize>().ok()?)?;
                DeleteMessageBatchRequestEntry::builder()
                    .id(ok.id())
                    .receipt_handle(m.receipt_handle.clone()?)
                    .build()
                    .ok()
            })
            .collect();
        if deletes.is_empty() {
            return Ok(moved);
        }
        moved += deletes.len();
        sqs.delete_message_batch()
            .queue_url(dlq)
            .set_entries(Some(deletes))
            .send()
            .await
            .map_err(sqs_error)?;
    }
}
