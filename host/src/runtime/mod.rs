//! `operon run`: load the plugins of a directory, install their CRDs, and
//! run one controller per plugin over shared watch caches until SIGTERM.

mod cache;
mod controller;
mod crds;
mod identity;
pub mod leader;
mod owners;
mod queue;
mod relay;
mod supervisor;
#[cfg(test)]
mod testing;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::{Semaphore, watch};

pub use crate::plugin::revisions::RollbackPolicy;
pub use cache::{Caches, Watching};
pub use controller::{Options, Shared};
pub use identity::Identity;
pub use queue::Backoff;
pub use supervisor::objects::{ObjectHandle, Probe};
pub use supervisor::{RejectionKind, SlotSpec, Supervisor, SwapOptions};

use crate::engine::{Engine, Limits};
use crate::kinds::Kinds;
use crate::plugin::Plugin;
use crate::server::{self, Health, Metrics};

/// Everything `operon run` needs.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The plugin directory, if any (plugins may come from objects only).
    pub plugins_dir: Option<PathBuf>,
    pub kubeconfig: Option<PathBuf>,
    /// Watch only this namespace (namespaced kinds).
    pub namespace: Option<String>,
    pub metrics_addr: SocketAddr,
    pub health_addr: SocketAddr,
    /// Where `operon plugins` reaches the host (loopback only).
    pub admin_addr: SocketAddr,
    /// Reconciles at once across all plugins.
    pub concurrency: usize,
    pub install_crds: bool,
    /// The host operator's grants (default grants for unlisted plugins).
    pub grants: crate::plugin::GrantsFile,
    pub controller: Options,
    /// How long in-flight reconciles may take to finish on shutdown.
    pub grace: Duration,
    /// `--impersonate NS`: each plugin writes as its ServiceAccount in NS.
    pub impersonate: Option<String>,
    pub swap: SwapOptions,
    /// Plugins declared as objects (`--plugin-objects`), when on.
    pub packages: Option<PackageOptions>,
    /// This replica's name: in the Lease and in the User-Agent of every
    /// request (so the API server's audit log tells the replicas apart).
    pub identity: String,
    /// `--leader-elect`: the Lease and its timings (an empty namespace is
    /// the host's own: `OPERON_POD_NAMESPACE`, else the client's default).
    pub leader_election: Option<leader::ElectionOptions>,
    /// How long the host trusts a silent connection to the API server.
    pub api: ApiTimeouts,
    /// The config of directory plugins, by plugin name (`--config
    /// NAME:KEY=VALUE`): handed to every reconcile of that plugin, as a
    /// plugin object's `spec.config` is.
    pub plugin_config: std::collections::BTreeMap<String, Vec<(String, String)>>,
}

/// How long a request or a watch may go without an answer before the host
/// gives up on its connection. kube sets no read timeout: a request sent
/// over a connection that died silently (a black hole, a NAT that forgot
/// it) would wait forever, and a reconcile with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiTimeouts {
    /// Requests (reads, applies, patches, status, events, discovery):
    /// connect and read timeout, counted from the last byte written.
    pub request: Duration,
    /// Watches: the server-side timeout of each watch request; a watch
    /// silent for longer (plus kube's 5 s margin) is reconnected. Its list
    /// and watch requests get a read timeout of this plus 30 s.
    pub watch_s: u32,
}

impl Default for ApiTimeouts {
    fn default() -> Self {
        ApiTimeouts {
            request: Duration::from_secs(30),
            watch_s: cache::DEFAULT_WATCH_TIMEOUT_S,
        }
    }
}

impl ApiTimeouts {
    /// The configuration of request clients: `base` with the timeouts.
    fn requests(&self, base: &kube::Config) -> kube::Config {
        let mut config = base.clone();
        config.connect_timeout = Some(self.request);
        config.read_timeout = Some(self.request);
        config.write_timeout = Some(self.request);
        // The timeout counts from the request, not from when its pooled
        // connection went idle.
        config.reset_reader_on_write = true;
        config
    }

    /// How every watch of the host (caches, Lease, plugin objects) is
    /// made: a client whose read timeout outlasts the server-side timeout
    /// of each watch request.
    fn watching(&self, base: &kube::Config) -> anyhow::Result<Watching> {
        let mut config = base.clone();
        config.connect_timeout = Some(self.request);
        config.read_timeout = Some(Duration::from_secs(u64::from(self.watch_s) + 30));
        Ok(Watching {
            client: Some(kube::Client::try_from(config).context("building the watch client")?),
            timeout_s: self.watch_s,
        })
    }
}

/// How plugins declared as objects are fetched.
#[derive(Debug, Clone)]
pub struct PackageOptions {
    pub registry: crate::oci::RegistryOptions,
    /// How often a plugin's source is resolved again.
    pub poll: Duration,
    /// Where fetched artifacts are kept (beside the compile cache).
    pub artifacts: Option<PathBuf>,
    /// The host's namespace: where a ClusterReconcilerPlugin's pull
    /// secrets are when their reference names none.
    pub host_namespace: Option<String>,
    /// Only the plugin objects matching this label selector.
    pub selector: Option<String>,
}

/// A Kubernetes client from a kubeconfig file, or the usual defaults
/// (`KUBECONFIG`, `~/.kube/config`, in-cluster).
pub async fn client(kubeconfig: Option<&Path>) -> anyhow::Result<kube::Client> {
    kube::Client::try_from(config(kubeconfig).await?).context("building the Kubernetes client")
}

/// The client configuration [`client`] uses (kept to derive impersonating
/// clients from).
pub async fn config(kubeconfig: Option<&Path>) -> anyhow::Result<kube::Config> {
    Ok(match kubeconfig {
        Some(path) => {
            let file = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("reading kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(file, &kube::config::KubeConfigOptions::default())
                .await
                .with_context(|| format!("using kubeconfig {}", path.display()))?
        }
        None => kube::Config::infer()
            .await
            .context("finding a kubeconfig")?,
    })
}

/// Every active component (`<name>.wasm`, not `<name>.candidate.wasm`) in a
/// directory, loaded and validated. One bad file fails with its name and
/// reason: a host that silently ran without a plugin would be worse.
pub fn load_plugins(
    engine: &Engine,
    dir: &Path,
    grants: &crate::plugin::GrantsFile,
) -> anyhow::Result<Vec<Arc<Plugin>>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading the plugin directory {}", dir.display()))?
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .and_then(crate::plugin::dir::FileId::parse)
                .is_some_and(|id| id.role == crate::plugin::dir::Role::Active)
        })
        .collect();
    paths.sort();
    let mut plugins: Vec<Arc<Plugin>> = Vec::new();
    for path in paths {
        let plugin = Plugin::load_granted(engine, &path, Limits::default(), grants)
            .with_context(|| format!("loading {}", path.display()))?;
        if plugins.iter().any(|p| p.name() == plugin.name()) {
            anyhow::bail!(
                "{}: a plugin named {} is already loaded",
                path.display(),
                plugin.name()
            );
        }
        tracing::info!(plugin = plugin.name(), version = %plugin.registration().version,
            parent = %plugin.registration().parent.kind, from_cache = plugin.info().from_cache,
            "loaded {}", path.display());
        plugins.push(Arc::new(plugin));
    }
    if plugins.is_empty() {
        anyhow::bail!("no plugin (*.wasm) in {}", dir.display());
    }
    Ok(plugins)
}

/// Runs until SIGTERM or SIGINT, then drains and returns.
///
/// With leader election the replica first gets warm exactly like a single
/// host (plugins compiled, CRDs installed, caches synced, `/readyz` 200),
/// its workers waiting on the [`leader::Gate`]; only then does it
/// campaign. On SIGTERM the leader drains while still renewing, then
/// releases the Lease. A lost lease ends the process at once (exit 1):
/// see [`leader`].
pub async fn run(engine: Engine, options: RunOptions) -> anyhow::Result<()> {
    if !options.admin_addr.ip().is_loopback() {
        anyhow::bail!(
            "--admin-addr {} is not a loopback address: the admin endpoint (operon plugins) can roll plugins back and has no authentication",
            options.admin_addr
        );
    }
    let mut config = config(options.kubeconfig.as_deref()).await?;
    set_user_agent(&mut config, &options.identity)?;
    // Two clients, and no call without a timeout: requests, and watches.
    let watching = options.api.watching(&config)?;
    let config = options.api.requests(&config);
    let client = kube::Client::try_from(config.clone()).context("building the request client")?;
    let metrics = Arc::new(Metrics::default());
    metrics.watch_process();
    if let Some(counters) = engine.cache_counters() {
        metrics.watch_compile_cache(counters);
    }
    let health = Arc::new(Health::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    serve_probes(&options, &metrics, &health, &stop_rx).await?;

    let kinds = Arc::new(Kinds::new(client.clone()));
    let caches = Arc::new(
        Caches::new(kinds, options.namespace.clone(), metrics.clone()).watching(watching.clone()),
    );
    let stale = caches.clone();
    health.watch_staleness(move || stale.failing());
    let elector = match &options.leader_election {
        Some(election) => Some(elector(election, &config, (&client, &watching), &metrics)?),
        None => None,
    };
    let may_write = elector
        .as_ref()
        .map_or_else(leader::Gate::open, |(_, gate)| gate.clone());
    let shared = Shared {
        caches: caches.clone(),
        metrics: metrics.clone(),
        global: Arc::new(Semaphore::new(options.concurrency.max(1))),
        may_write: may_write.clone(),
    };
    if !options.controller.enforce_grants {
        tracing::warn!(
            "--unsafe-skip-grant-checks: answers are applied without checking them against the grants (a test hook)"
        );
    }
    let supervisor = Supervisor::start(
        engine.clone(),
        options.clone(),
        shared,
        config,
        client.clone(),
    )
    .await?;
    if let Some(packages) = &options.packages {
        let writes = Writes {
            may_write: may_write.clone(),
            install_crds: options.install_crds,
        };
        let clients = (&client, watching);
        start_packages(&engine, clients, &supervisor, packages, &stop_rx, writes).await?;
    }
    let elector = elector.map(|(e, _)| e);
    serve_admin(&options, &supervisor, elector.as_ref(), may_write, &stop_rx).await?;
    let controllers = supervisor.controllers();
    for c in &controllers {
        c.wait_synced().await;
    }
    health.set_ready(true);
    tracing::info!(
        controllers = controllers.len(),
        watches = caches.open_watches(),
        dir = ?options.plugins_dir,
        "caches synced; following the plugin directory"
    );
    drop(controllers);
    follow(supervisor, elector, &health).await;
    let _ = stop_tx.send(true);
    tracing::info!("stopped");
    Ok(())
}

/// Runs the supervisor and the election (if any) until SIGTERM, then
/// drains; the leader releases the Lease once nothing is in flight.
async fn follow(supervisor: Supervisor, elector: Option<leader::Elector>, health: &Health) {
    let (phase_tx, phase_rx) = watch::channel(leader::Phase::Running);
    let election = elector.map(|e| campaign(e, phase_rx));
    supervisor
        .run(async {
            shutdown_signal().await;
            tracing::info!("shutting down: no new reconciles; waiting for those in flight");
            health.set_ready(false);
            let _ = phase_tx.send(leader::Phase::Draining);
        })
        .await;
    let _ = phase_tx.send(leader::Phase::Drained);
    if let Some(election) = election {
        let _ = election.await; // the release is bounded by its own timeout
    }
}

/// `operon/<version> (<identity>)` on every request, and so in the API
/// server's audit log.
fn set_user_agent(config: &mut kube::Config, identity: &str) -> anyhow::Result<()> {
    let agent = format!("operon/{} ({identity})", env!("CARGO_PKG_VERSION"));
    let value = hyper::header::HeaderValue::from_str(&agent)
        .with_context(|| format!("the identity {identity:?} is not valid in a User-Agent"))?;
    config.headers.push((hyper::header::USER_AGENT, value));
    Ok(())
}

/// The elector of `--leader-elect` and the gate it holds.
fn elector(
    election: &leader::ElectionOptions,
    config: &kube::Config,
    (client, watching): (&kube::Client, &Watching),
    metrics: &Arc<Metrics>,
) -> anyhow::Result<(leader::Elector, leader::Gate)> {
    let mut election = election.clone();
    if election.namespace.is_empty() {
        election.namespace = std::env::var("OPERON_POD_NAMESPACE")
            .ok()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| config.default_namespace.clone());
    }
    election.check()?;
    Ok(leader::Elector::new(
        client.clone(),
        watching,
        election,
        metrics.clone(),
    ))
}

/// Runs the election; a lost lease stops the process on the spot, before
/// any other reconcile can write.
fn campaign(
    elector: leader::Elector,
    phase: watch::Receiver<leader::Phase>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if let Err(e) = elector.run(phase).await {
            tracing::error!(error = %e, "stopping now, without draining: another replica may take over (restarted, this host comes back as a standby)");
            std::process::exit(1);
        }
    })
}

/// Serves `/plugins` for `operon plugins`: on a replica with leader
/// election, through [`leader::ReplicaAdmin`] (standbys refuse rollbacks).
async fn serve_admin(
    options: &RunOptions,
    supervisor: &Supervisor,
    elector: Option<&leader::Elector>,
    leading: leader::Gate,
    stop: &watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let routes = match elector {
        Some(elector) => server::Routes::admin(leader::ReplicaAdmin {
            inner: supervisor.admin(),
            identity: options.identity.clone(),
            lease: elector.options().lease_ref(),
            leading,
            holder: elector.holder(),
        }),
        None => server::Routes::admin(supervisor.admin()),
    };
    let (admin_at, _) =
        server::start_routes(options.admin_addr, routes, stopped(stop.clone())).await?;
    tracing::info!(%admin_at, "serving /plugins (operon plugins)");
    Ok(())
}

/// Serves `/metrics`, `/healthz` and `/readyz` on the metrics address and
/// on the health address alike (a scrape or a probe pointed at either
/// works) until `stop` turns true.
async fn serve_probes(
    options: &RunOptions,
    metrics: &Arc<Metrics>,
    health: &Arc<Health>,
    stop: &watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let (m, h) = (metrics.clone(), health.clone());
    let (metrics_at, _) = server::start(options.metrics_addr, m, h, stopped(stop.clone())).await?;
    let (m, h) = (metrics.clone(), health.clone());
    let (health_at, _) = server::start(options.health_addr, m, h, stopped(stop.clone())).await?;
    tracing::info!(%metrics_at, %health_at, "serving /metrics, /healthz and /readyz");
    Ok(())
}

/// Completes once `stop` turns true (or its sender is gone).
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// What the package controllers may write, and when.
struct Writes {
    /// They start once this opens (at once without leader election).
    may_write: leader::Gate,
    install_crds: bool,
}

/// Installs the host's own CRDs and starts the package controllers
/// (`ClusterReconcilerPlugin`, `ReconcilerPlugin`) beside the supervisor.
/// They write revisions and statuses from their first step, so with
/// leader election they start only once this replica is elected (see the
/// caveats in [`leader`]).
async fn start_packages(
    engine: &Engine,
    (client, watching): (&kube::Client, Watching),
    supervisor: &Supervisor,
    options: &PackageOptions,
    stop: &watch::Receiver<bool>,
    writes: Writes,
) -> anyhow::Result<()> {
    use crate::packages::controller::{Context, run};
    use crate::packages::types::{ClusterReconcilerPlugin, ReconcilerPlugin};
    if writes.install_crds {
        crds::install(client, "operon", &crate::packages::crds()).await?;
    }
    let preparer = crate::packages::prepare::Preparer::new(
        engine.clone(),
        crate::oci::Registry::new(options.registry.clone()),
        client.clone(),
        options.artifacts.clone(),
    );
    let ctx = Arc::new(Context::new(
        client.clone(),
        preparer,
        supervisor.objects(),
        options.host_namespace.clone(),
        options.poll,
        options.selector.clone(),
    ));
    let (stop, mut may_write) = (stop.clone(), writes.may_write);
    tokio::spawn(async move {
        if !may_write.wait_open().await {
            return; // a standby told to stop
        }
        tokio::spawn(run::<ClusterReconcilerPlugin>(
            ctx.clone(),
            watching.clone(),
            stopped(stop.clone()),
        ));
        tokio::spawn(run::<ReconcilerPlugin>(ctx, watching, stopped(stop)));
        tracing::info!("following ClusterReconcilerPlugin and ReconcilerPlugin objects");
    });
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
