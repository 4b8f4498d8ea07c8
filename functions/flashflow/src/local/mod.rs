//! Serve the Lambda handlers over plain HTTP/1.1, for the local stack and load tests.
//!
//! Lambda's local emulator (`cargo lambda watch`) runs one request per process at a time and tops
//! out near 3.8k req/s on a 2-core machine; this server runs the very same handler functions on a
//! multi-threaded runtime, with the request converted into the `lambda_http::Request` the handler
//! gets in AWS (minus the JWT authorizer context, which is why local runs use `X-User-Id`).
//! [`event_source`] feeds the settle handler from SQS the way the event source mapping does.

pub mod event_source;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use lambda_http::{Body, Request, Response};
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;
use tracing::debug;

/// Bodies above this are refused before they reach a handler (handlers have smaller limits).
pub const MAX_LOCAL_BODY: usize = 64 * 1024;

/// Serve `handler` on `listener` until the process ends.
pub async fn serve<H, F>(listener: TcpListener, handler: H) -> std::io::Result<()>
where
    H: Fn(Request) -> F + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    let handler = Arc::new(handler);
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let handler = Arc::clone(&handler);
        tokio::spawn(async move {
            let service = service_fn(move |req: hyper::Request<Incoming>| {
                let handler = Arc::clone(&handler);
                async move { Ok::<_, Infallible>(to_hyper(convert_and_call(&*handler, req).await)) }
            });
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                debug!(error = %e, "connection ended with an error");
            }
        });
    }
}

async fn convert_and_call<H, F>(handler: &H, req: hyper::Request<Incoming>) -> Response<Body>
where
    H: Fn(Request) -> F,
    F: Future<Output = Response<Body>>,
{
    let (parts, body) = req.into_parts();
    let bytes = match Limited::new(body, MAX_LOCAL_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return crate::api::ApiError::BodyTooLarge {
                limit: MAX_LOCAL_BODY,
            }
            .into_response()
        }
    };
    let body = if bytes.is_empty() {
        Body::Empty
    } else {
        Body::Binary(bytes.to_vec())
    };
    handler(http::Request::from_parts(parts, body)).await
}

fn to_hyper(resp: Response<Body>) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = resp.into_parts();
    let bytes = Bytes::copy_from_slice(body.as_ref());
    hyper::Response::from_parts(parts, Full::new(bytes))
}
