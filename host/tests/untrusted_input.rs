//! A bounded property smoke over what the host reads from untrusted bytes
//! (the entry points the cargo-fuzz targets in `fuzz/` drive without
//! bound): a plugin's answer, label selectors, the grants file, YAML/JSON
//! input of the CLI. No input may panic the host; well-formed input must
//! be accepted, and arbitrary noise around it must not make it panic.

use std::collections::BTreeMap;

use operon::fuzzing::{check_response, check_selector};
use proptest::prelude::*;
use serde_json::{Value, json};

/// Arbitrary JSON, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map(".{0,8}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A DNS-label-ish name, as Kubernetes allows.
fn name() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9-]{0,20}[a-z0-9]"
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn any_answer_is_refused_or_accepted_never_a_panic(
        children in prop::collection::vec(json_value(), 0..4),
        status in prop::option::of(json_value()),
        patches in prop::collection::vec(json_value(), 0..2),
        noise in prop::collection::vec(".{0,40}", 0..3),
    ) {
        let mut texts: Vec<String> = children.iter().map(Value::to_string).collect();
        texts.extend(noise);
        let _ = check_response(
            texts,
            status.map(|s| s.to_string()),
            patches.iter().map(Value::to_string).collect(),
        );
    }

    #[test]
    fn a_well_formed_answer_is_accepted(
        names in prop::collection::btree_set(name(), 1..5),
        replicas in 0..10i64,
        extra in json_value(),
    ) {
        let children: Vec<String> = names
            .iter()
            .map(|n| json!({"apiVersion": "apps/v1", "kind": "Deployment",
                            "metadata": {"name": n, "annotations": {"x": extra.to_string()}},
                            "spec": {"replicas": replicas}}).to_string())
            .collect();
        let status = json!({"readyReplicas": replicas, "extra": extra}).to_string();
        let patch = json!({"metadata": {"labels": {"a": "b"}}}).to_string();
        prop_assert_eq!(check_response(children, Some(status), vec![patch]), Ok(()));
    }

    #[test]
    fn any_selector_text_parses_or_is_refused(text in ".{0,60}") {
        let _ = check_selector(&text);
    }

    #[test]
    fn a_well_formed_selector_parses_and_matches(
        pairs in prop::collection::btree_map("[a-z]{1,8}", "[a-z0-9]{1,8}", 1..4),
    ) {
        let text: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let text = text.join(",");
        prop_assert!(check_selector(&text), "{text}");
        let selector = operon::contract::selector::Selector::parse(&text).unwrap();
        let labels: BTreeMap<String, String> = pairs.clone();
        prop_assert!(selector.matches(&labels), "{text} matches its own labels");
    }

    #[test]
    fn any_grants_file_is_read_or_refused(text in "(plugins:\n  [a-z]{1,6}:\n    )?.{0,80}") {
        let _ = operon::plugin::GrantsFile::parse(&text);
    }

    #[test]
    fn any_cli_input_is_read_or_refused(text in ".{0,120}", doc in json_value()) {
        let _ = operon::cli::parse_objects(&text);
        let _ = operon::cli::parse_objects(&doc.to_string());
        let _ = operon::cli::parse_objects(&format!("---\n{text}\n---\n"));
    }
}
