//! The local HTTP server: the routers of the buy, order-status and operator functions merged into
//! one app, served over HTTP/1.1 on a multi-threaded runtime.
//!
//! Lambda's local emulator (`cargo lambda watch`) runs one request per process at a time and tops
//! out near 3.8k req/s on a 2-core machine; this runs the very same routers. There is no API
//! Gateway here, so no JWT authorizer context: local runs identify buyers with `X-User-Id`.
//!
//! No client can take it down: every connection must send its request head within
//! [`Limits::header_read`] (also the idle limit between keep-alive requests, which closes
//! slowloris and idle connections), every request must finish, body included, within
//! [`Limits::request`], at most [`Limits::max_connections`] are open at once (the next ones are
//! closed at once), and an accept error (such as running out of file descriptors) is logged and
//! waited out, never fatal.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use flashflow::api;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::{debug, warn};

/// The merged app of the three HTTP functions, with the shared fallbacks.
pub fn app(buy: Router, orders: Router, operator: Router) -> Router {
    api::app(buy.merge(orders).merge(operator))
}

/// What one client may hold of the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Time to send a request's head, from the connection's start or the previous response.
    pub header_read: Duration,
    /// Time for a whole request, body and handler included; then `408 request_timeout`.
    pub request: Duration,
    /// Connections open at once; more are closed on accept.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_read: Duration::from_secs(5),
            request: Duration::from_secs(10),
            max_connections: 10_000,
        }
    }
}

/// Counters of what the server refused, for logs and tests.
#[derive(Debug, Default)]
pub struct ServerStats {
    pub accepted: AtomicU64,
    /// Connections closed on accept because [`Limits::max_connections`] were open.
    pub over_capacity: AtomicU64,
    pub accept_errors: AtomicU64,
}

/// [`serve_with`] the default [`Limits`].
///
/// # Errors
/// Never returns while the listener lives; the type leaves room for a shutdown.
pub async fn serve(listener: TcpListener, app: Router) -> std::io::Result<()> {
    serve_with(listener, app, Limits::default(), Arc::default()).await
}

/// Serve `app` on `listener` within `limits`, counting into `stats`.
///
/// # Errors
/// Never returns while the listener lives; the type leaves room for a shutdown.
pub async fn serve_with(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    stats: Arc<ServerStats>,
) -> std::io::Result<()> {
    let app = app.layer(middleware::from_fn_with_state(limits.request, deadline));
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let mut builder = auto::Builder::new(TokioExecutor::new()).http1_only();
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read)
        .keep_alive(true);
    let builder = Arc::new(builder);
    loop {
        let (tcp, _) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                // EMFILE and friends: the connections that hold the descriptors time out soon.
                if stats
                    .accept_errors
                    .fetch_add(1, Ordering::Relaxed)
                    .is_multiple_of(1000)
                {
                    warn!(error = %e, "accept failed; waiting before the next accept");
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            if stats
                .over_capacity
                .fetch_add(1, Ordering::Relaxed)
                .is_multiple_of(1000)
            {
                warn!(
                    max = limits.max_connections,
                    "connection limit reached; closing new connections"
                );
            }
            drop(tcp);
            continue;
        };
        stats.accepted.fetch_add(1, Ordering::Relaxed);
        // Small request/response pairs: do not wait for Nagle.
        let _ = tcp.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let builder = Arc::clone(&builder);
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(e) = builder.serve_connection(TokioIo::new(tcp), service).await {
                debug!(error = %e, "connection ended");
            }
        });
    }
}

/// The whole request within `limit`, or `408`: a body that trickles in cannot hold a task.
async fn deadline(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => {
            let body = api::ErrorBody {
                error: "request_timeout",
                message: format!("the request did not complete within {limit:?}"),
            };
            (
                [("connection", "close")],
                api::json(StatusCode::REQUEST_TIMEOUT, &body),
            )
                .into_response()
        }
    }
}
