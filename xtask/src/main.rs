//! `cargo xtask <command>`: the developer entry points named in the README.
//!
//! Each command lives in its own module; this file only parses the command
//! line and dispatches, so a new command never touches another's code.

mod bench;
mod cluster;
mod demo;
mod image;
mod langs;
mod plugins;
mod test;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "operon developer tasks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build the example reconciler and run it on its fixtures.
    Demo(demo::Args),
    /// Lint, build the components, start a control plane, run every test.
    Test(test::Args),
    /// Run the benchmarks and rewrite BENCHMARKS.md.
    Bench(bench::Args),
    /// Build the Wasm components only.
    Build,
    /// Build the host's OCI image without a container engine and push it.
    Image(image::Args),
    /// Manage the local Kubernetes control plane built from tests/controlplane.
    Cluster(cluster::Args),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Demo(args) => demo::run(args),
        Command::Test(args) => test::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Build => {
            plugins::build_all().map(|dir| eprintln!("xtask: components in {}", dir.display()))
        }
        Command::Cluster(args) => cluster::run(args),
        Command::Image(args) => image::run(args),
    }
}
