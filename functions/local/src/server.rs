//! The local HTTP server: the routers of the buy, order-status and operator functions merged into
//! one app, served over HTTP/1.1 on a multi-threaded runtime.
//!
//! Lambda's local emulator (`cargo lambda watch`) runs one request per process at a time and tops
//! out near 3.8k req/s on a 2-core machine; this runs the very same routers. There is no API
//! Gateway here, so no JWT authorizer context: local runs identify buyers with `X-User-Id`.

use axum::serve::ListenerExt;
use axum::Router;
use flashflow::api;
use tokio::net::TcpListener;

/// The merged app of the three HTTP functions, with the shared fallbacks.
pub fn app(buy: Router, orders: Router, operator: Router) -> Router {
    api::app(buy.merge(orders).merge(operator))
}

/// Serve `app` on `listener` until the process ends. Accept errors (e.g. out of file
/// descriptors) are logged and survived by axum, never fatal.
///
/// # Errors
/// When the server stops on an I/O error.
pub async fn serve(listener: TcpListener, app: Router) -> std::io::Result<()> {
    let listener = listener.tap_io(|tcp| {
        // Small request/response pairs: do not wait for Nagle.
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app).await
}
