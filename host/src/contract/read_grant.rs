//! What one plugin may read through its `cluster` import, checked on every
//! `cluster.get/list` before the read reaches a [`super::ClusterReader`].
//!
//! The host operator's grants (`plugin::GrantsFile`) decide it; the engine
//! and this contract only consume it, so it lives here, beside the
//! interface it confines.

use super::GroupKind;

/// Where a plugin may read, relative to the parent being reconciled.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Confinement {
    /// The parent's namespace only (the tenant mode, the default).
    #[default]
    Parent,
    /// Every namespace, and across namespaces.
    All,
    /// The parent's namespace and these.
    List(Vec<String>),
}

/// What one plugin may read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReadGrant {
    kinds: Vec<GroupKind>,
    confinement: Confinement,
}

/// A read refused by the grant; the plugin gets it as a `forbidden` error,
/// never an empty answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NotGranted {
    #[error("reads of {kind} ({api_version}) are not granted to this plugin")]
    Kind { api_version: String, kind: String },
    #[error("reads in namespace {0} are not granted to this plugin")]
    Namespace(String),
    #[error("reads across all namespaces are not granted to this plugin")]
    AllNamespaces,
}

impl ReadGrant {
    /// Grants reads of `kinds` (versions do not matter) where
    /// `confinement` allows.
    pub fn new(mut kinds: Vec<GroupKind>, confinement: Confinement) -> ReadGrant {
        kinds.sort();
        kinds.dedup();
        ReadGrant { kinds, confinement }
    }

    /// Grants nothing.
    pub fn none() -> ReadGrant {
        ReadGrant::default()
    }

    /// Whether a read of `kind` in `namespace` (`None`: all namespaces or a
    /// cluster-scoped kind) is allowed, for a parent in `parent_ns`.
    pub fn check(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        parent_ns: Option<&str>,
    ) -> Result<(), NotGranted> {
        let wanted = GroupKind::from_api_version(api_version, kind);
        if self.kinds.binary_search(&wanted).is_err() {
            return Err(NotGranted::Kind {
                api_version: api_version.to_string(),
                kind: kind.to_string(),
            });
        }
        let allowed = |ns: &str| match &self.confinement {
            Confinement::All => true,
            Confinement::Parent => Some(ns) == parent_ns,
            Confinement::List(list) => Some(ns) == parent_ns || list.iter().any(|n| n == ns),
        };
        match namespace {
            Some(ns) if allowed(ns) => Ok(()),
            Some(ns) => Err(NotGranted::Namespace(ns.to_string())),
            // A cluster-scoped parent has no namespace to be confined to.
            None if parent_ns.is_none() => Ok(()),
            None if self.confinement == Confinement::All => Ok(()),
            None => Err(NotGranted::AllNamespaces),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(entries: &[&str]) -> Vec<GroupKind> {
        entries.iter().map(|e| GroupKind::parse_entry(e)).collect()
    }

    #[test]
    fn kinds_and_namespaces_are_confined() {
        let grant = ReadGrant::new(
            kinds(&["v1/Pod", "apps/v1/Deployment"]),
            Confinement::List(vec!["shared".into()]),
        );
        assert!(grant.check("v1", "Pod", Some("team"), Some("team")).is_ok());
        assert!(
            grant
                .check("apps/v1beta1", "Deployment", Some("shared"), Some("team"))
                .is_ok()
        );
        assert_eq!(
            grant.check("v1", "Pod", Some("other"), Some("team")),
            Err(NotGranted::Namespace("other".into()))
        );
        assert_eq!(
            grant.check("v1", "Pod", None, Some("team")),
            Err(NotGranted::AllNamespaces)
        );
        assert!(matches!(
            grant.check("v1", "Secret", Some("team"), Some("team")),
            Err(NotGranted::Kind { .. })
        ));
        let all = ReadGrant::new(kinds(&["v1/Pod"]), Confinement::All);
        assert!(all.check("v1", "Pod", None, Some("team")).is_ok());
        // A cluster-scoped parent reads cluster-wide within its kinds.
        assert!(grant.check("v1", "Pod", None, None).is_ok());
    }
}
