//! Shadow rollout: a candidate build runs beside the active revision on
//! every reconcile, in dry run. Its answer is compared with the active
//! revision's and never applied; what differs is counted and sampled, so a
//! release can be judged on the real cluster's objects before it is
//! promoted (by replacing the active file).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use serde::Serialize;
use serde_json::Value;

use crate::contract::Outcome;
use crate::plugin::Plugin;

/// How many differing answers are kept as samples.
const SAMPLES: usize = 5;

/// The candidate of a plugin, if one is placed.
#[derive(Default)]
pub struct ShadowSlot(RwLock<Option<Arc<Candidate>>>);

impl ShadowSlot {
    pub fn get(&self) -> Option<Arc<Candidate>> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn set(&self, candidate: Option<Arc<Candidate>>) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = candidate;
    }
}

/// A candidate build and what its dry runs found.
pub struct Candidate {
    pub plugin: Arc<Plugin>,
    stats: Mutex<ShadowView>,
}

/// A candidate's figures, for `operon plugins`.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ShadowView {
    pub digest: String,
    pub reconciles: u64,
    /// Reconciles whose desired output differed from the active revision's.
    pub diffs: u64,
    /// Reconciles where the candidate failed and the active did not.
    pub errors: u64,
    /// The latest differences, one line each, newest last.
    pub samples: VecDeque<String>,
}

impl Candidate {
    pub fn new(plugin: Arc<Plugin>) -> Candidate {
        let digest = plugin.info().digest.clone();
        Candidate {
            plugin,
            stats: Mutex::new(ShadowView {
                digest,
                ..ShadowView::default()
            }),
        }
    }

    pub fn label(&self) -> &str {
        self.plugin.info().short_digest()
    }

    /// Records one comparison for parent `key`; `difference` is `None`
    /// when both answered the same.
    pub fn record(&self, key: &str, difference: Option<String>, failed: bool) {
        let mut s = self.stats.lock().unwrap_or_else(PoisonError::into_inner);
        s.reconciles += 1;
        if failed {
            s.errors += 1;
        }
        if let Some(d) = difference {
            s.diffs += 1;
            s.samples.push_back(format!("{key}: {d}"));
            while s.samples.len() > SAMPLES {
                s.samples.pop_front();
            }
        }
    }

    pub fn view(&self) -> ShadowView {
        self.stats
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// The first difference between two answers, said in one line, or `None`
/// when they ask for the same: the same children (by kind, namespace and
/// name, with the same content), status, patches, events, requeue and
/// finalization.
pub fn diff(active: &Outcome, candidate: &Outcome) -> Option<String> {
    let a = children(&active.children);
    let c = children(&candidate.children);
    for (id, av) in &a {
        match c.iter().find(|(cid, _)| cid == id) {
            None => return Some(format!("child {id} only in the active revision's answer")),
            Some((_, cv)) => {
                if let Some(d) = first_difference(av, cv, "") {
                    return Some(format!("child {id}: {d}"));
                }
            }
        }
    }
    if let Some((id, _)) = c.iter().find(|(id, _)| !a.iter().any(|(aid, _)| aid == id)) {
        return Some(format!("child {id} only in the candidate's answer"));
    }
    let null = Value::Null;
    let (sa, sc) = (
        active.status.as_ref().unwrap_or(&null),
        candidate.status.as_ref().unwrap_or(&null),
    );
    if let Some(d) = first_difference(sa, sc, "") {
        return Some(format!("status: {d}"));
    }
    if json(&active.patches) != json(&candidate.patches) {
        return Some(format!(
            "patches: {} in the active answer, {} in the candidate's",
            active.patches.len(),
            candidate.patches.len()
        ));
    }
    if json(&active.events) != json(&candidate.events) {
        return Some(format!(
            "events: {} in the active answer, {} in the candidate's",
            active.events.len(),
            candidate.events.len()
        ));
    }
    if active.requeue_after_ms != candidate.requeue_after_ms {
        return Some(format!(
            "requeue after: {:?} ms, candidate {:?} ms",
            active.requeue_after_ms, candidate.requeue_after_ms
        ));
    }
    if active.finalized != candidate.finalized {
        return Some(format!(
            "finalized: {}, candidate {}",
            active.finalized, candidate.finalized
        ));
    }
    None
}

/// A value as JSON, for comparing answers field by field.
fn json<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// Children by `apiVersion kind namespace/name`.
fn children(list: &[Value]) -> Vec<(String, &Value)> {
    list.iter()
        .map(|c| {
            let s = |p: &str| c.pointer(p).and_then(Value::as_str).unwrap_or_default();
            let ns = s("/metadata/namespace");
            let name = s("/metadata/name");
            let id = format!(
                "{} {} {}",
                s("/apiVersion"),
                s("/kind"),
                if ns.is_empty() {
                    name.to_string()
                } else {
                    format!("{ns}/{name}")
                }
            );
            (id, c)
        })
        .collect()
}

/// The first JSON path where `a` and `b` differ, with both values.
fn first_difference(a: &Value, b: &Value, path: &str) -> Option<String> {
    match (a, b) {
        (Value::Object(ma), Value::Object(mb)) => {
            let mut keys: Vec<&String> = ma.keys().chain(mb.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter().find_map(|k| {
                let null = Value::Null;
                first_difference(
                    ma.get(k).unwrap_or(&null),
                    mb.get(k).unwrap_or(&null),
                    &format!("{path}/{k}"),
                )
            })
        }
        (Value::Array(la), Value::Array(lb)) if la.len() == lb.len() => la
            .iter()
            .zip(lb)
            .enumerate()
            .find_map(|(i, (x, y))| first_difference(x, y, &format!("{path}/{i}"))),
        _ if a == b => None,
        _ => Some(format!(
            "{} is {} (active), {} (candidate)",
            if path.is_empty() { "/" } else { path },
            short(a),
            short(b)
        )),
    }
}

/// A value in at most 80 characters.
fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() <= 80 {
        return s;
    }
    let mut cut = 77;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}...", &s[..cut])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn outcome(children: Vec<Value>, status: Option<Value>) -> Outcome {
        Outcome {
            children,
            status,
            events: Vec::new(),
            requeue_after_ms: None,
            finalized: false,
            patches: Vec::new(),
            sizes: None,
        }
    }

    fn cm(name: &str, rev: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": name, "namespace": "ns"}, "data": {"revision": rev}})
    }

    #[test]
    fn same_answers_have_no_difference() {
        let a = outcome(vec![cm("a", "v1"), cm("b", "v1")], Some(json!({"x": 1})));
        let b = outcome(vec![cm("b", "v1"), cm("a", "v1")], Some(json!({"x": 1})));
        assert_eq!(diff(&a, &b), None, "order of children does not matter");
    }

    #[test]
    fn names_the_first_difference() {
        let a = outcome(vec![cm("a", "v1")], None);
        assert_eq!(
            diff(&a, &outcome(vec![cm("a", "v2")], None)).unwrap(),
            "child v1 ConfigMap ns/a: /data/revision is \"v1\" (active), \"v2\" (candidate)"
        );
        assert_eq!(
            diff(&a, &outcome(vec![cm("a", "v1"), cm("c", "v1")], None)).unwrap(),
            "child v1 ConfigMap ns/c only in the candidate's answer"
        );
        assert_eq!(
            diff(&a, &outcome(vec![], None)).unwrap(),
            "child v1 ConfigMap ns/a only in the active revision's answer"
        );
        assert_eq!(
            diff(
                &a,
                &outcome(vec![cm("a", "v1")], Some(json!({"phase": "x"})))
            )
            .unwrap(),
            "status: / is null (active), {\"phase\":\"x\"} (candidate)"
        );
        let mut requeue = outcome(vec![cm("a", "v1")], None);
        requeue.requeue_after_ms = Some(5);
        assert!(diff(&a, &requeue).unwrap().starts_with("requeue after"));
    }

    #[test]
    fn long_values_are_cut() {
        let long = json!("x".repeat(200));
        let d = first_difference(&long, &json!(1), "/a").unwrap();
        assert!(d.len() < 120, "{d}");
        assert!(d.contains("..."), "{d}");
    }
}
