//! `cargo xtask demo`: build the memcached example and run one reconcile
//! offline on its fixtures, printing what operon would apply.

use anyhow::Result;

use crate::plugins;

pub fn run() -> Result<()> {
    plugins::build_all()?;
    let wasm = plugins::wasm_path("rust-memcached");
    let fixtures = plugins::root().join("examples/rust-memcached/fixtures");
    eprintln!("\nxtask: operon inspect {}\n", wasm.display());
    plugins::run(
        plugins::cargo()
            .args(["run", "--quiet", "-p", "operon", "--", "inspect"])
            .arg(&wasm),
    )?;
    eprintln!(
        "\nxtask: operon reconcile (parent: Memcached demo/example, size 3; observed: its Deployment with 2 ready)\n"
    );
    plugins::run(
        plugins::cargo()
            .args(["run", "--quiet", "-p", "operon", "--", "reconcile"])
            .arg(&wasm)
            .arg("--parent")
            .arg(fixtures.join("parent.yaml"))
            .arg("--observed")
            .arg(fixtures.join("observed.yaml")),
    )?;
    eprintln!(
        "\nxtask: that is the full response: the Deployment (replicas = spec.size), the Service,\n\
         the status with readyReplicas and a Ready condition, and the events.\n\
         Try your own: cargo run -p operon -- reconcile {} --parent <file> [--observed <file>]",
        wasm.display()
    );
    Ok(())
}
