//! `cargo xtask demo`: the memcached example reconciled on a real cluster.
//!
//! Starts the local control plane (unless `KUBECONFIG` points at a
//! cluster), builds the components, runs `operon run` on the memcached
//! plugin, and drives the example client (`host/examples/demo.rs`), which
//! shows the children and the status converging. Everything it started is
//! stopped at the end, also on failure.

use std::path::PathBuf;
use std::process::{Child, Command};

use anyhow::{Context, Result};

use crate::{cluster, plugins};

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

pub fn run() -> Result<()> {
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

    let (kubeconfig, _cluster) = match std::env::var_os("KUBECONFIG") {
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

    let plugin_dir = plugins::target_dir().join("operon-demo-plugins");
    std::fs::create_dir_all(&plugin_dir)?;
    std::fs::copy(
        plugins::wasm_path("rust-memcached"),
        plugin_dir.join("rust_memcached.wasm"),
    )
    .context("copying the memcached component")?;
    let bin = plugins::target_dir().join("debug");
    eprintln!(
        "xtask: operon run --plugins {} (metrics on 127.0.0.1:9090)",
        plugin_dir.display()
    );
    let log_path = plugins::target_dir().join("operon-demo.log");
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("creating {}", log_path.display()))?;
    eprintln!("xtask: host logs in {}", log_path.display());
    let host = Host(
        Command::new(bin.join("operon"))
            .args(["run", "--plugins"])
            .arg(&plugin_dir)
            .arg("--kubeconfig")
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
            .env("OPERON_DEMO_OPERON", bin.join("operon")),
    );
    drop(host);
    result
}
