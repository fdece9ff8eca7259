//! Whether a kind is namespaced, known without an API server.
//!
//! `operon reconcile` makes the same checks of an answer as the running
//! host ([`crate::apply::check_answer`]), but has no discovery to ask which
//! kinds are namespaced. Built-in kinds take their scope from k8s-openapi's
//! types (generated from the API server's own definitions, so no table of
//! ours can drift from it); custom kinds from the CRDs the plugin ships.
//! A kind known to neither is `None`, the answer the running host's checks
//! also accept before discovery resolves a kind.

use std::any::TypeId;

use k8s_openapi::{NamespaceResourceScope, Resource};

use crate::contract::{Gvk, Registration};
use crate::rbac;

/// `(group, kind, namespaced)` of one k8s-openapi type.
fn scope_of<K: Resource>() -> (&'static str, &'static str, bool)
where
    K::Scope: 'static,
{
    let namespaced = TypeId::of::<K::Scope>() == TypeId::of::<NamespaceResourceScope>();
    (K::GROUP, K::KIND, namespaced)
}

macro_rules! scopes {
    ($($t:ty),* $(,)?) => { [$(scope_of::<$t>()),*] };
}

/// The built-in kinds a plugin may plausibly own or patch.
fn builtin() -> impl Iterator<Item = (&'static str, &'static str, bool)> {
    use k8s_openapi::api::admissionregistration::v1 as admission;
    use k8s_openapi::api::apps::v1 as apps;
    use k8s_openapi::api::autoscaling::v2 as autoscaling;
    use k8s_openapi::api::batch::v1 as batch;
    use k8s_openapi::api::coordination::v1 as coordination;
    use k8s_openapi::api::core::v1 as core;
    use k8s_openapi::api::discovery::v1 as discovery;
    use k8s_openapi::api::networking::v1 as networking;
    use k8s_openapi::api::policy::v1 as policy;
    use k8s_openapi::api::rbac::v1 as rbac;
    use k8s_openapi::api::scheduling::v1 as scheduling;
    use k8s_openapi::api::storage::v1 as storage;
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiextensions;
    scopes![
        core::ConfigMap,
        core::Endpoints,
        core::LimitRange,
        core::Namespace,
        core::Node,
        core::PersistentVolume,
        core::PersistentVolumeClaim,
        core::Pod,
        core::ResourceQuota,
        core::Secret,
        core::Service,
        core::ServiceAccount,
        apps::DaemonSet,
        apps::Deployment,
        apps::ReplicaSet,
        apps::StatefulSet,
        autoscaling::HorizontalPodAutoscaler,
        batch::CronJob,
        batch::Job,
        coordination::Lease,
        discovery::EndpointSlice,
        networking::Ingress,
        networking::IngressClass,
        networking::NetworkPolicy,
        policy::PodDisruptionBudget,
        rbac::ClusterRole,
        rbac::ClusterRoleBinding,
        rbac::Role,
        rbac::RoleBinding,
        scheduling::PriorityClass,
        storage::StorageClass,
        admission::MutatingWebhookConfiguration,
        admission::ValidatingWebhookConfiguration,
        apiextensions::CustomResourceDefinition,
    ]
    .into_iter()
}

/// Whether `gvk` is namespaced, from the built-in kinds or the CRDs `reg`
/// ships; `None` when neither knows it.
pub fn offline(reg: &Registration, gvk: &Gvk) -> Option<bool> {
    builtin()
        .find(|(group, kind, _)| *group == gvk.group && *kind == gvk.kind)
        .map(|(_, _, namespaced)| namespaced)
        .or_else(|| {
            reg.crds
                .iter()
                .find_map(|text| rbac::from_crd(text, gvk))
                .map(|k| k.namespaced)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_scopes_come_from_the_api_types() {
        let find = |group: &str, kind: &str| {
            builtin()
                .find(|(g, k, _)| (*g, *k) == (group, kind))
                .map(|(_, _, n)| n)
        };
        assert_eq!(find("", "ConfigMap"), Some(true));
        assert_eq!(find("apps", "Deployment"), Some(true));
        assert_eq!(find("", "Namespace"), Some(false));
        assert_eq!(
            find("rbac.authorization.k8s.io", "ClusterRoleBinding"),
            Some(false)
        );
        assert_eq!(find("example.com", "Widget"), None);
    }
}
