//! The parent's status: the plugin's, plus `observedGeneration` and the
//! host's `Synced` condition, patched only when it changed.

use kube::api::{Patch, PatchParams};
use serde_json::{Map, Value, json};

use super::validate::str_at;
use crate::bounded;
use crate::kinds::{Kinds, Resolved};

/// Condition reasons the host sets on `Synced`.
pub mod reason {
    /// The last reconcile succeeded and was applied.
    pub const SUCCEEDED: &str = "ReconcileSucceeded";
    /// The plugin returned an error, or applying its answer failed.
    pub const ERROR: &str = "ReconcileError";
    /// The plugin trapped (crash, time or memory limit).
    pub const TRAP: &str = "PluginTrap";
    /// The plugin's answer was refused (see `validate`).
    pub const INVALID: &str = "InvalidOutput";
    /// The answer, its status or a child was over its size limit.
    pub const TOO_LARGE: &str = "OutputTooLarge";
    /// A child named an object this parent does not control.
    pub const ADOPTION_REFUSED: &str = "AdoptionRefused";
    /// Applying a child (or a patch, or pruning) failed at the API server.
    pub const APPLY_FAILED: &str = "ApplyFailed";
    /// The API server refused the parent's new status.
    pub const STATUS_WRITE_FAILED: &str = "StatusWriteFailed";
    /// Adding or removing the plugin's finalizer failed.
    pub const FINALIZER_FAILED: &str = "FinalizerFailed";
}

/// The condition type the host owns.
pub const SYNCED: &str = "Synced";

/// Whether the last reconcile succeeded, as the `Synced` condition says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Synced {
    pub ok: bool,
    pub reason: String,
    pub message: String,
}

impl Synced {
    pub fn ok() -> Synced {
        Synced {
            ok: true,
            reason: reason::SUCCEEDED.into(),
            message: "The last reconcile succeeded".into(),
        }
    }

    /// A failure; `reason` is UpperCamelCase (see [`reason`]).
    pub fn failed(reason: impl Into<String>, message: impl Into<String>) -> Synced {
        Synced {
            ok: false,
            reason: reason.into(),
            message: message.into(),
        }
    }
}

/// Now as an RFC 3339 timestamp with second precision, as metav1.Time.
pub fn now() -> String {
    let now = k8s_openapi::jiff::Timestamp::now();
    k8s_openapi::jiff::Timestamp::from_second(now.as_second())
        .map(|t| t.to_string())
        .unwrap_or_else(|_| now.to_string())
}

/// The parent's new `.status`: the plugin's status (the current one when
/// the plugin returned none, e.g. on failure), `observedGeneration` set to
/// `generation` on success (kept as it was on failure), and the host's
/// `Synced` condition replacing any the plugin returned. Its
/// `lastTransitionTime` is kept from the current `Synced` condition when
/// the status did not change. Null fields are dropped (a merge patch could
/// not store them).
pub fn compute(
    plugin_status: Option<&Value>,
    current_status: Option<&Value>,
    generation: Option<i64>,
    synced: Synced,
    now: &str,
) -> Value {
    let mut status = match plugin_status.or(current_status) {
        Some(Value::Object(m)) => strip_nulls(Value::Object(m.clone())),
        _ => json!({}),
    };
    let obj = status.as_object_mut().expect("an object");
    let observed = if synced.ok {
        generation
    } else {
        current_status
            .and_then(|s| s.get("observedGeneration"))
            .and_then(Value::as_i64)
    };
    match observed {
        Some(g) => {
            obj.insert("observedGeneration".into(), json!(g));
        }
        None => {
            obj.remove("observedGeneration");
        }
    }
    let flag = if synced.ok { "True" } else { "False" };
    let previous = current_status
        .and_then(|s| s.get("conditions"))
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c["type"] == SYNCED));
    let since = match previous {
        Some(p) if p["status"] == flag => p["lastTransitionTime"].as_str().unwrap_or(now),
        _ => now,
    };
    let mut condition = json!({
        "type": SYNCED,
        "status": flag,
        "reason": synced.reason,
        "message": bounded::message(&synced.message),
        "lastTransitionTime": since,
    });
    if let Some(g) = generation {
        condition["observedGeneration"] = json!(g);
    }
    let conditions = obj.entry("conditions").or_insert_with(|| json!([]));
    if !conditions.is_array() {
        *conditions = json!([]);
    }
    let conditions = conditions.as_array_mut().expect("an array");
    match conditions.iter().position(|c| c["type"] == SYNCED) {
        Some(i) => {
            conditions[i] = condition;
            let mut at = 0;
            conditions.retain(|c| {
                at += 1;
                at - 1 == i || c["type"] != SYNCED
            });
        }
        None => conditions.push(condition),
    }
    status
}

/// `s` cut to at most `max` bytes on a character boundary.
pub fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn strip_nulls(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, strip_nulls(v)))
                .collect::<Map<_, _>>(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(strip_nulls).collect()),
        v => v,
    }
}

/// The RFC 7386 merge patch turning `old` into `new`, or `None` when they
/// are equal: changed keys, nulls for removed keys, arrays whole.
pub fn merge_diff(old: &Value, new: &Value) -> Option<Value> {
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => {
            let mut diff = Map::new();
            for (k, nv) in n {
                match o.get(k) {
                    Some(ov) => {
                        if let Some(d) = merge_diff(ov, nv) {
                            diff.insert(k.clone(), d);
                        }
                    }
                    None => {
                        diff.insert(k.clone(), nv.clone());
                    }
                }
            }
            for k in o.keys().filter(|k| !n.contains_key(*k)) {
                diff.insert(k.clone(), Value::Null);
            }
            (!diff.is_empty()).then_some(Value::Object(diff))
        }
        _ if old == new => None,
        _ => Some(new.clone()),
    }
}

/// Whether `new` differs from the current status.
pub fn changed(new: &Value, current: Option<&Value>) -> bool {
    merge_diff(current.unwrap_or(&json!({})), new).is_some()
}

/// A status patch the API server did not take.
#[derive(Debug, Clone, thiserror::Error)]
#[error("patching the status of {object} failed: {message}")]
pub struct PatchFailed {
    /// `Kind namespace/name` of the parent.
    pub object: String,
    /// The HTTP code, when the API server answered.
    pub code: Option<u16>,
    /// The server's message (bounded) or the transport error.
    pub message: String,
}

impl PatchFailed {
    /// Whether the same patch may succeed later: no answer, a conflict,
    /// throttling, a server error, or RBAC (which an admin may fix). A
    /// status too large (413) or invalid (400, 422) stays refused until the
    /// answer changes; a parent gone (404) needs no status.
    pub fn retryable(&self) -> bool {
        match self.code {
            None => true,
            Some(c) => matches!(c, 403 | 409 | 429) || c >= 500,
        }
    }

    /// The code as a metric label: the number, or `none`.
    pub fn code_label(&self) -> String {
        self.code.map_or("none".into(), |c| c.to_string())
    }
}

/// Merge-patches the parent's `status` subresource to `new_status` when it
/// changed (removed fields are patched to null). Returns whether it patched.
pub async fn patch(
    kinds: &Kinds,
    parent_kind: &Resolved,
    parent: &Value,
    new_status: &Value,
) -> Result<bool, PatchFailed> {
    let Some(diff) = merge_diff(parent.get("status").unwrap_or(&json!({})), new_status) else {
        return Ok(false);
    };
    let name = str_at(parent, "/metadata/name").unwrap_or_default();
    let ns = str_at(parent, "/metadata/namespace");
    let api = kinds.api(parent_kind, ns);
    let result = api
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": diff })),
        )
        .await;
    match result {
        Ok(_) => Ok(true),
        Err(e) => Err(PatchFailed {
            object: super::validate::describe(&parent_kind.gvk.kind, ns, name),
            code: crate::api::code(&e),
            message: bounded::message(&format!("{:#}", crate::api::concise(e))).into_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: &str = "2024-01-01T00:00:00Z";
    const T1: &str = "2024-02-02T00:00:00Z";

    #[test]
    fn adds_generation_and_synced_and_replaces_the_plugins_synced() {
        let plugin = json!({"ready": 2, "gone": null, "conditions": [
            {"type": "Ready", "status": "True"}, {"type": "Synced", "status": "Bogus"}]});
        let s = compute(Some(&plugin), None, Some(3), Synced::ok(), T1);
        assert_eq!(
            s,
            json!({"ready": 2, "observedGeneration": 3, "conditions": [
                {"type": "Ready", "status": "True"},
                {"type": "Synced", "status": "True", "reason": "ReconcileSucceeded",
                 "message": "The last reconcile succeeded", "lastTransitionTime": T1, "observedGeneration": 3}]})
        );
    }

    #[test]
    fn keeps_last_transition_time_while_the_status_holds() {
        let current = compute(Some(&json!({})), None, Some(1), Synced::ok(), T0);
        let same = compute(Some(&json!({})), Some(&current), Some(2), Synced::ok(), T1);
        assert_eq!(same["conditions"][0]["lastTransitionTime"], T0);
        let failed = compute(
            None,
            Some(&same),
            Some(3),
            Synced::failed(reason::TRAP, "boom"),
            T1,
        );
        assert_eq!(failed["conditions"][0]["lastTransitionTime"], T1);
        assert_eq!(failed["conditions"][0]["status"], "False");
        assert_eq!(failed["conditions"][0]["reason"], "PluginTrap");
    }

    #[test]
    fn failures_keep_the_current_status_and_observed_generation() {
        let current = json!({"ready": 1, "observedGeneration": 4,
            "conditions": [{"type": "Ready", "status": "True"}]});
        let s = compute(
            None,
            Some(&current),
            Some(5),
            Synced::failed(reason::ERROR, "x"),
            T1,
        );
        assert_eq!(s["ready"], 1);
        assert_eq!(s["observedGeneration"], 4);
        assert_eq!(s["conditions"][0]["type"], "Ready");
        assert_eq!(s["conditions"][1]["observedGeneration"], 5);
        let fresh = compute(
            None,
            None,
            Some(1),
            Synced::failed(reason::INVALID, "x"),
            T1,
        );
        assert!(fresh.get("observedGeneration").is_none());
        assert_eq!(fresh["conditions"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn duplicate_synced_entries_collapse_into_one() {
        let plugin = json!({"conditions": [{"type": "Synced"}, {"type": "A"}, {"type": "Synced"}]});
        let s = compute(Some(&plugin), None, None, Synced::ok(), T0);
        let types: Vec<_> = s["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["type"].clone())
            .collect();
        assert_eq!(types, [json!("Synced"), json!("A")]);
    }

    #[test]
    fn diffs_and_changes() {
        let old = json!({"a": 1, "b": {"c": 2, "d": 3}, "e": [1]});
        let new = json!({"a": 1, "b": {"c": 2}, "e": [1, 2], "f": true});
        assert_eq!(
            merge_diff(&old, &new),
            Some(json!({"b": {"d": null}, "e": [1, 2], "f": true}))
        );
        assert!(!changed(&old, Some(&old.clone())));
        assert!(changed(&new, Some(&old)));
        assert!(changed(&new, None));
        assert!(!changed(&json!({}), None));
    }

    #[test]
    fn a_long_message_is_cut_visibly_in_the_condition() {
        let s = compute(
            None,
            None,
            Some(1),
            Synced::failed(reason::APPLY_FAILED, "x".repeat(1 << 20)),
            T0,
        );
        let message = s["conditions"][0]["message"].as_str().unwrap();
        assert!(message.len() <= bounded::MESSAGE_BYTES, "{}", message.len());
        assert!(message.ends_with("more bytes cut]"), "{message}");
    }

    #[test]
    fn only_failures_that_can_pass_later_are_retried() {
        let failed = |code| PatchFailed {
            object: "Widget demo/w".into(),
            code,
            message: String::new(),
        };
        for code in [None, Some(403), Some(409), Some(429), Some(500), Some(503)] {
            assert!(failed(code).retryable(), "{code:?}");
        }
        for code in [Some(400), Some(404), Some(413), Some(422)] {
            assert!(!failed(code).retryable(), "{code:?}");
        }
    }

    #[test]
    fn truncates_on_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("abc", 5), "abc");
    }
}
