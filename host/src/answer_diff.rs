//! What differs between two answers of a plugin, field by field.
//!
//! One comparison for every place that puts two answers side by side: a
//! golden case of `operon test` (expected and got), `operon diff` (the old
//! build and the new) and a shadow revision (active and candidate). They
//! compare the answers as JSON, so a case's expected file can be YAML or
//! JSON and formatting never matters.
//!
//! Children are matched by apiVersion, kind, namespace and name, as the host
//! applies them: their order in the answer changes nothing in the cluster,
//! so it is not a difference, and a child added in front of the others does
//! not make every later one look changed. Everything else (conditions,
//! events, patches, container lists) is compared by position, since there
//! order is what the API server stores.

use std::fmt;

use serde_json::{Map, Value};

/// One field that differs: its path, and its value on each side (`None`
/// where that side has no such field).
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// `children[apps/v1 Deployment demo/web].spec.replicas`,
    /// `status.conditions[0].reason`, ... (`.` for the whole answer).
    pub path: String,
    pub old: Option<Value>,
    pub new: Option<Value>,
}

/// Every field where `new` differs from `old`, in the order of `old`'s
/// fields and then of the fields only `new` has.
pub fn changes(old: &Value, new: &Value) -> Vec<Change> {
    let mut out = Vec::new();
    compare(
        Some(old),
        Some(new),
        &mut String::new(),
        Place::Answer,
        &mut out,
    );
    out
}

/// The two sides' names, for saying a change in words.
#[derive(Debug, Clone, Copy)]
pub struct Sides {
    pub old: &'static str,
    pub new: &'static str,
}

impl Sides {
    /// A golden case: what the file expects, what the plugin answered.
    pub const CASE: Sides = Sides {
        old: "expected",
        new: "got",
    };
    /// Two builds of a plugin.
    pub const BUILDS: Sides = Sides {
        old: "old",
        new: "new",
    };
    /// The active revision and a shadow candidate.
    pub const SHADOW: Sides = Sides {
        old: "active",
        new: "candidate",
    };
}

impl Change {
    /// The change in one line: `spec.replicas: expected 3, got 4`; values
    /// longer than 80 characters are cut.
    pub fn say(&self, sides: Sides) -> Said<'_> {
        Said {
            change: self,
            sides,
        }
    }
}

/// A [`Change`] with the names of its sides; see [`Change::say`].
pub struct Said<'a> {
    change: &'a Change,
    sides: Sides,
}

impl fmt::Display for Said<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // An error's message is the point of it: never cut.
        let whole = self.change.path == "error";
        let side = |v: &Option<Value>| match v {
            None => "nothing".to_string(),
            Some(v) if whole => v.to_string(),
            Some(v) => short(v),
        };
        write!(
            f,
            "{}: {} {}, {} {}",
            self.change.path,
            self.sides.old,
            side(&self.change.old),
            self.sides.new,
            side(&self.change.new)
        )
    }
}

/// Where in an answer a value sits, for the one place that compares
/// differently: the list of children.
#[derive(Clone, Copy, PartialEq)]
enum Place {
    Answer,
    Other,
}

fn compare(
    old: Option<&Value>,
    new: Option<&Value>,
    path: &mut String,
    place: Place,
    out: &mut Vec<Change>,
) {
    match (old, new) {
        (Some(Value::Object(o)), Some(Value::Object(n))) => objects(o, n, path, place, out),
        (Some(Value::Array(o)), Some(Value::Array(n))) => arrays(o, n, path, out),
        (o, n) if o == n => {}
        (o, n) => out.push(Change {
            path: if path.is_empty() {
                ".".into()
            } else {
                path.clone()
            },
            old: o.cloned(),
            new: n.cloned(),
        }),
    }
}

fn objects(
    old: &Map<String, Value>,
    new: &Map<String, Value>,
    path: &mut String,
    place: Place,
    out: &mut Vec<Change>,
) {
    let keys = old
        .keys()
        .chain(new.keys().filter(|k| !old.contains_key(*k)));
    if place == Place::Answer && old.contains_key("error") != new.contains_key("error") {
        // An error against an answer: one change says it all.
        return out.push(Change {
            path: "error".into(),
            old: old.get("error").cloned(),
            new: new.get("error").cloned(),
        });
    }
    for key in keys {
        let len = path.len();
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(key);
        match (place, key.as_str(), old.get(key), new.get(key)) {
            (Place::Answer, "children", Some(Value::Array(o)), Some(Value::Array(n))) => {
                children(o, n, path, out)
            }
            (_, _, o, n) => compare(o, n, path, Place::Other, out),
        }
        path.truncate(len);
    }
}

/// Lists by position; the longer one's extra items are added or removed.
fn arrays(old: &[Value], new: &[Value], path: &mut String, out: &mut Vec<Change>) {
    for i in 0..old.len().max(new.len()) {
        let len = path.len();
        path.push_str(&format!("[{i}]"));
        compare(old.get(i), new.get(i), path, Place::Other, out);
        path.truncate(len);
    }
}

/// Children by identity: first `old`'s (changed or gone), then those only
/// `new` has.
fn children(old: &[Value], new: &[Value], path: &mut String, out: &mut Vec<Change>) {
    let ids_new: Vec<String> = new.iter().map(identity).collect();
    let ids_old: Vec<String> = old.iter().map(identity).collect();
    let mut matched = vec![false; new.len()];
    for (o, id) in old.iter().zip(&ids_old) {
        let found = ids_new
            .iter()
            .enumerate()
            .position(|(i, n)| !matched[i] && n == id);
        if let Some(i) = found {
            matched[i] = true;
        }
        let len = path.len();
        path.push_str(&format!("[{id}]"));
        compare(Some(o), found.map(|i| &new[i]), path, Place::Other, out);
        path.truncate(len);
    }
    for (i, n) in new.iter().enumerate().filter(|(i, _)| !matched[*i]) {
        let len = path.len();
        path.push_str(&format!("[{}]", ids_new[i]));
        compare(None, Some(n), path, Place::Other, out);
        path.truncate(len);
    }
}

/// `apiVersion kind namespace/name` of an object: what tells two objects
/// of an answer or a case apart.
pub fn identity(child: &Value) -> String {
    let s = |p: &str| child.pointer(p).and_then(Value::as_str).unwrap_or_default();
    let (ns, name) = (s("/metadata/namespace"), s("/metadata/name"));
    let object = if ns.is_empty() {
        name.to_string()
    } else {
        format!("{ns}/{name}")
    };
    format!("{} {} {object}", s("/apiVersion"), s("/kind"))
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

    fn cm(name: &str, rev: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": name, "namespace": "ns"}, "data": {"revision": rev}})
    }

    fn said(old: &Value, new: &Value) -> Vec<String> {
        changes(old, new)
            .iter()
            .map(|c| c.say(Sides::CASE).to_string())
            .collect()
    }

    #[test]
    fn the_same_answer_in_another_order_of_children_has_no_change() {
        let a = json!({"children": [cm("a", "v1"), cm("b", "v1")], "status": {"x": 1}});
        let b = json!({"status": {"x": 1}, "children": [cm("b", "v1"), cm("a", "v1")]});
        assert_eq!(changes(&a, &b), vec![]);
    }

    #[test]
    fn every_changed_field_is_named_with_both_values() {
        let a = json!({"children": [cm("a", "v1"), cm("b", "v1")],
                       "status": {"conditions": [{"type": "Ready", "status": "True"}]}});
        let b = json!({"children": [cm("c", "v1"), cm("b", "v2")],
                       "status": {"conditions": [{"type": "Ready", "status": "False"}],
                                  "phase": "Failed"},
                       "requeueAfterMs": 5000});
        assert_eq!(
            said(&a, &b),
            vec![
                format!(
                    "children[v1 ConfigMap ns/a]: expected {}, got nothing",
                    short(&cm("a", "v1"))
                ),
                "children[v1 ConfigMap ns/b].data.revision: expected \"v1\", got \"v2\"".into(),
                format!(
                    "children[v1 ConfigMap ns/c]: expected nothing, got {}",
                    short(&cm("c", "v1"))
                ),
                "status.conditions[0].status: expected \"True\", got \"False\"".into(),
                "status.phase: expected nothing, got \"Failed\"".into(),
                "requeueAfterMs: expected nothing, got 5000".into(),
            ]
        );
    }

    #[test]
    fn other_lists_compare_by_position() {
        let a = json!({"events": [{"reason": "A"}]});
        let b = json!({"events": [{"reason": "B"}, {"reason": "A"}]});
        assert_eq!(
            said(&a, &b),
            vec![
                "events[0].reason: expected \"A\", got \"B\"",
                "events[1]: expected nothing, got {\"reason\":\"A\"}",
            ]
        );
    }

    #[test]
    fn an_error_against_an_answer_and_whole_values() {
        let err = json!({"error": {"permanent": "bad"}});
        let ok = json!({"children": []});
        let c = changes(&ok, &err);
        assert_eq!(c.len(), 1, "one change says it: {c:?}");
        assert_eq!(
            c[0].say(Sides::CASE).to_string(),
            "error: expected nothing, got {\"permanent\":\"bad\"}"
        );
        assert_eq!(
            changes(&json!(1), &json!(2))[0]
                .say(Sides::BUILDS)
                .to_string(),
            ".: old 1, new 2"
        );
    }

    #[test]
    fn children_with_the_same_name_match_once_each() {
        let a = json!({"children": [cm("a", "v1"), cm("a", "v1")]});
        let b = json!({"children": [cm("a", "v1")]});
        assert_eq!(changes(&a, &b).len(), 1);
        assert_eq!(changes(&a, &a), vec![]);
    }

    #[test]
    fn long_values_are_cut() {
        let c = &changes(&json!({"a": "x".repeat(200)}), &json!({"a": 1}))[0];
        let line = c.say(Sides::SHADOW).to_string();
        assert!(line.len() < 120 && line.contains("..."), "{line}");
    }
}
