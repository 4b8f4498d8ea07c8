//! The local HTTP server: the routers of the buy, order-status and operator functions merged into
//! one app, served over HTTP/1.1 on a multi-threaded runtime.
//!
//! Lambda's local emulator (`cargo lambda watch`) runs one request per process at a time and tops
//! out near 3.8k req/s on a 2-core machine; this runs the very same routers. There is no API
//! Gateway here: buyers are identified by the local issuer's JWTs, checked and handed on as API
//! Gateway's JWT authorizer would ([`crate::issuer`]), or by the `X-User-Id` shortcut.
//!
//! No client can take it down or take it from the others: every connection must send its request
//! head within [`Limits::header_read`] (also the idle limit between keep-alive requests, which
//! closes slowloris and idle connections), every request body must arrive within
//! [`Limits::request`] (`408`, nothing done), at most [`Limits::max_connections`] are open at once
//! and at most [`Limits::max_per_peer`] from one address (the next ones are closed at once), a
//! connection serves at most [`Limits::requests_per_connection`] requests and is then closed (so a
//! client cannot hold its connections forever), and an accept error (such as running out of file
//! descriptors) is logged and waited out, never fatal.
//!
//! The handler's own work is not cut by a client deadline: a buy that has read its body runs to
//! its answer (see `flashflow_http::buy`), so no timeout here can hide a reservation. A backstop,
//! [`Limits::handler`], answers `503` only for a handler stuck on a dependency past every timeout
//! of its own.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;

use flashflow_http::body_deadline::DeadlineBody;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::{debug, warn};

/// The merged app of the three HTTP functions, with the shared fallbacks.
pub fn app(buy: Router, orders: Router, operator: Router) -> Router {
    flashflow_http::app(buy.merge(orders).merge(operator))
}

/// What one client may hold of the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Time to send a request's head, from the connection's start or the previous response.
    pub header_read: Duration,
    /// Time for a request's body to arrive whole, from its head; then `408 request_timeout`.
    pub request: Duration,
    /// Time for a handler after its body arrived, a backstop past every dependency's own
    /// timeout; then `503 service_unavailable`.
    pub handler: Duration,
    /// Connections open at once; more are closed on accept.
    pub max_connections: usize,
    /// Connections open at once from one IP address; more from it are closed on accept.
    pub max_per_peer: usize,
    /// Requests one connection serves; the last answer says `Connection: close`.
    pub requests_per_connection: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_read: Duration::from_secs(5),
            request: Duration::from_secs(10),
            handler: Duration::from_secs(30),
            max_connections: 10_000,
            max_per_peer: 1_000,
            requests_per_connection: 10_000,
        }
    }
}

/// Counters of what the server refused, for logs and tests.
#[derive(Debug, Default)]
pub struct ServerStats {
    pub accepted: AtomicU64,
    /// Connections closed on accept because [`Limits::max_connections`] were open.
    pub over_capacity: AtomicU64,
    /// Connections closed on accept because their address had [`Limits::max_per_peer`] open.
    pub over_peer_capacity: AtomicU64,
    /// Connections closed after [`Limits::requests_per_connection`] requests.
    pub recycled: AtomicU64,
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
    let app = app.layer(middleware::from_fn_with_state(limits, deadlines));
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let peers = Peers::default();
    let mut builder = auto::Builder::new(TokioExecutor::new()).http1_only();
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read)
        .keep_alive(true);
    let builder = Arc::new(builder);
    loop {
        let (tcp, peer) = match listener.accept().await {
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
        let Some(peer_slot) = peers.take(peer.ip(), limits.max_per_peer) else {
            if stats
                .over_peer_capacity
                .fetch_add(1, Ordering::Relaxed)
                .is_multiple_of(1000)
            {
                warn!(peer = %peer.ip(), max = limits.max_per_peer,
                    "per-address connection limit reached; closing its new connections");
            }
            drop(tcp);
            continue;
        };
        stats.accepted.fetch_add(1, Ordering::Relaxed);
        // Small request/response pairs: do not wait for Nagle.
        let _ = tcp.set_nodelay(true);
        let served = Arc::new(AtomicU32::new(0));
        let app = app.clone().layer(middleware::from_fn_with_state(
            (served, limits.requests_per_connection, Arc::clone(&stats)),
            recycle,
        ));
        let service = TowerToHyperService::new(app);
        let builder = Arc::clone(&builder);
        tokio::spawn(async move {
            let _permit = permit;
            let _peer_slot = peer_slot;
            if let Err(e) = builder.serve_connection(TokioIo::new(tcp), service).await {
                debug!(error = %e, "connection ended");
            }
        });
    }
}

/// The body must arrive within [`Limits::request`] (the handler answers `408` when it does not):
/// a body that trickles in cannot hold a task. The handler itself gets [`Limits::handler`] more,
/// a backstop answered `503`.
async fn deadlines(State(limits): State<Limits>, req: Request, next: Next) -> Response {
    let body_by = tokio::time::Instant::now() + limits.request;
    let req = req.map(|b| Body::new(DeadlineBody::new(b, body_by)));
    match tokio::time::timeout(limits.request + limits.handler, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => {
            warn!(
                limit = ?(limits.request + limits.handler),
                "a handler outlived every deadline"
            );
            let body = flashflow_http::ErrorBody {
                error: "service_unavailable",
                message: "the service did not answer in time, retry shortly".into(),
                order_id: None,
            };
            (
                [("connection", "close"), ("retry-after", "1")],
                flashflow_http::json(StatusCode::SERVICE_UNAVAILABLE, &body),
            )
                .into_response()
        }
    }
}

/// Close a connection after its `max`-th request: the answer says `Connection: close`.
async fn recycle(
    State((served, max, stats)): State<(Arc<AtomicU32>, u32, Arc<ServerStats>)>,
    req: Request,
    next: Next,
) -> Response {
    let n = served.fetch_add(1, Ordering::Relaxed) + 1;
    let mut resp = next.run(req).await;
    if n >= max {
        stats.recycled.fetch_add(1, Ordering::Relaxed);
        resp.headers_mut().insert(
            axum::http::header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
    }
    resp
}

/// Open connections per address. A slot is given back when its [`PeerSlot`] drops.
#[derive(Clone, Default)]
struct Peers(Arc<Mutex<HashMap<IpAddr, usize>>>);

impl Peers {
    /// A slot for one more connection from `ip`, unless it has `max` open.
    fn take(&self, ip: IpAddr, max: usize) -> Option<PeerSlot> {
        let mut open = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(ip).or_default();
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(PeerSlot {
            peers: self.clone(),
            ip,
        })
    }
}

/// One open connection of an address.
struct PeerSlot {
    peers: Peers,
    ip: IpAddr,
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut open = self.peers.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}
