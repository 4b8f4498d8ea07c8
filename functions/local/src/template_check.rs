//! Each function's settings against `template.yaml`: what a function reads, the template declares.
//! Here because this crate links every function's wiring.

const TEMPLATE: &str = include_str!("../../../template.yaml");

#[test]
fn every_variable_a_function_reads_is_declared_in_the_template() {
    // `sam local` overrides only declared variables, and a deployed function must not silently
    // run on a default the operator never saw. The names come from the settings types the
    // functions' mains read (each function crate's `Settings`), not from their source text.
    let doc: serde_yaml::Value = serde_yaml::from_str(TEMPLATE).unwrap();
    let globals = doc["Globals"]["Function"]["Environment"]["Variables"]
        .as_mapping()
        .unwrap();
    let functions = [
        ("BuyFunction", buy::Settings::variables()),
        ("SettleFunction", settle::Settings::variables()),
        ("OperatorFunction", operator::Settings::variables()),
        ("OrdersFunction", orders::Settings::variables()),
        ("ReconcileFunction", reconcile::Settings::variables()),
        ("CheckoutFunction", checkout::Settings::variables()),
        ("ExpireFunction", expire::Settings::variables()),
        ("QueueFunction", queue::Settings::variables()),
    ];
    for (function, read) in functions {
        let own = doc["Resources"][function]["Properties"]["Environment"]["Variables"]
            .as_mapping()
            .unwrap_or_else(|| panic!("{function} declares no variables"));
        assert!(
            read.iter().any(|v| v == "REDIS_URL"),
            "{function}: its settings list {read:?}"
        );
        for var in read {
            // The keys themselves are for local runs; in AWS their secrets' ARNs are declared.
            if [
                "ORDER_SIGNING_KEY",
                "ADMISSION_KEY",
                "STRIPE_SECRET_KEY",
                "STRIPE_WEBHOOK_SECRET",
            ]
            .contains(&var.as_str())
            {
                continue;
            }
            let key = serde_yaml::Value::String(var.clone());
            assert!(
                own.contains_key(&key) || globals.contains_key(&key),
                "{function} reads {var}, which template.yaml does not declare"
            );
        }
    }
}
