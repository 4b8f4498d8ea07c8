use super::errors::ERROR_CODES;
use super::*;
use crate::{ApiError, Route};
use flashflow::domain::Refusal;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

fn doc() -> Value {
    serde_json::to_value(document()).unwrap()
}

/// The document's operations as (METHOD, path).
fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for m in METHODS {
            if item.get(m).is_some() {
                ops.insert((m.to_uppercase(), path.clone()));
            }
        }
    }
    ops
}

/// Every route of every function, as their routers are built from them.
fn routes() -> BTreeSet<(String, String)> {
    [
        buy::ROUTES,
        orders::ROUTES,
        checkout::ROUTES,
        operator::ROUTES,
        live::ROUTES,
        pages::ROUTES,
        queue::ROUTES,
    ]
    .into_iter()
    .flatten()
    .map(|r: &Route| (r.method.to_owned(), r.path.to_owned()))
    .collect()
}

fn operation<'a>(doc: &'a Value, method: &str, path: &str) -> &'a Value {
    &doc["paths"][path][method.to_lowercase()]
}

#[test]
fn the_document_is_openapi_3_1_with_an_operation_for_every_route_and_no_other() {
    let doc = doc();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(operations(&doc), routes());
}

#[test]
fn the_committed_document_is_the_one_the_code_generates() {
    let committed = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
    let committed = std::fs::read_to_string(&committed).unwrap_or_default();
    // Compared as text (what is served is the file), reported as JSON (what differs).
    if committed != to_json() {
        let now: Value = serde_json::from_str(&committed).unwrap_or(Value::Null);
        let first_difference = first_difference(&now, &doc(), "");
        panic!(
            "docs/openapi.json is not what the code generates (first difference at {}): run \
             `make openapi` and commit it",
            first_difference.unwrap_or_else(|| "its formatting".into())
        );
    }
    // The functions serve the committed file.
    assert_eq!(orders::OPENAPI_JSON, committed);
}

fn first_difference(a: &Value, b: &Value, at: &str) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            keys.into_iter().find_map(|k| match (x.get(k), y.get(k)) {
                (Some(p), Some(q)) => first_difference(p, q, &format!("{at}/{k}")),
                _ => Some(format!("{at}/{k}")),
            })
        }
        _ if a == b => None,
        _ => Some(if at.is_empty() { "/".into() } else { at.into() }),
    }
}

/// The sources of the crates whose code may answer an HTTP error (the domain's validation, the
/// use cases, this layer), without their tests.
fn sources() -> Vec<(PathBuf, String)> {
    fn walk(dir: &Path, out: &mut Vec<(PathBuf, String)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if path
                    .file_name()
                    .is_some_and(|n| n == "testing" || n == "tests")
                {
                    continue;
                }
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let name = path.file_name().unwrap().to_string_lossy();
                if name == "tests.rs" || name.ends_with("_tests.rs") {
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap();
                // A file's own test module is at its end.
                let text = match text.find("#[cfg(test)]\nmod tests") {
                    Some(i) => text[..i].to_owned(),
                    None => text,
                };
                out.push((path, text));
            }
        }
    }
    let mut out = Vec::new();
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for layer in ["flashflow", "app", "http"] {
        walk(&crates.join(layer).join("src"), &mut out);
    }
    out
}

/// Codes the sources answer: an invalid input's code, a conflict's or a not-found's `code:`, a
/// code passed to `path_param`/`single_header`, and the `(StatusCode, "code", …)` of the mapping.
fn answered_codes() -> BTreeSet<String> {
    // Codes of what is not an HTTP answer: an SQS message settle refuses.
    const NOT_HTTP: [&str; 1] = ["invalid_message"];
    let patterns = [
        r#"InvalidInput::new\(\s*"([a-z_]+)""#,
        r#"code:\s*"([a-z_]+)""#,
        r#"conflict\(\s*"([a-z_]+)""#,
        r#"(?:path_param|single_header|decoded)\([^;{}]*?"([a-z_]+)"\)"#,
        r#"StatusCode::[A-Z_]+,\s*"([a-z_]+)""#,
        r#"parse_ms\([^;{}]*?"([a-z_]+)"\)"#,
    ]
    .map(|p| regex_lite::Regex::new(p).unwrap());
    let mut codes = BTreeSet::new();
    for (path, text) in sources() {
        if path.components().any(|c| c.as_os_str() == "openapi") {
            continue;
        }
        for re in &patterns {
            for c in re.captures_iter(&text) {
                codes.insert(c[1].to_owned());
            }
        }
    }
    codes.retain(|c| !NOT_HTTP.contains(&c.as_str()));
    codes
}

#[test]
fn every_error_code_the_sources_answer_is_in_the_documents_table() {
    let documented: BTreeSet<String> = ERROR_CODES.iter().map(|c| c.code.to_owned()).collect();
    let missing: Vec<String> = answered_codes().difference(&documented).cloned().collect();
    assert!(
        missing.is_empty(),
        "answered but not in api/openapi/errors.rs: {missing:?}"
    );
}

#[test]
fn every_code_in_the_documents_table_is_answered_somewhere() {
    let answered = answered_codes();
    let stale: Vec<&str> = ERROR_CODES
        .iter()
        .map(|c| c.code)
        .filter(|c| !answered.contains(*c))
        .collect();
    assert!(stale.is_empty(), "documented but never answered: {stale:?}");
}

#[test]
fn each_error_answer_comes_with_the_status_the_table_gives_its_code() {
    let refusals = [
        Refusal::KeyReused {
            order_id: uuid::Uuid::nil(),
        },
        Refusal::UnknownSale,
        Refusal::NotOpen { opens_at_ms: 0 },
        Refusal::Closed { closes_at_ms: 0 },
        Refusal::LimitReached { allowance: 0 },
        Refusal::SoldOut,
        Refusal::InsufficientStock { remaining: 0 },
        Refusal::TooManyAttempts { retry_after_s: 1 },
    ];
    let mut errors: Vec<ApiError> = refusals.into_iter().map(ApiError::Refused).collect();
    errors.extend([
        ApiError::Unauthenticated,
        ApiError::Forbidden,
        ApiError::RouteNotFound,
        ApiError::MethodNotAllowed,
        ApiError::BodyTooLarge { limit: 1 },
        ApiError::RequestTimeout,
        ApiError::UnsupportedMediaType,
        ApiError::Unavailable("x".into()),
        ApiError::NotReserved("x".into()),
        ApiError::OutcomeUnknown {
            order_id: uuid::Uuid::nil(),
            source: "x".into(),
        },
        ApiError::Internal("x".into()),
    ]);
    for code in ERROR_CODES.iter().filter(|c| c.status == 400) {
        errors.push(flashflow::domain::InvalidInput::new(code.code, "").into());
    }
    for code in ERROR_CODES.iter().filter(|c| c.status == 409) {
        errors.push(ApiError::Conflict {
            code: code.code,
            message: String::new(),
        });
    }
    for code in ERROR_CODES.iter().filter(|c| c.status == 404) {
        errors.push(ApiError::NotFound {
            code: code.code,
            message: String::new(),
        });
    }
    for e in errors {
        let (status, code, _) = e.parts();
        let row = ERROR_CODES
            .iter()
            .find(|c| c.code == code)
            .unwrap_or_else(|| panic!("{code} is not in the table"));
        assert_eq!(status.as_u16(), row.status, "{code}");
    }
}

#[test]
fn every_operation_documents_the_errors_its_inputs_and_credentials_can_cause() {
    let doc = doc();
    for (method, path) in operations(&doc) {
        let op = operation(&doc, &method, &path);
        let answers = |status: &str| op["responses"].get(status).is_some();
        let what = format!("{method} {path}");
        if path.contains('{') || op.get("requestBody").is_some() {
            assert!(answers("400"), "{what} takes input and documents no 400");
        }
        if op.get("requestBody").is_some() {
            assert!(answers("413"), "{what} takes a body and documents no 413");
        }
        let secured = op["security"]
            .as_array()
            .is_some_and(|s| !s.iter().any(|r| r.as_object().unwrap().is_empty()));
        if secured && !path.starts_with("/webhooks/") {
            assert!(
                answers("401"),
                "{what} needs credentials and documents no 401"
            );
        }
        for (status, _) in op["responses"].as_object().unwrap() {
            assert!(status.len() == 3, "{what}: {status}");
        }
    }
}

#[test]
fn every_security_requirement_names_a_declared_scheme() {
    let doc = doc();
    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    for (method, path) in operations(&doc) {
        for requirement in operation(&doc, &method, &path)["security"]
            .as_array()
            .into_iter()
            .flatten()
        {
            for name in requirement.as_object().unwrap().keys() {
                assert!(schemes.contains_key(name), "{method} {path}: {name}");
            }
        }
    }
}

/// What `template.yaml` puts in front of each route: the buyers' API with its JWT authorizer,
/// the operators' API with IAM, or nothing.
#[derive(Debug, PartialEq, Eq)]
enum Gate {
    Jwt,
    Iam,
    Public,
}

#[test]
fn the_templates_routes_are_the_documents_operations_behind_the_documented_authorization() {
    let template: serde_yaml::Value =
        serde_yaml::from_str(include_str!("../../../../template.yaml")).unwrap();
    let doc = doc();
    let mut seen = BTreeSet::new();
    for resource in template["Resources"].as_mapping().unwrap().values() {
        let Some(events) = resource["Properties"]["Events"].as_mapping() else {
            continue;
        };
        for event in events.values().filter(|e| e["Type"] == "HttpApi") {
            let p = &event["Properties"];
            let (method, path) = (p["Method"].as_str().unwrap(), p["Path"].as_str().unwrap());
            let api = match &p["ApiId"] {
                serde_yaml::Value::Tagged(t) => t.value.as_str().unwrap_or_default().to_owned(),
                other => panic!("{method} {path}: ApiId {other:?}"),
            };
            let gate = match (api.as_str(), p["Auth"]["Authorizer"].as_str()) {
                (_, Some("NONE")) => Gate::Public,
                ("BuyerApi", None) => Gate::Jwt,
                ("OperatorApi", None) => Gate::Iam,
                other => panic!("{method} {path}: {other:?}"),
            };
            let op = operation(&doc, method, path);
            assert!(op.is_object(), "{method} {path} is not in the document");
            let schemes: BTreeSet<String> = op["security"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|r| r.as_object().unwrap().keys().cloned())
                .collect();
            let expected = match gate {
                Gate::Jwt => "buyer_jwt",
                Gate::Iam => "operator_iam",
                Gate::Public if path == "/webhooks/stripe" => "stripe_signature",
                Gate::Public => {
                    assert!(schemes.is_empty(), "{method} {path} is public: {schemes:?}");
                    seen.insert((method.to_owned(), path.to_owned()));
                    continue;
                }
            };
            assert!(
                schemes.contains(expected),
                "{method} {path} sits behind {gate:?}; the document says {schemes:?}"
            );
            seen.insert((method.to_owned(), path.to_owned()));
        }
    }
    assert_eq!(
        seen,
        operations(&doc),
        "the template's routes and the document's"
    );
}
