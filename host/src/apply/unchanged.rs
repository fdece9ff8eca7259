//! Whether a child's server-side apply would change anything: when it
//! would not, the host does not send it, so a reconcile that finds
//! everything in place costs the API server no write.
//!
//! Two checks, both against the child as the shared cache holds it:
//!
//! - **The stamp.** Every applied child carries the annotation
//!   [`APPLIED`]: a digest of what was applied. A different digest means the
//!   plugin now wants something else — possibly *fewer* fields, which only
//!   an apply can take away (server-side apply removes the fields its
//!   manager stops naming) — so the child is applied.
//! - **Drift.** With the same digest, every field the plugin wants must
//!   still be present and equal in the live object ([`difference`]). A field
//!   edited by hand (`kubectl edit`, `kubectl scale`) or by another
//!   controller fails this, and the apply puts it back. Fields the API
//!   server or others added (defaults, status, other managers' fields) are
//!   not the plugin's and do not count.
//!
//! Equality is JSON equality with the normalisations the API server is
//! known to apply: numbers compared by value (`3` and `3.0`), and resource
//! quantities under `limits`, `requests`, `capacity`, `hard` and
//! `sizeLimit` compared by amount (`0.5` and `500m`, `1024Mi` and `1Gi`).
//! Anything else the server rewrites (a `false` it omits, an empty string
//! it drops) makes the check answer "different": the host then applies as
//! it would have without this module, never skips on a guess. The debug
//! log names the first differing field, so a plugin author can see why a
//! child is applied on every reconcile.
//!
//! Written here rather than taken from a crate: the comparison is
//! Kubernetes' apply semantics (a subset check with the server's
//! normalisations), which no maintained crate implements; `json-patch`
//! style diffs compare whole documents.

use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};

/// The annotation holding the digest of the applied child.
pub const APPLIED: &str = "operon.dev/applied";

/// Map keys whose values are resource quantities.
const QUANTITY_MAPS: [&str; 4] = ["limits", "requests", "capacity", "hard"];
/// Keys that are themselves quantities.
const QUANTITY_KEYS: [&str; 1] = ["sizeLimit"];

/// What to do with one prepared, stamped child.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The live object already is what the apply would make it.
    Unchanged,
    Apply(Why),
}

/// Why a child is applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Why {
    /// Not in the cache (new, or not this parent's yet).
    Absent,
    /// Being deleted: applying is what the host always did there.
    Deleting,
    /// The plugin wants something else than it last applied.
    Changed,
    /// What the plugin wants is no longer what the object holds: this field
    /// (a JSON pointer) differs, edited by someone else or normalised by
    /// the server in a way not recognised here.
    Drifted(String),
}

impl Why {
    /// The metric label of an apply.
    pub fn label(&self) -> &'static str {
        match self {
            Why::Absent => "absent",
            Why::Deleting => "deleting",
            Why::Changed => "changed",
            Why::Drifted(_) => "drifted",
        }
    }
}

/// Puts the digest of `child` (prepared, not yet stamped) in its
/// [`APPLIED`] annotation.
pub fn stamp(child: &mut Value) {
    let digest = digest(child);
    let Some(meta) = child.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    let annotations = meta
        .entry("annotations")
        .or_insert_with(|| Value::Object(Map::new()));
    if !annotations.is_object() {
        *annotations = Value::Object(Map::new());
    }
    if let Some(a) = annotations.as_object_mut() {
        a.insert(APPLIED.into(), Value::String(digest));
    }
}

/// Decides for a stamped child, given the live object (`None`: not cached).
pub fn decide(desired: &Value, live: Option<&Value>) -> Decision {
    let Some(live) = live else {
        return Decision::Apply(Why::Absent);
    };
    if live.pointer("/metadata/deletionTimestamp").is_some() {
        return Decision::Apply(Why::Deleting);
    }
    if stamp_of(desired) != stamp_of(live) {
        return Decision::Apply(Why::Changed);
    }
    match difference(desired, live) {
        Some(at) => Decision::Apply(Why::Drifted(at)),
        None => Decision::Unchanged,
    }
}

fn stamp_of(obj: &Value) -> Option<&str> {
    obj.get("metadata")?
        .get("annotations")?
        .get(APPLIED)?
        .as_str()
}

/// 32 hex digits of SHA-256 over the object with its keys in sorted order
/// (so the same content in another key order is the same digest), leaving
/// out the stamp itself.
fn digest(obj: &Value) -> String {
    let mut hasher = Sha256::new();
    feed(&mut hasher, obj, true);
    hasher.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Feeds a canonical, unambiguous encoding of `v` (each value tagged with
/// its type, strings and keys length-prefixed).
fn feed(h: &mut Sha256, v: &Value, top: bool) {
    match v {
        Value::Null => h.update(b"n"),
        Value::Bool(b) => h.update(if *b { b"t" } else { b"f" }),
        Value::Number(n) => {
            h.update(b"#");
            feed_str(h, &n.to_string());
        }
        Value::String(s) => {
            h.update(b"s");
            feed_str(h, s);
        }
        Value::Array(items) => {
            h.update(b"[");
            h.update((items.len() as u64).to_le_bytes());
            for item in items {
                feed(h, item, false);
            }
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            h.update(b"{");
            for k in keys {
                let value = &map[k];
                if top && k == "metadata" {
                    feed_str(h, k);
                    feed_metadata(h, value);
                    continue;
                }
                feed_str(h, k);
                feed(h, value, false);
            }
            h.update(b"}");
        }
    }
}

/// Metadata without the stamp (an empty annotations map counts as none).
fn feed_metadata(h: &mut Sha256, meta: &Value) {
    let mut meta = meta.clone();
    if let Some(m) = meta.as_object_mut() {
        let emptied = m
            .get_mut("annotations")
            .and_then(Value::as_object_mut)
            .map(|a| {
                a.remove(APPLIED);
                a.is_empty()
            });
        if emptied == Some(true) {
            m.remove("annotations");
        }
    }
    feed(h, &meta, false);
}

fn feed_str(h: &mut Sha256, s: &str) {
    h.update((s.len() as u64).to_le_bytes());
    h.update(s.as_bytes());
}

/// The first field (a JSON pointer) that `want` names and `have` does not
/// hold equally; `None` when every wanted field is there.
pub fn difference(want: &Value, have: &Value) -> Option<String> {
    let mut path = String::new();
    differs(want, Some(have), Context::Plain, &mut path).then_some(path)
}

/// How a scalar is compared (objects and lists below a quantity compare
/// plainly).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Context {
    Plain,
    Quantity,
}

/// Whether `want` differs from `have`; `path` is left at the first
/// difference.
fn differs(want: &Value, have: Option<&Value>, ctx: Context, path: &mut String) -> bool {
    match (want, have) {
        (Value::Null, None | Some(Value::Null)) => false,
        (Value::Object(w), None) => !w.is_empty(),
        (Value::Array(w), None) => !w.is_empty(),
        (_, None) => true,
        (Value::Object(w), Some(Value::Object(h))) => w.iter().any(|(k, wv)| {
            within(path, k, |path| {
                if QUANTITY_MAPS.contains(&k.as_str()) {
                    quantity_map_differs(wv, h.get(k), path)
                } else if QUANTITY_KEYS.contains(&k.as_str()) {
                    differs(wv, h.get(k), Context::Quantity, path)
                } else {
                    differs(wv, h.get(k), Context::Plain, path)
                }
            })
        }),
        (Value::Array(w), Some(Value::Array(h))) => {
            if w.len() != h.len() {
                return true;
            }
            w.iter().zip(h).enumerate().any(|(i, (wv, hv))| {
                within(path, &i.to_string(), |path| {
                    differs(wv, Some(hv), Context::Plain, path)
                })
            })
        }
        // Integers exactly (an f64 loses them past 2^53), else by value.
        (Value::Number(w), Some(Value::Number(h))) if w.is_f64() || h.is_f64() => {
            w.as_f64() != h.as_f64()
        }
        (Value::Number(w), Some(Value::Number(h))) => w != h,
        (w, Some(h)) if ctx == Context::Quantity => !same_quantity(w, h),
        (w, Some(h)) => w != h,
    }
}

/// Runs `check` with `step` appended to `path`, which keeps it only when
/// the check found a difference.
fn within(path: &mut String, step: &str, check: impl FnOnce(&mut String) -> bool) -> bool {
    let len = path.len();
    path.push('/');
    path.push_str(&step.replace('~', "~0").replace('/', "~1"));
    let differs = check(path);
    if !differs {
        path.truncate(len);
    }
    differs
}

/// A map of quantities (`requests`, `limits`...): each wanted entry
/// compared as a quantity.
fn quantity_map_differs(want: &Value, have: Option<&Value>, path: &mut String) -> bool {
    match (want, have) {
        (Value::Object(w), Some(Value::Object(h))) => w.iter().any(|(k, wv)| {
            within(path, k, |path| {
                differs(wv, h.get(k), Context::Quantity, path)
            })
        }),
        // Not a map after all: compare plainly.
        _ => differs(want, have, Context::Plain, path),
    }
}

/// Whether two quantity values (strings, or numbers a plugin wrote) are the
/// same amount; unparseable ones only when equal as JSON.
fn same_quantity(want: &Value, have: &Value) -> bool {
    if want == have {
        return true;
    }
    let amount = |v: &Value| match v {
        Value::String(s) => quantity(s),
        Value::Number(n) => n.as_f64(),
        _ => None,
    };
    match (amount(want), amount(have)) {
        (Some(a), Some(b)) => a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs()),
        _ => false,
    }
}

/// The amount of a Kubernetes quantity (`500m`, `1.5Gi`, `2e3`, `1k`).
fn quantity(s: &str) -> Option<f64> {
    let s = s.trim();
    let end = s
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_digit() || c == '.' || (i == 0 && (c == '+' || c == '-'))))
        .map_or(s.len(), |(i, _)| i);
    let (number, suffix) = s.split_at(end);
    let base: f64 = number.parse().ok()?;
    let scale = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0_f64.powi(3),
        "Ti" => 1024.0_f64.powi(4),
        "Pi" => 1024.0_f64.powi(5),
        "Ei" => 1024.0_f64.powi(6),
        e if e.starts_with(['e', 'E']) => 10f64.powi(e[1..].parse().ok()?),
        _ => return None,
    };
    Some(base * scale)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn child() -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "web", "namespace": "demo", "labels": {"app": "web"}},
               "spec": {"replicas": 3, "template": {"spec": {"containers": [
                   {"name": "web", "image": "nginx:1.27",
                    "resources": {"requests": {"cpu": "0.5", "memory": "1Gi"}}}]}}}})
    }

    /// The child as the API server returns it: stamped as applied, with
    /// defaults, status and metadata the plugin never named.
    fn live_of(desired: &Value) -> Value {
        let mut live = desired.clone();
        live["metadata"]["uid"] = json!("u-1");
        live["metadata"]["resourceVersion"] = json!("42");
        live["spec"]["strategy"] = json!({"type": "RollingUpdate"});
        let c = &mut live["spec"]["template"]["spec"]["containers"][0];
        c["imagePullPolicy"] = json!("IfNotPresent");
        c["resources"]["requests"]["cpu"] = json!("500m");
        c["resources"]["requests"]["memory"] = json!("1024Mi");
        live["status"] = json!({"readyReplicas": 3});
        live
    }

    fn stamped(mut v: Value) -> Value {
        stamp(&mut v);
        v
    }

    #[test]
    fn what_the_server_added_or_normalised_is_unchanged() {
        let desired = stamped(child());
        assert_eq!(
            decide(&desired, Some(&live_of(&desired))),
            Decision::Unchanged
        );
    }

    #[test]
    fn a_field_edited_by_hand_is_drift_named_by_its_path() {
        let desired = stamped(child());
        let mut live = live_of(&desired);
        live["spec"]["replicas"] = json!(5);
        assert_eq!(
            decide(&desired, Some(&live)),
            Decision::Apply(Why::Drifted("/spec/replicas".into()))
        );
        let mut live = live_of(&desired);
        live["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"] =
            json!("2");
        assert_eq!(
            decide(&desired, Some(&live)),
            Decision::Apply(Why::Drifted(
                "/spec/template/spec/containers/0/resources/requests/cpu".into()
            ))
        );
        let mut live = live_of(&desired);
        live["metadata"]["labels"]
            .as_object_mut()
            .unwrap()
            .remove("app");
        assert_eq!(
            decide(&desired, Some(&live)),
            Decision::Apply(Why::Drifted("/metadata/labels/app".into()))
        );
    }

    #[test]
    fn a_list_that_grew_or_shrank_is_drift() {
        let desired = stamped(child());
        let mut live = live_of(&desired);
        let containers = live["spec"]["template"]["spec"]["containers"]
            .as_array_mut()
            .unwrap();
        containers.push(json!({"name": "sidecar", "image": "busybox"}));
        assert!(matches!(
            decide(&desired, Some(&live)),
            Decision::Apply(Why::Drifted(_))
        ));
    }

    #[test]
    fn a_new_desire_is_applied_even_when_it_names_fewer_fields() {
        let before = stamped(child());
        let live = live_of(&before);
        let mut fewer = child();
        fewer["metadata"]["labels"]
            .as_object_mut()
            .unwrap()
            .remove("app");
        let fewer = stamped(fewer);
        assert_eq!(decide(&fewer, Some(&live)), Decision::Apply(Why::Changed));
        // Every other field it names is live, yet the label must go.
        let mut unstamped = fewer.clone();
        unstamped["metadata"]["annotations"][APPLIED] =
            live["metadata"]["annotations"][APPLIED].clone();
        assert_eq!(difference(&unstamped, &live), None);
    }

    #[test]
    fn absent_and_deleting_children_are_applied() {
        let desired = stamped(child());
        assert_eq!(decide(&desired, None), Decision::Apply(Why::Absent));
        let mut live = live_of(&desired);
        live["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        assert_eq!(
            decide(&desired, Some(&live)),
            Decision::Apply(Why::Deleting)
        );
    }

    #[test]
    fn the_digest_ignores_key_order_and_the_stamp_but_not_content() {
        let a = json!({"b": 1, "a": {"y": [1, "2"], "x": null}, "metadata": {"name": "n"}});
        let b = json!({"a": {"x": null, "y": [1, "2"]}, "metadata": {"name": "n"}, "b": 1});
        assert_eq!(digest(&a), digest(&b));
        let mut c = stamped(a.clone());
        assert_eq!(digest(&c), digest(&a));
        c["b"] = json!("1");
        assert_ne!(digest(&c), digest(&a));
        assert_ne!(digest(&json!(["ab", "c"])), digest(&json!(["a", "bc"])));
    }

    #[test]
    fn numbers_compare_by_value_and_strings_exactly_outside_quantities() {
        assert_eq!(difference(&json!({"n": 3}), &json!({"n": 3.0})), None);
        assert!(difference(&json!({"n": 3}), &json!({"n": "3"})).is_some());
        let (big, next) = (
            json!({"n": 9_007_199_254_740_993_u64}),
            json!({"n": 9_007_199_254_740_992_u64}),
        );
        assert!(difference(&big, &next).is_some());
        assert!(difference(&json!({"v": "1.0"}), &json!({"v": "1"})).is_some());
        assert_eq!(
            difference(&json!({"x": null, "e": {}, "l": []}), &json!({})),
            None
        );
        assert!(difference(&json!({"b": false}), &json!({})).is_some());
    }

    #[test]
    fn quantities_compare_by_amount() {
        for (a, b) in [
            ("0.5", "500m"),
            ("1Gi", "1024Mi"),
            ("1k", "1000"),
            ("2e3", "2k"),
            ("1.5Gi", "1536Mi"),
        ] {
            let want = json!({"limits": {"x": a}});
            assert_eq!(
                difference(&want, &json!({"limits": {"x": b}})),
                None,
                "{a} = {b}"
            );
        }
        let want = json!({"requests": {"cpu": 1}});
        assert_eq!(difference(&want, &json!({"requests": {"cpu": "1"}})), None);
        let want = json!({"emptyDir": {"sizeLimit": "1Gi"}});
        assert_eq!(
            difference(&want, &json!({"emptyDir": {"sizeLimit": "1073741824"}})),
            None
        );
        let want = json!({"limits": {"memory": "1Gi"}});
        assert_eq!(
            difference(&want, &json!({"limits": {"memory": "1G"}})),
            Some("/limits/memory".into())
        );
        assert!(quantity("1Xi").is_none());
        assert!(quantity("abc").is_none());
    }
}
