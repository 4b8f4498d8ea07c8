use super::buying::buy_app;
use super::operating::offline_operator;
use super::order_status::orders_app;
use super::*;

/// `template.yaml`'s HttpApi events of `function`, as (method, path) pairs.
fn template_routes(function: &str) -> Vec<(String, String)> {
    let doc: serde_yaml::Value = serde_yaml::from_str(TEMPLATE).unwrap();
    let events = &doc["Resources"][function]["Properties"]["Events"];
    let mut routes: Vec<(String, String)> = events
        .as_mapping()
        .unwrap_or_else(|| panic!("{function} has no events in template.yaml"))
        .values()
        .filter(|e| e["Type"] == "HttpApi")
        .map(|e| {
            let p = &e["Properties"];
            (
                p["Method"].as_str().unwrap().to_owned(),
                p["Path"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    routes.sort();
    routes
}

fn rust_routes(routes: &[Route]) -> Vec<(String, String)> {
    let mut r: Vec<(String, String)> = routes
        .iter()
        .map(|r| (r.method.to_owned(), r.path.to_owned()))
        .collect();
    r.sort();
    r
}

#[test]
fn template_yaml_and_the_routers_declare_the_same_routes() {
    assert_eq!(
        template_routes("BuyFunction"),
        rust_routes(crate::buy::ROUTES)
    );
    let both = |a: &[Route], b: &[Route]| {
        let mut r = rust_routes(a);
        r.extend(rust_routes(b));
        r.sort();
        r
    };
    assert_eq!(
        template_routes("OrdersFunction"),
        both(crate::orders::ROUTES, crate::pages::ROUTES)
    );
    assert_eq!(
        template_routes("OperatorFunction"),
        both(operator::ROUTES, super::live::ROUTES)
    );
    assert_eq!(
        template_routes("CheckoutFunction"),
        rust_routes(super::checkout::ROUTES)
    );
    assert_eq!(
        template_routes("QueueFunction"),
        rust_routes(super::queue::ROUTES)
    );
}

#[tokio::test]
async fn every_declared_route_is_served_by_its_router() {
    let b = buy_app(1, 1, true);
    let o = orders_app();
    for (app, routes) in [
        (&b.app, crate::buy::ROUTES),
        (&o.app, crate::orders::ROUTES),
        (&offline_operator(), crate::operator::ROUTES),
    ] {
        for r in routes {
            let path = r
                .path
                .replace("{sale_id}", "drop")
                .replace("{order_id}", &uuid::Uuid::now_v7().to_string());
            let a = call(app, request(r.method, &path, &[], "")).await;
            assert!(
                !matches!(
                    a.body["error"].as_str(),
                    Some("route_not_found" | "method_not_allowed")
                ),
                "{} {path}: {}",
                r.method,
                a.body
            );
            let other = if r.method == "GET" {
                Method::DELETE
            } else {
                Method::GET
            };
            let a = call(app, request(other.as_str(), &path, &[], "")).await;
            assert_eq!(
                a.allow.as_deref().map(|h| h.contains(r.method)),
                Some(true),
                "{path}"
            );
        }
    }
}

/// The template's ElastiCache users carry the rules of `infra/redis/acl-users.txt`, which the
/// integration tests prove on a real Redis (`acl.rs`), so what deploys is what was tested.
#[test]
fn the_templates_redis_users_have_the_rules_the_tests_prove() {
    const USERS: &str = include_str!("../../../../infra/redis/acl-users.txt");
    let doc: serde_yaml::Value = serde_yaml::from_str(TEMPLATE).unwrap();
    let resources = doc["Resources"].as_mapping().unwrap();
    let mut checked = 0;
    for line in USERS
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let (function, rules) = line.split_once(' ').unwrap();
        let user = resources
            .values()
            .find(|r| {
                r["Type"] == "AWS::ElastiCache::User"
                    && format!("{:?}", r["Properties"]["UserId"])
                        .contains(&format!("-{function}\""))
            })
            .unwrap_or_else(|| panic!("no ElastiCache user for {function} in template.yaml"));
        assert_eq!(
            user["Properties"]["AccessString"].as_str(),
            Some(rules),
            "{function}'s rules differ between template.yaml and infra/redis/acl-users.txt"
        );
        checked += 1;
    }
    assert_eq!(
        checked, 7,
        "buy, orders, settle, reconcile, operator, checkout, queue"
    );
}
