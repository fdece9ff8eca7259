//! The input of one reconcile: the parent, what it owns, and configuration.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::conditions::{Condition, conditions_from_status};
use crate::decode::decode;
use crate::{Error, Gvk};

/// The host's own condition type. The host rewrites it after every
/// reconcile, so a plugin carrying the old one forward would only echo a
/// stale copy.
pub const SYNCED_CONDITION: &str = "Synced";

/// The input of one reconcile.
///
/// Natively, build one for a test with [`Request::new`] and the `with_*`
/// methods; in the component the SDK builds it from the host's call.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    parent: Value,
    observed: Vec<Value>,
    finalizing: bool,
    config: BTreeMap<String, String>,
}

impl Request {
    /// A request for `parent` (the object as the API server returns it).
    pub fn new(parent: Value) -> Self {
        Request {
            parent,
            observed: Vec::new(),
            finalizing: false,
            config: BTreeMap::new(),
        }
    }

    /// Adds an observed child.
    pub fn with_observed(mut self, child: Value) -> Self {
        self.observed.push(child);
        self
    }

    /// Adds a configuration entry (a later entry of the same key wins).
    pub fn with_config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.config.insert(key.into(), value.into());
        self
    }

    /// Marks the request as the finalizing one, before deletion.
    pub fn with_finalizing(mut self, finalizing: bool) -> Self {
        self.finalizing = finalizing;
        self
    }

    /// The parent as JSON.
    pub fn parent_json(&self) -> &Value {
        &self.parent
    }

    /// The parent as a typed value. A parent that does not fit `T` is a
    /// [`Error::Permanent`] naming the field, e.g.
    /// `parent Memcached demo/example: spec.size: invalid type: ...`: the
    /// spec has to change before a retry can succeed.
    pub fn parent<T: DeserializeOwned>(&self) -> Result<T, Error> {
        decode(&self.parent, &self.describe_parent())
    }

    /// The parent's `spec` as a typed value; errors name the field as in
    /// [`Request::parent`].
    pub fn spec<T: DeserializeOwned>(&self) -> Result<T, Error> {
        // Decoding through a one-field wrapper makes error paths read
        // `spec.size` rather than just `size`.
        #[derive(serde::Deserialize)]
        struct Wrapper<S> {
            spec: S,
        }
        let wrapped = serde_json::json!({ "spec": self.parent.get("spec") });
        decode::<Wrapper<T>>(&wrapped, &self.describe_parent()).map(|w| w.spec)
    }

    /// `metadata.name` of the parent (empty if absent, which the API server
    /// never sends).
    pub fn name(&self) -> &str {
        self.meta_str("name").unwrap_or_default()
    }

    /// `metadata.namespace` of the parent; none for cluster-scoped kinds.
    pub fn namespace(&self) -> Option<&str> {
        self.meta_str("namespace")
    }

    /// `metadata.uid` of the parent.
    pub fn uid(&self) -> Option<&str> {
        self.meta_str("uid")
    }

    /// `metadata.generation` of the parent, for `observedGeneration`.
    pub fn generation(&self) -> Option<i64> {
        self.parent.get("metadata")?.get("generation")?.as_i64()
    }

    /// The parent's current `status`, as this plugin (and the host) last
    /// wrote it.
    pub fn status_json(&self) -> Option<&Value> {
        self.parent.get("status")
    }

    /// The parent's current `status` as `T`, or `T::default()` when there
    /// is none or it does not fit: the status is this plugin's own earlier
    /// output (or a user's edit), and one that does not decode is
    /// rewritten, not a reason to fail the reconcile.
    pub fn status_or_default<T: DeserializeOwned + Default>(&self) -> T {
        self.status_json()
            .and_then(|s| T::deserialize(s).ok())
            .unwrap_or_default()
    }

    /// The parent's current conditions without the host-owned `Synced` one:
    /// the starting point for [`crate::conditions::set_condition`], so that
    /// transition times survive from one reconcile to the next.
    pub fn conditions(&self) -> Vec<Condition> {
        let mut conditions = conditions_from_status(self.status_json());
        conditions.retain(|c| c.type_ != SYNCED_CONDITION);
        conditions
    }

    /// Every observed child, as JSON.
    pub fn observed(&self) -> &[Value] {
        &self.observed
    }

    /// The observed children of a k8s-openapi kind, typed.
    pub fn observed_of<T>(&self) -> Result<Vec<T>, Error>
    where
        T: k8s_openapi::Resource + DeserializeOwned,
    {
        let gvk = Gvk::of::<T>();
        self.observed
            .iter()
            .filter(|o| gvk.matches(o))
            .map(|o| decode(o, &describe_object(o)))
            .collect()
    }

    /// The observed child of a k8s-openapi kind with this name, typed.
    pub fn observed_named<T>(&self, name: &str) -> Result<Option<T>, Error>
    where
        T: k8s_openapi::Resource + DeserializeOwned,
    {
        self.find_observed(T::API_VERSION, T::KIND, name)
            .map(|o| decode(o, &describe_object(o)))
            .transpose()
    }

    /// The observed child with this apiVersion, kind and name, as JSON.
    pub fn find_observed(&self, api_version: &str, kind: &str, name: &str) -> Option<&Value> {
        self.observed.iter().find(|o| {
            o.get("apiVersion").and_then(Value::as_str) == Some(api_version)
                && o.get("kind").and_then(Value::as_str) == Some(kind)
                && o.get("metadata")
                    .and_then(|m| m.get("name"))
                    .and_then(Value::as_str)
                    == Some(name)
        })
    }

    /// Whether the parent is being deleted and waits for this plugin's
    /// cleanup ([`crate::Response::finalized`]).
    pub fn is_finalizing(&self) -> bool {
        self.finalizing
    }

    /// A configuration value set by the host operator.
    pub fn config(&self, key: &str) -> Option<&str> {
        self.config.get(key).map(String::as_str)
    }

    /// All configuration entries, sorted by key.
    pub fn config_entries(&self) -> impl Iterator<Item = (&str, &str)> {
        self.config.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    fn meta_str(&self, field: &str) -> Option<&str> {
        self.parent.get("metadata")?.get(field)?.as_str()
    }

    fn describe_parent(&self) -> String {
        format!("parent {}", describe_object(&self.parent))
    }
}

/// `metadata.name` of an object as JSON (an observed child, a related
/// object); empty if it has none.
pub fn name_of(object: &Value) -> &str {
    object["metadata"]["name"].as_str().unwrap_or_default()
}

/// `Kind namespace/name` for messages.
pub(crate) fn describe_object(object: &Value) -> String {
    let kind = object
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("object");
    let meta = object.get("metadata");
    let name = meta
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("<unnamed>");
    match meta
        .and_then(|m| m.get("namespace"))
        .and_then(Value::as_str)
    {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::Service;
    use serde::Deserialize;
    use serde_json::json;

    fn request() -> Request {
        Request::new(json!({
            "apiVersion": "a.b/v1", "kind": "Widget",
            "metadata": {"name": "w", "namespace": "ns", "uid": "u-1", "generation": 4},
            "spec": {"size": 3},
            "status": {"conditions": [
                {"type": "Ready", "status": "True", "reason": "R", "message": "", "lastTransitionTime": "2024-01-01T00:00:00Z"},
                {"type": "Synced", "status": "True", "reason": "S", "message": "", "lastTransitionTime": "2024-01-01T00:00:00Z"}
            ]}
        }))
        .with_observed(json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "w"}, "spec": {"replicas": 3, "selector": {}, "template": {}}}))
        .with_observed(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "w"}}))
        .with_config("mode", "fast")
    }

    #[test]
    fn metadata_accessors() {
        let r = request();
        assert_eq!(
            (r.name(), r.namespace(), r.uid()),
            ("w", Some("ns"), Some("u-1"))
        );
        assert_eq!(r.generation(), Some(4));
        assert_eq!(r.config("mode"), Some("fast"));
        assert_eq!(r.config("other"), None);
        assert!(!r.is_finalizing());
    }

    #[test]
    fn typed_parent_and_spec() {
        #[derive(Deserialize)]
        struct Spec {
            size: i32,
        }
        let r = request();
        assert_eq!(r.spec::<Spec>().unwrap().size, 3);
        let bad = Request::new(
            json!({"kind": "Widget", "metadata": {"name": "w", "namespace": "ns"}, "spec": {"size": "x"}}),
        );
        let err = bad.spec::<Spec>().err().unwrap();
        assert_eq!(
            err,
            Error::Permanent(
                "parent Widget ns/w: spec.size: invalid type: string \"x\", expected i32".into()
            )
        );
        let missing = Request::new(json!({"metadata": {"name": "w"}}));
        assert!(matches!(missing.spec::<Spec>(), Err(Error::Permanent(_))));
    }

    #[test]
    fn observed_by_kind_and_name() {
        let r = request();
        let deployments: Vec<Deployment> = r.observed_of().unwrap();
        assert_eq!(deployments.len(), 1);
        assert_eq!(
            deployments[0].spec.as_ref().and_then(|s| s.replicas),
            Some(3)
        );
        assert!(r.observed_named::<Service>("w").unwrap().is_some());
        assert!(r.observed_named::<Service>("other").unwrap().is_none());
        assert!(r.find_observed("v1", "Service", "w").is_some());
    }

    #[test]
    fn status_decodes_or_defaults() {
        #[derive(Debug, Default, PartialEq, Deserialize)]
        struct Status {
            #[serde(default)]
            phase: String,
        }
        let with = Request::new(json!({"status": {"phase": "Running"}}));
        assert_eq!(with.status_or_default::<Status>().phase, "Running");
        let bad = Request::new(json!({"status": {"phase": 3}}));
        assert_eq!(bad.status_or_default::<Status>(), Status::default());
        let none = Request::new(json!({"metadata": {"name": "w"}}));
        assert_eq!(none.status_or_default::<Status>(), Status::default());
    }

    #[test]
    fn names_of_objects() {
        assert_eq!(name_of(&json!({"metadata": {"name": "w"}})), "w");
        assert_eq!(name_of(&json!({"kind": "Pod"})), "");
    }

    #[test]
    fn conditions_skip_the_hosts_synced() {
        let cs = request().conditions();
        assert_eq!(cs.len(), 1);
        assert_eq!(cs[0].type_, "Ready");
    }
}
