//! `operon run`: the controller host against a cluster.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::{ExitCode, Failure};
use crate::engine::Engine;
use crate::runtime::leader::ElectionOptions;
use crate::runtime::{self, Options, RunOptions};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Directory of plugin components (*.wasm), followed while the host
    /// runs (hot swap).
    #[arg(long, value_name = "DIR", required_unless_present = "plugin_objects")]
    pub plugins: Option<PathBuf>,
    /// Also run the plugins declared as objects (ClusterReconcilerPlugin,
    /// ReconcilerPlugin), fetched from registries; installs their CRDs.
    #[arg(long)]
    pub plugin_objects: bool,
    /// A registry (`host[:port]`) reached over plain HTTP instead of HTTPS;
    /// repeat for several. Only for registries on a trusted network.
    #[arg(long, value_name = "HOST")]
    pub insecure_registry: Vec<String>,
    /// Largest plugin artifact fetched, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 64)]
    pub max_artifact_mib: u64,
    /// How often a plugin object's source is resolved again (a tag may
    /// move), in seconds.
    #[arg(long, value_name = "S", default_value_t = 60)]
    pub source_poll_s: u64,
    /// Run only the plugin objects matching this label selector (several
    /// hosts in one cluster, each with its own plugins).
    #[arg(long, value_name = "SELECTOR", value_parser = checked_selector)]
    pub plugin_selector: Option<String>,
    /// Kubeconfig file [default: $KUBECONFIG, ~/.kube/config, or in-cluster].
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Watch and reconcile only this namespace.
    #[arg(long, value_name = "NS")]
    pub namespace: Option<String>,
    /// Address of /metrics.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9090")]
    pub metrics_addr: SocketAddr,
    /// Address of /healthz and /readyz.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9091")]
    pub health_addr: SocketAddr,
    /// Address of the admin endpoint `operon plugins` talks to (loopback
    /// only: it can roll plugins back and has no authentication).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9092")]
    pub admin_addr: SocketAddr,
    /// Reconciles at once across all plugins.
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub concurrency: usize,
    /// Reconciles at once per plugin.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub workers: usize,
    /// The host operator's grants file (kinds, namespaces, limits per
    /// plugin). Unlisted plugins may own what they declare and read their
    /// own kinds in their parent's namespace.
    #[arg(long, value_name = "FILE")]
    pub grants: Option<PathBuf>,
    /// Config handed to every reconcile of a plugin of the directory,
    /// `NAME:KEY=VALUE` (NAME is the plugin's registered name); repeatable.
    /// A plugin object takes its config from its `spec.config` instead.
    #[arg(long = "config", value_name = "NAME:KEY=VALUE", value_parser = parse_plugin_config)]
    pub config: Vec<(String, String, String)>,
    /// Do not install the CRDs plugins ship (a cluster admin did).
    #[arg(long)]
    pub skip_crds: bool,
    /// First retry delay after a failure, in milliseconds (doubles each
    /// time, with jitter).
    #[arg(long, value_name = "MS", default_value_t = 200)]
    pub backoff_base_ms: u64,
    /// Longest retry delay, in seconds.
    #[arg(long, value_name = "S", default_value_t = 300)]
    pub backoff_max_s: u64,
    /// Seconds in-flight reconciles get to finish on SIGTERM.
    #[arg(long, value_name = "S", default_value_t = 30)]
    pub grace_s: u64,
    /// Send each plugin's writes as its ServiceAccount in this namespace
    /// (`operon-plugin-<name>`, or the grant's `serviceAccount`), so RBAC
    /// enforces its grant a second time. `operon rbac` prints the objects.
    #[arg(long, value_name = "NS")]
    pub impersonate: Option<String>,
    /// Test hook: apply answers without checking them against the grants,
    /// to show that `--impersonate` still stops what the grant forbids.
    /// Never use it in production.
    #[arg(long, hide = true)]
    pub unsafe_skip_grant_checks: bool,
    /// How often the plugin directory is checked for new, changed or
    /// removed components, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 100)]
    pub watch_interval_ms: u64,
    /// How long a request to the API server may wait for an answer (and a
    /// connection to be made) before the host gives up on the connection
    /// and retries, in seconds. kube sets none: a request over a silently
    /// dead connection would wait forever.
    #[arg(long, value_name = "S", default_value_t = 30)]
    pub request_timeout_s: u64,
    /// Server-side timeout of each watch request, in seconds; a watch
    /// silent for longer (plus 5 s) is taken for dead and reconnected.
    #[arg(long, value_name = "S", default_value_t = 290)]
    pub watch_timeout_s: u32,
    /// How long a component that fails to load must stay unchanged before
    /// it is rejected (a copy still in progress gets this long), in
    /// milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 500)]
    pub settle_ms: u64,
    /// Revisions kept loaded per plugin (instant rollback targets).
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub keep_revisions: usize,
    /// Reconciles of a new revision judged for automatic rollback (one pass
    /// over all parents when there are fewer).
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub rollback_window: usize,
    /// Fraction of those that may fail before the host returns to the
    /// previous revision (when that one was healthy).
    #[arg(long, value_name = "FRACTION", default_value_t = 0.5)]
    pub rollback_threshold: f64,
    /// Never roll back on its own; a failing revision stays until
    /// `operon plugins rollback` or a new build.
    #[arg(long)]
    pub no_auto_rollback: bool,
    #[command(flatten)]
    pub leader: LeaderArgs,
}

/// `--leader-elect` and its Lease: for two or more replicas, of which one
/// writes and the others stand by, warm (caches synced, plugins compiled).
#[derive(clap::Args, Debug)]
pub struct LeaderArgs {
    /// Elect one writer among the replicas through a Lease; the others
    /// keep warm caches and compiled plugins and take over on a handover
    /// (SIGTERM releases the Lease) or when the leader stops renewing.
    #[arg(long)]
    pub leader_elect: bool,
    /// Name of the Lease.
    #[arg(long, value_name = "NAME", default_value = "operon")]
    pub leader_elect_lease: String,
    /// Namespace of the Lease [default: $OPERON_POD_NAMESPACE, else the
    /// in-cluster or kubeconfig namespace].
    #[arg(long, value_name = "NS")]
    pub leader_elect_namespace: Option<String>,
    /// This replica's name in the Lease and in its requests' User-Agent
    /// [default: $OPERON_POD_NAME, else the host name and a random suffix].
    #[arg(long, value_name = "NAME")]
    pub identity: Option<String>,
    /// Seconds a leader that stopped renewing keeps the Lease, as the
    /// standbys observe it (a failover takes about this long).
    #[arg(long, value_name = "S", default_value_t = 15)]
    pub leader_elect_lease_duration_s: u32,
    /// Seconds the leader keeps writing without a successful renewal; then
    /// it exits at once. Shorter than the lease duration: the difference is
    /// the margin that keeps two replicas from ever writing together.
    #[arg(long, value_name = "S", default_value_t = 10.0)]
    pub leader_elect_renew_deadline_s: f64,
    /// Seconds between renewals, and between a standby's looks at the
    /// Lease (it also watches it).
    #[arg(long, value_name = "S", default_value_t = 2.0)]
    pub leader_elect_retry_period_s: f64,
}

impl LeaderArgs {
    /// The election the flags ask for, if any.
    fn election(&self, identity: &str) -> Result<Option<ElectionOptions>, Failure> {
        if !self.leader_elect {
            return Ok(None);
        }
        let seconds = |flag: &str, s: f64| {
            Duration::try_from_secs_f64(s).map_err(|_| {
                Failure::new(
                    ExitCode::Failure,
                    format!("--{flag} {s}: not a duration in seconds"),
                )
            })
        };
        let namespace = self.leader_elect_namespace.clone().unwrap_or_default();
        let mut election = ElectionOptions::new(&self.leader_elect_lease, &namespace, identity);
        election.lease_duration = Duration::from_secs(self.leader_elect_lease_duration_s.into());
        election.renew_deadline = seconds(
            "leader-elect-renew-deadline-s",
            self.leader_elect_renew_deadline_s,
        )?;
        election.retry_period = seconds(
            "leader-elect-retry-period-s",
            self.leader_elect_retry_period_s,
        )?;
        election
            .check()
            .map_err(|e| Failure::new(ExitCode::Failure, e.to_string()))?;
        Ok(Some(election))
    }
}

/// A `--config` value that is not `NAME:KEY=VALUE`.
#[derive(Debug, thiserror::Error)]
#[error("expected NAME:KEY=VALUE (NAME: the plugin's name), got {0:?}")]
pub struct NotPluginConfig(String);

fn parse_plugin_config(s: &str) -> Result<(String, String, String), NotPluginConfig> {
    let fail = || NotPluginConfig(s.to_string());
    let (name, entry) = s.split_once(':').ok_or_else(fail)?;
    let (key, value) = entry.split_once('=').ok_or_else(fail)?;
    if name.is_empty() || key.is_empty() {
        return Err(fail());
    }
    Ok((name.to_string(), key.to_string(), value.to_string()))
}

/// The `--config` flags by plugin name, in the order given.
fn plugin_config(flags: &[(String, String, String)]) -> BTreeMap<String, Vec<(String, String)>> {
    let mut by_plugin: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for (name, key, value) in flags {
        by_plugin
            .entry(name.clone())
            .or_default()
            .push((key.clone(), value.clone()));
    }
    by_plugin
}

/// A label selector, refused at start when malformed (the API server would
/// refuse every watch of it later, far from the flag).
fn checked_selector(text: &str) -> Result<String, String> {
    crate::contract::selector::Selector::parse(text)
        .map(|_| text.to_string())
        .map_err(|e| e.to_string())
}

/// How plugin objects' artifacts are fetched, from the flags.
fn packages(engine: &Engine, args: &Args) -> runtime::PackageOptions {
    runtime::PackageOptions {
        registry: crate::oci::RegistryOptions {
            plain_http: args.insecure_registry.clone(),
            max_bytes: args.max_artifact_mib << 20,
            ..Default::default()
        },
        poll: Duration::from_secs(args.source_poll_s.max(1)),
        artifacts: engine
            .config()
            .cache_dir
            .as_ref()
            .map(|d| d.with_file_name("artifacts")),
        host_namespace: std::env::var("OPERON_POD_NAMESPACE").ok(),
        selector: args.plugin_selector.clone(),
    }
}

pub fn run(engine: Engine, args: &Args) -> Result<(), Failure> {
    let identity = args
        .leader
        .identity
        .clone()
        .unwrap_or_else(runtime::leader::default_identity);
    let options = RunOptions {
        plugins_dir: args.plugins.clone(),
        packages: args.plugin_objects.then(|| packages(&engine, args)),
        kubeconfig: args.kubeconfig.clone(),
        namespace: args.namespace.clone(),
        metrics_addr: args.metrics_addr,
        health_addr: args.health_addr,
        admin_addr: args.admin_addr,
        concurrency: args.concurrency,
        install_crds: !args.skip_crds,
        grants: super::rbac::grants(args.grants.as_deref())?,
        controller: Options {
            workers: args.workers,
            backoff: runtime::Backoff {
                base: Duration::from_millis(args.backoff_base_ms),
                max: Duration::from_secs(args.backoff_max_s),
            },
            enforce_grants: !args.unsafe_skip_grant_checks,
            namespace: None,
        },
        grace: Duration::from_secs(args.grace_s),
        impersonate: args.impersonate.clone(),
        swap: runtime::SwapOptions {
            watch_interval: Duration::from_millis(args.watch_interval_ms.max(10)),
            settle: Duration::from_millis(args.settle_ms),
            keep: args.keep_revisions,
            rollback: runtime::RollbackPolicy {
                enabled: !args.no_auto_rollback,
                window: args.rollback_window.max(1),
                threshold: args.rollback_threshold.clamp(0.0, 1.0),
            },
        },
        leader_election: args.leader.election(&identity)?,
        identity,
        api: runtime::ApiTimeouts {
            request: Duration::from_secs(args.request_timeout_s.max(1)),
            watch_s: args.watch_timeout_s.max(1),
        },
        plugin_config: plugin_config(&args.config),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            Failure::new(
                ExitCode::Failure,
                format!("starting the async runtime: {e}"),
            )
        })?;
    rt.block_on(runtime::run(engine, options))
        .map_err(Failure::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_flags_by_plugin() {
        let flags: Vec<_> = ["memcached:mode=fast", "memcached:note=a=b", "postgres:x="]
            .iter()
            .map(|f| parse_plugin_config(f).unwrap())
            .collect();
        let by = plugin_config(&flags);
        assert_eq!(
            by["memcached"],
            [
                ("mode".into(), "fast".into()),
                ("note".into(), "a=b".into())
            ]
        );
        assert_eq!(by["postgres"], [("x".into(), String::new())]);
        for bad in ["mode=fast", ":k=v", "p:=v", "p:k"] {
            let err = parse_plugin_config(bad).unwrap_err().to_string();
            assert!(err.contains("NAME:KEY=VALUE"), "{bad}: {err}");
        }
    }
}
