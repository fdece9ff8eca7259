//! Plain Rust mirrors of the contract's records.
//!
//! The WIT bindings exist only in the Wasm build, so reconciler code written
//! against these types compiles and tests natively; [`crate::export!`]
//! converts at the boundary.

use serde::Serialize;
use serde_json::Value;

/// A Kubernetes group/version/kind. The core group is `""`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Gvk {
    pub group: String,
    pub version: String,
    pub kind: String,
}

impl Gvk {
    pub fn new(
        group: impl Into<String>,
        version: impl Into<String>,
        kind: impl Into<String>,
    ) -> Self {
        Gvk {
            group: group.into(),
            version: version.into(),
            kind: kind.into(),
        }
    }

    /// The kind of a k8s-openapi type, e.g.
    /// `Gvk::of::<k8s_openapi::api::apps::v1::Deployment>()`.
    pub fn of<T: k8s_openapi::Resource>() -> Self {
        Gvk::new(T::GROUP, T::VERSION, T::KIND)
    }

    /// `group/version`, or just `version` for the core group, as in an
    /// object's `apiVersion`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// Whether a JSON object is of this kind (by `apiVersion` and `kind`).
    pub fn matches(&self, object: &Value) -> bool {
        object.get("kind").and_then(Value::as_str) == Some(self.kind.as_str())
            && object.get("apiVersion").and_then(Value::as_str) == Some(self.api_version().as_str())
    }
}

/// A reference to one object.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectRef {
    /// `group/version`, or `version` for the core group.
    pub api_version: String,
    pub kind: String,
    /// None for cluster-scoped objects.
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjectRef {
    pub fn new(
        api_version: impl Into<String>,
        kind: impl Into<String>,
        namespace: Option<&str>,
        name: impl Into<String>,
    ) -> Self {
        ObjectRef {
            api_version: api_version.into(),
            kind: kind.into(),
            namespace: namespace.map(str::to_string),
            name: name.into(),
        }
    }

    /// A reference to an object of a k8s-openapi kind.
    pub fn of<T: k8s_openapi::Resource>(namespace: Option<&str>, name: impl Into<String>) -> Self {
        ObjectRef::new(T::API_VERSION, T::KIND, namespace, name)
    }

    /// The reference of a JSON object, if it has `apiVersion`, `kind` and
    /// `metadata.name`.
    pub fn from_object(object: &Value) -> Option<Self> {
        let meta = object.get("metadata")?;
        Some(ObjectRef {
            api_version: object.get("apiVersion")?.as_str()?.to_string(),
            kind: object.get("kind")?.as_str()?.to_string(),
            namespace: meta
                .get("namespace")
                .and_then(Value::as_str)
                .map(str::to_string),
            name: meta.get("name")?.as_str()?.to_string(),
        })
    }
}

/// The kind a plugin reconciles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParentKind {
    pub kind: Gvk,
    /// True for namespaced kinds (most custom resources).
    pub namespaced: bool,
}

/// How the host finds the parents a changed related object concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelatedMapping {
    /// Ask the plugin: [`crate::Reconciler::map_related`].
    Custom,
    /// The related object's label with this key names the parent (same
    /// namespace).
    Label(String),
    /// The related object's field at this dotted path names the parent
    /// (same namespace), e.g. `spec.clusterRef.name`.
    Field(String),
    /// Every parent in the related object's namespace.
    Namespace,
}

/// A kind the plugin reads and watches but does not own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelatedKind {
    pub kind: Gvk,
    pub mapping: RelatedMapping,
}

/// Grants the plugin asks for beyond its parent and owned kinds. The host
/// operator decides; a plugin asking for more than it was granted does not
/// load.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// Kinds read through [`crate::Context`].
    pub reads: Vec<Gvk>,
    /// Non-owned kinds changed through [`crate::Response::patch`].
    pub patches: Vec<Gvk>,
    /// Whether the plugin reads Secrets it does not own.
    pub secrets: bool,
}

/// What [`crate::Reconciler::describe`] answers: everything the host needs to
/// run the plugin. Build it with [`Registration::new`] and the chained
/// setters.
///
/// ```
/// use k8s_openapi::api::{apps::v1::Deployment, core::v1::Service};
/// use operon_sdk::{Gvk, Registration};
///
/// let reg = Registration::new("memcached", "0.1.0", Gvk::new("cache.operon.dev", "v1alpha1", "Memcached"))
///     .owns::<Deployment>()
///     .owns::<Service>();
/// assert_eq!(reg.owns[1], Gvk::new("", "v1", "Service"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// Lowercase DNS label, unique within a host.
    pub name: String,
    /// The plugin's own version (semver).
    pub version: String,
    pub parent: ParentKind,
    pub owns: Vec<Gvk>,
    pub related: Vec<RelatedKind>,
    pub finalizer: bool,
    /// CRDs shipped by the plugin, each the JSON text of an
    /// `apiextensions.k8s.io/v1` CustomResourceDefinition.
    pub crds: Vec<String>,
    pub capabilities: Capabilities,
}

impl Registration {
    /// A plugin reconciling a namespaced `parent`, owning nothing yet.
    pub fn new(name: impl Into<String>, version: impl Into<String>, parent: Gvk) -> Self {
        Registration {
            name: name.into(),
            version: version.into(),
            parent: ParentKind {
                kind: parent,
                namespaced: true,
            },
            owns: Vec::new(),
            related: Vec::new(),
            finalizer: false,
            crds: Vec::new(),
            capabilities: Capabilities::default(),
        }
    }

    /// Marks the parent kind cluster-scoped (`false`) or namespaced.
    pub fn namespaced(mut self, namespaced: bool) -> Self {
        self.parent.namespaced = namespaced;
        self
    }

    /// Adds an owned kind from its k8s-openapi type.
    pub fn owns<T: k8s_openapi::Resource>(self) -> Self {
        self.owns_kind(Gvk::of::<T>())
    }

    /// Adds an owned kind by group/version/kind (e.g. a custom resource).
    pub fn owns_kind(mut self, kind: Gvk) -> Self {
        self.owns.push(kind);
        self
    }

    /// Adds a related kind and how its objects map to parents.
    pub fn related(mut self, kind: Gvk, mapping: RelatedMapping) -> Self {
        self.related.push(RelatedKind { kind, mapping });
        self
    }

    /// Asks the host to hold deletion of parents until a finalizing
    /// reconcile answers [`crate::Response::finalized`].
    pub fn finalizer(mut self, finalizer: bool) -> Self {
        self.finalizer = finalizer;
        self
    }

    /// Ships a CRD (JSON text), typically `include_str!("crd.json")`.
    pub fn crd(mut self, json: impl Into<String>) -> Self {
        self.crds.push(json.into());
        self
    }

    /// Asks for reads of a kind beyond the parent and owned kinds.
    pub fn reads(mut self, kind: Gvk) -> Self {
        self.capabilities.reads.push(kind);
        self
    }

    /// Asks to patch a kind the plugin does not own.
    pub fn patches(mut self, kind: Gvk) -> Self {
        self.capabilities.patches.push(kind);
        self
    }

    /// Asks for reads of Secrets the plugin does not own.
    pub fn secrets(mut self, secrets: bool) -> Self {
        self.capabilities.secrets = secrets;
        self
    }
}

/// Event severity, as in Kubernetes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

/// A Kubernetes event about the parent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub type_: EventType,
    /// UpperCamelCase, machine-readable, e.g. `Scaled`.
    pub reason: String,
    pub message: String,
}

impl Event {
    pub fn normal(reason: impl Into<String>, message: impl Into<String>) -> Self {
        Event {
            type_: EventType::Normal,
            reason: reason.into(),
            message: message.into(),
        }
    }

    pub fn warning(reason: impl Into<String>, message: impl Into<String>) -> Self {
        Event {
            type_: EventType::Warning,
            reason: reason.into(),
            message: message.into(),
        }
    }
}

/// How a patch body is to be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// RFC 7386 JSON merge patch.
    Merge,
    /// RFC 6902 JSON patch (an array of operations).
    Json,
    /// Server-side apply of a partial object.
    Apply,
}

/// A change to an object the plugin does not own (needs a `patches` grant).
#[derive(Debug, Clone, PartialEq)]
pub struct Patch {
    pub target: ObjectRef,
    /// Patch a subresource (`scale`, `status`) instead of the object.
    pub subresource: Option<String>,
    pub patch_type: PatchType,
    pub body: Value,
}

impl Patch {
    /// A patch of `target` with a body of any serializable shape. A body that
    /// does not serialize becomes `null`, which the host rejects with a clear
    /// message; bodies are built by the plugin, not read from input.
    pub fn new(target: ObjectRef, patch_type: PatchType, body: impl Serialize) -> Self {
        Patch {
            target,
            subresource: None,
            patch_type,
            body: serde_json::to_value(body).unwrap_or(Value::Null),
        }
    }

    /// A JSON merge patch, the usual choice.
    pub fn merge(target: ObjectRef, body: impl Serialize) -> Self {
        Patch::new(target, PatchType::Merge, body)
    }

    /// Targets a subresource, e.g. `scale`.
    pub fn subresource(mut self, subresource: impl Into<String>) -> Self {
        self.subresource = Some(subresource.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::{apps::v1::Deployment, core::v1::Service};
    use serde_json::json;

    #[test]
    fn gvk_of_k8s_types() {
        assert_eq!(
            Gvk::of::<Deployment>(),
            Gvk::new("apps", "v1", "Deployment")
        );
        assert_eq!(Gvk::of::<Deployment>().api_version(), "apps/v1");
        assert_eq!(Gvk::of::<Service>().api_version(), "v1");
        assert!(Gvk::of::<Service>().matches(&json!({"apiVersion": "v1", "kind": "Service"})));
        assert!(!Gvk::of::<Service>().matches(&json!({"apiVersion": "v2", "kind": "Service"})));
    }

    #[test]
    fn object_ref_from_json() {
        let r = ObjectRef::from_object(&json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "db", "namespace": "demo"}
        }));
        assert_eq!(r, Some(ObjectRef::of::<Service>(Some("demo"), "db")));
        assert_eq!(ObjectRef::from_object(&json!({"kind": "Service"})), None);
    }

    #[test]
    fn registration_builder() {
        let reg = Registration::new("x", "1.0.0", Gvk::new("a.b", "v1", "Widget"))
            .namespaced(false)
            .owns::<Deployment>()
            .related(
                Gvk::of::<Service>(),
                RelatedMapping::Label("a.b/widget".into()),
            )
            .finalizer(true)
            .crd("{}")
            .reads(Gvk::new("", "v1", "ConfigMap"))
            .secrets(true);
        assert!(!reg.parent.namespaced);
        assert_eq!(reg.owns, vec![Gvk::new("apps", "v1", "Deployment")]);
        assert_eq!(reg.related.len(), 1);
        assert!(reg.finalizer && reg.capabilities.secrets);
        assert_eq!(reg.crds, vec!["{}".to_string()]);
    }

    #[test]
    fn patch_builder() {
        let p = Patch::merge(
            ObjectRef::new("a.b/v1", "Widget", Some("ns"), "w"),
            json!({"spec": {"replicas": 2}}),
        )
        .subresource("scale");
        assert_eq!(p.subresource.as_deref(), Some("scale"));
        assert_eq!(p.body["spec"]["replicas"], 2);
    }
}
