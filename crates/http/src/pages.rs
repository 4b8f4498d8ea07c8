//! The pages a person uses: the storefront (`/shop/{sale_id}`), the draw's check
//! (`/shop/{sale_id}/draw`) and the live sale view (`/admin/live/{sale_id}`), plain HTML, CSS and JavaScript compiled into the binary (no build
//! step), and `/pages/config.json`, what the storefront needs to know about this deployment.
//!
//! The pages hold no data: the storefront reads `GET /sales/{id}` and the buyer's own orders, the
//! live view reads the operator's `GET /admin/sales/{id}/live` with the operator's credentials.

use super::extract::{decoded, SalePath};
use super::{ApiError, Route};
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
    Route {
        method: "GET",
        path: "/shop/{sale_id}/draw",
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
    pub trust_user_header: flashflow_settings::Flag,
}

impl flashflow_settings::FromEnv for PagesSettings {}

impl Default for PagesSettings {
    fn default() -> Self {
        Self {
            stripe_js: "https://js.stripe.com/v3/".into(),
            stripe_key: String::new(),
            trust_user_header: flashflow_settings::Flag(false),
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
struct PageConfig<'a> {
    identity: &'static str,
    stripe_js: &'a str,
    stripe_key: &'a str,
}

const SHOP_HTML: &str = include_str!("pages/shop.html");
const LIVE_HTML: &str = include_str!("pages/live.html");
const DRAW_HTML: &str = include_str!("pages/draw.html");
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
        "draw.js",
        "text/javascript; charset=utf-8",
        include_str!("pages/draw.js"),
    ),
    (
        "pow.js",
        "text/javascript; charset=utf-8",
        include_str!("pages/pow.js"),
    ),
    (
        "pages.css",
        "text/css; charset=utf-8",
        include_str!("pages/pages.css"),
    ),
];

/// What the pages' handlers share: the settings and the pages' security policy.
struct Pages {
    settings: PagesSettings,
    policy: HeaderValue,
}

/// The pages' routes.
pub fn routes(settings: PagesSettings) -> Router {
    let policy = content_security_policy(&settings.stripe_js);
    Router::new()
        .route(ROUTES[0].path, get(shop))
        .route(ROUTES[1].path, get(file))
        .route(ROUTES[2].path, get(live))
        .route(ROUTES[3].path, get(draw))
        .with_state(Arc::new(Pages { settings, policy }))
}

/// The pages' Content-Security-Policy: scripts, styles and fetches from this origin only, and
/// Stripe.js (its script, its API, its card frames) from where the settings say it is; no page
/// may be framed (the storefront takes card details: no clickjacking), no plugin, no `<base>`.
fn content_security_policy(stripe_js: &str) -> HeaderValue {
    let stripe = origin_of(stripe_js).unwrap_or_else(|| "https://js.stripe.com".into());
    let policy = format!(
        "default-src 'none'; script-src 'self' {stripe}; worker-src 'self'; \
         connect-src 'self' {stripe} \
         https://api.stripe.com; frame-src {stripe} https://js.stripe.com https://hooks.stripe.com; \
         style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self'; \
         frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'"
    );
    // Origins are printable ASCII; a URL that is not one falls back to Stripe's own.
    HeaderValue::from_str(&policy).unwrap_or_else(|_| {
        HeaderValue::from_static("default-src 'self'; frame-ancestors 'none'; object-src 'none'")
    })
}

/// `scheme://host[:port]` of `url`, when it has one.
fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let host = rest.split(['/', '?', '#']).next()?;
    let ok = matches!(scheme, "http" | "https")
        && !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b));
    ok.then(|| format!("{scheme}://{host}"))
}

#[utoipa::path(
    get, path = "/shop/{sale_id}", tag = "pages",
    summary = "The storefront page",
    params(("sale_id" = flashflow::domain::SaleId, Path, description = "the sale")),
    responses(
        (status = 200, description = "the page", content_type = "text/html", body = String),
        super::openapi::errors::PageErrors,
    ),
)]
async fn shop(State(pages): State<Arc<Pages>>, _: SalePath) -> Result<Response, ApiError> {
    Ok(page(&pages, "text/html; charset=utf-8", SHOP_HTML))
}

#[utoipa::path(
    get, path = "/shop/{sale_id}/draw", tag = "pages",
    summary = "The draw's page: its record, and a signed-in buyer's place recomputed in the browser",
    params(("sale_id" = flashflow::domain::SaleId, Path, description = "the sale")),
    responses(
        (status = 200, description = "the page", content_type = "text/html", body = String),
        super::openapi::errors::PageErrors,
    ),
)]
async fn draw(State(pages): State<Arc<Pages>>, _: SalePath) -> Result<Response, ApiError> {
    Ok(page(&pages, "text/html; charset=utf-8", DRAW_HTML))
}

#[utoipa::path(
    get, path = "/admin/live/{sale_id}", tag = "pages",
    summary = "The live sale view (it reads the operator API with the operator's credentials)",
    description = "In AWS on the operator's API, behind IAM; the page itself holds no data.",
    params(("sale_id" = flashflow::domain::SaleId, Path, description = "the sale")),
    responses(
        (status = 200, description = "the page", content_type = "text/html", body = String),
        super::openapi::errors::PageErrors,
    ),
    security((), ("operator_iam" = [])),
)]
async fn live(State(pages): State<Arc<Pages>>, _: SalePath) -> Result<Response, ApiError> {
    Ok(page(&pages, "text/html; charset=utf-8", LIVE_HTML))
}

#[utoipa::path(
    get, path = "/pages/{file}", tag = "pages",
    summary = "The pages' files, and config.json (what the storefront needs to know)",
    params(("file" = String, Path, description = "shop.js, live.js, draw.js, pow.js (the proof \
        of work's Web Worker), pages.css or config.json")),
    responses(
        (status = 200, description = "the file", content(
            (PageConfig = "application/json"),
            (String = "text/javascript"),
            (String = "text/css"),
        )),
        super::openapi::errors::PageErrors,
    ),
)]
async fn file(
    State(pages): State<Arc<Pages>>,
    name: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let settings = &pages.settings;
    let name = decoded(name, "invalid_file")?;
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
    Ok(page(&pages, kind, body))
}

/// A page's file with its headers: `no-cache` (revalidated on every load, so a deploy is seen at
/// once), no MIME sniffing, the security policy, no framing (also for browsers that predate
/// `frame-ancestors`), and no `Referer` leaving the site (a sale's URL says what was bought).
fn page(pages: &Pages, kind: &'static str, body: &'static str) -> Response {
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CONTENT_SECURITY_POLICY, pages.policy.clone());
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("strict-origin-when-cross-origin"),
    );
    resp
}
