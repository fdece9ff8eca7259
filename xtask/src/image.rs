//! `cargo xtask image`: the host's OCI image, built and pushed without a
//! container engine (see `operon_test_support::image` for what it holds
//! and why), then checked: unpacked into a directory and run there under
//! `chroot` (`operon --version`), which needs root.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use operon_test_support::{controlplane as cp, image};

use crate::plugins;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Where to push, `registry/repository:tag` [default: the open test
    /// registry of the developer cluster (`cargo xtask cluster up`),
    /// `operon:<version>`].
    #[arg(long, value_name = "REF")]
    pub to: Option<String>,
    /// The binary to package instead of building the release one.
    #[arg(long, value_name = "FILE")]
    pub binary: Option<PathBuf>,
    /// Skip the chroot check (it needs root).
    #[arg(long)]
    pub no_check: bool,
}

pub fn run(args: Args) -> Result<()> {
    let binary = match args.binary {
        Some(b) => b,
        None => {
            eprintln!("xtask: cargo build --release -p operon");
            plugins::run(plugins::cargo().args([
                "build",
                "--release",
                "-p",
                "operon",
                "--bin",
                "operon",
            ]))?;
            cp::target_dir().join("release/operon")
        }
    };
    let reference = match args.to {
        Some(r) => r,
        None => {
            let registries = cp::registries(&cp::default_state_dir())
                .context("finding the test registry (is `cargo xtask cluster up` running?)")?;
            format!("{}/operon:{}", registries.open, env!("CARGO_PKG_VERSION"))
        }
    };
    let work = cp::target_dir().join("image");
    let built = image::build_and_push(&binary, &work, &reference)?;
    eprintln!("xtask: {} files in the image:", built.files.len());
    for f in &built.files {
        eprintln!("  /{}", f.display());
    }
    if !args.no_check {
        let rootfs = work.join("unpacked");
        image::unpack(&built.pinned, &rootfs)?;
        let out = std::process::Command::new("chroot")
            .arg(&rootfs)
            .args(["/operon", "--version"])
            .output()
            .context("running chroot (as root)")?;
        if !out.status.success() {
            bail!(
                "the image does not run: chroot {} /operon --version: {}",
                rootfs.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        eprintln!(
            "xtask: chroot {} /operon --version: {}",
            rootfs.display(),
            String::from_utf8_lossy(&out.stdout).trim()
        );
    }
    println!("{}", built.pinned);
    Ok(())
}
