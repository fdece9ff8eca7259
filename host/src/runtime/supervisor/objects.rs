//! Plugins declared as objects (`ClusterReconcilerPlugin`,
//! `ReconcilerPlugin`, see `packages`): the package controller fetches,
//! verifies and compiles each revision off the hot path, then offers it
//! here, where the directory's slot machinery runs it — swap with drain,
//! probation, automatic rollback, shadow candidates, `operon plugins`.
//!
//! A slot of an object is keyed by the object (`crp/<name>`,
//! `rp/<namespace>/<name>`; no file stem holds a `/`). The package
//! controller asks what runs ([`Probe`]) to write revisions' health and to
//! follow an automatic rollback in the objects.

use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::{mpsc, oneshot};

use super::swap::Switch;
use super::{Command, SlotSpec, Supervisor};
use crate::plugin::Plugin;
use crate::plugin::revisions::{State, TrackerView};

/// What the package controller asks of the supervisor.
pub enum ObjectCommand {
    /// Make this (prepared) build the slot's active revision.
    Offer {
        key: String,
        plugin: Arc<Plugin>,
        revision: u32,
        spec: SlotSpec,
        reply: oneshot::Sender<Result<(), String>>,
    },
    /// The object is gone: unload the plugin (its objects stay).
    Withdraw { key: String },
    /// Set or clear the shadow candidate.
    Shadow {
        key: String,
        plugin: Option<Arc<Plugin>>,
    },
    Probe {
        key: String,
        reply: oneshot::Sender<Option<Probe>>,
    },
}

/// What runs in a slot now.
#[derive(Debug, Clone)]
pub struct Probe {
    /// The active revision's component digest.
    pub active: Option<String>,
    /// Component digests left because they failed, with why.
    pub rolled_back: Vec<(String, String)>,
    /// The active revision's figures.
    pub tracker: Option<TrackerView>,
}

/// The package controller's way in.
#[derive(Clone)]
pub struct ObjectHandle(mpsc::UnboundedSender<Command>);

impl ObjectHandle {
    fn send(&self, command: ObjectCommand) {
        let _ = self.0.send(Command::Object(command));
    }

    pub async fn offer(
        &self,
        key: &str,
        plugin: Arc<Plugin>,
        revision: u32,
        spec: SlotSpec,
    ) -> Result<(), String> {
        let (reply, answer) = oneshot::channel();
        self.send(ObjectCommand::Offer {
            key: key.into(),
            plugin,
            revision,
            spec,
            reply,
        });
        answer
            .await
            .unwrap_or_else(|_| Err("the host is shutting down".into()))
    }

    pub fn withdraw(&self, key: &str) {
        self.send(ObjectCommand::Withdraw { key: key.into() });
    }

    pub fn shadow(&self, key: &str, plugin: Option<Arc<Plugin>>) {
        self.send(ObjectCommand::Shadow {
            key: key.into(),
            plugin,
        });
    }

    pub async fn probe(&self, key: &str) -> Option<Probe> {
        let (reply, answer) = oneshot::channel();
        self.send(ObjectCommand::Probe {
            key: key.into(),
            reply,
        });
        answer.await.ok().flatten()
    }
}

impl Supervisor {
    /// The package controller's handle.
    pub fn objects(&self) -> ObjectHandle {
        ObjectHandle(self.tx.clone())
    }

    pub(super) async fn object(&mut self, command: ObjectCommand) {
        match command {
            ObjectCommand::Offer {
                key,
                plugin,
                revision,
                spec,
                reply,
            } => {
                let result = self.offer(&key, plugin, revision, spec).await;
                let _ = reply.send(result.map_err(|e| format!("{e:#}")));
            }
            ObjectCommand::Withdraw { key } => self.withdraw(&key),
            ObjectCommand::Shadow { key, plugin } => {
                if let Some(slot) = self.slots.get(&key) {
                    let candidate =
                        plugin.map(|p| Arc::new(crate::plugin::shadow::Candidate::new(p)));
                    slot.shadow.set(candidate);
                }
            }
            ObjectCommand::Probe { key, reply } => {
                let _ = reply.send(self.probe(&key));
            }
        }
    }

    async fn offer(
        &mut self,
        key: &str,
        plugin: Arc<Plugin>,
        revision: u32,
        spec: SlotSpec,
    ) -> anyhow::Result<()> {
        let Some(slot) = self.slots.get(key) else {
            let taken = self
                .slots
                .iter()
                .find(|(_, s)| s.name == plugin.name() && s.spec.tenant == spec.tenant);
            if let Some((other, _)) = taken {
                anyhow::bail!(
                    "a plugin named {} is already loaded from {other}",
                    plugin.name()
                );
            }
            if spec.tenant.is_none() {
                self.install_crds(&plugin).await?;
            }
            let name = plugin.name().to_string();
            self.add_slot_numbered(key, plugin, SystemTime::now(), spec, Some(revision))
                .await?;
            tracing::info!(plugin = %name, object = key, "added plugin {name} (revision {revision})");
            return Ok(());
        };
        if slot.name != plugin.name() {
            anyhow::bail!(
                "the new revision names its plugin {}, but {key} runs plugin {}",
                plugin.name(),
                slot.name
            );
        }
        if slot.history.active().map(|r| &r.plugin.info().digest) == Some(&plugin.info().digest) {
            return Ok(());
        }
        let plugin = slot
            .history
            .by_digest(&plugin.info().digest)
            .map(|r| r.plugin.clone())
            .unwrap_or(plugin);
        let how = Switch::Build {
            detected_at: SystemTime::now(),
            number: Some(revision),
        };
        self.switch(key, plugin, how).await
    }

    fn withdraw(&mut self, key: &str) {
        let Some(slot) = self.slots.remove(key) else {
            return;
        };
        tracing::info!(plugin = %slot.name, object = key, "plugin object deleted: unloading the plugin; its objects stay as they are");
        self.shared.metrics.plugin_unloaded(&slot.name);
        let grace = self.options.grace;
        tokio::spawn(async move { slot.controller.stop(grace).await });
    }

    fn probe(&self, key: &str) -> Option<Probe> {
        let slot = self.slots.get(key)?;
        let active = slot.history.active();
        Some(Probe {
            active: active.map(|r| r.plugin.info().digest.clone()),
            rolled_back: slot
                .history
                .iter()
                .filter_map(|r| match &r.state {
                    State::RolledBack(why) => Some((r.plugin.info().digest.clone(), why.clone())),
                    _ => None,
                })
                .collect(),
            tracker: active.map(|r| r.tracker.view()),
        })
    }
}
