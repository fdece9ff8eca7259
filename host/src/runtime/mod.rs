//! `operon run`: load the plugins of a directory, install their CRDs, and
//! run one controller per plugin over shared watch caches until SIGTERM.

mod cache;
mod controller;
mod crds;
mod identity;
mod queue;
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
pub use cache::Caches;
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
pub async fn run(engine: Engine, options: RunOptions) -> anyhow::Result<()> {
    if !options.admin_addr.ip().is_loopback() {
        anyhow::bail!(
            "--admin-addr {} is not a loopback address: the admin endpoint (operon plugins) can roll plugins back and has no authentication",
            options.admin_addr
        );
    }
    let config = config(options.kubeconfig.as_deref()).await?;
    let client =
        kube::Client::try_from(config.clone()).context("building the Kubernetes client")?;
    let metrics = Arc::new(Metrics::default());
    let health = Arc::new(Health::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    serve_probes(&options, &metrics, &health, &stop_rx).await?;

    let kinds = Arc::new(Kinds::new(client.clone()));
    let caches = Arc::new(Caches::new(
        kinds,
        options.namespace.clone(),
        metrics.clone(),
    ));
    let shared = Shared {
        caches: caches.clone(),
        metrics: metrics.clone(),
        global: Arc::new(Semaphore::new(options.concurrency.max(1))),
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
        start_packages(
            &engine,
            &client,
            &supervisor,
            packages,
            &stop_rx,
            options.install_crds,
        )
        .await?;
    }
    let (admin_at, _) = server::start_routes(
        options.admin_addr,
        server::Routes::admin(supervisor.admin()),
        stopped(stop_rx.clone()),
    )
    .await?;
    tracing::info!(%admin_at, "serving /plugins (operon plugins)");
    let controllers = supervisor.controllers();
    for c in &controllers {
        c.wait_synced().await;
    }
    health.set_ready(true);
    tracing::info!(
        controllers = controllers.len(),
        watches = caches.open_watches(),
        dir = ?options.plugins_dir,
        "caches synced; reconciling, and following the plugin directory"
    );
    drop(controllers);

    supervisor
        .run(async {
            shutdown_signal().await;
            tracing::info!("shutting down: no new reconciles; waiting for those in flight");
            health.set_ready(false);
        })
        .await;
    let _ = stop_tx.send(true);
    tracing::info!("stopped");
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

/// Installs the host's own CRDs and starts the package controllers
/// (`ClusterReconcilerPlugin`, `ReconcilerPlugin`) beside the supervisor.
async fn start_packages(
    engine: &Engine,
    client: &kube::Client,
    supervisor: &Supervisor,
    options: &PackageOptions,
    stop: &watch::Receiver<bool>,
    install_crds: bool,
) -> anyhow::Result<()> {
    use crate::packages::controller::{Context, run};
    use crate::packages::types::{ClusterReconcilerPlugin, ReconcilerPlugin};
    if install_crds {
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
    tokio::spawn(run::<ClusterReconcilerPlugin>(
        ctx.clone(),
        stopped(stop.clone()),
    ));
    tokio::spawn(run::<ReconcilerPlugin>(ctx, stopped(stop.clone())));
    tracing::info!("following ClusterReconcilerPlugin and ReconcilerPlugin objects");
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
