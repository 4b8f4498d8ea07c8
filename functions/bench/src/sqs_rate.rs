//! `flashflow-bench sqs-rate N`: the emulator's own message rate, for the benchmark: `n` messages
//! to a scratch queue in `SendMessageBatch` calls of ten, 16 in flight, then received and deleted
//! by 16 pollers.

use std::sync::Arc;

/// Measure and print the rates.
///
/// # Errors
/// When the scratch queue cannot be created or a sending task panicked.
pub async fn run(sdk: &flashflow_adapters::aws::SdkConfig, n: usize) -> anyhow::Result<()> {
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let name = format!("flashflow-sqs-rate-{}", std::process::id());
    let url = sqs
        .create_queue()
        .queue_name(&name)
        .send()
        .await?
        .queue_url()
        .unwrap_or_default()
        .to_owned();
    let publisher = flashflow_adapters::sqs::SqsPublisher::new(sqs.clone(), &url);
    let body = "x".repeat(200);
    let start = std::time::Instant::now();
    let failed = crate::settle::send_all(&publisher, &vec![body; n], 16).await?;
    let mut tasks = tokio::task::JoinSet::new();
    let send = start.elapsed();
    let start = std::time::Instant::now();
    let received = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let target = n - failed;
    for _ in 0..16 {
        let (sqs, url, received) = (sqs.clone(), url.clone(), Arc::clone(&received));
        tasks.spawn(async move {
            while received.load(std::sync::atomic::Ordering::Relaxed) < target {
                let Ok(out) = sqs
                    .receive_message()
                    .queue_url(&url)
                    .max_number_of_messages(10)
                    .wait_time_seconds(1)
                    .send()
                    .await
                else {
                    continue;
                };
                let entries: Vec<_> = out
                    .messages()
                    .iter()
                    .enumerate()
                    .filter_map(|(i, m)| {
                        aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder()
                            .id(i.to_string())
                            .receipt_handle(m.receipt_handle().unwrap_or_default())
                            .build()
                            .ok()
                    })
                    .collect();
                if entries.is_empty() {
                    continue;
                }
                let k = entries.len();
                if sqs
                    .delete_message_batch()
                    .queue_url(&url)
                    .set_entries(Some(entries))
                    .send()
                    .await
                    .is_ok()
                {
                    received.fetch_add(k, std::sync::atomic::Ordering::Relaxed);
                }
            }
            0
        });
    }
    while tasks.join_next().await.is_some() {}
    let recv = start.elapsed();
    let _ = sqs.delete_queue().queue_url(&url).send().await;
    println!(
        "send {:.0} msgs/s ({:.0} SendMessageBatch calls/s, {failed} refused); receive+delete {:.0} msgs/s",
        target as f64 / send.as_secs_f64(),
        n.div_ceil(10) as f64 / send.as_secs_f64(),
        target as f64 / recv.as_secs_f64()
    );
    Ok(())
}
