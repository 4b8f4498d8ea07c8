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
/// An SQS client for long polls of up to `wait`: the buy path's 2 s attempt timeout would cut
/// every idle long poll short (and a message handed out just as the client gave up stays
/// invisible for the visibility timeout).
pub fn long_poll_sqs(sdk: &SdkConfig, wait: Duration) -> aws_sdk_sqs::Client {
    let conf = aws_sdk_sqs::config::Builder::from(sdk)
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_millis(500))
                .operation_attempt_timeout(wait + Duration::from_secs(5))
                .operation_timeout(2 * wait + Duration::from_secs(10))
                .build(),
        )
        .build();
    aws_sdk_sqs::Client::from_conf(conf)
}
