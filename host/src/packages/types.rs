//! The host's own kinds, `operon.dev/v1alpha1`: plugins declared as
//! objects, their revisions, and the admins' policy for tenants. The CRDs
//! are generated from these types (kube's `CustomResource` derive), their
//! field descriptions from the doc comments below.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where a plugin's component comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Source {
    /// An OCI reference to a Wasm artifact (`operon push`):
    /// `registry/repository:tag`, or `registry/repository@sha256:…` to pin
    /// it. A tag is resolved to its digest, and the digest is what runs.
    pub image: String,
    /// The digest the tag must resolve to; a tag that moved elsewhere is
    /// refused (`Resolved=False`, reason `DigestMismatch`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

/// A Secret of type `kubernetes.io/dockerconfigjson` with registry
/// credentials.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretRef {
    /// The Secret's name.
    pub name: String,
    /// Its namespace (for a ClusterReconcilerPlugin; a ReconcilerPlugin's
    /// pull secrets are in its own namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// When a new revision becomes Active.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ActivationPolicy {
    /// As soon as it was fetched, verified, compiled and checked.
    #[default]
    Automatic,
    /// When someone sets its `desiredState` to `Active` (it is prepared
    /// beforehand, so the swap then takes no compile time). A plugin's
    /// first revision activates on its own: nothing else would serve.
    Manual,
}

/// Signature verification of the artifact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Verify {
    /// The PEM public key (ECDSA P-256, as `cosign generate-key-pair`
    /// makes) that a cosign signature of the artifact's digest must verify
    /// with. A revision without one never becomes Active.
    pub public_key: String,
}

/// Limits of the plugin's calls; unset ones keep the host's defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    /// Linear memory of one call, in MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mib: Option<usize>,
    /// Wall-clock time of one call, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Most children of one parent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_children: Option<usize>,
    /// Calls of this plugin at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<usize>,
    /// Largest child, in KiB of JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub child_kib: Option<usize>,
    /// Largest status, in KiB of JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_kib: Option<usize>,
    /// Largest whole answer, in KiB of JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_kib: Option<usize>,
}

/// What the plugin may touch: the grants-file fields, in the object.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Grants {
    /// Kinds it may own (`group/version/Kind`, `v1/Kind` for the core
    /// group). Unset: what it declares, except kinds that confer power,
    /// which must be named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owns: Option<Vec<String>>,
    /// Extra kinds it may read.
    #[serde(default)]
    pub reads: Vec<String>,
    /// Kinds it may patch without owning them.
    #[serde(default)]
    pub patches: Vec<String>,
    /// Whether it may read Secrets (and, for a tenant, own them).
    #[serde(default)]
    pub secrets: bool,
    /// Where it may read: empty for its parent's namespace only, `["*"]`
    /// for every namespace, or a list of namespaces beside the parent's.
    /// A ReconcilerPlugin always reads in its own namespace only.
    #[serde(default)]
    pub read_namespaces: Vec<String>,
    /// Whether it may adopt existing objects no one controls.
    #[serde(default)]
    pub adopt: bool,
    /// Whether it may create `kubernetes.io/service-account-token` Secrets.
    #[serde(default)]
    pub service_account_tokens: bool,
    /// The ServiceAccount its writes act as under `--impersonate`
    /// (default `operon-plugin-<name>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,
    /// Limits of its calls.
    #[serde(default)]
    pub limits: Limits,
}

fn default_history() -> u32 {
    3
}

/// A plugin run cluster-wide, declared by a platform admin.
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "operon.dev",
    version = "v1alpha1",
    kind = "ClusterReconcilerPlugin",
    shortname = "crp",
    status = "PluginStatus",
    printcolumn = r#"{"name":"Revision","type":"integer","jsonPath":".status.activeRevision"}"#,
    printcolumn = r#"{"name":"Digest","type":"string","jsonPath":".status.activeDigest"}"#,
    printcolumn = r#"{"name":"Healthy","type":"string","jsonPath":".status.conditions[?(@.type==\"Healthy\")].status"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterReconcilerPluginSpec {
    /// The artifact to run.
    pub source: Source,
    /// Registry credentials.
    #[serde(default)]
    pub pull_secrets: Vec<SecretRef>,
    /// What it may touch.
    #[serde(default)]
    pub grants: Grants,
    /// Key/values handed to every reconcile.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// A build to dry-run beside the active revision: its answers are
    /// diffed with the active ones and never applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate: Option<Source>,
    /// When a new revision becomes Active.
    #[serde(default)]
    pub revision_activation_policy: ActivationPolicy,
    /// Inactive revisions kept (rollback targets).
    #[serde(default = "default_history")]
    pub revision_history_limit: u32,
    /// Signature verification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<Verify>,
}

/// A tenant's plugin, confined to its own namespace: its parents,
/// children, reads and events stay there; it cannot ship CRDs nor touch
/// Secrets unless a ReconcilerPluginPolicy allows it, and its limits are
/// clamped by that policy.
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "operon.dev",
    version = "v1alpha1",
    kind = "ReconcilerPlugin",
    namespaced,
    shortname = "rp",
    status = "PluginStatus",
    printcolumn = r#"{"name":"Revision","type":"integer","jsonPath":".status.activeRevision"}"#,
    printcolumn = r#"{"name":"Digest","type":"string","jsonPath":".status.activeDigest"}"#,
    printcolumn = r#"{"name":"Healthy","type":"string","jsonPath":".status.conditions[?(@.type==\"Healthy\")].status"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ReconcilerPluginSpec {
    /// The artifact to run.
    pub source: Source,
    /// Registry credentials (Secrets in this namespace).
    #[serde(default)]
    pub pull_secrets: Vec<SecretRef>,
    /// What it may touch, within this namespace.
    #[serde(default)]
    pub grants: Grants,
    /// Key/values handed to every reconcile.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// A build to dry-run beside the active revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate: Option<Source>,
    /// When a new revision becomes Active.
    #[serde(default)]
    pub revision_activation_policy: ActivationPolicy,
    /// Inactive revisions kept (rollback targets).
    #[serde(default = "default_history")]
    pub revision_history_limit: u32,
    /// Signature verification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<Verify>,
}

/// A plugin's observed state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PluginStatus {
    /// The number of the revision serving now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_revision: Option<i64>,
    /// Its artifact digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_digest: Option<String>,
    /// What the source resolved to last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_digest: Option<String>,
    /// The generation this status is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Resolved` (the source names an artifact), `Ready` (a revision
    /// serves), `Healthy` (the active revision passed its probation).
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

/// Whether a revision should serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum DesiredState {
    Active,
    Inactive,
}

/// One fetched build of a plugin. Named after the plugin and the digest;
/// owned by its plugin. Make an older one `Active` to roll back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RevisionSpec {
    /// The artifact, by digest.
    pub image: String,
    /// The artifact's manifest digest.
    pub digest: String,
    /// 1, 2, 3…: only grows, per plugin.
    pub revision: i64,
    /// Whether it should serve; exactly one revision of a plugin is Active.
    pub desired_state: DesiredState,
}

/// A revision's observed state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RevisionStatus {
    /// `Fetched`, `Verified`, `Compiled` (loaded, described and checked
    /// against its grants), `Healthy` (its probation while active), `Active`.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// Reconciles while it was active (since the host started).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconciles: Option<u64>,
    /// Of those, failed ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failures: Option<u64>,
}

/// The revision of a ClusterReconcilerPlugin.
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "operon.dev",
    version = "v1alpha1",
    kind = "ClusterReconcilerPluginRevision",
    shortname = "crprev",
    status = "RevisionStatus",
    printcolumn = r#"{"name":"Revision","type":"integer","jsonPath":".spec.revision"}"#,
    printcolumn = r#"{"name":"Desired","type":"string","jsonPath":".spec.desiredState"}"#,
    printcolumn = r#"{"name":"Compiled","type":"string","jsonPath":".status.conditions[?(@.type==\"Compiled\")].status"}"#,
    printcolumn = r#"{"name":"Healthy","type":"string","jsonPath":".status.conditions[?(@.type==\"Healthy\")].status"}"#,
    printcolumn = r#"{"name":"Digest","type":"string","jsonPath":".spec.digest","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
pub struct ClusterReconcilerPluginRevisionSpec {
    #[serde(flatten)]
    pub revision: RevisionSpec,
}

/// The revision of a ReconcilerPlugin.
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "operon.dev",
    version = "v1alpha1",
    kind = "ReconcilerPluginRevision",
    namespaced,
    shortname = "rprev",
    status = "RevisionStatus",
    printcolumn = r#"{"name":"Revision","type":"integer","jsonPath":".spec.revision"}"#,
    printcolumn = r#"{"name":"Desired","type":"string","jsonPath":".spec.desiredState"}"#,
    printcolumn = r#"{"name":"Compiled","type":"string","jsonPath":".status.conditions[?(@.type==\"Compiled\")].status"}"#,
    printcolumn = r#"{"name":"Healthy","type":"string","jsonPath":".status.conditions[?(@.type==\"Healthy\")].status"}"#,
    printcolumn = r#"{"name":"Digest","type":"string","jsonPath":".spec.digest","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
pub struct ReconcilerPluginRevisionSpec {
    #[serde(flatten)]
    pub revision: RevisionSpec,
}

/// An admin's rules for tenants' ReconcilerPlugins in some namespaces.
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "operon.dev",
    version = "v1alpha1",
    kind = "ReconcilerPluginPolicy",
    shortname = "rpp"
)]
#[serde(rename_all = "camelCase")]
pub struct ReconcilerPluginPolicySpec {
    /// The namespaces it applies to (`*` for all).
    pub namespaces: Vec<String>,
    /// Whether tenant plugins there may read and own Secrets.
    #[serde(default)]
    pub allow_secrets: bool,
    /// The most a tenant plugin there may ask for; its own limits are
    /// clamped to these.
    #[serde(default)]
    pub max_limits: Limits,
}

/// A condition, as Kubernetes spells them (`metav1.Condition`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// The aspect it is about (`Ready`, `Compiled`…).
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// Why, in UpperCamelCase.
    pub reason: String,
    /// Why, for people.
    #[serde(default)]
    pub message: String,
    /// When the status last changed.
    pub last_transition_time: String,
}
