//! A plugin object as the package controller works with it, whichever of
//! the two kinds it is: what to run ([`Def`]), under which grant, and — for
//! a tenant's — what its namespace's policy allows.
//!
//! A tenant's plugin (`ReconcilerPlugin`) is confined here, once:
//! - its reads stay in its own namespace, whatever its spec says;
//! - its patches too, and never reach a cluster-scoped object (checked on
//!   each answer: `apply::validate::WriteGrant::confined`);
//! - Secrets (reading or owning) only where a `ReconcilerPluginPolicy`
//!   allows them for the namespace;
//! - its limits are the smaller of its own and the policy's;
//! - after loading ([`tenant_refusal`]): no CRDs shipped, no kind that
//!   confers power, no cluster-scoped parent, no Secrets without the policy.
//!
//! The controller then runs it for parents in its namespace only, and under
//! `--impersonate` its writes act as its ServiceAccount in that namespace.

use std::collections::BTreeMap;

use super::types::{
    ActivationPolicy, ClusterReconcilerPlugin, Grants, Limits, ReconcilerPlugin,
    ReconcilerPluginPolicy, Source,
};
use crate::contract::Registration;
use crate::plugin::{Grant, LimitsSpec, NamespaceWord, Namespaces, privileged};

/// Which kind of plugin object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// A `ClusterReconcilerPlugin`.
    Cluster,
    /// A `ReconcilerPlugin` in this namespace.
    Tenant(String),
}

/// What a tenant's namespace allows, from the policies naming it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TenantPolicy {
    pub allow_secrets: bool,
    pub max_limits: Limits,
}

/// A plugin object, normalized.
#[derive(Debug, Clone)]
pub struct Def {
    /// The supervisor's slot: `crp/<name>` or `rp/<namespace>/<name>`.
    pub key: String,
    pub scope: Scope,
    pub name: String,
    pub generation: Option<i64>,
    pub source: Source,
    pub candidate: Option<Source>,
    /// Pull secrets as (namespace, name).
    pub pull_secrets: Vec<(String, String)>,
    pub grant: Grant,
    pub config: Vec<(String, String)>,
    pub activation: ActivationPolicy,
    pub history_limit: u32,
    /// The PEM public key signatures must verify with.
    pub verify: Option<String>,
    /// For a tenant: its namespace's policy.
    pub policy: Option<TenantPolicy>,
}

impl Def {
    pub fn namespace(&self) -> Option<&str> {
        match &self.scope {
            Scope::Cluster => None,
            Scope::Tenant(ns) => Some(ns),
        }
    }

    /// The slot key of a plugin object.
    pub fn key_of(scope: &Scope, name: &str) -> String {
        match scope {
            Scope::Cluster => format!("crp/{name}"),
            Scope::Tenant(ns) => format!("rp/{ns}/{name}"),
        }
    }

    /// A ClusterReconcilerPlugin's definition.
    pub fn cluster(p: &ClusterReconcilerPlugin, host_namespace: Option<&str>) -> Def {
        let name = p.metadata.name.clone().unwrap_or_default();
        let s = &p.spec;
        Def {
            key: Def::key_of(&Scope::Cluster, &name),
            scope: Scope::Cluster,
            generation: p.metadata.generation,
            source: s.source.clone(),
            candidate: s.candidate.clone(),
            pull_secrets: s
                .pull_secrets
                .iter()
                .map(|r| {
                    let ns = r
                        .namespace
                        .as_deref()
                        .or(host_namespace)
                        .unwrap_or("default");
                    (ns.to_string(), r.name.clone())
                })
                .collect(),
            grant: grant_of(&s.grants),
            config: config_of(&s.config),
            activation: s.revision_activation_policy,
            history_limit: s.revision_history_limit,
            verify: s.verify.as_ref().map(|v| v.public_key.clone()),
            policy: None,
            name,
        }
    }

    /// A tenant's ReconcilerPlugin's definition, confined and clamped by
    /// the policies of its namespace.
    pub fn tenant(p: &ReconcilerPlugin, policies: &[ReconcilerPluginPolicy]) -> Def {
        let name = p.metadata.name.clone().unwrap_or_default();
        let ns = p.metadata.namespace.clone().unwrap_or_default();
        let policy = policy_for(&ns, policies);
        let s = &p.spec;
        let mut grant = grant_of(&s.grants);
        grant.namespaces = Namespaces::Word(NamespaceWord::Parent);
        grant.secrets &= policy.allow_secrets;
        grant.limits = clamp(&grant.limits, &policy.max_limits);
        Def {
            key: Def::key_of(&Scope::Tenant(ns.clone()), &name),
            scope: Scope::Tenant(ns.clone()),
            generation: p.metadata.generation,
            source: s.source.clone(),
            candidate: s.candidate.clone(),
            pull_secrets: s
                .pull_secrets
                .iter()
                .map(|r| (ns.clone(), r.name.clone()))
                .collect(),
            grant,
            config: config_of(&s.config),
            activation: s.revision_activation_policy,
            history_limit: s.revision_history_limit,
            verify: s.verify.as_ref().map(|v| v.public_key.clone()),
            policy: Some(policy),
            name,
        }
    }
}

fn config_of(config: &BTreeMap<String, String>) -> Vec<(String, String)> {
    config.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// The object's grants as a [`Grant`].
fn grant_of(g: &Grants) -> Grant {
    let namespaces = match g.read_namespaces.as_slice() {
        [] => Namespaces::Word(NamespaceWord::Parent),
        [all] if all == "*" => Namespaces::Word(NamespaceWord::All),
        list => Namespaces::List(list.to_vec()),
    };
    let l = &g.limits;
    Grant {
        owns: g.owns.clone(),
        reads: g.reads.clone(),
        patches: g.patches.clone(),
        secrets: g.secrets,
        namespaces,
        limits: LimitsSpec {
            memory_mib: l.memory_mib,
            timeout_ms: l.timeout_ms,
            fuel: None,
            max_children: l.max_children,
            output_kib: None,
            concurrency: l.concurrency,
            child_kib: l.child_kib,
            status_kib: l.status_kib,
            response_kib: l.response_kib,
        },
        service_account: g.service_account.clone(),
        adopt: g.adopt,
        service_account_tokens: g.service_account_tokens,
    }
}

/// What the policies naming `namespace` (or `*`) allow together: Secrets
/// if any allows them, the largest limits any sets.
fn policy_for(namespace: &str, policies: &[ReconcilerPluginPolicy]) -> TenantPolicy {
    let mut out = TenantPolicy::default();
    for p in policies
        .iter()
        .filter(|p| p.spec.namespaces.iter().any(|n| n == "*" || n == namespace))
    {
        out.allow_secrets |= p.spec.allow_secrets;
        let (m, o) = (&p.spec.max_limits, &mut out.max_limits);
        o.memory_mib = o.memory_mib.max(m.memory_mib);
        o.timeout_ms = o.timeout_ms.max(m.timeout_ms);
        o.max_children = o.max_children.max(m.max_children);
        o.concurrency = o.concurrency.max(m.concurrency);
        o.child_kib = o.child_kib.max(m.child_kib);
        o.status_kib = o.status_kib.max(m.status_kib);
        o.response_kib = o.response_kib.max(m.response_kib);
    }
    out
}

/// A limit asked for, no higher than the policy's (when it sets one; a
/// tenant asking for nothing gets the policy's cap or the host's default,
/// whichever is lower, through the host's defaults).
fn clamp(asked: &LimitsSpec, max: &Limits) -> LimitsSpec {
    fn min<T: Ord + Copy>(asked: Option<T>, max: Option<T>) -> Option<T> {
        match (asked, max) {
            (Some(a), Some(m)) => Some(a.min(m)),
            (None, m) => m,
            (a, None) => a,
        }
    }
    LimitsSpec {
        memory_mib: min(asked.memory_mib, max.memory_mib),
        timeout_ms: min(asked.timeout_ms, max.timeout_ms),
        fuel: asked.fuel,
        max_children: min(asked.max_children, max.max_children),
        output_kib: asked.output_kib,
        concurrency: min(asked.concurrency, max.concurrency),
        child_kib: min(asked.child_kib, max.child_kib),
        status_kib: min(asked.status_kib, max.status_kib),
        response_kib: min(asked.response_kib, max.response_kib),
    }
}

/// Why a loaded tenant plugin may not run, if it may not.
pub fn tenant_refusal(reg: &Registration, policy: &TenantPolicy) -> Option<String> {
    if !reg.crds.is_empty() {
        return Some(format!(
            "a ReconcilerPlugin cannot ship CRDs (plugin {} ships {}); an admin installs them, or runs it as a ClusterReconcilerPlugin",
            reg.name,
            reg.crds.len()
        ));
    }
    if !reg.parent.namespaced {
        return Some(format!(
            "a ReconcilerPlugin reconciles namespaced parents only; {} is cluster-scoped",
            reg.parent.kind
        ));
    }
    if let Some(kind) = reg.owns.iter().find(|k| privileged::why(k).is_some()) {
        return Some(format!(
            "a ReconcilerPlugin cannot own {kind}: {}",
            privileged::why(kind).unwrap_or_default()
        ));
    }
    let secrets = reg.owns.iter().any(|k| k.group_kind().is_secret()) || reg.capabilities.secrets;
    if secrets && !policy.allow_secrets {
        return Some(
            "no ReconcilerPluginPolicy allows Secrets in this namespace (allowSecrets: true)"
                .into(),
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packages::types::{ReconcilerPluginPolicySpec, ReconcilerPluginSpec};

    fn tenant(grants: Grants) -> ReconcilerPlugin {
        let mut p = ReconcilerPlugin::new(
            "cache",
            ReconcilerPluginSpec {
                source: Source {
                    image: "r/p:v1".into(),
                    digest: None,
                },
                pull_secrets: vec![],
                grants,
                config: BTreeMap::from([("mode".into(), "fast".into())]),
                candidate: None,
                revision_activation_policy: ActivationPolicy::Automatic,
                revision_history_limit: 3,
                verify: None,
            },
        );
        p.metadata.namespace = Some("team-a".into());
        p
    }

    fn policy(
        namespaces: &[&str],
        allow_secrets: bool,
        memory: Option<usize>,
    ) -> ReconcilerPluginPolicy {
        ReconcilerPluginPolicy::new(
            "p",
            ReconcilerPluginPolicySpec {
                namespaces: namespaces.iter().map(|n| n.to_string()).collect(),
                allow_secrets,
                max_limits: Limits {
                    memory_mib: memory,
                    ..Limits::default()
                },
            },
        )
    }

    #[test]
    fn a_tenant_is_confined_and_clamped_by_its_namespaces_policy() {
        let asked = Grants {
            secrets: true,
            read_namespaces: vec!["*".into()],
            limits: Limits {
                memory_mib: Some(512),
                ..Limits::default()
            },
            ..Grants::default()
        };
        let def = Def::tenant(
            &tenant(asked.clone()),
            &[policy(&["team-b"], true, Some(64))],
        );
        assert_eq!(def.key, "rp/team-a/cache");
        assert_eq!(
            def.grant.namespaces,
            Namespaces::Word(NamespaceWord::Parent)
        );
        assert!(!def.grant.secrets, "no policy for team-a allows Secrets");
        assert_eq!(
            def.grant.limits.memory_mib,
            Some(512),
            "no policy for team-a caps it"
        );
        let def = Def::tenant(&tenant(asked), &[policy(&["team-a"], true, Some(64))]);
        assert!(def.grant.secrets);
        assert_eq!(def.grant.limits.memory_mib, Some(64));
        assert_eq!(def.config, [("mode".to_string(), "fast".to_string())]);
        let def = Def::tenant(
            &tenant(Grants::default()),
            &[policy(&["*"], false, Some(32))],
        );
        assert_eq!(
            def.grant.limits.memory_mib,
            Some(32),
            "the cap applies to what was not asked"
        );
    }

    #[test]
    fn read_namespaces_say_parent_all_or_a_list() {
        let g = |ns: &[&str]| {
            grant_of(&Grants {
                read_namespaces: ns.iter().map(|n| n.to_string()).collect(),
                ..Grants::default()
            })
            .namespaces
        };
        assert_eq!(g(&[]), Namespaces::Word(NamespaceWord::Parent));
        assert_eq!(g(&["*"]), Namespaces::Word(NamespaceWord::All));
        assert_eq!(
            g(&["a", "b"]),
            Namespaces::List(vec!["a".into(), "b".into()])
        );
    }
}
