//! Kinds that confer power over the cluster, and so are never granted by
//! default: a plugin may own them only when the host operator lists them by
//! name in the plugin's `owns` grant.
//!
//! The default grant ("a plugin may own what it declares") is what lets a
//! plugin run with no grants file at all. It must not also let it escalate:
//! a plugin that may create a RoleBinding can bind `cluster-admin` to
//! anyone in its namespace; one that may create a ServiceAccount gets an
//! identity the API server mints tokens for; a webhook configuration sees
//! (and can rewrite) every matching request in the cluster. Each kind below
//! says why it is on the list; the same words appear in the load error.
//!
//! Three cases cannot be told from the kind's name alone:
//! - **Cluster-scoped kinds** (whatever they are) are checked once the kind
//!   is resolved through discovery, when the plugin's controller starts
//!   (see [`CLUSTER_SCOPED`]): they reach beyond every namespace.
//! - **Secrets of type `kubernetes.io/service-account-token`**: creating
//!   one makes the API server mint a token for any ServiceAccount of the
//!   namespace. A plugin that owns Secrets may not create that type unless
//!   its grant says `serviceAccountTokens: true`; the check is made on each
//!   child, before anything of the answer is applied.
//! - **Ordinary Secrets stay ownable by default.** Owning a Secret lets a
//!   plugin write Secrets that do not exist yet or that its own parent
//!   already controls — never anyone else's, since the host does not adopt
//!   by surprise (see `apply::claim`) — and it does not let the plugin read
//!   other Secrets: reads of Secrets need `secrets: true`, owned or not.
//!   Generated credentials (the Postgres plugin's passwords) are the most
//!   common thing an operator writes, and refusing them by default would
//!   push every operator to a grants file that says "everything".
//!
//! Workloads (Pods, Deployments, Jobs...) are not on the list although a
//! Pod may name any ServiceAccount of its namespace: that is the power of
//! anyone who may create a Deployment there, and the cluster's own
//! defences (Pod Security admission, `--impersonate` with the plugin's
//! RBAC) are where it is limited.

use crate::contract::Gvk;

/// Why cluster-scoped kinds need an explicit grant.
pub const CLUSTER_SCOPED: &str = "a cluster-scoped kind reaches beyond every namespace";

/// The Secret type whose creation mints a ServiceAccount token.
pub const SERVICE_ACCOUNT_TOKEN: &str = "kubernetes.io/service-account-token";

/// (group, kind, why it confers power).
const KINDS: &[(&str, &str, &str)] = &[
    (
        "rbac.authorization.k8s.io",
        "Role",
        "an RBAC Role grants permissions in its namespace",
    ),
    (
        "rbac.authorization.k8s.io",
        "RoleBinding",
        "an RBAC RoleBinding can bind any role, even cluster-admin, to any user",
    ),
    (
        "rbac.authorization.k8s.io",
        "ClusterRole",
        "an RBAC ClusterRole grants permissions cluster-wide",
    ),
    (
        "rbac.authorization.k8s.io",
        "ClusterRoleBinding",
        "an RBAC ClusterRoleBinding can bind any role to any user cluster-wide",
    ),
    (
        "",
        "ServiceAccount",
        "a ServiceAccount is an identity the API server issues tokens for",
    ),
    (
        "admissionregistration.k8s.io",
        "ValidatingWebhookConfiguration",
        "an admission webhook sees, and may refuse, every matching request in the cluster",
    ),
    (
        "admissionregistration.k8s.io",
        "MutatingWebhookConfiguration",
        "a mutating admission webhook sees, and may rewrite, every matching request in the cluster",
    ),
    (
        "admissionregistration.k8s.io",
        "ValidatingAdmissionPolicy",
        "an admission policy may refuse requests across the cluster",
    ),
    (
        "admissionregistration.k8s.io",
        "ValidatingAdmissionPolicyBinding",
        "an admission policy binding may refuse requests across the cluster",
    ),
    (
        "admissionregistration.k8s.io",
        "MutatingAdmissionPolicy",
        "a mutating admission policy may rewrite requests across the cluster",
    ),
    (
        "admissionregistration.k8s.io",
        "MutatingAdmissionPolicyBinding",
        "a mutating admission policy binding may rewrite requests across the cluster",
    ),
    (
        "apiextensions.k8s.io",
        "CustomResourceDefinition",
        "a CRD defines (or redefines) an API for the whole cluster",
    ),
    (
        "apiregistration.k8s.io",
        "APIService",
        "an APIService routes a whole API group to a service of its choosing",
    ),
    (
        "certificates.k8s.io",
        "CertificateSigningRequest",
        "a CertificateSigningRequest asks the cluster's CA for credentials",
    ),
    (
        "",
        "Namespace",
        "a Namespace is a tenancy boundary; owning one means deleting everything in it",
    ),
    (
        "",
        "Node",
        "a Node decides where every workload of the cluster may run",
    ),
    (
        "",
        "PersistentVolume",
        "a PersistentVolume can expose host paths or another tenant's storage",
    ),
    (
        "scheduling.k8s.io",
        "PriorityClass",
        "a PriorityClass lets pods preempt other tenants' pods",
    ),
];

/// Why `gvk` confers power, when it does (by name; cluster scope is checked
/// separately, once discovery knows it).
pub fn why(gvk: &Gvk) -> Option<&'static str> {
    KINDS
        .iter()
        .find(|(group, kind, _)| *group == gvk.group && *kind == gvk.kind)
        .map(|(_, _, why)| *why)
}

/// Whether a child (a JSON object) is a Secret that mints a ServiceAccount
/// token.
pub fn is_token_secret(child: &serde_json::Value) -> bool {
    child["apiVersion"] == "v1"
        && child["kind"] == "Secret"
        && child["type"] == SERVICE_ACCOUNT_TOKEN
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gvk(g: &str, v: &str, k: &str) -> Gvk {
        Gvk {
            group: g.into(),
            version: v.into(),
            kind: k.into(),
        }
    }

    #[test]
    fn the_escalating_kinds_are_listed_and_ordinary_ones_are_not() {
        for k in [
            gvk("rbac.authorization.k8s.io", "v1", "RoleBinding"),
            gvk("", "v1", "ServiceAccount"),
            gvk(
                "admissionregistration.k8s.io",
                "v1",
                "MutatingWebhookConfiguration",
            ),
            gvk("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
            gvk("", "v1", "PersistentVolume"),
            gvk("scheduling.k8s.io", "v1", "PriorityClass"),
        ] {
            assert!(why(&k).is_some(), "{k}");
        }
        for k in [
            gvk("", "v1", "Secret"),
            gvk("", "v1", "ConfigMap"),
            gvk("apps", "v1", "Deployment"),
            // Same kind name in another group: not the RBAC one.
            gvk("example.com", "v1", "Role"),
        ] {
            assert!(why(&k).is_none(), "{k}");
        }
    }

    #[test]
    fn token_secrets_are_told_by_their_type() {
        let secret = |t: &str| serde_json::json!({"apiVersion": "v1", "kind": "Secret", "type": t});
        assert!(is_token_secret(&secret(SERVICE_ACCOUNT_TOKEN)));
        assert!(!is_token_secret(&secret("Opaque")));
        assert!(!is_token_secret(
            &serde_json::json!({"apiVersion": "v1", "kind": "Secret"})
        ));
    }
}
