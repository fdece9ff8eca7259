//! `operon rbac`: the RBAC objects a cluster admin creates for
//! `operon run --impersonate NS`, derived from the plugins and the grants so
//! the second boundary (the API server's) says exactly what the first (the
//! host's checks) says.
//!
//! For each plugin: a ServiceAccount in NS, a ClusterRole
//! `operon-plugin:<name>` with the writes its grant allows, and a binding
//! (a RoleBinding in the watched namespace with `--namespace`, else a
//! ClusterRoleBinding). For the host: a ClusterRole `operon-host` to watch
//! every kind the plugins use, install their CRDs and impersonate exactly
//! the plugin accounts, bound to the host's own ServiceAccount.
//!
//! A plugin's rules:
//! - its parent kind: `get, patch, update` (finalizers) and the `status`
//!   subresource;
//! - each owned kind: `get, create, update, patch, delete` (server-side
//!   apply and pruning);
//! - each kind it may patch: `get, patch` on it and its `scale`
//!   subresource;
//! - `events.k8s.io` events: `create, patch`.
//!
//! Nothing else: a Secret the grant does not own cannot be written even if
//! the host's own check were bypassed.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::contract::Gvk;
use crate::kinds::{Kinds, Resolved};
use crate::plugin::{GrantsFile, Plugin};
use crate::runtime::Identity;

/// Where the generated objects go and whom they bind.
#[derive(Debug, Clone)]
pub struct RbacOptions {
    /// The namespace of the plugin ServiceAccounts (`--impersonate NS`).
    pub account_namespace: String,
    /// The host's `--namespace`: bind in it only; `None`: cluster-wide.
    pub watch_namespace: Option<String>,
    /// The host's own ServiceAccount, in `account_namespace`.
    pub host_account: String,
    /// Whether the host installs CRDs (needs write access to them).
    pub install_crds: bool,
}

/// Verbs per (apiGroup, resource), merged so each resource is listed once.
#[derive(Default)]
struct Rules(BTreeMap<(String, String), Vec<&'static str>>);

impl Rules {
    fn add(&mut self, kind: &Resolved, subresource: Option<&str>, verbs: &[&'static str]) {
        let resource = match subresource {
            Some(sub) => format!("{}/{sub}", kind.resource.plural),
            None => kind.resource.plural.clone(),
        };
        self.add_raw(&kind.gvk.group, &resource, verbs);
    }

    fn add_raw(&mut self, group: &str, resource: &str, verbs: &[&'static str]) {
        let entry = self
            .0
            .entry((group.to_string(), resource.to_string()))
            .or_default();
        for v in verbs {
            if !entry.contains(v) {
                entry.push(v);
            }
        }
    }

    fn to_json(&self) -> Vec<Value> {
        self.0
            .iter()
            .map(|((group, resource), verbs)| {
                json!({"apiGroups": [group], "resources": [resource], "verbs": verbs})
            })
            .collect()
    }
}

const OWNED_VERBS: &[&str] = &["get", "create", "update", "patch", "delete"];
const READ_VERBS: &[&str] = &["get", "list", "watch"];

/// Resolves a kind through discovery, or, when the API server does not
/// serve it yet, from a CRD one of the plugins ships: the RBAC objects are
/// usually created before the host first runs and installs its CRDs.
async fn resolve(kinds: &Kinds, plugins: &[Arc<Plugin>], gvk: &Gvk) -> anyhow::Result<Resolved> {
    match kinds.resolve(gvk).await {
        Ok(found) => Ok(found),
        Err(e) => plugins
            .iter()
            .flat_map(|p| &p.registration().crds)
            .find_map(|text| from_crd(text, gvk))
            .ok_or(e),
    }
}

/// The resolved kind a CRD (JSON) defines, when it defines `gvk`.
pub(crate) fn from_crd(text: &str, gvk: &Gvk) -> Option<Resolved> {
    let crd: Value = serde_json::from_str(text).ok()?;
    let spec = crd.get("spec")?;
    let names = spec.get("names")?;
    if spec.get("group")?.as_str()? != gvk.group || names.get("kind")?.as_str()? != gvk.kind {
        return None;
    }
    let plural = names.get("plural")?.as_str()?;
    let kube_gvk = kube::api::GroupVersionKind::gvk(&gvk.group, &gvk.version, &gvk.kind);
    Some(Resolved {
        gvk: gvk.clone(),
        resource: kube::api::ApiResource::from_gvk_with_plural(&kube_gvk, plural),
        namespaced: spec.get("scope").and_then(Value::as_str) != Some("Cluster"),
    })
}

/// The RBAC objects for `plugins` (already loaded against `grants`).
pub async fn objects(
    kinds: &Kinds,
    plugins: &[Arc<Plugin>],
    grants: &GrantsFile,
    opts: &RbacOptions,
) -> anyhow::Result<Vec<Value>> {
    let ns = &opts.account_namespace;
    let mut out = Vec::new();
    let mut host = Rules::default();
    let mut accounts = Vec::new();
    for plugin in plugins {
        let grant = grants.grant_for(plugin.registration());
        let id = Identity::for_plugin(ns, plugin.name(), &grant);
        let rules = plugin_rules(kinds, plugins, plugin, &mut host).await?;
        let role = format!("operon-plugin:{}", plugin.name());
        out.push(json!({
            "apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": id.name, "namespace": ns, "labels": labels(plugin.name())},
        }));
        out.push(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": role, "labels": labels(plugin.name())},
            "rules": rules.to_json(),
        }));
        out.push(binding(
            &role,
            &id,
            opts.watch_namespace.as_deref(),
            plugin.name(),
        ));
        accounts.push(id.name);
    }
    out.extend(host_objects(host, accounts, opts));
    Ok(out)
}

/// One plugin's own rules (its parent and status, owned kinds, patched
/// kinds and their scale, events); what the host must read for it goes
/// into `host`.
async fn plugin_rules(
    kinds: &Kinds,
    plugins: &[Arc<Plugin>],
    plugin: &Plugin,
    host: &mut Rules,
) -> anyhow::Result<Rules> {
    let reg = plugin.registration();
    let mut rules = Rules::default();
    let parent = resolve(kinds, plugins, &reg.parent.kind).await?;
    rules.add(&parent, None, &["get", "patch", "update"]);
    rules.add(&parent, Some("status"), &["get", "patch", "update"]);
    host.add(&parent, None, READ_VERBS);
    for gvk in &reg.owns {
        let kind = resolve(kinds, plugins, gvk).await?;
        rules.add(&kind, None, OWNED_VERBS);
        host.add(&kind, None, READ_VERBS);
    }
    for gvk in &reg.capabilities.patches {
        let kind = resolve(kinds, plugins, gvk).await?;
        rules.add(&kind, None, &["get", "patch"]);
        rules.add(&kind, Some("scale"), &["get", "patch"]);
    }
    let mut read: Vec<&Gvk> = reg.related.iter().map(|r| &r.kind).collect();
    read.extend(&reg.capabilities.reads);
    if reg.capabilities.secrets {
        host.add_raw("", "secrets", READ_VERBS);
    }
    for gvk in read {
        host.add(&resolve(kinds, plugins, gvk).await?, None, READ_VERBS);
    }
    rules.add_raw("events.k8s.io", "events", &["create", "patch"]);
    Ok(rules)
}

/// The host's account, its role (read every kind the plugins use, install
/// their CRDs, impersonate exactly the plugin accounts) and its binding.
fn host_objects(host: Rules, accounts: Vec<String>, opts: &RbacOptions) -> Vec<Value> {
    let ns = &opts.account_namespace;
    let mut host_rules = host.to_json();
    if opts.install_crds {
        host_rules.push(json!({"apiGroups": ["apiextensions.k8s.io"],
            "resources": ["customresourcedefinitions"],
            "verbs": ["get", "list", "create", "patch", "update"]}));
    }
    host_rules.push(json!({"apiGroups": [""], "resources": ["serviceaccounts"],
        "verbs": ["impersonate"], "resourceNames": accounts}));
    let host_id = Identity {
        namespace: ns.clone(),
        name: opts.host_account.clone(),
    };
    vec![
        json!({
            "apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": host_id.name, "namespace": ns, "labels": labels("host")},
        }),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "operon-host", "labels": labels("host")},
            "rules": host_rules,
        }),
        // The host watches across namespaces unless told otherwise, and
        // impersonation is checked cluster-wide: always a ClusterRoleBinding.
        binding("operon-host", &host_id, None, "host"),
    ]
}

fn labels(component: &str) -> Value {
    json!({"app.kubernetes.io/managed-by": "operon", "operon.dev/rbac-for": component})
}

fn binding(role: &str, id: &Identity, watch_ns: Option<&str>, component: &str) -> Value {
    let subject = json!([{"kind": "ServiceAccount", "name": id.name, "namespace": id.namespace}]);
    let role_ref =
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role});
    match watch_ns {
        Some(ns) => json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": role, "namespace": ns, "labels": labels(component)},
            "roleRef": role_ref, "subjects": subject,
        }),
        None => json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": role, "labels": labels(component)},
            "roleRef": role_ref, "subjects": subject,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolved(group: &str, kind: &str, plural: &str) -> Resolved {
        let gvk = Gvk {
            group: group.into(),
            version: "v1".into(),
            kind: kind.into(),
        };
        let resource = kube::api::ApiResource::from_gvk_with_plural(
            &kube::api::GroupVersionKind::gvk(group, "v1", kind),
            plural,
        );
        Resolved {
            gvk,
            resource,
            namespaced: true,
        }
    }

    #[test]
    fn rules_merge_verbs_per_resource() {
        let mut r = Rules::default();
        let d = resolved("apps", "Deployment", "deployments");
        r.add(&d, None, &["get", "patch"]);
        r.add(&d, None, &["patch", "delete"]);
        r.add(&d, Some("scale"), &["patch"]);
        assert_eq!(
            r.to_json(),
            vec![
                json!({"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "patch", "delete"]}),
                json!({"apiGroups": ["apps"], "resources": ["deployments/scale"], "verbs": ["patch"]}),
            ]
        );
    }

    #[test]
    fn kinds_not_served_yet_come_from_the_plugins_crds() {
        let crd = r#"{"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "spec": {"group": "test.operon.dev", "scope": "Namespaced",
                     "names": {"kind": "Widget", "plural": "widgets"}}}"#;
        let gvk = Gvk {
            group: "test.operon.dev".into(),
            version: "v1".into(),
            kind: "Widget".into(),
        };
        let r = from_crd(crd, &gvk).expect("the CRD defines Widget");
        assert_eq!(r.resource.plural, "widgets");
        assert!(r.namespaced);
        let other = Gvk {
            kind: "Gadget".into(),
            ..gvk
        };
        assert!(from_crd(crd, &other).is_none());
    }

    #[test]
    fn binds_in_the_watched_namespace_or_cluster_wide() {
        let id = Identity {
            namespace: "operon-system".into(),
            name: "operon-plugin-x".into(),
        };
        let b = binding("operon-plugin:x", &id, Some("team-a"), "x");
        assert_eq!(b["kind"], "RoleBinding");
        assert_eq!(b["metadata"]["namespace"], "team-a");
        assert_eq!(b["subjects"][0]["namespace"], "operon-system");
        let b = binding("operon-plugin:x", &id, None, "x");
        assert_eq!(b["kind"], "ClusterRoleBinding");
        assert_eq!(b["roleRef"]["name"], "operon-plugin:x");
    }
}
