use super::*;

/// The operator routes on adapters that are all down: every case here is decided before any I/O.
pub(super) fn offline_operator() -> Router {
    use flashflow_adapters::memory::{MemoryLedger, MemoryStatus, MemoryStore};
    let (db, store, status) = (
        MemoryLedger::default(),
        MemoryStore::default(),
        MemoryStatus::default(),
    );
    db.set_unavailable(true);
    store.set_unavailable(true);
    status.set_unavailable(true);
    app(crate::operator::routes(crate::operator::OperatorState {
        db,
        store,
        status,
        queues: flashflow_adapters::memory::MemoryQueue::default(),
        token: Some("t".into()),
        allow_reset: true,
    }))
}

#[tokio::test]
async fn the_operator_api_refuses_missing_or_wrong_credentials_and_bad_requests() {
    let app = offline_operator();
    let ok = r#"{"id":"s","name":"n","stock":1,"per_user_limit":1}"#;
    let json = ("content-type", "application/json");
    let auth = ("authorization", "Bearer t");
    let cases: Vec<(Request<Body>, u16, &str)> = vec![
        (
            request("POST", "/admin/sales", &[json], ok),
            401,
            "unauthenticated",
        ),
        (
            request(
                "POST",
                "/admin/sales",
                &[json, ("authorization", "Bearer x")],
                ok,
            ),
            403,
            "forbidden",
        ),
        (
            request("POST", "/admin/sales", &[json, auth], "{"),
            400,
            "invalid_body",
        ),
        (
            request("POST", "/admin/sales", &[json, auth], ""),
            400,
            "invalid_body",
        ),
        (
            request(
                "POST",
                "/admin/sales",
                &[json, auth],
                r#"{"id":"x","name":"n","stock":"many","per_user_limit":1}"#,
            ),
            400,
            "invalid_body",
        ),
        (
            request(
                "POST",
                "/admin/sales",
                &[json, auth],
                r#"{"id":"x","name":"n","stock":1,"per_user_limit":1,"opens_at":"soon"}"#,
            ),
            400,
            "invalid_opens_at",
        ),
        (
            request(
                "POST",
                "/admin/sales",
                &[json, auth],
                format!(
                    r#"{{"id":"x","name":"{}","stock":1,"per_user_limit":1}}"#,
                    "n".repeat(17_000)
                )
                .as_str(),
            ),
            413,
            "body_too_large",
        ),
        (
            request("GET", "/admin/sales", &[auth], ""),
            405,
            "method_not_allowed",
        ),
        (
            request(
                "POST",
                "/admin/sales/s/reset",
                &[json, auth],
                r#"{"stock":-5}"#,
            ),
            400,
            "invalid_stock",
        ),
        (
            request("GET", "/admin/sales/a%20b", &[auth], ""),
            400,
            "invalid_sale_id",
        ),
        (
            request("GET", "/admin/nope", &[auth], ""),
            404,
            "route_not_found",
        ),
    ];
    for (req, want_status, want_code) in cases {
        let a = call(&app, req).await;
        assert_eq!(
            (a.status, a.body["error"].as_str()),
            (want_status, Some(want_code)),
            "{}",
            a.body
        );
    }
}

#[tokio::test]
async fn the_operator_api_creates_shows_and_resets_a_sale_on_the_in_memory_ports() {
    use flashflow_adapters::memory::MemoryLedger;
    let store = MemoryStore::default();
    let app = app(crate::operator::routes(crate::operator::OperatorState {
        db: MemoryLedger::default(),
        store: store.clone(),
        status: MemoryStatus::default(),
        queues: flashflow_adapters::memory::MemoryQueue::default(),
        token: Some("op".into()),
        allow_reset: true,
    }));
    let admin = |method: &str, path: &str, body: &str| {
        request(
            method,
            path,
            &[
                ("authorization", "Bearer op"),
                ("content-type", "application/json"),
            ],
            body,
        )
    };
    let body = r#"{"id":"op-sale","name":"n","stock":3,"per_user_limit":1}"#;
    let created = call(&app, admin("POST", "/admin/sales", body)).await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["remaining"], 3);
    let again = call(&app, admin("POST", "/admin/sales", body)).await;
    assert_eq!(again.status, 200, "a retried create finds the same sale");
    let shown = call(&app, admin("GET", "/admin/sales/op-sale", "")).await;
    assert_eq!(
        (shown.status, &shown.body["loaded"], &shown.body["round"]),
        (200, &serde_json::json!(true), &serde_json::json!(1))
    );
    let reset = call(
        &app,
        admin("POST", "/admin/sales/op-sale/reset", r#"{"stock":4}"#),
    )
    .await;
    assert_eq!(
        (reset.status, &reset.body["round"], &reset.body["stock"]),
        (200, &serde_json::json!(2), &serde_json::json!(4))
    );
    assert_eq!(store.remaining(&SaleId::parse("op-sale").unwrap()), Some(4));
    let missing = call(&app, admin("GET", "/admin/sales/nobody", "")).await;
    assert_eq!(
        (missing.status, missing.error()),
        (404, Some("sale_not_found"))
    );
}
