//! `cargo xtask test`: everything a change must pass.
//!
//! Order matters for a quick failure: formatting and lints first (seconds),
//! then the components (the tests load them), then a private control plane
//! for the integration tests, then every test of the workspace. The control
//! plane is stopped afterwards whatever happened (its guard's `Drop`).

use anyhow::Result;

use crate::{cluster, plugins};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Skip `cargo fmt --check` and `cargo clippy`.
    #[arg(long)]
    pub no_lint: bool,
    /// Extra arguments for `cargo test` (after `--` they go to the test
    /// binaries), e.g. `cargo xtask test -- -p operon`.
    #[arg(last = true)]
    pub cargo_args: Vec<String>,
}

pub fn run(args: Args) -> Result<()> {
    if !args.no_lint {
        eprintln!("xtask: cargo fmt --check");
        plugins::run(plugins::cargo().args(["fmt", "--all", "--", "--check"]))?;
        eprintln!("xtask: cargo clippy");
        plugins::run(plugins::cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]))?;
    }
    let wasm_dir = plugins::build_all()?;
    crate::langs::postgres::ensure()?;
    let cluster = cluster::start_for_tests()?;
    eprintln!(
        "xtask: control plane ready: {}",
        cluster.kubeconfig().display()
    );
    let mut cmd = plugins::cargo();
    cmd.args(["test", "--workspace"])
        .args(&args.cargo_args)
        .env("OPERON_PLUGIN_DIR", &wasm_dir)
        .env(cluster::TEST_KUBECONFIG_ENV, cluster.kubeconfig());
    let result = plugins::run(&mut cmd);
    drop(cluster);
    result?;
    sdk_tests()
}

/// The SDKs of other languages test their helpers with their own runners.
fn sdk_tests() -> Result<()> {
    let root = plugins::root();
    eprintln!("xtask: node --test sdk/js");
    plugins::run(
        std::process::Command::new("node")
            .args(["--test", "sdk/js"])
            .current_dir(&root),
    )?;
    eprintln!("xtask: python3 -m unittest (sdk/python)");
    plugins::run(
        std::process::Command::new("python3")
            .args(["-m", "unittest", "discover", "-s", "sdk/python/tests"])
            .current_dir(&root),
    )?;
    for dir in ["sdk/go", "examples/go-memcached"] {
        eprintln!("xtask: go test ./... ({dir})");
        plugins::run(
            std::process::Command::new("go")
                .args(["test", "./..."])
                .env("GOTOOLCHAIN", "local")
                .current_dir(root.join(dir)),
        )?;
    }
    Ok(())
}
