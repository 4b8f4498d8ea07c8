//! The pages a person uses: the storefront (`/shop/{sale_id}`) and the live sale view
//! (`/admin/live/{sale_id}`), plain HTML, CSS and JavaScript compiled into the binary (no build
//! step), and `/pages/config.json`, what the storefront needs to know about this deployment.
//!
//! The pages hold no data: the storefront reads `GET /sales/{id}` and the buyer's own orders, the
//! live view reads the operator's `GET /admin/sales/{id}/live` with the operator's credentials.

use super::{path_param, ApiError, Route};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The pages' routes (also declared in `template.yaml`).
pub const ROUTES: &[Route] = &[
    Route {
        method: "GET",
        path: "/shop/{sale_id}",
    },
    Route {
        method: "GET",
        path: "/pages/{file}",
    },
    Route {
        method: "GET",
        path: "/admin/live/{sale_id}",
    },
];

/// What the storefront is told: `STRIPE_JS_URL` (Stripe.js; locally localstripe's stand-in),
/// `STRIPE_PUBLISHABLE_KEY`, and how buyers identify themselves (`TRUST_USER_HEADER`: a name sent
/// as `X-User-Id`, local only; otherwise the site's JWT).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct PagesSettings {
    #[serde(rename = "stripe_js_url")]
    pub stripe_js: String,
    #[serde(rename = "stripe_publishable_key")]
    pub stripe_key: String,
    pub trust_user_header: crate::settings::Flag,
}

impl crate::settings::FromEnv for PagesSettings {}

impl Default for PagesSettings {
    fn default() -> Self {
        Self {
            stripe_js: "https://js.stripe.com/v3/".into(),
            stripe_key: String::new(),
            trust_user_header: crate::settings::Flag(false),
        }
    }
}

#[derive(Serialize)]
struct PageConfig<'a> {
    identity: &'static str,
    stripe_js: &'a str,
    stripe_key: &'a str,
}

const SHOP_HTML: &str = include_str!("pages/shop.html");
const LIVE_HTML: &str = include_str!("pages/live.html");
const FILES: &[(&str, &str, &str)] = &[
    (
        "shop.js",
        "text/javascript; charset=utf-8",
        include_str!("pages/shop.js"),
    ),
    (
        "live.js",
        "text/javascript; charset=utf-8",
        include_str!("pages/live.js"),
    ),
    (
        "pages.css",
        "text/css; charset=utf-8",
        include_str!("pages/pages.css"),
    ),
];

/// The pages' routes.
pub fn routes(settings: PagesSettings) -> Router {
    Router::new()
        .route(ROUTES[0].path, get(shop))
        .route(ROUTES[1].path, get(file))
        .route(ROUTES[2].path, get(live))
        .with_state(Arc::new(settings))
}

async fn shop(sale: Result<Path<String>, PathRejection>) -> Result<Response, ApiError> {
    crate::domain::SaleId::parse(&path_param(sale, "invalid_sale_id")?)?;
    Ok(page("text/html; charset=utf-8", SHOP_HTML, "no-cache"))
}

async fn live(sale: Result<Path<String>, PathRejection>) -> Result<Response, ApiError> {
    crate::domain::SaleId::parse(&path_param(sale, "invalid_sale_id")?)?;
    Ok(page("text/html; charset=utf-8", LIVE_HTML, "no-cache"))
}

async fn file(
    State(settings): State<Arc<PagesSettings>>,
    name: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let name = path_param(name, "invalid_file")?;
    if name == "config.json" {
        let config = PageConfig {
            identity: if settings.trust_user_header.get() {
                "header"
            } else {
                "jwt"
            },
            stripe_js: &settings.stripe_js,
            stripe_key: &settings.stripe_key,
        };
        return Ok(super::json(StatusCode::OK, &config));
    }
    let (_, kind, body) =
        FILES
            .iter()
            .find(|(n, _, _)| *n == name)
            .ok_or_else(|| ApiError::NotFound {
                code: "file_not_found",
                message: format!("no page file {name:?}"),
            })?;
    // `no-cache`: revalidated on every load, so a deploy is seen at once.
    Ok(page(kind, body, "no-cache"))
}

fn page(kind: &'static str, body: &'static str, cache: &'static str) -> Response {
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    resp
}
