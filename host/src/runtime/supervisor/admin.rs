//! The supervisor's side of the admin protocol (`operon plugins`): the
//! handle the server sends requests through, and the answers, as views of
//! the slots or [`AdminError`]s the server turns into HTTP codes.

use futures::future::BoxFuture;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

use super::swap::Switch;
use super::{Command, Slot, Supervisor};
use crate::plugin::revisions::{Revision, unix_seconds};
use crate::server::{Admin, AdminError, AdminRequest};

/// Sends admin requests (`operon plugins`, through the server's admin
/// routes) to the supervisor's task, which answers them between the changes
/// it serializes.
#[derive(Clone)]
pub struct AdminHandle(pub(super) mpsc::UnboundedSender<Command>);

impl std::fmt::Debug for AdminHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminHandle")
    }
}

impl Admin for AdminHandle {
    /// A supervisor that has stopped (or stops before answering) is
    /// [`AdminError::ShuttingDown`].
    fn ask(&self, request: AdminRequest) -> BoxFuture<'_, Result<Value, AdminError>> {
        let (tx, rx) = oneshot::channel();
        let sent = self.0.send(Command::Admin(request, tx)).is_ok();
        Box::pin(async move {
            if !sent {
                return Err(AdminError::ShuttingDown);
            }
            rx.await.unwrap_or(Err(AdminError::ShuttingDown))
        })
    }
}

impl Supervisor {
    /// An admin request (`operon plugins`); what went wrong is an
    /// [`AdminError`], which the server turns into an HTTP status.
    pub(super) async fn answer(&mut self, request: AdminRequest) -> Result<Value, AdminError> {
        match request {
            AdminRequest::List => Ok(json!({
                "plugins": self.slots.iter().map(|(stem, s)| slot_view(stem, s)).collect::<Vec<_>>(),
                "rejected": self.orphans,
            })),
            AdminRequest::Get(name) => {
                let (stem, slot) = self.slot_named(&name)?;
                Ok(slot_view(stem, slot))
            }
            AdminRequest::Rollback { name, to } => self.rollback(&name, to).await,
            AdminRequest::Record { name, count } => {
                let recorder = &self.slot_named(&name)?.1.recorder;
                Ok(json!({ "progress": recorder.start(count) }))
            }
            AdminRequest::Recorded(name) => {
                let recorder = &self.slot_named(&name)?.1.recorder;
                Ok(json!({ "progress": recorder.progress(), "records": recorder.records() }))
            }
            AdminRequest::StopRecording(name) => {
                let recorder = &self.slot_named(&name)?.1.recorder;
                Ok(json!({ "progress": recorder.stop() }))
            }
        }
    }

    /// The slot keyed `name` (a plugin object's `crp/<name>`,
    /// `rp/<namespace>/<name>`: tenants' plugins may share a plugin name),
    /// else the slot of the plugin called `name` (not the file's stem).
    fn slot_named(&self, name: &str) -> Result<(&String, &Slot), AdminError> {
        let found = self
            .slots
            .get_key_value(name)
            .filter(|(k, _)| k.contains('/'))
            .or_else(|| self.slots.iter().find(|(_, s)| s.name == name));
        found.ok_or_else(|| AdminError::NoSuchPlugin { name: name.into() })
    }

    /// `operon plugins rollback`: back to revision `to`, or to the one
    /// before the active revision.
    async fn rollback(&mut self, name: &str, to: Option<u32>) -> Result<Value, AdminError> {
        let (stem, slot) = self.slot_named(name)?;
        let stem = stem.clone();
        let history = &slot.history;
        let active = history.active().map(|r| r.number);
        let target = match to {
            Some(n) => history.get(n).ok_or_else(|| AdminError::NoSuchRevision {
                name: name.into(),
                revision: n,
                kept: history.iter().map(|r| r.number).collect(),
            })?,
            None => history
                .previous()
                .ok_or_else(|| AdminError::NoEarlierRevision { name: name.into() })?,
        };
        if Some(target.number) == active {
            return Err(AdminError::AlreadyActive {
                name: name.into(),
                revision: target.number,
            });
        }
        let (number, plugin) = (target.number, target.plugin.clone());
        let why = format!(
            "revision {} rolled back by hand (operon plugins rollback)",
            active.unwrap_or_default()
        );
        let back = Switch::Back {
            number,
            trigger: "manual",
            why,
        };
        self.switch(&stem, plugin, back)
            .await
            .map_err(|cause| AdminError::RollbackFailed {
                name: name.into(),
                cause,
            })?;
        Ok(json!({
            "message": format!("plugin {name} rolled back to revision {number}"),
            "plugin": slot_view(&stem, &self.slots[&stem]),
        }))
    }
}

fn revision_view(r: &Revision) -> Value {
    let info = r.plugin.info();
    let mut v = json!({
        "number": r.number,
        "digest": info.digest,
        "version": r.plugin.registration().version,
        "sizeBytes": info.size_bytes,
        "compileMs": info.compile_time.as_secs_f64() * 1000.0,
        "fromCache": info.from_cache,
        "detectedAt": unix_seconds(r.detected_at),
        "activatedAt": unix_seconds(r.activated_at),
        "tracker": r.tracker.view(),
    });
    let state = serde_json::to_value(&r.state).unwrap_or(Value::Null);
    if let (Some(obj), Some(s)) = (v.as_object_mut(), state.as_object()) {
        obj.extend(s.clone());
    }
    v
}

fn slot_view(stem: &str, s: &Slot) -> Value {
    json!({
        "name": s.name,
        // Object keys hold a '/', which no file stem does.
        "file": (!stem.contains('/')).then(|| format!("{stem}.wasm")),
        "object": stem.contains('/').then_some(stem),
        "active": s.history.active().map(|r| r.number),
        "revisions": s.history.iter().map(revision_view).collect::<Vec<_>>(),
        "candidate": s.shadow.get().map(|c| c.view()),
        "rejected": s.rejected,
    })
}
