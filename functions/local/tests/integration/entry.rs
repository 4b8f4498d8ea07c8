//! A waiting room's entry policy end to end, as a shop would use it: the operator creates the
//! sale with its policy (`POST /admin/sales`, kept in Postgres, loaded into Redis), buyers join
//! with the local issuer's JWTs through the layer that plays API Gateway's JWT authorizer, and
//! only a keyed hash of a phone number ever reaches Redis.

use crate::helpers::*;
use crate::waiting_room::{keys, lose_sale};
use axum::Router;
use flashflow::domain::timefmt::format_ms;
use flashflow::domain::EpochMs;
use flashflow_app::waiting_room::Queue;
use flashflow_http::queue::QueueState;
use flashflow_local::issuer::{authorized, IssuerSettings, LocalIssuer};
use fred::interfaces::HashesInterface;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

fn issuer() -> LocalIssuer {
    LocalIssuer::new(&IssuerSettings::default())
}

/// A token of the local issuer for `sub` with `claims` (JSON).
fn token(sub: &str, claims: &str) -> String {
    issuer()
        .sign(
            sub,
            serde_json::from_str(claims).unwrap(),
            Duration::from_secs(60),
        )
        .unwrap()
}

/// The operator's request for a sale whose queue is open, with the entry policy `entry` (JSON).
fn sale_body(id: &str, entry: &str) -> String {
    let now = EpochMs::now().get();
    format!(
        r#"{{"id":"{id}","name":"drop","stock":10,"per_user_limit":1,
            "opens_at":"{}",
            "waiting_room":{{"opens_at":"{}","admission_seconds":60,"entry":{entry}}}}}"#,
        format_ms(now + 600_000),
        format_ms(now - 5_000),
    )
}

/// A sale made by the operator's API from [`sale_body`].
async fn sale_with_entry(t: &TestApp, entry: &str) -> (String, Answer) {
    let id = fresh_sale_id().to_string();
    let op = t.operator().await;
    let created = call(
        &op,
        admin("POST", "/admin/sales", Some(&sale_body(&id, entry))),
    )
    .await;
    (id, created)
}

/// The queue's routes behind the local authorizer, as `flashflow-local api` serves them.
fn queue_app(t: &TestApp) -> Router {
    authorized(
        flashflow_http::app(flashflow_http::queue::routes(QueueState {
            queue: Queue::new(
                t.store.clone(),
                local_beacon(),
                keys(),
                flashflow_app::metrics::Metrics::new("queue"),
            ),
            trust_user_header: true,
        })),
        Arc::new(issuer()),
    )
}

async fn join(app: &Router, sale: &str, header: (&str, &str)) -> Answer {
    call(
        app,
        request("POST", &format!("/sales/{sale}/queue"), &[header], None),
    )
    .await
}

/// A join with `token` as the bearer.
async fn join_as(app: &Router, sale: &str, token: &str) -> Answer {
    join(app, sale, ("authorization", &format!("Bearer {token}"))).await
}

const PHONE_POLICY: &str =
    r#"{"require_claims":{"phone_number_verified":true},"one_per":"phone_number"}"#;

#[tokio::test]
async fn one_phone_number_holds_one_place_whatever_the_identities_that_carry_it() {
    let t = TestApp::new().await;
    let (sale, created) = sale_with_entry(&t, PHONE_POLICY).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let app = queue_app(&t);
    let bearer = |sub: &str, claims: &str| format!("Bearer {}", token(sub, claims));
    let phone_a = r#"{"phone_number":"+44 7700 900001","phone_number_verified":true}"#;

    let ann = bearer("ann", phone_a);
    let first = join(&app, &sale, ("authorization", &ann)).await;
    assert_eq!(first.status, 201, "{}", first.body);

    let bob = join(&app, &sale, ("authorization", &bearer("bob", phone_a))).await;
    assert_eq!(bob.status, 409, "{}", bob.body);
    assert_eq!(bob.error(), Some("already_entered"));
    assert!(
        !bob.body.to_string().contains("ann"),
        "the answer says nothing about who: {}",
        bob.body
    );

    let again = join(&app, &sale, ("authorization", &ann)).await;
    assert_eq!(again.status, 200, "the holder's own place: {}", again.body);
    assert_eq!(again.body["ticket"], first.body["ticket"]);

    let phone_b = r#"{"phone_number":"+44 7700 900002","phone_number_verified":true}"#;
    let cat = join(&app, &sale, ("authorization", &bearer("cat", phone_b))).await;
    assert_eq!(
        cat.status, 201,
        "another number, another place: {}",
        cat.body
    );
    assert_eq!(cat.body["join_index"], 1, "bob's refusal took no place");
}

#[tokio::test]
async fn an_identity_without_the_required_claims_is_not_let_in_and_nothing_is_stored() {
    let t = TestApp::new().await;
    let (sale, created) = sale_with_entry(&t, PHONE_POLICY).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let app = queue_app(&t);
    let unverified = token(
        "dan",
        r#"{"phone_number":"+44 7700 900003","phone_number_verified":false}"#,
    );
    let no_phone = token("eve", r#"{"phone_number_verified":true}"#);
    for (who, header) in [
        (
            "unverified",
            ("authorization", format!("Bearer {unverified}")),
        ),
        ("no phone", ("authorization", format!("Bearer {no_phone}"))),
        ("X-User-Id, no claims", ("x-user-id", "fay".to_owned())),
    ] {
        let a = join(&app, &sale, (header.0, &header.1)).await;
        assert_eq!(a.status, 403, "{who}: {}", a.body);
        assert_eq!(a.error(), Some("entry_not_allowed"), "{who}");
    }
    let room: HashMap<String, String> = t
        .store
        .client()
        .hgetall(format!("ff:{{{sale}}}:wr"))
        .await
        .unwrap();
    let joined = room.get("joined").map_or("0", String::as_str);
    assert_eq!(joined, "0", "no join index was handed out");
}

#[tokio::test]
async fn a_token_that_does_not_verify_is_answered_401() {
    let t = TestApp::new().await;
    let (sale, _) = sale_with_entry(&t, PHONE_POLICY).await;
    let forged = LocalIssuer::new(&IssuerSettings {
        local_jwt_secret: "not-the-local-issuers-secret-0000000001".into(),
        ..IssuerSettings::default()
    })
    .sign(
        "mal",
        serde_json::from_str(r#"{"phone_number":"+1","phone_number_verified":true}"#).unwrap(),
        Duration::from_secs(60),
    )
    .unwrap();
    let a = join_as(&queue_app(&t), &sale, &forged).await;
    assert_eq!(a.status, 401, "{}", a.body);
}

#[tokio::test]
async fn the_store_keeps_a_keyed_hash_of_the_phone_number_never_the_number() {
    let t = TestApp::new().await;
    let (sale, _) = sale_with_entry(&t, PHONE_POLICY).await;
    let ann = token(
        "ann",
        r#"{"phone_number":"+44 7700 900123","phone_number_verified":true}"#,
    );
    let a = join_as(&queue_app(&t), &sale, &ann).await;
    assert_eq!(a.status, 201, "{}", a.body);
    let entries: HashMap<String, String> = t
        .store
        .client()
        .hgetall(format!("ff:{{{sale}}}:wr:entries"))
        .await
        .unwrap();
    assert_eq!(entries.len(), 1);
    let (tag, holder) = entries.iter().next().unwrap();
    assert_eq!(holder, "ann");
    assert!(!tag.contains("900123"), "{tag}");
    let sale_id = flashflow::domain::SaleId::parse(&sale).unwrap();
    assert_eq!(*tag, keys().entry_tag(&sale_id, "+44 7700 900123"));
}

#[tokio::test]
async fn the_sales_entry_policy_is_kept_by_postgres_and_the_same_request_again_is_the_same_sale() {
    let t = TestApp::new().await;
    let sale = fresh_sale_id().to_string();
    let body = sale_body(&sale, PHONE_POLICY);
    let op = t.operator().await;
    let created = call(&op, admin("POST", "/admin/sales", Some(&body))).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = flashflow::domain::SaleId::parse(&sale).unwrap();
    let record = t.db.sale(&id).await.unwrap().unwrap();
    let entry = record.definition.waiting_room.unwrap().entry.unwrap();
    assert_eq!(entry.one_per.as_deref(), Some("phone_number"));
    assert_eq!(entry.require_claims["phone_number_verified"], "true");
    let again = call(&op, admin("POST", "/admin/sales", Some(&body))).await;
    assert_eq!(again.status, 200, "{}", again.body);
}

#[tokio::test]
async fn a_malformed_entry_policy_is_refused_with_invalid_entry_and_makes_no_sale() {
    let t = TestApp::new().await;
    let (sale, created) = sale_with_entry(&t, r#"{"require_claims":{"v":[1,2]}}"#).await;
    assert_eq!(created.status, 400, "{}", created.body);
    assert_eq!(created.error(), Some("invalid_entry"));
    let id = flashflow::domain::SaleId::parse(&sale).unwrap();
    assert!(t.db.sale(&id).await.unwrap().is_none());
}

#[tokio::test]
async fn after_a_redis_loss_and_a_rehydrate_the_policy_still_lets_one_place_per_phone_number() {
    let t = TestApp::new().await;
    let (sale, created) = sale_with_entry(&t, PHONE_POLICY).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let phone_a = r#"{"phone_number":"+44 7700 900010","phone_number_verified":true}"#;
    let ann = token("ann", phone_a);
    assert_eq!(join_as(&queue_app(&t), &sale, &ann).await.status, 201);

    lose_sale(&sale).await;
    let op = t.operator().await;
    let path = format!("/admin/sales/{sale}/rehydrate");
    let rebuilt = call(&op, admin("POST", &path, None)).await;
    assert_eq!(rebuilt.status, 200, "{}", rebuilt.body);

    // A queue process started after the rebuild reads the policy from the rebuilt queue alone.
    let app = queue_app(&t);
    let unverified = token(
        "dan",
        r#"{"phone_number":"+1","phone_number_verified":false}"#,
    );
    let refused = join_as(&app, &sale, &unverified).await;
    assert_eq!(
        refused.error(),
        Some("entry_not_allowed"),
        "{}",
        refused.body
    );
    assert_eq!(
        join_as(&app, &sale, &ann).await.status,
        201,
        "ann joins the new queue"
    );
    let bob = join_as(&app, &sale, &token("bob", phone_a)).await;
    assert_eq!(bob.error(), Some("already_entered"), "{}", bob.body);
}
