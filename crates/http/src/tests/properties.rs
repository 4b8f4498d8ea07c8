use super::buying::buy_app;
use super::*;
use proptest::prelude::*;

fn sale_segment() -> impl Strategy<Value = String> {
    prop_oneof![Just("drop".to_owned()), "[A-Za-z0-9._~%-]{0,300}"]
}

fn header_value() -> impl Strategy<Value = Option<String>> {
    prop::option::of(prop_oneof!["[ -~]{0,300}", "[a-z0-9-]{1,20}"])
}

fn content_type() -> impl Strategy<Value = Option<String>> {
    prop::option::of(prop_oneof![
        Just("application/json".to_owned()),
        Just("application/json; charset=utf-8".to_owned()),
        Just("text/plain".to_owned()),
        "[ -~]{0,60}",
    ])
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    let quantity = prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|n| n.to_string()),
        Just("null".to_owned()),
        Just("\"2\"".to_owned()),
        Just("[1]".to_owned()),
        "[0-9]{1,40}",
    ];
    prop_oneof![
        Just(Vec::new()),
        quantity.prop_map(|q| format!("{{\"quantity\":{q}}}").into_bytes()),
        "\\PC{0,200}".prop_map(String::into_bytes),
        prop::collection::vec(any::<u8>(), 0..3000),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1_000))]

    /// 1,000 cases: whatever the path, headers and body of a buy, the answer is JSON, a 4xx
    /// carries its specific error code, no client input gets a 5xx, and only a 202 takes
    /// stock and sends a message (exactly one).
    #[test]
    fn any_buy_request_gets_a_json_answer_and_only_a_202_changes_anything(
        sale in sale_segment(),
        buyer in header_value(),
        key in header_value(),
        ctype in content_type(),
        body in body(),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let b = buy_app(5, 5, true);
        let mut req = Request::builder().method("POST").uri(format!("/sales/{sale}/buy"));
        for (name, value) in [("x-user-id", &buyer), ("idempotency-key", &key), ("content-type", &ctype)] {
            if let Some(v) = value {
                req = req.header(name, v.as_str());
            }
        }
        let Ok(req) = req.body(Body::from(body)) else {
            return Ok(()); // not a request http can even express
        };
        let a = rt.block_on(call(&b.app, req));
        prop_assert!(a.status < 500, "{} {}", a.status, a.body);
        let remaining = b.store.remaining(&b.sale.id).unwrap();
        if a.status == 202 {
            prop_assert_eq!(b.queue.sent().len(), 1);
            prop_assert_eq!(b.store.outbox(&b.sale.id).len(), 1);
            prop_assert!(remaining < 5);
        } else {
            prop_assert!(a.status >= 400, "{} {}", a.status, a.body);
            prop_assert!(a.body["error"].as_str().is_some_and(|c| !c.is_empty()), "{}", a.body);
            prop_assert!(a.body["message"].is_string(), "{}", a.body);
            prop_assert!(b.queue.sent().is_empty());
            prop_assert!(b.store.outbox(&b.sale.id).is_empty());
            prop_assert_eq!(remaining, 5);
        }
    }
}
