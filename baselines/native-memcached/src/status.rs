//! The parent's status as the host writes it: the reconciler's status plus
//! `observedGeneration` and a `Synced` condition, patched only when it
//! changed. Kept equal to the host's rules so both controllers send the
//! same status patches (and the same number of them) in the benchmark.

use serde_json::{Map, Value, json};

/// What the last reconcile did, as the `Synced` condition reports it.
pub struct Synced<'a> {
    pub ok: bool,
    pub reason: &'a str,
    pub message: &'a str,
}

impl Synced<'static> {
    pub const OK: Synced<'static> = Synced {
        ok: true,
        reason: "ReconcileSucceeded",
        message: "The last reconcile succeeded",
    };
}

/// The new `.status`: the reconciler's (the current one when it gave none,
/// as on failure), `observedGeneration` (only advanced on success) and the
/// `Synced` condition, whose transition time is kept while its status holds.
pub fn compute(
    reconciled: Option<&Value>,
    current: Option<&Value>,
    generation: Option<i64>,
    synced: Synced<'_>,
    now: &str,
) -> Value {
    let mut status = match reconciled.or(current) {
        Some(Value::Object(m)) => without_nulls(m),
        _ => Map::new(),
    };
    let observed = if synced.ok {
        generation
    } else {
        current
            .and_then(|s| s.get("observedGeneration"))
            .and_then(Value::as_i64)
    };
    match observed {
        Some(g) => status.insert("observedGeneration".into(), json!(g)),
        None => status.remove("observedGeneration"),
    };
    let flag = if synced.ok { "True" } else { "False" };
    let since = current
        .and_then(|s| s.get("conditions"))
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Synced"))
        .filter(|c| c["status"] == flag)
        .and_then(|c| c["lastTransitionTime"].as_str())
        .unwrap_or(now);
    let mut condition = json!({
        "type": "Synced",
        "status": flag,
        "reason": synced.reason,
        "message": synced.message,
        "lastTransitionTime": since,
    });
    if let Some(g) = generation {
        condition["observedGeneration"] = json!(g);
    }
    // In place of the first `Synced` the reconciler passed back (it sees
    // the current conditions), so the order stays stable between calls.
    let mut conditions = Vec::new();
    let mut placed = false;
    if let Some(Value::Array(cs)) = status.remove("conditions") {
        for c in cs {
            if c["type"] != "Synced" {
                conditions.push(c);
            } else if !placed {
                conditions.push(condition.clone());
                placed = true;
            }
        }
    }
    if !placed {
        conditions.push(condition);
    }
    status.insert("conditions".into(), Value::Array(conditions));
    Value::Object(status)
}

fn without_nulls(m: &Map<String, Value>) -> Map<String, Value> {
    fn clean(v: &Value) -> Value {
        match v {
            Value::Object(m) => Value::Object(without_nulls(m)),
            Value::Array(a) => Value::Array(a.iter().map(clean).collect()),
            v => v.clone(),
        }
    }
    m.iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| (k.clone(), clean(v)))
        .collect()
}

/// The RFC 7386 merge patch from `old` to `new`, none when they are equal.
pub fn merge_patch(old: &Value, new: &Value) -> Option<Value> {
    let (Value::Object(o), Value::Object(n)) = (old, new) else {
        return (old != new).then(|| new.clone());
    };
    let mut patch: Map<String, Value> = n
        .iter()
        .filter_map(|(k, nv)| match o.get(k) {
            Some(ov) => merge_patch(ov, nv).map(|d| (k.clone(), d)),
            None => Some((k.clone(), nv.clone())),
        })
        .collect();
    for k in o.keys().filter(|k| !n.contains_key(*k)) {
        patch.insert(k.clone(), Value::Null);
    }
    (!patch.is_empty()).then_some(Value::Object(patch))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_reconcilers_conditions_and_replaces_synced_in_place() {
        let mine = json!({"readyReplicas": 1, "x": null,
            "conditions": [{"type": "Ready", "status": "True"}, {"type": "Synced", "status": "Bogus"},
                           {"type": "Synced"}]});
        let s = compute(Some(&mine), None, Some(2), Synced::OK, "T1");
        assert_eq!(
            s,
            json!({"readyReplicas": 1, "observedGeneration": 2, "conditions": [
                {"type": "Ready", "status": "True"},
                {"type": "Synced", "status": "True", "reason": "ReconcileSucceeded",
                 "message": "The last reconcile succeeded", "lastTransitionTime": "T1",
                 "observedGeneration": 2}]})
        );
        // Same outcome later: nothing to patch, the transition time holds.
        let again = compute(Some(&mine), Some(&s), Some(2), Synced::OK, "T2");
        assert_eq!(merge_patch(&s, &again), None);
    }

    #[test]
    fn a_failure_keeps_the_status_and_the_observed_generation() {
        let current = compute(
            Some(&json!({"readyReplicas": 1})),
            None,
            Some(1),
            Synced::OK,
            "T0",
        );
        let failed = Synced {
            ok: false,
            reason: "ReconcileError",
            message: "boom",
        };
        let s = compute(None, Some(&current), Some(2), failed, "T1");
        assert_eq!(s["readyReplicas"], 1);
        assert_eq!(s["observedGeneration"], 1);
        assert_eq!(s["conditions"][0]["status"], "False");
        assert_eq!(s["conditions"][0]["lastTransitionTime"], "T1");
        assert_eq!(
            merge_patch(&current, &s),
            Some(json!({"conditions": s["conditions"].clone()}))
        );
    }

    #[test]
    fn merge_patches_remove_keys_with_null() {
        let old = json!({"a": 1, "b": {"c": 2, "d": 3}});
        let new = json!({"a": 1, "b": {"c": 2}, "e": [1]});
        assert_eq!(
            merge_patch(&old, &new),
            Some(json!({"b": {"d": null}, "e": [1]}))
        );
    }
}
