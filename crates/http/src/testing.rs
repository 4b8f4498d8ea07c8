//! Calling a router as API Gateway or the local server would, and reading the answer.

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue, Request};
use axum::Router;
use flashflow::domain::SaleId;
use tower::ServiceExt;
use uuid::Uuid;

/// A response as the tests look at it. Every answer of the API is JSON.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub allow: Option<String>,
    pub retry_after: Option<String>,
    pub body: serde_json::Value,
}

impl Answer {
    /// The error code of an error answer.
    pub fn error(&self) -> Option<&str> {
        self.body["error"].as_str()
    }

    /// The order id of an accepted buy.
    ///
    /// # Panics
    /// When the answer has no order id (the test then fails, naming the answer).
    pub fn order_id(&self) -> Uuid {
        self.body["order_id"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no order id in {} {}", self.status, self.body))
    }
}

/// Send `req` to `app` and read the whole answer.
///
/// # Panics
/// When the router fails or answers something that is not JSON.
pub async fn call<B>(app: &Router, req: Request<B>) -> Answer
where
    B: axum::body::HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    let resp = app.clone().oneshot(req).await.expect("the router answers");
    // Owned before the body is awaited, so the future holds no borrow of the response (and
    // stays `Send` for tests that spawn it).
    let (allow, retry_after) = {
        let header = |name| {
            resp.headers()
                .get(name)
                .map(|v: &HeaderValue| v.to_str().unwrap_or_default().to_owned())
        };
        (header(header::ALLOW), header(header::RETRY_AFTER))
    };
    let status = resp.status().as_u16();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .expect("the body arrives");
    Answer {
        status,
        allow,
        retry_after,
        body: serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&bytes))),
    }
}

/// A request with these headers and a body (`"…"`, `Some("…")`, or `None` for none).
///
/// # Panics
/// When the method, path or a header cannot be expressed.
pub fn request<'a>(
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Option<&'a str>>,
) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(path);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(
        body.into()
            .map_or(Body::empty(), |s| Body::from(s.to_owned())),
    )
    .expect("a valid request")
}

/// A buy as the local server gets it (no authorizer context): `buyer` in `X-User-Id`, as the
/// local stack identifies buyers, with an optional JSON body.
pub fn local_buy(sale: &SaleId, buyer: &str, body: Option<&str>) -> Request<Body> {
    request(
        "POST",
        &format!("/sales/{sale}/buy"),
        &[("x-user-id", buyer), ("content-type", "application/json")],
        body,
    )
}

/// An API Gateway event fixture from `events/`, its sale id replaced by `sale`, as
/// `lambda_http` hands it to the router.
///
/// # Panics
/// When the fixture does not parse.
pub fn event(fixture: &str, sale: &SaleId) -> Request<lambda_http::Body> {
    lambda_http::request::from_str(&fixture.replace("demo-sale", sale.as_str()))
        .expect("fixture parses")
}
