//! The Python memcached example (`examples/python-memcached`), built with
//! componentize-py.
//!
//! componentize-py is pinned to [`COMPONENTIZE_PY`] and installed once with
//! pip into a virtualenv `<toolchains>/python-<version>/` (see
//! [`super::common::toolchains_root`]), never into the clone. Components embed
//! CPython and weigh about 18 MB.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

use super::common::{
    READY_MARKER, finish, memcached_crd, run, toolchains_root, up_to_date, write_if_changed,
};

/// The pinned componentize-py release.
pub const COMPONENTIZE_PY: &str = "0.25.1";

/// The component's file name in `out_dir`.
pub const OUTPUT: &str = "python_memcached.wasm";

/// Builds `examples/python-memcached` into `out_dir/python_memcached.wasm`,
/// installing the pinned componentize-py first if needed; does nothing when
/// the component is newer than every source. Returns the component's path.
pub fn build(root: &Path, out_dir: &Path) -> Result<PathBuf> {
    let example = root.join("examples/python-memcached");
    let out = out_dir.join(OUTPUT);

    // crd.py is generated from the Rust example's CRD (one source for both).
    let crd = memcached_crd(root)?;
    anyhow::ensure!(
        !crd.contains("\"\"\"") && !crd.ends_with('\\'),
        "the CRD cannot be embedded in a raw triple-quoted Python string"
    );
    write_if_changed(
        &example.join("crd.py"),
        &format!(
            "# Generated from examples/rust-memcached/crd.json (the CRD both examples ship)\n\
             # by `cargo xtask build`; do not edit.\nCRD = r\"\"\"{crd}\"\"\"\n"
        ),
    )?;

    let sources = [example.clone(), root.join("sdk/python"), root.join("wit")];
    if up_to_date(&out, &sources)? {
        eprintln!("xtask: python: {OUTPUT} is up to date");
        return Ok(out);
    }

    let venv = ensure_toolchain()?;
    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let tmp = out_dir.join(format!("{OUTPUT}.tmp"));
    eprintln!("xtask: python: componentize-py {COMPONENTIZE_PY} componentize app -> {OUTPUT}");
    run(Command::new(venv.join("bin/componentize-py"))
        .arg("-d")
        .arg(root.join("wit"))
        .args(["-w", "reconciler", "componentize", "app"])
        .arg("-p")
        .arg(&example)
        .arg("-p")
        .arg(root.join("sdk/python"))
        .arg("-o")
        .arg(&tmp)
        // Only the paths above go into the component, whatever venv is active.
        .env_remove("VIRTUAL_ENV")
        .env_remove("PYTHONPATH")
        .current_dir(root))?;
    finish("python", &tmp, &out)
}

/// The virtualenv holding the pinned componentize-py, created the first time
/// with `python3 -m venv` (`$PYTHON` overrides the interpreter) and pip.
fn ensure_toolchain() -> Result<PathBuf> {
    let venv = toolchains_root().join(format!("python-{COMPONENTIZE_PY}"));
    if venv.join(READY_MARKER).exists() {
        return Ok(venv);
    }
    eprintln!(
        "xtask: python: pip install componentize-py=={COMPONENTIZE_PY} (first time) into {}",
        venv.display()
    );
    if venv.exists() {
        std::fs::remove_dir_all(&venv)
            .with_context(|| format!("removing the failed install {}", venv.display()))?;
    }
    let python = std::env::var_os("PYTHON").unwrap_or_else(|| "python3".into());
    run(Command::new(&python).args(["-m", "venv"]).arg(&venv))
        .context("creating the componentize-py virtualenv (needs python3 with venv)")?;
    run(Command::new(venv.join("bin/pip"))
        .args(["install", "--disable-pip-version-check", "--quiet"])
        .arg(format!("componentize-py=={COMPONENTIZE_PY}")))
    .context("installing componentize-py")?;
    std::fs::write(venv.join(READY_MARKER), "")?;
    Ok(venv)
}
