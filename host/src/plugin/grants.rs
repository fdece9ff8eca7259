//! Which kinds a plugin may read through `cluster.get`/`cluster.list`.
//!
//! Default deny: a plugin reads its parent kind, the kinds it owns and the
//! kinds it requested in `capabilities.reads`; Secrets only when it owns them
//! or requested `capabilities.secrets`. Anything else is a `forbidden` error
//! to the plugin, not an empty answer, so a missing grant is never mistaken
//! for "nothing there".

use crate::contract::{Gvk, Registration};

/// The kinds one plugin may read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReadGrant {
    /// (group, kind) pairs; versions are not part of a grant.
    kinds: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("reads of {kind} ({api_version}) are not granted to this plugin")]
pub struct NotGranted {
    pub api_version: String,
    pub kind: String,
}

fn is_secret(gvk: &Gvk) -> bool {
    gvk.group.is_empty() && gvk.kind == "Secret"
}

impl ReadGrant {
    /// Grants nothing.
    pub fn none() -> ReadGrant {
        ReadGrant::default()
    }

    /// What a registration may read when the host operator grants exactly
    /// what it asks for.
    pub fn from_registration(reg: &Registration) -> ReadGrant {
        let mut grant = ReadGrant::none();
        let requested = reg.capabilities.reads.iter().filter(|g| {
            // A Secret read needs the separate `secrets` capability.
            !is_secret(g) || reg.capabilities.secrets
        });
        let related = reg.related.iter().map(|r| &r.kind);
        for gvk in std::iter::once(&reg.parent.kind)
            .chain(&reg.owns)
            .chain(related)
            .chain(requested)
        {
            grant.allow(gvk);
        }
        grant
    }

    pub fn allow(&mut self, gvk: &Gvk) {
        let key = (gvk.group.clone(), gvk.kind.clone());
        if !self.kinds.contains(&key) {
            self.kinds.push(key);
        }
    }

    pub fn check(&self, api_version: &str, kind: &str) -> Result<(), NotGranted> {
        let group = api_version.split_once('/').map_or("", |(g, _)| g);
        if self.kinds.iter().any(|(g, k)| g == group && k == kind) {
            Ok(())
        } else {
            Err(NotGranted {
                api_version: api_version.to_string(),
                kind: kind.to_string(),
            })
        }
    }
}
