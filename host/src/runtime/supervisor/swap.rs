//! Loads that finished, and what they change: a new plugin, a new revision
//! of a running one (started first, then the old one drained), a shadow
//! candidate, a removal, an automatic rollback.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use anyhow::Context as _;

use super::{Command, RejectionKind, Slot, SlotSpec, Supervisor};
use crate::contract::EventType;
use crate::plugin::dir::{FileId, Role};
use crate::plugin::recorder::Recorder;
use crate::plugin::revisions::{History, Tracker};
use crate::plugin::shadow::{Candidate, ShadowSlot};
use crate::plugin::{LoadError, Plugin};
use crate::runtime::controller::{Controller, RevisionHooks};
use crate::runtime::identity::Identity;

impl Supervisor {
    pub(super) async fn loaded(
        &mut self,
        id: FileId,
        generation: u64,
        result: Result<Plugin, LoadError>,
    ) {
        let Some(state) = self.files.get_mut(&id) else {
            return; // Removed meanwhile.
        };
        state.loading = false;
        if state.generation != generation {
            // Changed again while loading: load the newer bytes.
            self.start_load(id);
            return;
        }
        let detected_at = state.detected_at.unwrap_or_else(SystemTime::now);
        let plugin = match result {
            Ok(p) => p,
            Err(e) => {
                let settle = self.options.swap.settle;
                let unchanged = self.dir.unchanged_for(&id).unwrap_or(settle);
                if unchanged < settle {
                    // Maybe a copy in progress: judge once it stops changing.
                    tracing::debug!(file = id.file_name(), error = %e, "not loadable yet; trying again once the file has not changed for {settle:?}");
                    state.retry_at = Some(Instant::now() + (settle - unchanged));
                    return;
                }
                let kind = RejectionKind::of_load(&e);
                self.reject(&id, kind, e.to_string());
                return;
            }
        };
        match id.role {
            Role::Active => self.activate_build(&id, plugin, detected_at).await,
            Role::Candidate => self.place_candidate(&id, plugin),
        }
    }

    /// A build of an active file: a new plugin, or a new revision of the
    /// one the file holds.
    async fn activate_build(&mut self, id: &FileId, plugin: Plugin, detected_at: SystemTime) {
        let plugin = Arc::new(plugin);
        let Some(slot) = self.slots.get(&id.stem) else {
            return self.add_plugin(id, plugin, detected_at).await;
        };
        if plugin.name() != slot.name {
            let reason = format!(
                "the new build names its plugin {}, but {} holds plugin {}; to rename, remove the file and add one for the new plugin",
                plugin.name(),
                id.file_name(),
                slot.name
            );
            self.reject(id, RejectionKind::NameChanged, reason);
            return;
        }
        let active_digest = slot
            .history
            .active()
            .map(|r| r.plugin.info().digest.clone());
        if active_digest.as_deref() == Some(plugin.info().digest.as_str()) {
            tracing::debug!(plugin = %slot.name, "file rewritten with the running build; nothing to do");
            return;
        }
        // A build seen before runs from its kept revision.
        let plugin = slot
            .history
            .by_digest(&plugin.info().digest)
            .map(|r| r.plugin.clone())
            .unwrap_or(plugin);
        let stem = id.stem.clone();
        if let Err(e) = self
            .switch(
                &stem,
                plugin,
                Switch::Build {
                    detected_at,
                    number: None,
                },
            )
            .await
        {
            self.reject(id, RejectionKind::of_start(&e), format!("{e:#}"));
        }
    }

    /// A plugin no file held before: its CRDs, its controller, and a
    /// candidate that was waiting for it.
    async fn add_plugin(&mut self, id: &FileId, plugin: Arc<Plugin>, detected_at: SystemTime) {
        if let Some((stem, _)) = self.slots.iter().find(|(_, s)| s.name == plugin.name()) {
            let reason = format!(
                "a plugin named {} is already loaded from {stem}.wasm",
                plugin.name()
            );
            self.reject(id, RejectionKind::DuplicateName, reason);
            return;
        }
        let added = match self.install_crds(&plugin).await {
            Ok(()) => {
                self.add_slot(
                    &id.stem,
                    plugin.clone(),
                    detected_at,
                    self.dir_spec(&plugin),
                )
                .await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = added {
            self.reject(id, RejectionKind::of_start(&e), format!("{e:#}"));
            return;
        }
        let c = self.slots[&id.stem].controller.clone();
        tokio::spawn(async move { c.wait_synced().await });
        tracing::info!(
            plugin = plugin.name(),
            file = id.file_name(),
            "added plugin {} (revision 1, {})",
            plugin.name(),
            plugin.info().short_digest()
        );
        self.host_event(
            EventType::Normal,
            "PluginAdded",
            format!("plugin {} added from {}", plugin.name(), id.file_name()),
        );
        // A candidate placed before its plugin: load it now.
        let candidate = FileId {
            stem: id.stem.clone(),
            role: Role::Candidate,
        };
        if self.dir.contains(&candidate) && !self.files.get(&candidate).is_some_and(|s| s.loading) {
            self.files.entry(candidate.clone()).or_default();
            self.start_load(candidate);
        }
    }

    fn place_candidate(&mut self, id: &FileId, plugin: Plugin) {
        let Some(slot) = self.slots.get(&id.stem) else {
            let reason = format!(
                "no active plugin {}.wasm to shadow; the candidate runs once it exists",
                id.stem
            );
            self.reject(id, RejectionKind::NoActivePlugin, reason);
            return;
        };
        if plugin.name() != slot.name {
            let reason = format!(
                "the candidate names its plugin {}, but {}.wasm holds plugin {}",
                plugin.name(),
                id.stem,
                slot.name
            );
            self.reject(id, RejectionKind::NameChanged, reason);
            return;
        }
        let candidate = Arc::new(Candidate::new(Arc::new(plugin)));
        tracing::info!(plugin = %slot.name, candidate = candidate.label(), "shadow candidate placed: it runs in dry run beside the active revision; nothing of it is applied");
        self.host_event(
            EventType::Normal,
            "ShadowCandidate",
            format!(
                "plugin {}: candidate {} runs in dry run beside the active revision",
                slot.name,
                candidate.label()
            ),
        );
        slot.shadow.set(Some(candidate));
    }

    /// A file went away: the candidate is dropped; an active plugin is
    /// unloaded (its children stay as they are).
    pub(super) fn removed(&mut self, id: &FileId) {
        match id.role {
            Role::Candidate => {
                if let Some(slot) = self.slots.get(&id.stem) {
                    slot.shadow.set(None);
                    tracing::info!(plugin = %slot.name, "shadow candidate removed");
                }
            }
            Role::Active => {
                let Some(slot) = self.slots.remove(&id.stem) else {
                    return;
                };
                tracing::info!(plugin = %slot.name, "{} removed: unloading the plugin; its objects stay as they are", id.file_name());
                self.shared.metrics.plugin_unloaded(&slot.name);
                self.host_event(
                    EventType::Normal,
                    "PluginRemoved",
                    format!(
                        "plugin {} unloaded ({} removed); its objects are left as they are",
                        slot.name,
                        id.file_name()
                    ),
                );
                let grace = self.options.grace;
                tokio::spawn(async move { slot.controller.stop(grace).await });
            }
        }
    }
    /// Starts the controller of a plugin not running yet (its CRDs
    /// installed).
    pub(super) async fn add_slot(
        &mut self,
        stem: &str,
        plugin: Arc<Plugin>,
        detected_at: SystemTime,
        spec: SlotSpec,
    ) -> anyhow::Result<()> {
        self.add_slot_numbered(stem, plugin, detected_at, spec, None)
            .await
    }

    /// As [`Supervisor::add_slot`], with the first revision numbered as
    /// its object says.
    pub(super) async fn add_slot_numbered(
        &mut self,
        stem: &str,
        plugin: Arc<Plugin>,
        detected_at: SystemTime,
        spec: SlotSpec,
        number: Option<u32>,
    ) -> anyhow::Result<()> {
        let tracker = Arc::new(Tracker::new(self.options.swap.rollback, None));
        let shadow: Arc<ShadowSlot> = Arc::default();
        let recorder: Arc<Recorder> = Arc::default();
        let plugin_hooks = (shadow.clone(), recorder.clone());
        let controller = self
            .start_controller(stem, &plugin, tracker.clone(), plugin_hooks, &spec)
            .await?;
        controller.run();
        let mut history = History::new(self.options.swap.keep);
        self.shared
            .metrics
            .plugin_active_revision(plugin.name(), plugin.info().short_digest());
        let name = plugin.name().to_string();
        match number {
            Some(n) => history.push_numbered(n, plugin, detected_at, tracker),
            None => history.push(plugin, detected_at, tracker),
        }
        self.slots.insert(
            stem.to_string(),
            Slot {
                name,
                controller,
                history,
                shadow,
                recorder,
                rejected: VecDeque::new(),
                spec,
            },
        );
        Ok(())
    }

    async fn start_controller(
        &self,
        stem: &str,
        plugin: &Arc<Plugin>,
        tracker: Arc<Tracker>,
        (shadow, recorder): (Arc<ShadowSlot>, Arc<Recorder>),
        spec: &SlotSpec,
    ) -> anyhow::Result<Arc<Controller>> {
        let grant = plugin.grant();
        let caches = &self.shared.caches;
        let writer = match &self.options.impersonate {
            Some(ns) => {
                let ns = spec.tenant.as_deref().unwrap_or(ns);
                let id = Identity::for_plugin(ns, plugin.name(), grant);
                tracing::info!(plugin = plugin.name(), user = %id.user(), "writes impersonate the plugin's ServiceAccount");
                Arc::new(caches.kinds().with_client(id.client(&self.config)?))
            }
            None => caches.kinds().clone(),
        };
        let mut options = self.options.controller.clone();
        if let Some(n) = grant.limits.concurrency {
            options.workers = n;
        }
        options.namespace = spec.tenant.clone();
        let tx = self.tx.clone();
        let (stem, digest) = (stem.to_string(), plugin.info().digest.clone());
        let hooks = RevisionHooks {
            tracker,
            shadow,
            recorder,
            on_failing: Arc::new(move |reason| {
                let _ = tx.send(Command::Failing {
                    stem: stem.clone(),
                    digest: digest.clone(),
                    reason,
                });
            }),
        };
        Controller::start(
            plugin.clone(),
            &self.shared,
            writer,
            options,
            spec.config.clone(),
            hooks,
        )
        .await
    }

    /// Replaces the running revision of a plugin: the new controller starts
    /// (every parent queued), the old one drains, the new one works.
    pub(super) async fn switch(
        &mut self,
        stem: &str,
        plugin: Arc<Plugin>,
        how: Switch,
    ) -> anyhow::Result<()> {
        let started = Instant::now();
        let slot = self.slots.get(stem).context("no such plugin")?;
        let old = slot.controller.clone();
        let previous_healthy = slot.history.active().is_none_or(|r| r.tracker.healthy());
        let probation = match &how {
            Switch::Build { .. } if previous_healthy => Some(old.parent_count().max(1)),
            _ => None,
        };
        let tracker = Arc::new(Tracker::new(self.options.swap.rollback, probation));
        let plugin_hooks = (slot.shadow.clone(), slot.recorder.clone());
        let spec = slot.spec.clone();
        if plugin.registration().crds != old.plugin().registration().crds {
            self.install_crds(&plugin).await?;
        }
        let new = self
            .start_controller(stem, &plugin, tracker.clone(), plugin_hooks, &spec)
            .await?;
        new.inherit(&old);
        old.stop(self.options.grace).await;
        new.run();
        {
            let c = new.clone();
            tokio::spawn(async move { c.wait_synced().await });
        }
        let parents = new.parent_count();
        let slot = self.slots.get_mut(stem).context("no such plugin")?;
        slot.controller = new;
        let from = slot.history.active().map(|r| r.number).unwrap_or(0);
        let (verb, reason) = self.record_switch(stem, &plugin, tracker, how)?;
        let slot = &self.slots[stem];
        let active = slot.history.active().context("no active revision")?;
        let line = format!(
            "plugin {} {verb} from revision {from} to revision {} ({}) in {:.1} ms; {parents} parents requeued{}",
            slot.name,
            active.number,
            active.label(),
            started.elapsed().as_secs_f64() * 1000.0,
            reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        );
        let name = slot.name.clone();
        self.shared
            .metrics
            .plugin_active_revision(&name, plugin.info().short_digest());
        self.shared.metrics.plugin_swap(&name);
        match reason {
            Some(_) => {
                tracing::warn!(plugin = %name, "{line}");
                self.host_event(EventType::Warning, "PluginRolledBack", line);
            }
            None => {
                tracing::info!(plugin = %name, "{line}");
                self.host_event(EventType::Normal, "PluginSwapped", line);
            }
        }
        Ok(())
    }

    /// The revision history after a switch: a new build pushed (or an
    /// earlier one made active again), or a rollback with its reason.
    /// Returns the verb for the log and the rollback's reason.
    fn record_switch(
        &mut self,
        stem: &str,
        plugin: &Arc<Plugin>,
        tracker: Arc<Tracker>,
        how: Switch,
    ) -> anyhow::Result<(&'static str, Option<String>)> {
        let slot = self.slots.get_mut(stem).context("no such plugin")?;
        Ok(match how {
            Switch::Build {
                detected_at,
                number,
            } => {
                match slot
                    .history
                    .by_digest(&plugin.info().digest)
                    .map(|r| r.number)
                {
                    Some(n) => slot.history.reactivate(n, tracker, None),
                    None => match number {
                        Some(n) => {
                            slot.history
                                .push_numbered(n, plugin.clone(), detected_at, tracker)
                        }
                        None => slot.history.push(plugin.clone(), detected_at, tracker),
                    },
                }
                ("swapped", None)
            }
            Switch::Back {
                number,
                trigger,
                why,
            } => {
                slot.history.reactivate(number, tracker, Some(why.clone()));
                self.shared.metrics.plugin_rollback(&slot.name, trigger);
                ("rolled back", Some(why))
            }
        })
    }

    /// The active revision says it fails too often: back to the previous one.
    pub(super) async fn failing(&mut self, stem: &str, digest: &str, reason: String) {
        let Some(slot) = self.slots.get(stem) else {
            return;
        };
        let Some(active) = slot.history.active() else {
            return;
        };
        if active.plugin.info().digest != digest {
            return; // Already replaced.
        }
        let Some(previous) = slot.history.previous() else {
            tracing::error!(plugin = %slot.name, "revision {} fails ({reason}) and there is no earlier revision to return to", active.number);
            return;
        };
        let (number, plugin) = (previous.number, previous.plugin.clone());
        let why = format!("revision {} ({}) {reason}", active.number, active.label());
        if let Err(e) = self
            .switch(
                stem,
                plugin,
                Switch::Back {
                    number,
                    trigger: "auto",
                    why,
                },
            )
            .await
        {
            tracing::error!(plugin = %stem, error = %format!("{e:#}"), "automatic rollback failed");
        }
    }
}

pub(super) enum Switch {
    /// A new (or earlier) build from the file.
    Build {
        detected_at: SystemTime,
        /// The revision object's number, for plugins declared as objects.
        number: Option<u32>,
    },
    /// Back to a kept revision, automatically or by hand.
    Back {
        number: u32,
        trigger: &'static str,
        why: String,
    },
}
