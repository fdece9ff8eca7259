//! Secret values kept out of recorded traffic.
//!
//! `operon plugins record` turns what a running host handed a plugin into
//! golden cases on a developer's disk, to be kept, shared and committed.
//! Secrets are the one kind whose values must not travel that way, so the
//! host redacts them before a record leaves its memory. [`secrets`] is the
//! only place that decides what is redacted: every value of the `data` and
//! `stringData` of a core `v1` Secret becomes the text [`PLACEHOLDER`]
//! (base64-encoded in `data`, as the API server stores it, so both fields
//! still mean the same value). Keys are kept: a plugin that looks a key up
//! still finds one, and a reader of the case sees what the Secret held.

use serde_json::Value;

/// What every redacted value reads as, once decoded.
pub const PLACEHOLDER: &str = "redacted";

/// [`PLACEHOLDER`] in base64, as a Secret's `data` holds values.
pub const PLACEHOLDER_BASE64: &str = "cmVkYWN0ZWQ=";

/// Whether an object is a core v1 Secret (only the core group has one).
pub fn is_secret(object: &Value) -> bool {
    object.get("apiVersion").and_then(Value::as_str) == Some("v1")
        && object.get("kind").and_then(Value::as_str) == Some("Secret")
}

/// Redacts the Secrets among `objects` in place; the `namespace/name` of
/// each whose values changed, for the case to say so.
pub fn secrets<'a>(objects: impl IntoIterator<Item = &'a mut Value>) -> Vec<String> {
    objects
        .into_iter()
        .filter(|o| is_secret(o))
        .filter_map(|secret| redact(secret).then(|| subject(secret)))
        .collect()
}

/// One Secret's values replaced; whether any differed from the placeholder.
fn redact(secret: &mut Value) -> bool {
    let mut changed = false;
    for (field, placeholder) in [("data", PLACEHOLDER_BASE64), ("stringData", PLACEHOLDER)] {
        let Some(values) = secret.get_mut(field).and_then(Value::as_object_mut) else {
            continue;
        };
        for value in values.values_mut() {
            if value.as_str() != Some(placeholder) {
                *value = Value::String(placeholder.to_string());
                changed = true;
            }
        }
    }
    changed
}

fn subject(object: &Value) -> String {
    let get = |p| object.pointer(p).and_then(Value::as_str).unwrap_or("");
    match get("/metadata/namespace") {
        "" => get("/metadata/name").to_string(),
        ns => format!("{ns}/{}", get("/metadata/name")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use serde_json::json;

    #[test]
    fn the_placeholder_is_the_same_value_in_both_fields() {
        let encoded = base64::engine::general_purpose::STANDARD.encode(PLACEHOLDER);
        assert_eq!(encoded, PLACEHOLDER_BASE64);
    }

    #[test]
    fn secret_values_are_replaced_and_keys_kept() {
        let mut objects = vec![
            json!({"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "db", "namespace": "team"},
                "type": "Opaque",
                "data": {"password": "aHVudGVyMg==", "user": "cG9zdGdyZXM="},
                "stringData": {"uri": "postgresql://postgres:hunter2@db"}}),
            // Not Secrets: a ConfigMap's data, and a custom kind named
            // Secret in another group, are left alone.
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "conf", "namespace": "team"},
                "data": {"password": "plain"}}),
            json!({"apiVersion": "example.com/v1", "kind": "Secret",
                "metadata": {"name": "other"}, "data": {"k": "v"}}),
        ];
        let before = objects.clone();
        let redacted = secrets(objects.iter_mut());
        assert_eq!(redacted, ["team/db"]);
        assert_eq!(
            objects[0],
            json!({"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "db", "namespace": "team"},
                "type": "Opaque",
                "data": {"password": PLACEHOLDER_BASE64, "user": PLACEHOLDER_BASE64},
                "stringData": {"uri": PLACEHOLDER}})
        );
        assert_eq!(objects[1..], before[1..]);
        let text = serde_json::to_string(&objects).unwrap();
        assert!(!text.contains("hunter2") && !text.contains("aHVudGVyMg=="));
    }

    #[test]
    fn a_secret_without_values_or_already_redacted_is_not_reported() {
        let mut empty = json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "empty"}});
        let mut done = json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "done"}, "data": {"k": PLACEHOLDER_BASE64}});
        assert!(secrets([&mut empty, &mut done]).is_empty());
    }
}
