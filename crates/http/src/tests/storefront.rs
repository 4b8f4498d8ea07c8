use super::order_status::orders_app;
use super::*;
use tower::ServiceExt;

async fn text(app: &axum::Router, path: &str) -> (u16, String, String) {
    let resp = app
        .clone()
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let kind = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let status = resp.status().as_u16();
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, kind, String::from_utf8_lossy(&body).into_owned())
}

fn pages_app(trust: bool) -> axum::Router {
    app(super::super::pages::routes(
        super::super::pages::PagesSettings {
            stripe_js: "http://127.0.0.1:8420/js.stripe.com/v3/".into(),
            stripe_key: "pk_test_x".into(),
            trust_user_header: flashflow_settings::Flag(trust),
        },
    ))
}

#[tokio::test]
async fn the_storefront_renders_its_buy_button_disabled_until_the_script_runs() {
    // Without the script (slow to load, or off) a click cannot submit anything.
    let (status, kind, html) = text(&pages_app(true), "/shop/drop").await;
    assert_eq!((status, kind.as_str()), (200, "text/html; charset=utf-8"));
    assert!(
        html.contains(r#"<button id="buy" type="submit" disabled>"#),
        "{html}"
    );
    assert!(html.contains(r#"name="viewport""#), "phone-width layout");
    let (status, kind, _) = text(&pages_app(true), "/pages/shop.js").await;
    assert_eq!(
        (status, kind.as_str()),
        (200, "text/javascript; charset=utf-8")
    );
    let (status, _, _) = text(&pages_app(true), "/admin/live/drop").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn every_page_forbids_framing_and_sniffing_and_keeps_its_referrer_and_scripts_at_home() {
    for path in [
        "/shop/drop",
        "/admin/live/drop",
        "/pages/shop.js",
        "/pages/pages.css",
    ] {
        let resp = tower::ServiceExt::oneshot(
            pages_app(true),
            axum::http::Request::get(path)
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
        let h = |name: &str| {
            resp.headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default()
        };
        let csp = h("content-security-policy");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(
            csp.contains("script-src 'self' http://127.0.0.1:8420"),
            "{csp}"
        );
        assert!(csp.contains("default-src 'none'"), "{csp}");
        assert_eq!(h("x-frame-options"), "DENY", "{path}");
        assert_eq!(h("referrer-policy"), "strict-origin-when-cross-origin");
        assert_eq!(h("x-content-type-options"), "nosniff");
    }
}

#[tokio::test]
async fn the_page_config_says_how_buyers_identify_and_where_stripe_js_is() {
    let a = call(
        &pages_app(true),
        request("GET", "/pages/config.json", &[], ""),
    )
    .await;
    assert_eq!(a.body["identity"], "header");
    assert_eq!(a.body["stripe_key"], "pk_test_x");
    let a = call(
        &pages_app(false),
        request("GET", "/pages/config.json", &[], ""),
    )
    .await;
    assert_eq!(a.body["identity"], "jwt", "in AWS: the site's JWT");
    let a = call(
        &pages_app(true),
        request("GET", "/pages/secret.txt", &[], ""),
    )
    .await;
    assert_eq!(
        (a.status, a.body["error"].as_str()),
        (404, Some("file_not_found"))
    );
    let a = call(&pages_app(true), request("GET", "/shop/a%20b", &[], "")).await;
    assert_eq!(
        (a.status, a.body["error"].as_str()),
        (400, Some("invalid_sale_id"))
    );
}

#[tokio::test]
async fn anyone_reads_a_sales_name_price_and_remaining_units_and_nothing_else() {
    let o = orders_app();
    let a = call(&o.app, request("GET", "/sales/drop", &[], "")).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        (&a.body["remaining"], &a.body["stock"]),
        (&5.into(), &5.into())
    );
    assert_eq!(a.body["name"], "test");
    assert!(a.body["now_ms"].as_i64().unwrap() > 0);
    let a = call(&o.app, request("GET", "/sales/nope", &[], "")).await;
    assert_eq!(
        (a.status, a.body["error"].as_str()),
        (404, Some("sale_not_found"))
    );
}
