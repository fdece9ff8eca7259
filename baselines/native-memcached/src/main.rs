//! `native-memcached`: the baseline `cargo xtask bench` measures `operon run`
//! against.
//!
//! A plain kube-rs controller, written the way a Rust operator author would
//! write one, running the *same* reconcile logic as the memcached component
//! (`examples/rust-memcached`, linked natively as an rlib and called through
//! `operon-sdk`'s native path) with the same apply strategy as the host:
//! watches of the parent and of both owned kinds, kube-runtime's work queue
//! (dedupe, one reconcile per key at a time) with the host's default
//! concurrency, server-side apply of the children with field manager
//! `operon/memcached`, controller ownerReferences and the `operon.dev/*`
//! labels, pruning, a status merge-patch only when the status changed (with
//! `observedGeneration` and a `Synced` condition) and events. Whatever
//! differs between the two in the benchmark is then the cost of the Wasm
//! boundary and of the host's generic machinery, not of different work.
//!
//! Prints `synced` on stdout once its caches hold the initial lists (the
//! benchmark starts the clock after that), and on SIGTERM/SIGINT a final
//! `reconciles=<n> errors=<n>` line.

mod controller;
mod status;

use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;

/// Command line; defaults match `operon run`'s.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Watch and reconcile only this namespace.
    #[arg(long, value_name = "NS")]
    namespace: Option<String>,
    /// Reconciles at once (`operon run --workers`, whose default is also 4;
    /// its global `--concurrency` of 8 does not bind with one plugin).
    #[arg(long, value_name = "N", default_value_t = 4)]
    workers: u16,
    /// Field manager of the server-side applies. The host's by default, so
    /// the two can take turns over the same objects with no-op applies.
    #[arg(long, value_name = "NAME", default_value = "operon/memcached")]
    field_manager: String,
    /// Do not install the Memcached CRD (a cluster admin did).
    #[arg(long)]
    skip_crds: bool,
    /// First retry delay after a failure, in milliseconds (doubles each
    /// time, with jitter), as `operon run --backoff-base-ms`.
    #[arg(long, value_name = "MS", default_value_t = 200)]
    backoff_base_ms: u64,
    /// Longest retry delay, in seconds.
    #[arg(long, value_name = "S", default_value_t = 300)]
    backoff_max_s: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?
        .block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    // As kube-rs controllers usually find their cluster: $KUBECONFIG,
    // ~/.kube/config, or the in-cluster service account.
    let client = kube::Client::try_default().await.context(
        "building the Kubernetes client (from $KUBECONFIG, ~/.kube/config or in-cluster)",
    )?;
    if !args.skip_crds {
        controller::install_crd(&client).await?;
    }
    let options = controller::Options {
        namespace: args.namespace,
        workers: args.workers.max(1),
        field_manager: args.field_manager,
        backoff_base: Duration::from_millis(args.backoff_base_ms),
        backoff_max: Duration::from_secs(args.backoff_max_s),
    };
    let stats = controller::run(client, options).await?;
    println!("reconciles={} errors={}", stats.reconciles, stats.errors);
    Ok(())
}
