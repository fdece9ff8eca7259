//! Building the WebAssembly components: every crate under `examples/`,
//! `plugins/` and `tests/plugins/` whose library is a `cdylib`.
//!
//! Found by scanning the directories, so adding a plugin needs no change
//! here. Built with the `plugin` profile (size-optimised release) for
//! `wasm32-wasip2`, whose linker emits components directly.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The Rust target plugins are built for.
pub const TARGET: &str = "wasm32-wasip2";

/// The workspace root (the parent of `xtask/`).
pub fn root() -> PathBuf {
    operon_test_support::controlplane::repo_root()
}

/// Cargo's target directory, honouring `CARGO_TARGET_DIR`.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

/// Where built components land.
pub fn wasm_dir() -> PathBuf {
    target_dir().join(TARGET).join("plugin")
}

/// Package names of every component crate in the repository.
pub fn packages() -> Result<Vec<String>> {
    let mut names = Vec::new();
    for dir in ["examples", "plugins", "tests/plugins"] {
        let Ok(entries) = std::fs::read_dir(root().join(dir)) else {
            continue;
        };
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| Some(e.ok()?.path())).collect();
        paths.sort();
        for path in paths {
            let manifest = path.join("Cargo.toml");
            let Ok(text) = std::fs::read_to_string(&manifest) else {
                continue;
            };
            if !text.contains("cdylib") {
                continue;
            }
            let name = text
                .lines()
                .find_map(|l| {
                    l.trim()
                        .strip_prefix("name = ")
                        .map(|n| n.trim_matches('"').to_string())
                })
                .with_context(|| format!("{} has no package name", manifest.display()))?;
            names.push(name);
        }
    }
    Ok(names)
}

/// Installs the wasm32-wasip2 target through rustup when it is missing.
pub fn ensure_target() -> Result<()> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .context("running rustup (needed to install the wasm32-wasip2 target)")?;
    if String::from_utf8_lossy(&installed.stdout)
        .lines()
        .any(|l| l.trim() == TARGET)
    {
        return Ok(());
    }
    eprintln!("xtask: installing the {TARGET} target with rustup");
    run(Command::new("rustup").args(["target", "add", TARGET]))
}

/// Builds every component; returns the directory holding the .wasm files.
pub fn build_all() -> Result<PathBuf> {
    ensure_target()?;
    let packages = packages()?;
    eprintln!(
        "xtask: building {} components for {TARGET}: {}",
        packages.len(),
        packages.join(", ")
    );
    let mut cmd = cargo();
    cmd.args(["build", "--target", TARGET, "--profile", "plugin"]);
    for p in &packages {
        cmd.args(["-p", p]);
    }
    run(&mut cmd)?;
    for p in &packages {
        let file = wasm_path(p);
        if !file.exists() {
            bail!("{p} built, but {} is missing", file.display());
        }
    }
    // The examples in other languages, each with its pinned toolchain
    // (installed on first use into a cache outside the clone).
    let out = wasm_dir();
    crate::langs::js::build(&root(), &out)?;
    crate::langs::python::build(&root(), &out)?;
    crate::langs::go::build(&root(), &out)?;
    crate::langs::c::build(&root(), &out)?;
    Ok(out)
}

/// The component file of a package.
pub fn wasm_path(package: &str) -> PathBuf {
    wasm_dir().join(format!("{}.wasm", package.replace('-', "_")))
}

/// `cargo` as invoked by the user (respects `CARGO`), run from the root.
pub fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(root());
    cmd
}

/// Runs a command, failing with the command line when it fails.
pub fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("starting {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed ({status})");
    }
    Ok(())
}
