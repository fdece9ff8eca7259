//! What a plugin's `cluster` import reads from.
//!
//! The engine does not know where objects come from: at run time it is the
//! host's shared watch cache, offline (`operon reconcile`) it is the objects
//! given on the command line. Both implement [`ClusterReader`]. Grants are
//! checked by the caller before a read reaches the reader.

use std::collections::BTreeMap;

use serde_json::Value;

use super::GroupKind;
use super::selector::Selector;

/// Why a read failed, before it is turned into the WIT `cluster-error`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReadError {
    #[error("reads of {0} are not granted to this plugin")]
    Forbidden(String),
    #[error("kind {0} is not known to the host")]
    UnknownKind(String),
    #[error("{0}")]
    Invalid(String),
}

/// Read access to cluster objects, served from memory (never a live round
/// trip per call: reconciles must stay fast and must not hammer the API
/// server).
pub trait ClusterReader: Send + Sync {
    /// One object by name, `None` when it does not exist.
    fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<Value>, ReadError>;

    /// Objects of a kind, optionally in one namespace and matching a label
    /// selector.
    fn list(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        selector: &Selector,
    ) -> Result<Vec<Value>, ReadError>;
}

/// An in-memory set of objects: the offline cluster of `operon reconcile`
/// and of tests.
#[derive(Debug, Default, Clone)]
pub struct ObjectSet {
    /// Keyed by (group, kind) so that any version of a kind finds it, then
    /// by (namespace, name).
    objects: BTreeMap<GroupKind, BTreeMap<(String, String), Value>>,
}

impl ObjectSet {
    pub fn new() -> ObjectSet {
        ObjectSet::default()
    }

    /// Adds an object; objects without apiVersion, kind or metadata.name are
    /// refused with a message naming what is missing.
    pub fn insert(&mut self, object: Value) -> Result<(), super::outcome::DecodeError> {
        let field = |path: &[&str]| {
            path.iter()
                .try_fold(&object, |v, k| v.get(k))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        use super::outcome::DecodeError;
        let api_version = field(&["apiVersion"]).ok_or(DecodeError::NoApiVersion)?;
        let kind = field(&["kind"]).ok_or(DecodeError::NoKind)?;
        let name = field(&["metadata", "name"]).ok_or_else(|| DecodeError::NoName(kind.clone()))?;
        let namespace = field(&["metadata", "namespace"]).unwrap_or_default();
        self.objects
            .entry(GroupKind::from_api_version(&api_version, &kind))
            .or_default()
            .insert((namespace, name), object);
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.objects.values().map(BTreeMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl ClusterReader for ObjectSet {
    fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<Value>, ReadError> {
        let key = (namespace.unwrap_or_default().to_string(), name.to_string());
        Ok(self
            .objects
            .get(&GroupKind::from_api_version(api_version, kind))
            .and_then(|m| m.get(&key))
            .cloned())
    }

    fn list(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        selector: &Selector,
    ) -> Result<Vec<Value>, ReadError> {
        let Some(by_name) = self
            .objects
            .get(&GroupKind::from_api_version(api_version, kind))
        else {
            return Ok(Vec::new());
        };
        Ok(by_name
            .iter()
            .filter(|((ns, _), _)| namespace.is_none_or(|want| want == ns))
            .filter(|(_, obj)| selector.matches_object(obj))
            .map(|(_, obj)| obj.clone())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(ns: &str, name: &str, app: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"namespace": ns, "name": name, "labels": {"app": app}}})
    }

    #[test]
    fn get_and_list_filter_by_namespace_and_labels() {
        let mut set = ObjectSet::new();
        set.insert(pod("a", "p1", "db")).unwrap();
        set.insert(pod("a", "p2", "web")).unwrap();
        set.insert(pod("b", "p3", "db")).unwrap();
        assert!(set.get("v1", "Pod", Some("a"), "p1").unwrap().is_some());
        assert!(set.get("v1", "Pod", Some("b"), "p1").unwrap().is_none());
        let db = Selector::parse("app=db").unwrap();
        assert_eq!(set.list("v1", "Pod", None, &db).unwrap().len(), 2);
        assert_eq!(set.list("v1", "Pod", Some("a"), &db).unwrap().len(), 1);
        let all = Selector::everything();
        assert_eq!(set.list("v1", "Pod", Some("a"), &all).unwrap().len(), 2);
        assert!(
            set.list("apps/v1", "Deployment", None, &all)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn insert_names_what_is_missing() {
        let mut set = ObjectSet::new();
        let err = set.insert(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {}}));
        assert_eq!(err.unwrap_err().to_string(), "Pod has no metadata.name");
        assert_eq!(
            set.insert(json!({"kind": "Pod"})).unwrap_err().to_string(),
            "has no apiVersion"
        );
    }
}
