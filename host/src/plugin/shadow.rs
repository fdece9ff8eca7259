//! Shadow rollout: a candidate build runs beside the active revision on
//! every reconcile, in dry run. Its answer is compared with the active
//! revision's and never applied; what differs is counted and sampled, so a
//! release can be judged on the real cluster's objects before it is
//! promoted (by replacing the active file).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use serde::Serialize;
use serde_json::Value;

use crate::answer_diff::{self, Sides};
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

/// The first difference between two answers, said in one line (with how
/// many more there are), or `None` when they ask for the same: the same
/// children (by kind, namespace and name, with the same content), status,
/// patches, events, requeue and finalization ([`answer_diff`]).
pub fn diff(active: &Outcome, candidate: &Outcome) -> Option<String> {
    let json = |o: &Outcome| serde_json::to_value(o).unwrap_or(Value::Null);
    let changes = answer_diff::changes(&json(active), &json(candidate));
    let first = changes.first()?.say(Sides::SHADOW);
    Some(match changes.len() {
        1 => first.to_string(),
        n => format!("{first} (and {} more)", n - 1),
    })
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
            "children[v1 ConfigMap ns/a].data.revision: active \"v1\", candidate \"v2\""
        );
        assert!(
            diff(&a, &outcome(vec![cm("a", "v1"), cm("c", "v1")], None))
                .unwrap()
                .starts_with("children[v1 ConfigMap ns/c]: active nothing, candidate {")
        );
        assert!(
            diff(&a, &outcome(vec![], None))
                .unwrap()
                .starts_with("children[v1 ConfigMap ns/a]: active {")
        );
        assert_eq!(
            diff(
                &a,
                &outcome(vec![cm("a", "v1")], Some(json!({"phase": "x"})))
            )
            .unwrap(),
            "status: active nothing, candidate {\"phase\":\"x\"}"
        );
        let mut requeue = outcome(vec![cm("a", "v2")], None);
        requeue.requeue_after_ms = Some(5);
        let d = diff(&a, &requeue).unwrap();
        assert!(d.ends_with("(and 1 more)"), "{d}");
    }
}
