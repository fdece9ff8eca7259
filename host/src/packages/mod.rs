//! Plugins as packages in the cluster: declared with objects people
//! `kubectl apply`, review and roll back, run from Wasm OCI artifacts.
//!
//! - `ClusterReconcilerPlugin` (cluster-scoped, platform admins): a source
//!   (an OCI reference; tags resolved to digests), pull secrets, the grants
//!   of a grants file, config handed to every reconcile, a shadow
//!   candidate, when new revisions activate, how many are kept, optional
//!   cosign verification.
//! - `ReconcilerPlugin` (namespaced, tenants): the same, confined to its
//!   namespace ([`def`]) and clamped by `ReconcilerPluginPolicy` objects
//!   (cluster-scoped, admins). A tenant needs only namespaced RBAC on
//!   `reconcilerplugins` to install one.
//! - `…PluginRevision` objects: one per fetched digest, with conditions
//!   `Fetched`, `Verified`, `Compiled`, `Active`, `Healthy`. A revision
//!   becomes Active only once it was fetched, verified, compiled, described
//!   and checked against its grants — until then the previous one serves.
//!   Rolling back is making an older revision `Active`.
//!
//! [`controller`] runs the lifecycle; [`prepare`] fetches and loads off the
//! hot path; the supervisor (`runtime::supervisor::objects`) runs what is
//! offered with the directory's machinery: swap with drain, probation,
//! automatic rollback (which the objects then record), shadow.

pub mod conditions;
pub mod controller;
pub mod def;
pub mod kinds;
pub mod prepare;
pub mod types;

use kube::CustomResourceExt as _;

use types::{
    ClusterReconcilerPlugin, ClusterReconcilerPluginRevision, ReconcilerPlugin,
    ReconcilerPluginPolicy, ReconcilerPluginRevision,
};

/// The host's own CRDs, as JSON (installed like a plugin's).
pub fn crds() -> Vec<String> {
    [
        ClusterReconcilerPlugin::crd(),
        ClusterReconcilerPluginRevision::crd(),
        ReconcilerPlugin::crd(),
        ReconcilerPluginRevision::crd(),
        ReconcilerPluginPolicy::crd(),
    ]
    .iter()
    .map(|crd| serde_json::to_string(crd).unwrap_or_default())
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every field of the host's CRDs says what it is (`kubectl explain`).
    fn undocumented(schema: &serde_json::Value, path: &str, out: &mut Vec<String>) {
        let Some(props) = schema.get("properties").and_then(|p| p.as_object()) else {
            return;
        };
        for (name, field) in props {
            let here = format!("{path}.{name}");
            let top =
                path.is_empty() && ["apiVersion", "kind", "metadata"].contains(&name.as_str());
            if !top && field.get("description").is_none() {
                out.push(here.clone());
            }
            undocumented(field, &here, out);
            if let Some(items) = field.get("items") {
                undocumented(items, &format!("{here}[]"), out);
            }
        }
    }

    #[test]
    fn the_crds_are_structural_and_document_every_field() {
        for text in crds() {
            let crd: serde_json::Value = serde_json::from_str(&text).unwrap();
            let name = crd["metadata"]["name"].as_str().unwrap().to_string();
            let version = &crd["spec"]["versions"][0];
            let schema = &version["schema"]["openAPIV3Schema"];
            let mut missing = Vec::new();
            for part in ["spec", "status"] {
                if let Some(s) = schema["properties"].get(part) {
                    undocumented(s, part, &mut missing);
                }
            }
            assert!(missing.is_empty(), "{name}: no description for {missing:?}");
            assert!(name.ends_with(".operon.dev"), "{name}");
        }
    }
}
