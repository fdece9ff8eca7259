//! An in-memory cluster for unit tests of reconciler logic.
//!
//! Reconcilers are functions of the request and of what they read, so a test
//! needs no API server and no Wasm: fill a [`FakeCluster`] with the objects
//! the reconciler reads, make a [`crate::Context`] of it and call
//! `reconcile` directly under plain `cargo test`.
//!
//! ```
//! use operon_sdk::testing::FakeCluster;
//! use serde_json::json;
//!
//! let cluster = FakeCluster::new().with(json!({
//!     "apiVersion": "v1", "kind": "Secret",
//!     "metadata": {"name": "creds", "namespace": "demo", "labels": {"app": "db"}}
//! }));
//! let ctx = cluster.into_context();
//! assert_eq!(ctx.list_json("v1", "Secret", Some("demo"), Some("app in (db, web)")).unwrap().len(), 1);
//! ```

use serde::Serialize;
use serde_json::Value;

use crate::{ClusterError, Context};

/// Objects a fake [`Context`] serves, with the host's read semantics: get by
/// namespace and name, list by namespace and label selector, and
/// `forbidden` for kinds marked with [`FakeCluster::deny`] (as for a kind the
/// plugin was not granted).
#[derive(Debug, Clone, Default)]
pub struct FakeCluster {
    objects: Vec<Value>,
    denied: Vec<(String, String)>,
}

impl FakeCluster {
    pub fn new() -> Self {
        FakeCluster::default()
    }

    /// Adds an object (a k8s-openapi value or JSON).
    ///
    /// # Panics
    ///
    /// If the object does not serialize to JSON: this is test setup, and a
    /// loud failure there is the useful one.
    pub fn with(mut self, object: impl Serialize) -> Self {
        self.insert(object);
        self
    }

    /// Adds an object; see [`FakeCluster::with`].
    pub fn insert(&mut self, object: impl Serialize) {
        match serde_json::to_value(object) {
            Ok(v) => self.objects.push(v),
            Err(e) => panic!("FakeCluster: object does not serialize to JSON: {e}"),
        }
    }

    /// Makes reads of a kind fail as forbidden.
    pub fn deny(mut self, api_version: &str, kind: &str) -> Self {
        self.denied
            .push((api_version.to_string(), kind.to_string()));
        self
    }

    /// A [`Context`] served by this cluster.
    pub fn into_context(self) -> Context {
        Context::fake(self)
    }

    /// One object, as the host's `cluster.get` answers.
    pub fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<Value>, ClusterError> {
        self.check(api_version, kind)?;
        Ok(self
            .of_kind(api_version, kind)
            .find(|o| meta_str(o, "namespace") == namespace && meta_str(o, "name") == Some(name))
            .cloned())
    }

    /// Objects of a kind, as the host's `cluster.list` answers.
    pub fn list(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        label_selector: Option<&str>,
    ) -> Result<Vec<Value>, ClusterError> {
        self.check(api_version, kind)?;
        let selector = match label_selector {
            Some(s) => parse_selector(s)?,
            None => Vec::new(),
        };
        Ok(self
            .of_kind(api_version, kind)
            .filter(|o| namespace.is_none() || meta_str(o, "namespace") == namespace)
            .filter(|o| selector.iter().all(|r| r.matches(o)))
            .cloned()
            .collect())
    }

    fn check(&self, api_version: &str, kind: &str) -> Result<(), ClusterError> {
        if self
            .denied
            .iter()
            .any(|(a, k)| a == api_version && k == kind)
        {
            return Err(ClusterError::Forbidden(format!(
                "reads of {api_version} {kind} are not granted"
            )));
        }
        Ok(())
    }

    fn of_kind<'a>(
        &'a self,
        api_version: &'a str,
        kind: &'a str,
    ) -> impl Iterator<Item = &'a Value> {
        self.objects.iter().filter(move |o| {
            o.get("apiVersion").and_then(Value::as_str) == Some(api_version)
                && o.get("kind").and_then(Value::as_str) == Some(kind)
        })
    }
}

fn meta_str<'a>(object: &'a Value, field: &str) -> Option<&'a str> {
    object.get("metadata")?.get(field)?.as_str()
}

/// One requirement of a Kubernetes label selector.
#[derive(Debug, PartialEq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

impl Requirement {
    fn matches(&self, object: &Value) -> bool {
        let label = |key: &str| {
            object
                .get("metadata")
                .and_then(|m| m.get("labels"))
                .and_then(|l| l.get(key))
                .and_then(Value::as_str)
        };
        match self {
            Requirement::Equals(k, v) => label(k) == Some(v.as_str()),
            // As in Kubernetes, `!=` and `notin` also match objects without
            // the label.
            Requirement::NotEquals(k, v) => label(k) != Some(v.as_str()),
            Requirement::In(k, vs) => label(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            Requirement::NotIn(k, vs) => !label(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            Requirement::Exists(k) => label(k).is_some(),
            Requirement::NotExists(k) => label(k).is_none(),
        }
    }
}

/// Parses equality- and set-based selectors: `a=b`, `a==b`, `a!=b`,
/// `a in (x,y)`, `a notin (x)`, `a`, `!a`, joined by commas.
fn parse_selector(selector: &str) -> Result<Vec<Requirement>, ClusterError> {
    let invalid = |part: &str| {
        ClusterError::Invalid(format!(
            "bad label selector requirement {part:?} in {selector:?}"
        ))
    };
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in selector.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.checked_sub(1).ok_or_else(|| invalid(selector))?,
            ',' if depth == 0 => {
                parts.push(&selector[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&selector[start..]);

    let valid_key =
        |k: &str| !k.is_empty() && !k.contains(|c: char| c.is_whitespace() || "=!(),".contains(c));
    let set = |rest: &str| -> Option<Vec<String>> {
        let inner = rest.trim().strip_prefix('(')?.strip_suffix(')')?;
        Some(inner.split(',').map(|v| v.trim().to_string()).collect())
    };

    let mut requirements = Vec::new();
    for raw in parts {
        let part = raw.trim();
        if part.is_empty() {
            if selector.trim().is_empty() {
                continue; // the empty selector matches everything
            }
            return Err(invalid(raw));
        }
        let req = if let Some((k, v)) = part.split_once("!=") {
            Requirement::NotEquals(k.trim().to_string(), v.trim().to_string())
        } else if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
            Requirement::Equals(k.trim().to_string(), v.trim().to_string())
        } else if let Some(k) = part.strip_prefix('!') {
            Requirement::NotExists(k.trim().to_string())
        } else if let Some((k, rest)) = part.split_once(" notin ") {
            Requirement::NotIn(k.trim().to_string(), set(rest).ok_or_else(|| invalid(raw))?)
        } else if let Some((k, rest)) = part.split_once(" in ") {
            Requirement::In(k.trim().to_string(), set(rest).ok_or_else(|| invalid(raw))?)
        } else {
            Requirement::Exists(part.to_string())
        };
        let key = match &req {
            Requirement::Equals(k, _)
            | Requirement::NotEquals(k, _)
            | Requirement::In(k, _)
            | Requirement::NotIn(k, _)
            | Requirement::Exists(k)
            | Requirement::NotExists(k) => k,
        };
        if !valid_key(key) {
            return Err(invalid(raw));
        }
        requirements.push(req);
    }
    Ok(requirements)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labeled(labels: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": labels}})
    }

    fn selects(selector: &str, labels: Value) -> bool {
        parse_selector(selector)
            .unwrap()
            .iter()
            .all(|r| r.matches(&labeled(labels.clone())))
    }

    #[test]
    fn selector_semantics() {
        let l = json!({"app": "db", "tier": "back"});
        assert!(selects("app=db", l.clone()));
        assert!(selects("app==db, tier", l.clone()));
        assert!(!selects("app=db,tier!=back", l.clone()));
        assert!(selects("app!=web", l.clone()));
        assert!(selects("missing!=x", l.clone()));
        assert!(selects("app in (web, db),!missing", l.clone()));
        assert!(!selects("app notin (db)", l.clone()));
        assert!(selects("missing notin (db)", l.clone()));
        assert!(!selects("missing", l.clone()));
        assert!(selects("", l));
    }

    #[test]
    fn bad_selectors_are_invalid() {
        for bad in ["app in db", "a,,b", "=x", "app in (x", "a b"] {
            assert!(
                matches!(parse_selector(bad), Err(ClusterError::Invalid(_))),
                "{bad:?} should be invalid"
            );
        }
    }

    #[test]
    fn get_respects_namespace() {
        let c = FakeCluster::new()
            .with(json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}}))
            .with(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "n1", "namespace": "x"}}));
        assert!(c.get("v1", "Node", None, "n1").unwrap().is_some());
        assert!(c.get("v1", "Pod", None, "n1").unwrap().is_none());
        assert!(c.get("v1", "Pod", Some("x"), "n1").unwrap().is_some());
    }
}
