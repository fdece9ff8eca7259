//! `cargo xtask cluster up|down|status|env|build`: the local Kubernetes
//! control plane (etcd, kube-apiserver, kube-controller-manager,
//! kube-scheduler, kwok fake nodes) built from `tests/controlplane`.
//!
//! The launcher itself lives in `operon_test_support::controlplane` (std-only,
//! shared with the test fixture); this module is the command line over it and
//! the API `cargo xtask test` uses: [`start_for_tests`].

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use operon_test_support::controlplane::{self as cp, UpOptions};

pub use operon_test_support::controlplane::ClusterGuard;

/// Environment variable through which tests find the cluster started for them.
pub const TEST_KUBECONFIG_ENV: &str = "OPERON_TEST_KUBECONFIG";

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Cmd,
    /// State directory (certs, kubeconfigs, etcd data, logs, pids).
    /// Default: target/operon-cluster.
    #[arg(long, global = true, value_name = "DIR")]
    state_dir: Option<PathBuf>,
}

#[derive(clap::Subcommand)]
enum Cmd {
    /// Build if needed, start the control plane and wait until it is ready.
    Up {
        /// Number of kwok fake nodes.
        #[arg(long, default_value_t = 3)]
        nodes: u32,
        /// Seconds to wait for readiness.
        #[arg(long, default_value_t = 180)]
        timeout: u64,
    },
    /// Stop the processes recorded in the state directory and remove it.
    Down,
    /// Show components, pids, health and log files.
    Status,
    /// Print `export KUBECONFIG=...` for shells: eval "$(cargo xtask cluster env)".
    Env,
    /// Only build (or find) the cached control-plane binary and print its path.
    Build,
}

pub fn run(args: Args) -> Result<()> {
    let state_dir = args.state_dir.unwrap_or_else(cp::default_state_dir);
    match args.command {
        Cmd::Up { nodes, timeout } => {
            let start = Instant::now();
            let mut opts = UpOptions::new(&state_dir);
            opts.nodes = nodes;
            opts.timeout = Duration::from_secs(timeout);
            let kubeconfig = cp::up(&opts)?;
            eprintln!(
                "cluster up in {:.1?}; stop it with `cargo xtask cluster down`",
                start.elapsed()
            );
            eprintln!("kubeconfig:");
            println!("{}", kubeconfig.display());
        }
        Cmd::Down => cp::down(&state_dir)?,
        Cmd::Status => {
            if !cp::status(&state_dir)? {
                bail!(
                    "cluster in {} is not healthy (or not running)",
                    state_dir.display()
                );
            }
        }
        Cmd::Env => {
            let kubeconfig = cp::kubeconfig_path(&state_dir);
            if !kubeconfig.is_file() {
                bail!(
                    "no cluster in {} (run `cargo xtask cluster up`)",
                    state_dir.display()
                );
            }
            println!(
                "export KUBECONFIG={}",
                shell_quote(&kubeconfig.to_string_lossy())
            );
        }
        Cmd::Build => println!("{}", cp::ensure_binary()?.display()),
    }
    Ok(())
}

/// Starts a private control plane for a test run, in its own state directory
/// (`target/operon-cluster-tests`, separate from the developer cluster).
/// The returned guard stops it when dropped (also on error paths and
/// panics); if this process is killed, a watchdog stops it. Run the tests with
/// `OPERON_TEST_KUBECONFIG` set to [`ClusterGuard::kubeconfig`] (see
/// [`TEST_KUBECONFIG_ENV`]).
pub fn start_for_tests() -> Result<ClusterGuard> {
    start_private("operon-cluster-tests")
}

/// Starts a private control plane for `cargo xtask demo`, stopped by the
/// guard like the test one.
pub fn start_demo() -> Result<ClusterGuard> {
    start_private("operon-cluster-demo")
}

fn start_private(state_dir_name: &str) -> Result<ClusterGuard> {
    let mut opts = UpOptions::new(cp::target_dir().join(state_dir_name));
    opts.owner_pid = Some(std::process::id());
    ClusterGuard::start(&opts)
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}
