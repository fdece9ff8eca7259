//! The JavaScript memcached example (`examples/js-memcached`), built with jco
//! and its QuickJS backend (`jco componentize --backend qjs`).
//!
//! The toolchain is exactly what `examples/js-memcached/package-lock.json`
//! pins: it is installed once with `npm ci` into
//! `<toolchains>/js-<hash of the lockfile>/` (see [`super::common::toolchains_root`]),
//! never into the clone, so a changed lockfile gets a fresh directory.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

use super::common::{
    READY_MARKER, finish, fnv1a_hex, memcached_crd, run, toolchains_root, up_to_date,
    write_if_changed,
};

/// The component's file name in `out_dir`.
pub const OUTPUT: &str = "js_memcached.wasm";

/// Builds `examples/js-memcached` into `out_dir/js_memcached.wasm`, installing
/// the pinned jco first if needed; does nothing when the component is newer
/// than every source. Returns the component's path.
pub fn build(root: &Path, out_dir: &Path) -> Result<PathBuf> {
    let example = root.join("examples/js-memcached");
    let out = out_dir.join(OUTPUT);

    // src/crd.js is generated from the Rust example's CRD (one source for both).
    let crd = memcached_crd(root)?;
    write_if_changed(
        &example.join("src/crd.js"),
        &format!(
            "// Generated from examples/rust-memcached/crd.json (the CRD both examples ship)\n\
             // by `cargo xtask build`; do not edit.\nexport default {crd};\n"
        ),
    )?;

    let sources = [
        example.join("src"),
        example.join("package.json"),
        example.join("package-lock.json"),
        root.join("sdk/js"),
        root.join("wit"),
    ];
    if up_to_date(&out, &sources)? {
        eprintln!("xtask: js: {OUTPUT} is up to date");
        return Ok(out);
    }

    let toolchain = ensure_toolchain(&example)?;
    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let tmp = out_dir.join(format!("{OUTPUT}.tmp"));
    eprintln!("xtask: js: jco componentize --backend qjs -> {OUTPUT}");
    // `--cwd <root>` is the module root QuickJS resolves imports under (the
    // example imports ../../../sdk/js). The QuickJS backend ignores jco's
    // `--disable` features; it imports only the WASI the runtime uses.
    run(Command::new(toolchain.join("node_modules/.bin/jco"))
        .arg("componentize")
        .arg(example.join("src/index.js"))
        .arg("--wit")
        .arg(root.join("wit"))
        .args(["--world-name", "reconciler"])
        .args(["--backend", "qjs", "--backend-qjs-disable-async"])
        .arg("--cwd")
        .arg(root)
        .arg("-o")
        .arg(&tmp))?;
    finish("js", &tmp, &out)
}

/// The directory holding the pinned `node_modules`, installed with `npm ci`
/// the first time.
fn ensure_toolchain(example: &Path) -> Result<PathBuf> {
    let lock = example.join("package-lock.json");
    let lock_bytes = std::fs::read(&lock).with_context(|| format!("reading {}", lock.display()))?;
    let dir = toolchains_root().join(format!("js-{}", fnv1a_hex(&lock_bytes)));
    if dir.join(READY_MARKER).exists() {
        return Ok(dir);
    }
    eprintln!("xtask: js: npm ci (first time) into {}", dir.display());
    if dir.exists() {
        std::fs::remove_dir_all(&dir)
            .with_context(|| format!("removing the failed install {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    for file in ["package.json", "package-lock.json"] {
        std::fs::copy(example.join(file), dir.join(file))
            .with_context(|| format!("copying {file} to {}", dir.display()))?;
    }
    run(Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(&dir))
    .context("installing jco (needs node and npm)")?;
    std::fs::write(dir.join(READY_MARKER), "")?;
    Ok(dir)
}
