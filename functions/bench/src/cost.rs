//! The cost of an order, counted (`make bench-cost`): the tools `bench/cost.sh` runs around the
//! real local services.
//!
//! - [`proxy`]: a counting proxy in front of SQS (LocalStack) and DynamoDB (DynamoDB Local). The
//!   services are pointed at it through `AWS_ENDPOINT_URL_SQS` / `AWS_ENDPOINT_URL_DYNAMODB`, as
//!   they are pointed at the emulators, so it counts the SDK calls really made (retries
//!   included) by operation, and the items each DynamoDB write carries (a write request unit
//!   each, for items under 1 KB). `GET /_counts` answers the counts; `POST /_counts/reset`
//!   zeroes them.
//! - [`drive`]: exactly N buys, each a distinct buyer, C at once, answers counted by status.
//!
//! Redis (`INFO commandstats`) and Postgres (`pg_stat_statements`, `pg_stat_database`) keep
//! their own counts; cost.sh reads them.

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

type HttpClient = Client<HttpConnector, Full<bytes::Bytes>>;

/// Counts per `service operation`, and DynamoDB items written.
#[derive(Default)]
struct Counts {
    calls: BTreeMap<String, u64>,
    dynamodb_items_written: u64,
}

struct Proxy {
    client: HttpClient,
    sqs: String,
    dynamodb: String,
    counts: Mutex<Counts>,
}

/// Serve the counting proxy on `listen`, forwarding DynamoDB's calls (`X-Amz-Target:
/// DynamoDB_…`) to `dynamodb` and every other call to `sqs`.
///
/// # Errors
/// When `listen` cannot be bound.
pub async fn proxy(listen: &str, sqs: &str, dynamodb: &str) -> anyhow::Result<()> {
    let state = Arc::new(Proxy {
        client: Client::builder(TokioExecutor::new()).build_http(),
        sqs: sqs.trim_end_matches('/').to_owned(),
        dynamodb: dynamodb.trim_end_matches('/').to_owned(),
        counts: Mutex::default(),
    });
    let app = Router::new()
        .route("/_counts", get(counts))
        .route("/_counts/reset", post(reset))
        .fallback(forward)
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(listen).await?;
    axum::serve(listener, app).await?;
    Ok(())
}

async fn counts(State(p): State<Arc<Proxy>>) -> String {
    let c = p.counts.lock().expect("counts");
    serde_json::json!({
        "calls": c.calls,
        "dynamodb_items_written": c.dynamodb_items_written,
    })
    .to_string()
}

async fn reset(State(p): State<Arc<Proxy>>) -> &'static str {
    *p.counts.lock().expect("counts") = Counts::default();
    "reset"
}

async fn forward(State(p): State<Arc<Proxy>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let Ok(body) = to_bytes(body, 64 << 20).await else {
        return (axum::http::StatusCode::PAYLOAD_TOO_LARGE, "body").into_response();
    };
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let dynamo = target.starts_with("DynamoDB_");
    {
        // SQS' JSON protocol names the operation in X-Amz-Target; its query protocol in Action=.
        let op = match target.rsplit_once('.') {
            Some((_, op)) => op.to_owned(),
            None => form_action(&body).unwrap_or_else(|| "unknown".into()),
        };
        let mut c = p.counts.lock().expect("counts");
        *c.calls
            .entry(format!("{} {op}", if dynamo { "dynamodb" } else { "sqs" }))
            .or_default() += 1;
        if dynamo {
            c.dynamodb_items_written += items_written(&op, &body);
        }
    }
    let base = if dynamo { &p.dynamodb } else { &p.sqs };
    let uri = format!(
        "{base}{}",
        parts.uri.path_and_query().map_or("/", |pq| pq.as_str())
    );
    let mut out = http::Request::builder().method(parts.method).uri(uri);
    for (k, v) in &parts.headers {
        if k != http::header::HOST {
            out = out.header(k, v);
        }
    }
    let Ok(out) = out.body(Full::new(body)) else {
        return (axum::http::StatusCode::BAD_REQUEST, "request").into_response();
    };
    match p.client.request(out).await {
        Ok(resp) => {
            let (parts, body) = resp.into_parts();
            match body.collect().await {
                Ok(b) => Response::from_parts(parts, Body::from(b.to_bytes())),
                Err(_) => (axum::http::StatusCode::BAD_GATEWAY, "upstream").into_response(),
            }
        }
        Err(_) => (axum::http::StatusCode::BAD_GATEWAY, "upstream").into_response(),
    }
}

fn form_action(body: &[u8]) -> Option<String> {
    std::str::from_utf8(body)
        .ok()?
        .split('&')
        .find_map(|kv| kv.strip_prefix("Action="))
        .map(str::to_owned)
}

/// Items a DynamoDB write operation carries: each is a write request unit (items under 1 KB).
fn items_written(op: &str, body: &[u8]) -> u64 {
    match op {
        "PutItem" | "UpdateItem" | "DeleteItem" => 1,
        "BatchWriteItem" => serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| {
                v["RequestItems"].as_object().map(|tables| {
                    tables
                        .values()
                        .filter_map(|reqs| reqs.as_array())
                        .map(|a| a.len() as u64)
                        .sum()
                })
            })
            .unwrap_or(0),
        _ => 0,
    }
}

/// Send exactly `n` buys to `url` (`POST`, `X-User-Id: <prefix>-<i>`), `concurrency` at once;
/// prints the answers by status and the rate.
///
/// # Errors
/// When the URL is invalid.
pub async fn drive(url: &str, n: usize, concurrency: usize, prefix: &str) -> anyhow::Result<()> {
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let statuses = Arc::new(Mutex::new(BTreeMap::<u16, u64>::new()));
    let uri: http::Uri = url.parse()?;
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (client, next, statuses, uri, prefix) = (
            client.clone(),
            Arc::clone(&next),
            Arc::clone(&statuses),
            uri.clone(),
            prefix.to_owned(),
        );
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    return;
                }
                let req = http::Request::post(uri.clone())
                    .header("x-user-id", format!("{prefix}-{i}"))
                    .body(Full::new(bytes::Bytes::new()))
                    .expect("a valid request");
                let status = match client.request(req).await {
                    Ok(resp) => {
                        let status = resp.status().as_u16();
                        let _ = resp.into_body().collect().await;
                        status
                    }
                    Err(_) => 0,
                };
                *statuses
                    .lock()
                    .expect("statuses")
                    .entry(status)
                    .or_default() += 1;
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let secs = start.elapsed().as_secs_f64();
    let statuses = statuses.lock().expect("statuses");
    let shown: Vec<String> = statuses.iter().map(|(s, c)| format!("{s}={c}")).collect();
    println!(
        "drive: {n} requests in {secs:.2} s ({:.0}/s): {}",
        n as f64 / secs,
        shown.join(" ")
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_write_counts_each_item_and_a_put_one() {
        let body = br#"{"RequestItems":{"t":[{"PutRequest":{}},{"PutRequest":{}}],"u":[{"PutRequest":{}}]}}"#;
        assert_eq!(items_written("BatchWriteItem", body), 3);
        assert_eq!(items_written("PutItem", b"{}"), 1);
        assert_eq!(items_written("GetItem", b"{}"), 0);
        assert_eq!(
            form_action(b"Action=SendMessage&QueueUrl=x").as_deref(),
            Some("SendMessage")
        );
    }
}
