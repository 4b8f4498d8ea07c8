//! Shared AWS SDK configuration. Endpoints come from the standard environment
//! (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_SQS`, `AWS_ENDPOINT_URL_DYNAMODB`), so the same code talks to
//! AWS, LocalStack or DynamoDB Local without a branch.

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::BehaviorVersion;
pub use aws_config::SdkConfig;
use std::time::Duration;

/// Load the SDK config with short timeouts and few retries: on the buy path a slow queue must not
/// hold the buyer, since the outbox covers a failed send.
pub async fn sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_millis(500))
                .operation_attempt_timeout(Duration::from_secs(2))
                .operation_timeout(Duration::from_secs(5))
                .build(),
        )
        .retry_config(RetryConfig::standard().with_max_attempts(2))
        .load()
        .await
}

#[cfg(feature = "sqs")]
/// An SQS client for long polls of up to `wait` (the local event source's). A receive is never
/// given up while the queue may still answer it: the queue counts a receive the client abandoned
/// as a receive of every message it hands to it, which then stays invisible for the visibility
/// timeout, seen by nobody, one receive nearer the DLQ. A queue frozen past a short deadline (the
/// chaos run stops LocalStack for up to 8 s) thus sent good orders to the DLQ
/// (`faults.rs`: with `maxReceiveCount` 1, an 8 s freeze sent all three). So: one attempt, no
/// retry (a retried receive is a second one), and a deadline a minute past the wait.
pub fn long_poll_sqs(sdk: &SdkConfig, wait: Duration) -> aws_sdk_sqs::Client {
    let deadline = wait + Duration::from_secs(60);
    let conf = aws_sdk_sqs::config::Builder::from(sdk)
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_millis(500))
                .operation_attempt_timeout(deadline)
                .operation_timeout(deadline)
                .build(),
        )
        .retry_config(RetryConfig::standard().with_max_attempts(1))
        .build();
    aws_sdk_sqs::Client::from_conf(conf)
}
