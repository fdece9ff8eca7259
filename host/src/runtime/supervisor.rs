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
use futures::future::BoxFuture;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

use super::RunOptions;
use super::controller::{Controller, RevisionHooks, Shared};
use super::crds;
use super::identity::Identity;
use crate::apply::events;
use crate::contract::EventType;
use crate::engine::{Engine, Limits};
use crate::plugin::dir::{FileChange, FileId, PluginDir, Role};
use crate::plugin::revisions::{History, Revision, RollbackPolicy, Tracker, unix_seconds};
use crate::plugin::shadow::{Candidate, ShadowSlot};
use crate::plugin::{LoadError, Plugin};
use crate::server::{Admin, AdminError, AdminRequest};

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
}

/// Sends admin requests (`operon plugins`, through the server's admin
/// routes) to the supervisor's task, which answers them between the changes
/// it serializes.
#[derive(Clone)]
pub struct AdminHandle(mpsc::UnboundedSender<Command>);

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

/// A refused build, as `operon plugins` shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct Rejection {
    file: String,
    /// `unreadable`, `not-a-component`, `contract`, `describe`,
    /// `registration`, `not-granted`, `name-changed`, `duplicate-name`,
    /// `no-active-plugin` or `start`.
    kind: &'static str,
    reason: String,
    at: f64,
}

/// One plugin: the file `<stem>.wasm` and what runs from it.
struct Slot {
    name: String,
    controller: Arc<Controller>,
    history: History,
    shadow: Arc<ShadowSlot>,
    rejected: VecDeque<Rejection>,
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

/// The rejection kind of a controller that did not start: a grant found
/// missing once discovery told a kind's scope, or anything else.
fn start_error_kind(e: &anyhow::Error) -> &'static str {
    match e.downcast_ref::<LoadError>() {
        Some(l) => load_error_kind(l),
        None => "start",
    }
}

fn load_error_kind(e: &LoadError) -> &'static str {
    match e {
        LoadError::Read { .. } => "unreadable",
        LoadError::NotComponent(_) => "not-a-component",
        LoadError::Contract(_) => "contract",
        LoadError::Describe(_) => "describe",
        LoadError::Registration(_) => "registration",
        LoadError::NotGranted { .. } => "not-granted",
    }
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
        let mut dir = PluginDir::new(&options.plugins_dir);
        let changes = dir.scan().with_context(|| {
            format!(
                "reading the plugin directory {}",
                options.plugins_dir.display()
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
                Err(e) => sup.reject(&id, "start", format!("{e:#}")),
            }
        }
        for (id, plugin) in installed {
            if let Err(e) = sup.add_slot(&id.stem, plugin, SystemTime::now()).await {
                sup.reject(&id, start_error_kind(&e), format!("{e:#}"));
            }
        }
        if sup.slots.is_empty() {
            tracing::warn!(dir = %sup.options.plugins_dir.display(), "no plugin running yet; components placed in the directory are loaded as they appear");
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
                self.reject(id, load_error_kind(&e), e.to_string());
                return None;
            }
        };
        if let Some((other, _)) = loaded.iter().find(|(_, p)| p.name() == plugin.name()) {
            let reason = format!(
                "a plugin named {} is already loaded from {}",
                plugin.name(),
                other.file_name()
            );
            self.reject(id, "duplicate-name", reason);
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
                tracing::warn!(dir = %self.options.plugins_dir.display(), error = %e, "cannot read the plugin directory");
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
            Command::Admin(request, reply) => {
                let answer = self.answer(request).await;
                let _ = reply.send(answer);
            }
        }
    }

    async fn loaded(&mut self, id: FileId, generation: u64, result: Result<Plugin, LoadError>) {
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
                let kind = load_error_kind(&e);
                self.reject(&id, kind, e.to_string());
                return;
            }
        };
        match id.role {
            Role::Active => self.activate_build(&id, plugin, detected_at).await,
            Role::Candidate => self.place_candidate(&id, plugin),
        }
    }

    async fn activate_build(&mut self, id: &FileId, plugin: Plugin, detected_at: SystemTime) {
        let plugin = Arc::new(plugin);
        let Some(slot) = self.slots.get(&id.stem) else {
            // A new plugin.
            if let Some((stem, _)) = self.slots.iter().find(|(_, s)| s.name == plugin.name()) {
                let reason = format!(
                    "a plugin named {} is already loaded from {stem}.wasm",
                    plugin.name()
                );
                self.reject(id, "duplicate-name", reason);
                return;
            }
            let added = match self.install_crds(&plugin).await {
                Ok(()) => self.add_slot(&id.stem, plugin.clone(), detected_at).await,
                Err(e) => Err(e),
            };
            match added {
                Ok(()) => {
                    let slot = &self.slots[&id.stem];
                    let c = slot.controller.clone();
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
                    if self.dir.contains(&candidate)
                        && !self.files.get(&candidate).is_some_and(|s| s.loading)
                    {
                        self.files.entry(candidate.clone()).or_default();
                        self.start_load(candidate);
                    }
                }
                Err(e) => self.reject(id, start_error_kind(&e), format!("{e:#}")),
            }
            return;
        };
        if plugin.name() != slot.name {
            let reason = format!(
                "the new build names its plugin {}, but {} holds plugin {}; to rename, remove the file and add one for the new plugin",
                plugin.name(),
                id.file_name(),
                slot.name
            );
            self.reject(id, "name-changed", reason);
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
            .switch(&stem, plugin, Switch::Build { detected_at })
            .await
        {
            self.reject(id, start_error_kind(&e), format!("{e:#}"));
        }
    }

    fn place_candidate(&mut self, id: &FileId, plugin: Plugin) {
        let Some(slot) = self.slots.get(&id.stem) else {
            let reason = format!(
                "no active plugin {}.wasm to shadow; the candidate runs once it exists",
                id.stem
            );
            self.reject(id, "no-active-plugin", reason);
            return;
        };
        if plugin.name() != slot.name {
            let reason = format!(
                "the candidate names its plugin {}, but {}.wasm holds plugin {}",
                plugin.name(),
                id.stem,
                slot.name
            );
            self.reject(id, "name-changed", reason);
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
    fn removed(&mut self, id: &FileId) {
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

    fn reject(&mut self, id: &FileId, kind: &'static str, reason: String) {
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
        tracing::warn!(plugin = %plugin, file = id.file_name(), kind, "rejected {}: {reason}{keeps}", id.file_name());
        self.shared.metrics.plugin_rejected(&plugin, kind);
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

    /// Starts the controller of a plugin not running yet (its CRDs
    /// installed).
    async fn add_slot(
        &mut self,
        stem: &str,
        plugin: Arc<Plugin>,
        detected_at: SystemTime,
    ) -> anyhow::Result<()> {
        let tracker = Arc::new(Tracker::new(self.options.swap.rollback, None));
        let shadow: Arc<ShadowSlot> = Arc::default();
        let controller = self
            .start_controller(stem, &plugin, tracker.clone(), shadow.clone())
            .await?;
        controller.run();
        let mut history = History::new(self.options.swap.keep);
        self.shared
            .metrics
            .plugin_active_revision(plugin.name(), plugin.info().short_digest());
        let name = plugin.name().to_string();
        history.push(plugin, detected_at, tracker);
        self.slots.insert(
            stem.to_string(),
            Slot {
                name,
                controller,
                history,
                shadow,
                rejected: VecDeque::new(),
            },
        );
        Ok(())
    }

    async fn start_controller(
        &self,
        stem: &str,
        plugin: &Arc<Plugin>,
        tracker: Arc<Tracker>,
        shadow: Arc<ShadowSlot>,
    ) -> anyhow::Result<Arc<Controller>> {
        let grant = self.options.grants.grant_for(plugin.registration());
        let caches = &self.shared.caches;
        let writer = match &self.options.impersonate {
            Some(ns) => {
                let id = Identity::for_plugin(ns, plugin.name(), &grant);
                tracing::info!(plugin = plugin.name(), user = %id.user(), "writes impersonate the plugin's ServiceAccount");
                Arc::new(caches.kinds().with_client(id.client(&self.config)?))
            }
            None => caches.kinds().clone(),
        };
        let mut options = self.options.controller.clone();
        if let Some(n) = grant.limits.concurrency {
            options.workers = n;
        }
        let tx = self.tx.clone();
        let (stem, digest) = (stem.to_string(), plugin.info().digest.clone());
        let hooks = RevisionHooks {
            tracker,
            shadow,
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
            Vec::new(),
            hooks,
        )
        .await
    }

    /// Replaces the running revision of a plugin: the new controller starts
    /// (every parent queued), the old one drains, the new one works.
    async fn switch(&mut self, stem: &str, plugin: Arc<Plugin>, how: Switch) -> anyhow::Result<()> {
        let started = Instant::now();
        let slot = self.slots.get(stem).context("no such plugin")?;
        let old = slot.controller.clone();
        let previous_healthy = slot.history.active().is_none_or(|r| r.tracker.healthy());
        let probation = match &how {
            Switch::Build { .. } if previous_healthy => Some(old.parent_count().max(1)),
            _ => None,
        };
        let tracker = Arc::new(Tracker::new(self.options.swap.rollback, probation));
        let shadow = slot.shadow.clone();
        if plugin.registration().crds != old.plugin().registration().crds {
            self.install_crds(&plugin).await?;
        }
        let new = self
            .start_controller(stem, &plugin, tracker.clone(), shadow)
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
        let (verb, reason) = match how {
            Switch::Build { detected_at } => {
                match slot
                    .history
                    .by_digest(&plugin.info().digest)
                    .map(|r| r.number)
                {
                    Some(n) => slot.history.reactivate(n, tracker, None),
                    None => slot.history.push(plugin.clone(), detected_at, tracker),
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
        };
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
        if reason.is_some() {
            tracing::warn!(plugin = %name, "{line}");
            self.host_event(EventType::Warning, "PluginRolledBack", line);
        } else {
            tracing::info!(plugin = %name, "{line}");
            self.host_event(EventType::Normal, "PluginSwapped", line);
        }
        Ok(())
    }

    /// The active revision says it fails too often: back to the previous one.
    async fn failing(&mut self, stem: &str, digest: &str, reason: String) {
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

    /// An admin request (`operon plugins`); what went wrong is an
    /// [`AdminError`], which the server turns into an HTTP status.
    async fn answer(&mut self, request: AdminRequest) -> Result<Value, AdminError> {
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
        }
    }

    /// The slot of the plugin called `name` (not the file's stem).
    fn slot_named(&self, name: &str) -> Result<(&String, &Slot), AdminError> {
        let found = self.slots.iter().find(|(_, s)| s.name == name);
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

enum Switch {
    /// A new (or earlier) build from the file.
    Build { detected_at: SystemTime },
    /// Back to a kept revision, automatically or by hand.
    Back {
        number: u32,
        trigger: &'static str,
        why: String,
    },
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
        "file": format!("{stem}.wasm"),
        "active": s.history.active().map(|r| r.number),
        "revisions": s.history.iter().map(revision_view).collect::<Vec<_>>(),
        "candidate": s.shadow.get().map(|c| c.view()),
        "rejected": s.rejected,
    })
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
