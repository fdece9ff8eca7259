//! Refused builds: why (a [`RejectionKind`]), and where a refusal is told —
//! a log line, `operon_plugin_rejected_builds_total{reason}`, an event on
//! the host's Pod and the list `operon plugins` shows.

use std::time::SystemTime;

use serde::Serialize;

use super::{KEEP_REJECTED, Supervisor};
use crate::contract::EventType;
use crate::plugin::LoadError;
use crate::plugin::dir::{FileId, Role};
use crate::plugin::revisions::unix_seconds;

/// Why a build was refused: the `kind` `operon plugins` shows and the
/// `reason` label of `operon_plugin_rejected_builds_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RejectionKind {
    Unreadable,
    NotAComponent,
    Contract,
    Describe,
    Registration,
    NotGranted,
    /// The build names another plugin than the file holds.
    NameChanged,
    /// Another file already holds a plugin of that name.
    DuplicateName,
    /// A candidate without an active plugin to shadow.
    NoActivePlugin,
    /// Its CRDs or its controller did not start.
    Start,
}

impl RejectionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RejectionKind::Unreadable => "unreadable",
            RejectionKind::NotAComponent => "not-a-component",
            RejectionKind::Contract => "contract",
            RejectionKind::Describe => "describe",
            RejectionKind::Registration => "registration",
            RejectionKind::NotGranted => "not-granted",
            RejectionKind::NameChanged => "name-changed",
            RejectionKind::DuplicateName => "duplicate-name",
            RejectionKind::NoActivePlugin => "no-active-plugin",
            RejectionKind::Start => "start",
        }
    }

    /// The kind of a load failure.
    pub fn of_load(e: &LoadError) -> RejectionKind {
        match e {
            LoadError::Read { .. } => RejectionKind::Unreadable,
            LoadError::NotComponent(_) => RejectionKind::NotAComponent,
            LoadError::Contract(_) => RejectionKind::Contract,
            LoadError::Describe(_) => RejectionKind::Describe,
            LoadError::Registration(_) => RejectionKind::Registration,
            LoadError::NotGranted { .. } => RejectionKind::NotGranted,
        }
    }

    /// The kind of a controller that did not start: a grant found missing
    /// once discovery told a kind's scope, or anything else.
    pub(super) fn of_start(e: &anyhow::Error) -> RejectionKind {
        match e.downcast_ref::<LoadError>() {
            Some(l) => RejectionKind::of_load(l),
            None => RejectionKind::Start,
        }
    }
}

/// A refused build, as `operon plugins` shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Rejection {
    file: String,
    kind: RejectionKind,
    reason: String,
    at: f64,
}

impl Supervisor {
    pub(super) fn reject(&mut self, id: &FileId, kind: RejectionKind, reason: String) {
        let reason = crate::bounded::message(&reason).into_owned();
        let slot = self.slots.get(&id.stem);
        let plugin = slot.map_or(id.stem.clone(), |s| s.name.clone());
        let keeps = match slot.and_then(|s| s.history.active()) {
            Some(r) if id.role == Role::Active => format!(
                "; plugin {plugin} stays on revision {} ({})",
                r.number,
                r.label()
            ),
            _ => String::new(),
        };
        tracing::warn!(plugin = %plugin, file = id.file_name(), kind = kind.as_str(), "rejected {}: {reason}{keeps}", id.file_name());
        self.shared.metrics.plugin_rejected(&plugin, kind.as_str());
        self.host_event(
            EventType::Warning,
            "PluginRejected",
            format!("rejected {}: {reason}{keeps}", id.file_name()),
        );
        let rejection = Rejection {
            file: id.file_name(),
            kind,
            reason,
            at: unix_seconds(SystemTime::now()),
        };
        let list = match self.slots.get_mut(&id.stem) {
            Some(s) => &mut s.rejected,
            None => &mut self.orphans,
        };
        list.push_back(rejection);
        while list.len() > KEEP_REJECTED {
            list.pop_front();
        }
    }
}
