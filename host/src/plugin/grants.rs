//! What a plugin may touch: the host operator's grants, never the plugin's.
//!
//! A grants file (`operon run --grants FILE`) gives, per plugin name, the
//! kinds it may own (write as children), read, and patch; whether it may
//! read Secrets; the namespaces it may read in; and its limits. A plugin not
//! listed gets the default: it may own exactly the kinds it declares, read
//! its parent and owned kinds only, in its parent's namespace only — except
//! the kinds that confer power over the cluster ([`super::privileged`]),
//! which a plugin may own only when its `owns` grant names them, whatever
//! the mode. Reads of Secrets always need `secrets: true`, even of an owned
//! kind: owning Secrets lets a plugin write its own, not read its
//! neighbours'.
//!
//! Two more switches concern writes: `adopt: true` lets the plugin take an
//! existing object that no one controls as its child (off by default: the
//! host never takes over an object by surprise), and
//! `serviceAccountTokens: true` lets it create Secrets of type
//! `kubernetes.io/service-account-token`.
//!
//! A plugin whose `describe()` asks for more than it is granted does not
//! load, and the error lists every missing grant. Reads outside the grant are
//! a `forbidden` error to the plugin, not an empty answer, so a missing grant
//! is never mistaken for "nothing there".
//!
//! ```yaml
//! plugins:
//!   scaling:
//!     owns: []
//!     reads: [v1/Pod]
//!     patches: [postgres.operon.dev/v1alpha1/PostgresCluster]
//!     secrets: false
//!     namespaces: parent          # or: all, or a list [team-a, team-b]
//!     limits: {memoryMib: 64, timeoutMs: 500, maxChildren: 100, outputKib: 64, concurrency: 2,
//!              childKib: 1024, statusKib: 256, responseKib: 8192}
//!     adopt: false                # take over existing objects no one controls
//!     serviceAccountTokens: false # create service-account-token Secrets
//!     serviceAccount: operon-scaling  # with --impersonate; default operon-plugin-<name>
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::privileged;
use crate::contract::{Confinement, GroupKind, Gvk, ReadGrant, Registration};
use crate::engine::Limits;

/// The grants file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantsFile {
    #[serde(default)]
    pub plugins: BTreeMap<String, Grant>,
}

impl GrantsFile {
    /// Reads a grants file (YAML or JSON); errors name the file and place.
    pub fn read(path: &Path) -> anyhow::Result<GrantsFile> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read grants file {}: {e}", path.display()))?;
        GrantsFile::parse(&text).map_err(|e| anyhow::anyhow!("grants file {}: {e}", path.display()))
    }

    /// Parses a grants file's text; the error is the parser's first line
    /// (it names the place).
    pub fn parse(text: &str) -> anyhow::Result<GrantsFile> {
        serde_saphyr::from_str(text).map_err(|e| {
            let first = e.to_string().lines().next().unwrap_or_default().to_string();
            anyhow::anyhow!("{first}")
        })
    }

    /// The grant of a plugin: its entry, or the default for what it declares.
    pub fn grant_for(&self, reg: &Registration) -> Grant {
        self.plugins
            .get(&reg.name)
            .cloned()
            .unwrap_or_else(|| Grant::default_for(reg))
    }
}

/// Where a plugin may read.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Namespaces {
    /// `parent` (the tenant mode, the default) or `all`.
    Word(NamespaceWord),
    /// Exactly these namespaces (and always the parent's own).
    List(Vec<String>),
    #[default]
    #[serde(skip)]
    Parent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NamespaceWord {
    Parent,
    All,
}

/// Limits a grant may set; unset ones keep the host's defaults.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LimitsSpec {
    pub memory_mib: Option<usize>,
    pub timeout_ms: Option<u64>,
    pub fuel: Option<u64>,
    pub max_children: Option<usize>,
    /// stdout and stderr kept per call, each, in KiB (the rest is dropped
    /// and counted).
    pub output_kib: Option<usize>,
    /// Reconciles (instances) of this plugin at once: its admission limit,
    /// so a burst of its parents cannot take every slot of the shared
    /// instance pool. Default: `operon run --workers`.
    pub concurrency: Option<usize>,
    /// Largest child object, in KiB of JSON.
    pub child_kib: Option<usize>,
    /// Largest status, in KiB of JSON.
    pub status_kib: Option<usize>,
    /// Largest whole answer (children, status and patches), in KiB.
    pub response_kib: Option<usize>,
}

/// One plugin's grant. Kinds are written `group/version/Kind` or
/// `version/Kind` for the core group (`apps/v1/Deployment`, `v1/Service`);
/// the version does not matter to a grant.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Grant {
    /// Kinds it may own; `None` in a file means "what it declares".
    pub owns: Option<Vec<String>>,
    #[serde(default)]
    pub reads: Vec<String>,
    #[serde(default)]
    pub patches: Vec<String>,
    #[serde(default)]
    pub secrets: bool,
    #[serde(default)]
    pub namespaces: Namespaces,
    #[serde(default)]
    pub limits: LimitsSpec,
    /// The ServiceAccount (in the `--impersonate` namespace) this plugin's
    /// writes act as. Default: `operon-plugin-<name>`.
    pub service_account: Option<String>,
    /// May take an existing object that no one controls as a child.
    #[serde(default)]
    pub adopt: bool,
    /// May create Secrets of type `kubernetes.io/service-account-token`.
    #[serde(default)]
    pub service_account_tokens: bool,
}

/// One grant a registration asks for and does not have.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Missing {
    /// Owning a kind the grant does not list.
    #[error("owns {0}")]
    Owns(Gvk),
    /// Owning a kind that confers power, not listed by name.
    #[error("owns {kind} ({why}: list it by name under owns)")]
    OwnsPrivileged { kind: Gvk, why: &'static str },
    #[error("reads {0}")]
    Reads(Gvk),
    #[error("secrets")]
    Secrets,
    #[error("patches {0}")]
    Patches(Gvk),
}

impl Grant {
    /// The default: own what it declares (but no kind that confers power),
    /// read nothing else, parent's namespace only.
    pub fn default_for(_reg: &Registration) -> Grant {
        Grant::default()
    }

    /// Exactly what a registration asks for, in every namespace: for
    /// offline runs (`operon reconcile`) and tests, where the developer is
    /// the operator.
    pub fn as_requested(reg: &Registration) -> Grant {
        Grant {
            owns: Some(reg.owns.iter().map(Gvk::to_string).collect()),
            reads: reg
                .capabilities
                .reads
                .iter()
                .chain(reg.related.iter().map(|r| &r.kind))
                .map(Gvk::to_string)
                .collect(),
            patches: reg
                .capabilities
                .patches
                .iter()
                .map(Gvk::to_string)
                .collect(),
            secrets: reg.capabilities.secrets,
            namespaces: Namespaces::Word(NamespaceWord::All),
            limits: LimitsSpec::default(),
            service_account: None,
            adopt: false,
            service_account_tokens: false,
        }
    }

    fn owns_kinds(&self, reg: &Registration) -> Vec<GroupKind> {
        match &self.owns {
            Some(list) => entries(list),
            None => reg.owns.iter().map(GroupKind::from).collect(),
        }
    }

    /// Every grant the registration asks for and this grant lacks.
    pub fn missing(&self, reg: &Registration) -> Vec<Missing> {
        let owns = self.owns_kinds(reg);
        let reads = entries(&self.reads);
        let patches = entries(&self.patches);
        let mut missing = Vec::new();
        for gvk in &reg.owns {
            match privileged::why(gvk) {
                Some(why) if !self.explicitly_owns(gvk) => missing.push(Missing::OwnsPrivileged {
                    kind: gvk.clone(),
                    why,
                }),
                _ if !owns.contains(&gvk.group_kind()) => missing.push(Missing::Owns(gvk.clone())),
                _ => {}
            }
        }
        let wanted_reads = reg
            .capabilities
            .reads
            .iter()
            .chain(reg.related.iter().map(|r| &r.kind));
        for gvk in wanted_reads {
            let gk = gvk.group_kind();
            let granted = if gk.is_secret() {
                self.secrets
            } else {
                reads.contains(&gk) || owns.contains(&gk)
            };
            if !granted {
                missing.push(Missing::Reads(gvk.clone()));
            }
        }
        if reg.capabilities.secrets && !self.secrets {
            missing.push(Missing::Secrets);
        }
        for gvk in &reg.capabilities.patches {
            if !patches.contains(&gvk.group_kind()) {
                missing.push(Missing::Patches(gvk.clone()));
            }
        }
        missing
    }

    /// Whether the grant names `gvk` in its `owns` list: what a kind that
    /// confers power (or a cluster-scoped one) needs; "what it declares"
    /// is not enough for those.
    pub fn explicitly_owns(&self, gvk: &Gvk) -> bool {
        self.owns
            .iter()
            .flatten()
            .any(|k| GroupKind::parse_entry(k) == gvk.group_kind())
    }

    /// The read side of this grant for a registration: its parent, owned
    /// and read kinds (Secrets only with `secrets: true`, owned or not).
    pub fn read_grant(&self, reg: &Registration) -> ReadGrant {
        let mut kinds = vec![reg.parent.kind.group_kind()];
        kinds.extend(self.owns_kinds(reg));
        kinds.extend(entries(&self.reads));
        kinds.retain(|k| !k.is_secret());
        if self.secrets {
            kinds.push(GroupKind::from_api_version("v1", "Secret"));
        }
        let confinement = match &self.namespaces {
            Namespaces::Word(NamespaceWord::All) => Confinement::All,
            Namespaces::Word(NamespaceWord::Parent) | Namespaces::Parent => Confinement::Parent,
            Namespaces::List(list) => Confinement::List(list.clone()),
        };
        ReadGrant::new(kinds, confinement)
    }

    /// The host's limits with this grant's overrides.
    pub fn limits(&self, base: &Limits) -> Limits {
        let l = &self.limits;
        Limits {
            memory_bytes: l.memory_mib.map_or(base.memory_bytes, |m| m << 20),
            timeout: l.timeout_ms.map_or(base.timeout, Duration::from_millis),
            fuel: l.fuel.or(base.fuel),
            output_bytes: l.output_kib.map_or(base.output_bytes, |k| k << 10),
            max_children: l.max_children.unwrap_or(base.max_children),
            child_bytes: l.child_kib.map_or(base.child_bytes, |k| k << 10),
            status_bytes: l.status_kib.map_or(base.status_bytes, |k| k << 10),
            response_bytes: l.response_kib.map_or(base.response_bytes, |k| k << 10),
        }
    }
}

/// Grant entries as kinds.
fn entries(list: &[String]) -> Vec<GroupKind> {
    list.iter().map(|k| GroupKind::parse_entry(k)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::bindings::operon::reconciler::types::Capabilities;
    use crate::contract::{NotGranted, ParentKind};

    fn gvk(g: &str, v: &str, k: &str) -> Gvk {
        Gvk {
            group: g.into(),
            version: v.into(),
            kind: k.into(),
        }
    }

    fn reg() -> Registration {
        Registration {
            name: "scaling".into(),
            version: "0.1.0".into(),
            parent: ParentKind {
                kind: gvk("postgres.operon.dev", "v1alpha1", "PostgresScalingPolicy"),
                namespaced: true,
            },
            owns: vec![gvk("", "v1", "ConfigMap")],
            related: vec![],
            finalizer: false,
            crds: vec![],
            capabilities: Capabilities {
                reads: vec![gvk("", "v1", "Pod")],
                patches: vec![gvk("postgres.operon.dev", "v1alpha1", "PostgresCluster")],
                secrets: true,
            },
        }
    }

    const FILE: &str = "plugins:\n  scaling:\n    reads: [v1/Pod]\n    patches: [postgres.operon.dev/v1/PostgresCluster]\n    secrets: true\n    namespaces: [shared]\n    limits: {memoryMib: 64, timeoutMs: 500, maxChildren: 10}\n";

    #[test]
    fn the_default_grant_lists_everything_missing() {
        let missing = GrantsFile::default().grant_for(&reg()).missing(&reg());
        let missing: Vec<String> = missing.iter().map(Missing::to_string).collect();
        assert_eq!(
            missing,
            [
                "reads v1/Pod",
                "secrets",
                "patches postgres.operon.dev/v1alpha1/PostgresCluster"
            ]
        );
    }

    #[test]
    fn a_file_grants_kinds_namespaces_and_limits() {
        let file: GrantsFile = serde_saphyr::from_str(FILE).unwrap();
        let grant = file.grant_for(&reg());
        assert!(
            grant.missing(&reg()).is_empty(),
            "{:?}",
            grant.missing(&reg())
        );
        let limits = grant.limits(&Limits::default());
        assert_eq!((limits.memory_bytes, limits.max_children), (64 << 20, 10));
        assert_eq!(limits.timeout, Duration::from_millis(500));
        let reads = grant.read_grant(&reg());
        assert!(reads.check("v1", "Pod", Some("team"), Some("team")).is_ok());
        assert!(
            reads
                .check("v1", "Pod", Some("shared"), Some("team"))
                .is_ok()
        );
        assert_eq!(
            reads.check("v1", "Pod", Some("other"), Some("team")),
            Err(NotGranted::Namespace("other".into()))
        );
        assert_eq!(
            reads.check("v1", "Pod", None, Some("team")),
            Err(NotGranted::AllNamespaces)
        );
        assert!(
            reads
                .check("v1", "Secret", Some("team"), Some("team"))
                .is_ok()
        );
        assert!(matches!(
            reads.check("apps/v1", "Deployment", Some("team"), Some("team")),
            Err(NotGranted::Kind { .. })
        ));
    }

    #[test]
    fn kinds_that_confer_power_need_to_be_named() {
        let mut reg = reg();
        reg.owns
            .push(gvk("rbac.authorization.k8s.io", "v1", "RoleBinding"));
        let missing = GrantsFile::default().grant_for(&reg).missing(&reg);
        assert_eq!(
            missing[0].to_string(),
            "owns rbac.authorization.k8s.io/v1/RoleBinding (an RBAC RoleBinding can bind any role, \
             even cluster-admin, to any user: list it by name under owns)"
        );
        // A file entry that leaves `owns` out means "what it declares": still not enough.
        let file: GrantsFile =
            serde_saphyr::from_str("plugins:\n  scaling:\n    secrets: true\n").unwrap();
        assert!(matches!(
            file.grant_for(&reg).missing(&reg)[0],
            Missing::OwnsPrivileged { .. }
        ));
        let file: GrantsFile = serde_saphyr::from_str(
            "plugins:\n  scaling:\n    owns: [v1/ConfigMap, rbac.authorization.k8s.io/v1/RoleBinding]\n",
        )
        .unwrap();
        let missing = file.grant_for(&reg).missing(&reg);
        assert!(
            !missing
                .iter()
                .any(|m| matches!(m, Missing::Owns(_) | Missing::OwnsPrivileged { .. })),
            "{missing:?}"
        );
        // Offline runs grant what is asked, privileged kinds included.
        assert!(Grant::as_requested(&reg).missing(&reg).is_empty());
    }

    #[test]
    fn owning_secrets_does_not_grant_reading_them() {
        let mut reg = reg();
        reg.owns.push(gvk("", "v1", "Secret"));
        reg.capabilities = Capabilities {
            reads: vec![],
            patches: vec![],
            secrets: false,
        };
        let grant = GrantsFile::default().grant_for(&reg);
        assert!(grant.missing(&reg).is_empty());
        let reads = grant.read_grant(&reg);
        assert!(matches!(
            reads.check("v1", "Secret", Some("team"), Some("team")),
            Err(NotGranted::Kind { .. })
        ));
        assert!(
            reads
                .check("v1", "ConfigMap", Some("team"), Some("team"))
                .is_ok()
        );
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = serde_saphyr::from_str::<GrantsFile>("plugins:\n  x:\n    read: [v1/Pod]\n")
            .unwrap_err();
        assert!(err.to_string().contains("read"), "{err}");
    }

    #[test]
    fn the_parent_namespace_word_and_all() {
        let parent: Grant =
            serde_saphyr::from_str("namespaces: parent\nreads: [v1/Pod]\n").unwrap();
        let reads = parent.read_grant(&reg());
        assert!(
            reads
                .check("v1", "Pod", Some("other"), Some("team"))
                .is_err()
        );
        let all: Grant = serde_saphyr::from_str("namespaces: all\nreads: [v1/Pod]\n").unwrap();
        assert!(
            all.read_grant(&reg())
                .check("v1", "Pod", None, Some("team"))
                .is_ok()
        );
    }
}
