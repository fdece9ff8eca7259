//! `cargo xtask demo`: the memcached example reconciled on a real cluster.
//!
//! Starts the local control plane (unless `KUBECONFIG` points at a
//! cluster), builds the components, runs `operon run` on the memcached
//! plugin, and drives the example client (`host/examples/demo.rs`), which
//! shows the children and the status converging. Everything it started is
//! stopped at the end, also on failure.
//!
//! `--from-registry [HOST:PORT]` runs the same story as a cluster would:
//! the builds are pushed to an OCI registry (by default the local control
//! plane's) and the host follows a `ClusterReconcilerPlugin` instead of a
//! directory.

use std::path::PathBuf;
use std::process::{Child, Command};

use anyhow::{Context, Result};

use operon_test_support::controlplane as cp;

use crate::{cluster, plugins};

#[derive(clap::Args)]
pub struct Args {
    /// Take the plugin from an OCI registry (plain HTTP) through a
    /// ClusterReconcilerPlugin; without a value, the local control plane's.
    #[arg(long, value_name = "HOST:PORT", num_args = 0..=1, default_missing_value = "")]
    from_registry: Option<String>,
}

/// `operon run`, terminated when dropped.
struct Host(Child);

impl Drop for Host {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

pub fn run(args: Args) -> Result<()> {
    plugins::build_all()?;
    eprintln!("xtask: building operon and the demo client");
    plugins::run(plugins::cargo().args([
        "build",
        "-p",
        "operon",
        "--bin",
        "operon",
        "--example",
        "demo",
    ]))?;

    let (kubeconfig, cluster_guard) = match std::env::var_os("KUBECONFIG") {
        Some(k) => {
            eprintln!(
                "xtask: using the cluster of KUBECONFIG={}",
                k.to_string_lossy()
            );
            (PathBuf::from(k), None)
        }
        None => {
            eprintln!(
                "xtask: starting the local control plane (the first time builds it from Go modules: minutes)"
            );
            let guard = cluster::start_demo()?;
            (guard.kubeconfig().to_path_buf(), Some(guard))
        }
    };

    let registry = match args.from_registry.as_deref() {
        None => None,
        Some("") => {
            let Some(guard) = &cluster_guard else {
                anyhow::bail!(
                    "--from-registry without an address needs the local control plane; with KUBECONFIG set, name a registry the host reaches"
                );
            };
            Some(cp::registries(guard.state_dir())?.open)
        }
        Some(addr) => Some(addr.to_string()),
    };
    let plugin_dir = plugins::target_dir().join("operon-demo-plugins");
    std::fs::create_dir_all(&plugin_dir)?;
    std::fs::copy(
        plugins::wasm_path("rust-memcached"),
        plugin_dir.join("rust_memcached.wasm"),
    )
    .context("copying the memcached component")?;
    let bin = plugins::target_dir().join("debug");
    let log_path = plugins::target_dir().join("operon-demo.log");
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("creating {}", log_path.display()))?;
    eprintln!("xtask: host logs in {}", log_path.display());
    let mut run = Command::new(bin.join("operon"));
    match &registry {
        Some(r) => run.args(["run", "--plugin-objects", "--insecure-registry", r]),
        None => run.args(["run", "--plugins"]).arg(&plugin_dir),
    };
    let shown: Vec<_> = run.get_args().map(|a| a.to_string_lossy()).collect();
    eprintln!(
        "xtask: operon {} (metrics on 127.0.0.1:9090)",
        shown.join(" ")
    );
    let host = Host(
        run.arg("--kubeconfig")
            .arg(&kubeconfig)
            .stderr(log)
            .spawn()
            .context("starting operon run")?,
    );
    let result = plugins::run(
        Command::new(bin.join("examples").join("demo"))
            .arg(&kubeconfig)
            .args(["demo", "127.0.0.1:9091"])
            .env("OPERON_DEMO_PLUGIN_DIR", &plugin_dir)
            .env(
                "OPERON_DEMO_SWAP_TO",
                plugins::wasm_path("python-memcached"),
            )
            .env("OPERON_DEMO_OPERON", bin.join("operon"))
            .envs(registry.iter().map(|r| ("OPERON_DEMO_REGISTRY", r.clone())))
            .env("OPERON_DEMO_FIRST", plugins::wasm_path("rust-memcached")),
    );
    drop(host);
    result
}
