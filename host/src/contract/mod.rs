//! The host side of the `operon:reconciler` WIT contract.
//!
//! [`bindings`] is generated from `wit/` by wasmtime's `bindgen!`; the rest of
//! the host never touches those raw types directly but goes through the
//! decoded, JSON-parsed forms in [`outcome`] so that a malformed answer from a
//! plugin is caught once, here, with a message naming the offending part.

pub mod bindings;
pub mod cluster;
pub mod outcome;
pub mod read_grant;
pub mod selector;

pub use bindings::operon::reconciler::types::{
    ClusterError, ConfigEntry, Event, EventType, Gvk, LogLevel, ObjectRef, ParentKind, Patch,
    PatchType, Registration, RelatedKind, RelatedMapping, Request, Response,
};
pub use cluster::{ClusterReader, ObjectSet};
pub use outcome::{Outcome, PluginError};
pub use read_grant::{Confinement, NotGranted, ReadGrant};

/// The WIT package every component must target, as named in error messages.
pub const PACKAGE: &str = "operon:reconciler@0.1.0";

/// The exports a reconciler component must provide, in the order they are
/// checked, so that a component built against another world is told exactly
/// which one is missing.
pub const REQUIRED_EXPORTS: [&str; 3] = ["describe", "reconcile", "map-related"];

/// A kind without its version: what grants, caches and ownership compare,
/// since the API server converts between the versions of one kind.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupKind {
    /// Empty for the core group.
    pub group: String,
    pub kind: String,
}

impl GroupKind {
    /// The kind named by an `apiVersion` and a kind.
    pub fn from_api_version(api_version: &str, kind: &str) -> GroupKind {
        GroupKind {
            group: group_of(api_version).to_string(),
            kind: kind.to_string(),
        }
    }

    /// A grant entry: `group/version/Kind`, or `version/Kind` for the core
    /// group (`apps/v1/Deployment`, `v1/Service`); the version does not
    /// matter.
    pub fn parse_entry(text: &str) -> GroupKind {
        let parts: Vec<&str> = text.split('/').collect();
        let (group, kind) = match parts.as_slice() {
            [group, _version, kind] => (*group, *kind),
            [_version, kind] => ("", *kind),
            _ => ("", text),
        };
        GroupKind {
            group: group.to_string(),
            kind: kind.to_string(),
        }
    }

    pub fn is_secret(&self) -> bool {
        self.group.is_empty() && self.kind == "Secret"
    }
}

impl From<&Gvk> for GroupKind {
    fn from(gvk: &Gvk) -> GroupKind {
        GroupKind {
            group: gvk.group.clone(),
            kind: gvk.kind.clone(),
        }
    }
}

impl std::fmt::Display for GroupKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.group.as_str() {
            "" => f.write_str(&self.kind),
            group => write!(f, "{}.{group}", self.kind),
        }
    }
}

/// The group of an `apiVersion` (`apps/v1` → `apps`, `v1` → the core
/// group, empty).
pub fn group_of(api_version: &str) -> &str {
    api_version.split_once('/').map_or("", |(g, _)| g)
}

impl Gvk {
    /// The kind without its version.
    pub fn group_kind(&self) -> GroupKind {
        GroupKind::from(self)
    }

    /// The `apiVersion` string of this kind: `group/version`, or `version`
    /// for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// Parses an `apiVersion` plus kind into a [`Gvk`].
    pub fn from_api_version(api_version: &str, kind: &str) -> Gvk {
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g.to_string(), v.to_string()),
            None => (String::new(), api_version.to_string()),
        };
        Gvk {
            group,
            version,
            kind: kind.to_string(),
        }
    }

    /// Same group and kind; versions may differ (the API server converts).
    pub fn same_kind(&self, other: &Gvk) -> bool {
        self.group == other.group && self.kind == other.kind
    }
}

impl std::fmt::Display for Gvk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.api_version(), self.kind)
    }
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {}/{}", self.kind, ns, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

impl Request {
    /// Builds a request from already-serialized JSON texts.
    pub fn new(parent: String, observed: Vec<String>, config: Vec<(String, String)>) -> Request {
        Request {
            parent,
            observed,
            finalizing: false,
            config: config
                .into_iter()
                .map(|(key, value)| ConfigEntry { key, value })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_version_round_trips_core_and_grouped_kinds() {
        let core = Gvk::from_api_version("v1", "Service");
        assert_eq!(core.group, "");
        assert_eq!(core.api_version(), "v1");
        let apps = Gvk::from_api_version("apps/v1", "Deployment");
        assert_eq!(apps.group, "apps");
        assert_eq!(apps.to_string(), "apps/v1/Deployment");
    }
}
