//! Hot swap: the plugins of a running host follow their directory.
//!
//! One task owns every plugin's slot (its running controller, kept
//! revisions, shadow candidate and rejected builds) and serializes all that
//! changes them: file changes found by polling, loads finished off the
//! reconcile path, a failing revision's report, and admin requests
//! (`operon plugins`). A swap starts the new revision's controller first
//! (watches acquired, every parent queued), then drains the old one (its
//! in-flight reconciles finish on the old revision), then lets the new one
//! work: no parent is reconciled by two revisions at once, and none is
//! forgotten.
//!
//! A build that fails to load never replaces the running one. A file seen
//! changing recently is given `settle` time before its failure counts (it
//! may still be being copied); after that it is rejected with a log line, a
//! metric, an event on the host's own Pod (when `OPERON_POD_NAME` and
//! `OPERON_POD_NAMESPACE` say which) and an entry in `operon plugins`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use super::RunOptions;
use super::controller::{Controller, Shared};
use super::crds;
use crate::apply::events;
use crate::contract::EventType;
use crate::engine::{Engine, Limits};
use crate::plugin::dir::{FileChange, FileId, PluginDir, Role};
use crate::plugin::recorder::Recorder;
use crate::plugin::revisions::{History, RollbackPolicy};
use crate::plugin::shadow::ShadowSlot;
use crate::plugin::{LoadError, Plugin};
use crate::server::{AdminError, AdminRequest};

mod admin;
pub mod objects;
mod rejection;
mod swap;
#[cfg(test)]
mod tests;

pub use admin::AdminHandle;
use rejection::Rejection;
pub use rejection::RejectionKind;

/// Settings of hot swap.
#[derive(Debug, Clone, Copy)]
pub struct SwapOptions {
    /// How often the plugin directory is looked at.
    pub watch_interval: Duration,
    /// How long a file that fails to load must stay unchanged before the
    /// failure is final (a copy in progress gets this long to finish).
    pub settle: Duration,
    /// Revisions kept loaded per plugin (rollback targets).
    pub keep: usize,
    pub rollback: RollbackPolicy,
}

impl Default for SwapOptions {
    fn default() -> Self {
        SwapOptions {
            watch_interval: Duration::from_millis(100),
            settle: Duration::from_millis(500),
            keep: 5,
            rollback: RollbackPolicy::default(),
        }
    }
}

enum Command {
    Loaded {
        id: FileId,
        generation: u64,
        result: Box<Result<Plugin, LoadError>>,
    },
    Failing {
        stem: String,
        digest: String,
        reason: String,
    },
    Admin(AdminRequest, oneshot::Sender<Result<Value, AdminError>>),
    /// From the package controller (plugins declared as objects).
    Object(objects::ObjectCommand),
}

/// One plugin: the file `<stem>.wasm` (or the object, see [`objects`])
/// and what runs from it.
struct Slot {
    name: String,
    controller: Arc<Controller>,
    history: History,
    shadow: Arc<ShadowSlot>,
    /// Its recorder (`operon plugins record`), kept across revisions.
    recorder: Arc<Recorder>,
    rejected: VecDeque<Rejection>,
    spec: SlotSpec,
}

/// How a slot's controllers run, beside the plugin's own grant.
#[derive(Debug, Clone, Default)]
pub struct SlotSpec {
    /// Key/values handed to every reconcile.
    pub config: Vec<(String, String)>,
    /// A tenant plugin's namespace: its parents there only, and its writes
    /// (under `--impersonate`) as its ServiceAccount there.
    pub tenant: Option<String>,
}

impl Supervisor {
    /// How a plugin of the directory runs: with the config `--config`
    /// gives its name, and no tenant.
    fn dir_spec(&self, plugin: &Plugin) -> SlotSpec {
        SlotSpec {
            config: self
                .options
                .plugin_config
                .get(plugin.name())
                .cloned()
                .unwrap_or_default(),
            tenant: None,
        }
    }
}

/// Loading state of one file.
#[derive(Default)]
struct FileState {
    /// Bumped on every change seen; a load of an older generation is stale.
    generation: u64,
    loading: bool,
    /// Try again then (a failure on a file that may still be written).
    retry_at: Option<Instant>,
    detected_at: Option<SystemTime>,
}

/// Rejections kept per plugin (and for files without one).
const KEEP_REJECTED: usize = 10;

pub struct Supervisor {
    engine: Engine,
    options: RunOptions,
    shared: Shared,
    config: kube::Config,
    client: kube::Client,
    dir: PluginDir,
    slots: BTreeMap<String, Slot>,
    files: HashMap<FileId, FileState>,
    orphans: VecDeque<Rejection>,
    tx: mpsc::UnboundedSender<Command>,
    rx: mpsc::UnboundedReceiver<Command>,
    /// The host's own Pod, for events about builds.
    host_object: Option<Value>,
}

impl Supervisor {
    /// Loads every plugin of the directory and starts its controller. A
    /// plugin that fails to load or start (not a component, not granted, a
    /// trapping `describe()`, a kind the cluster does not serve) is
    /// rejected as a later build would be — logged, counted, listed by
    /// `operon plugins`, an event on the host's Pod — and the others run:
    /// one plugin's fault is not the host's.
    pub async fn start(
        engine: Engine,
        options: RunOptions,
        shared: Shared,
        config: kube::Config,
        client: kube::Client,
    ) -> anyhow::Result<Supervisor> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut dir = PluginDir::new(options.plugins_dir.as_deref());
        let changes = dir.scan().with_context(|| {
            format!(
                "reading the plugin directory {}",
                options
                    .plugins_dir
                    .as_deref()
                    .unwrap_or(std::path::Path::new(""))
                    .display()
            )
        })?;
        let host_object = host_object(&client).await;
        let mut sup = Supervisor {
            engine,
            options,
            shared,
            config,
            client,
            dir,
            slots: BTreeMap::new(),
            files: HashMap::new(),
            orphans: VecDeque::new(),
            tx,
            rx,
            host_object,
        };
        let mut candidates = Vec::new();
        let mut loaded: Vec<(FileId, Arc<Plugin>)> = Vec::new();
        for change in changes {
            let FileChange::Changed(id) = change else {
                continue;
            };
            sup.files.entry(id.clone()).or_default().generation = 1;
            if id.role == Role::Candidate {
                candidates.push(id);
                continue;
            }
            if let Some(plugin) = sup.load_at_start(&id, &loaded) {
                loaded.push((id, Arc::new(plugin)));
            }
        }
        // Every CRD first: one plugin may watch or read a kind another ships.
        let mut installed = Vec::new();
        for (id, plugin) in loaded {
            match sup.install_crds(&plugin).await {
                Ok(()) => installed.push((id, plugin)),
                Err(e) => sup.reject(&id, RejectionKind::Start, format!("{e:#}")),
            }
        }
        for (id, plugin) in installed {
            if let Err(e) = sup
                .add_slot(
                    &id.stem,
                    plugin.clone(),
                    SystemTime::now(),
                    sup.dir_spec(&plugin),
                )
                .await
            {
                sup.reject(&id, RejectionKind::of_start(&e), format!("{e:#}"));
            }
        }
        if sup.slots.is_empty() {
            tracing::warn!(dir = ?sup.options.plugins_dir, "no plugin running yet; components placed in the directory are loaded as they appear");
        }
        for id in candidates {
            sup.start_load(id);
        }
        Ok(sup)
    }

    /// Loads one active file at start; a failure (or a second plugin of
    /// the same name) is rejected and skipped.
    fn load_at_start(&mut self, id: &FileId, loaded: &[(FileId, Arc<Plugin>)]) -> Option<Plugin> {
        let path = self.dir.path(id);
        let plugin = match Plugin::load_granted(
            &self.engine,
            &path,
            Limits::default(),
            &self.options.grants,
        ) {
            Ok(p) => p,
            Err(e) => {
                self.reject(id, RejectionKind::of_load(&e), e.to_string());
                return None;
            }
        };
        if let Some((other, _)) = loaded.iter().find(|(_, p)| p.name() == plugin.name()) {
            let reason = format!(
                "a plugin named {} is already loaded from {}",
                plugin.name(),
                other.file_name()
            );
            self.reject(id, RejectionKind::DuplicateName, reason);
            return None;
        }
        tracing::info!(plugin = plugin.name(), version = %plugin.registration().version,
            parent = %plugin.registration().parent.kind, from_cache = plugin.info().from_cache,
            "loaded {}", path.display());
        Some(plugin)
    }

    /// The running controllers (to wait for their caches at start).
    pub fn controllers(&self) -> Vec<Arc<Controller>> {
        self.slots.values().map(|s| s.controller.clone()).collect()
    }

    pub fn admin(&self) -> AdminHandle {
        AdminHandle(self.tx.clone())
    }

    /// Installs the CRDs a plugin ships (unless `--skip-crds`).
    async fn install_crds(&self, plugin: &Plugin) -> anyhow::Result<()> {
        if self.options.install_crds {
            crds::install(&self.client, plugin.name(), &plugin.registration().crds).await?;
        }
        Ok(())
    }

    /// Follows the directory and serves requests until `shutdown`, then
    /// stops every controller (in-flight reconciles get the grace period).
    pub async fn run(mut self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut tick = tokio::time::interval(self.options.swap.watch_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                _ = tick.tick() => self.poll(),
                Some(command) = self.rx.recv() => self.handle(command).await,
            }
        }
        let grace = self.options.grace;
        for slot in self.slots.values() {
            slot.controller.stop(grace).await;
        }
    }

    /// Looks at the directory; starts loads of changed files and of files
    /// whose retry is due.
    fn poll(&mut self) {
        let changes = match self.dir.scan() {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(dir = ?self.options.plugins_dir, error = %e, "cannot read the plugin directory");
                return;
            }
        };
        for change in changes {
            match change {
                FileChange::Changed(id) => {
                    let state = self.files.entry(id.clone()).or_default();
                    state.generation += 1;
                    state.retry_at = None;
                    state.detected_at = Some(SystemTime::now());
                    if !state.loading {
                        self.start_load(id);
                    }
                }
                FileChange::Removed(id) => {
                    self.files.remove(&id);
                    self.removed(&id);
                }
            }
        }
        let now = Instant::now();
        let due: Vec<FileId> = self
            .files
            .iter()
            .filter(|(_, s)| !s.loading && s.retry_at.is_some_and(|t| t <= now))
            .map(|(id, _)| id.clone())
            .collect();
        for id in due {
            self.start_load(id);
        }
    }

    /// Compiles and validates a file on a blocking thread; the result comes
    /// back as a command.
    fn start_load(&mut self, id: FileId) {
        let Some(state) = self.files.get_mut(&id) else {
            return;
        };
        state.loading = true;
        state.retry_at = None;
        let generation = state.generation;
        let path = self.dir.path(&id);
        let engine = self.engine.clone();
        let grants = self.options.grants.clone();
        let tx = self.tx.clone();
        tokio::task::spawn_blocking(move || {
            let result = Plugin::load_granted(&engine, &path, Limits::default(), &grants);
            let _ = tx.send(Command::Loaded {
                id,
                generation,
                result: Box::new(result),
            });
        });
    }

    async fn handle(&mut self, command: Command) {
        match command {
            Command::Loaded {
                id,
                generation,
                result,
            } => self.loaded(id, generation, *result).await,
            Command::Failing {
                stem,
                digest,
                reason,
            } => self.failing(&stem, &digest, reason).await,
            Command::Object(command) => self.object(command).await,
            Command::Admin(request, reply) => {
                let answer = self.answer(request).await;
                let _ = reply.send(answer);
            }
        }
    }
    /// An event on the host's own Pod, if the host knows it.
    fn host_event(&self, type_: EventType, reason: &str, message: String) {
        let Some(pod) = self.host_object.clone() else {
            return;
        };
        let client = self.client.clone();
        let event = events::host_event(type_, reason, message);
        tokio::spawn(async move { events::record(&client, &pod, "host", &event).await });
    }
}

/// The host's own Pod, from the downward API variables, as an event target.
async fn host_object(client: &kube::Client) -> Option<Value> {
    let name = std::env::var("OPERON_POD_NAME").ok()?;
    let namespace = std::env::var("OPERON_POD_NAMESPACE").ok()?;
    let api: kube::Api<k8s_openapi::api::core::v1::Pod> =
        kube::Api::namespaced(client.clone(), &namespace);
    match api.get(&name).await {
        Ok(pod) => serde_json::to_value(pod).ok(),
        Err(e) => {
            tracing::warn!(pod = %format!("{namespace}/{name}"), error = %e, "cannot read the host's own Pod; build events are logged only");
            None
        }
    }
}
