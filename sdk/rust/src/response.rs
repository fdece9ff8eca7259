//! The answer of one reconcile: desired children, status, events, requeue.

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::decode::decode;
use crate::request::describe_object;
use crate::{Error, Event, Patch};

/// The outcome of a successful reconcile, built with chained calls:
///
/// ```
/// use std::time::Duration;
/// use operon_sdk::{Event, Response};
///
/// let resp = Response::new()
///     .child(serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}))
///     .status(serde_json::json!({"phase": "Running"}))
///     .event(Event::normal("Created", "made the config map"))
///     .requeue_after(Duration::from_secs(30));
/// assert!(resp.validate().is_ok());
/// ```
///
/// Children are the *full* desired set: an owned child missing from it is
/// pruned by the host.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Response {
    /// Every child the parent should have, each a complete object.
    pub children: Vec<Value>,
    /// The parent's new `status`, or none to leave it as it is.
    pub status: Option<Value>,
    pub events: Vec<Event>,
    /// Come back after this long even if nothing changes.
    pub requeue_after: Option<Duration>,
    /// With a finalizing request: cleanup is done.
    pub finalized: bool,
    /// Changes to objects the plugin does not own.
    pub patches: Vec<Patch>,
    /// The first child or status that could not be serialized, reported by
    /// [`Response::validate`] so the builder chain stays free of `?`.
    problem: Option<String>,
}

impl Response {
    /// An empty response: no children (all owned children pruned), status
    /// left as it is.
    pub fn new() -> Self {
        Response::default()
    }

    /// Adds a desired child: a k8s-openapi object (whose serialization
    /// carries `apiVersion` and `kind`) or any JSON value of an object.
    pub fn child(mut self, object: impl Serialize) -> Self {
        match serde_json::to_value(object) {
            Ok(v) => self.children.push(v),
            Err(e) => self.note(format!(
                "child #{} does not serialize: {e}",
                self.children.len() + 1
            )),
        }
        self
    }

    /// Adds several desired children.
    pub fn children<I>(mut self, objects: I) -> Self
    where
        I: IntoIterator,
        I::Item: Serialize,
    {
        for object in objects {
            self = self.child(object);
        }
        self
    }

    /// Sets the parent's new `status` (a JSON object). The host adds
    /// `observedGeneration` and its own `Synced` condition.
    pub fn status(mut self, status: impl Serialize) -> Self {
        match serde_json::to_value(status) {
            Ok(v) => self.status = Some(v),
            Err(e) => self.note(format!("status does not serialize: {e}")),
        }
        self
    }

    /// Records an event about the parent.
    pub fn event(mut self, event: Event) -> Self {
        self.events.push(event);
        self
    }

    /// Reconcile again after `after`, e.g. to poll progress the cluster does
    /// not signal with a watch event.
    pub fn requeue_after(mut self, after: Duration) -> Self {
        self.requeue_after = Some(after);
        self
    }

    /// Answers a finalizing request: cleanup is done, the host may remove
    /// the finalizer.
    pub fn finalized(mut self) -> Self {
        self.finalized = true;
        self
    }

    /// Changes an object the plugin does not own (needs a `patches` grant).
    pub fn patch(mut self, patch: Patch) -> Self {
        self.patches.push(patch);
        self
    }

    /// Checks what the SDK can check without the cluster: everything
    /// serialized, every child an object with `apiVersion`, `kind` and
    /// `metadata.name`, status an object. The host validates again (grants,
    /// namespaces); failing here gives a native test the same message early.
    /// The component export calls this and answers [`Error::Permanent`].
    pub fn validate(&self) -> Result<(), Error> {
        if let Some(problem) = &self.problem {
            return Err(Error::Permanent(problem.clone()));
        }
        for (i, child) in self.children.iter().enumerate() {
            let missing = if !child.is_object() {
                Some("is not a JSON object")
            } else if child.get("apiVersion").and_then(Value::as_str).is_none() {
                Some("has no apiVersion")
            } else if child.get("kind").and_then(Value::as_str).is_none() {
                Some("has no kind")
            } else if child
                .get("metadata")
                .and_then(|m| m.get("name"))
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                Some("has no metadata.name")
            } else {
                None
            };
            if let Some(missing) = missing {
                return Err(Error::Permanent(format!("child #{} {missing}", i + 1)));
            }
        }
        if let Some(status) = &self.status
            && !status.is_object()
        {
            return Err(Error::Permanent("status is not a JSON object".into()));
        }
        Ok(())
    }

    /// The desired child with this apiVersion, kind and name, as JSON.
    pub fn find_child(&self, api_version: &str, kind: &str, name: &str) -> Option<&Value> {
        self.children.iter().find(|o| {
            o.get("apiVersion").and_then(Value::as_str) == Some(api_version)
                && o.get("kind").and_then(Value::as_str) == Some(kind)
                && o.get("metadata")
                    .and_then(|m| m.get("name"))
                    .and_then(Value::as_str)
                    == Some(name)
        })
    }

    /// The desired child of a k8s-openapi kind with this name, typed; handy
    /// in tests.
    pub fn child_of<T>(&self, name: &str) -> Result<Option<T>, Error>
    where
        T: k8s_openapi::Resource + DeserializeOwned,
    {
        self.find_child(T::API_VERSION, T::KIND, name)
            .map(|o| decode(o, &describe_object(o)))
            .transpose()
    }

    /// The new status, typed; handy in tests.
    pub fn status_as<T: DeserializeOwned>(&self) -> Result<Option<T>, Error> {
        self.status
            .as_ref()
            .map(|s| decode(s, "status"))
            .transpose()
    }

    fn note(&mut self, problem: String) {
        self.problem.get_or_insert(problem);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Service;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use serde_json::json;
    use std::collections::BTreeMap;

    #[test]
    fn k8s_openapi_children_carry_api_version_and_kind() {
        let svc = Service {
            metadata: ObjectMeta {
                name: Some("db".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let resp = Response::new().child(svc);
        assert_eq!(resp.children[0]["apiVersion"], "v1");
        assert_eq!(resp.children[0]["kind"], "Service");
        assert!(resp.validate().is_ok());
        assert!(resp.child_of::<Service>("db").unwrap().is_some());
        assert!(resp.child_of::<Service>("other").unwrap().is_none());
    }

    #[test]
    fn validate_names_the_bad_child() {
        let resp = Response::new()
            .child(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}}))
            .child(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}}));
        assert_eq!(
            resp.validate(),
            Err(Error::Permanent("child #2 has no metadata.name".into()))
        );
        let resp = Response::new().child(json!({"kind": "ConfigMap"}));
        assert_eq!(
            resp.validate(),
            Err(Error::Permanent("child #1 has no apiVersion".into()))
        );
        let resp = Response::new().status(json!(3));
        assert!(resp.validate().is_err());
    }

    #[test]
    fn serialization_failures_surface_in_validate() {
        // A map with non-string keys cannot become JSON.
        let bad: BTreeMap<(i32, i32), i32> = [((1, 2), 3)].into_iter().collect();
        let resp = Response::new().status(bad);
        assert!(
            matches!(resp.validate(), Err(Error::Permanent(m)) if m.starts_with("status does not serialize"))
        );
    }

    #[test]
    fn builder_fields() {
        let resp = Response::new()
            .event(Event::warning("Oops", "x"))
            .requeue_after(Duration::from_millis(1500))
            .finalized();
        assert_eq!(resp.events.len(), 1);
        assert_eq!(resp.requeue_after, Some(Duration::from_millis(1500)));
        assert!(resp.finalized);
        assert_eq!(resp.status_as::<Value>().unwrap(), None);
    }
}
