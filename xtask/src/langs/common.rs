//! What the language builds share: the toolchain cache, freshness checks,
//! generated files and running tools.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use anyhow::{Context, Result, bail};

/// Where pinned toolchains are installed, outside the clone:
/// `$OPERON_TOOLCHAINS`, else `$XDG_CACHE_HOME/operon/toolchains`, else
/// `~/.cache/operon/toolchains`.
pub fn toolchains_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("OPERON_TOOLCHAINS") {
        return PathBuf::from(dir);
    }
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("operon/toolchains")
}

/// The file written last inside a toolchain directory once its install
/// succeeded; a directory without it is a failed install and is redone.
pub const READY_MARKER: &str = ".operon-toolchain-ready";

/// 64-bit FNV-1a as 16 hex digits: a stable name for a lockfile's contents
/// (std's hasher is not guaranteed stable across Rust releases).
pub fn fnv1a_hex(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// The newest modification time among `paths` (files, or directories walked
/// recursively, skipping `node_modules`, `__pycache__`, dot-directories and
/// `*.wasm`).
pub fn newest_mtime(paths: &[PathBuf]) -> Result<SystemTime> {
    let mut newest = SystemTime::UNIX_EPOCH;
    for p in paths {
        walk(p, &mut newest)?;
    }
    Ok(newest)
}

fn walk(path: &Path, newest: &mut SystemTime) -> Result<()> {
    let meta = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    if meta.is_dir() {
        for entry in
            std::fs::read_dir(path).with_context(|| format!("listing {}", path.display()))?
        {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name == "node_modules" || name == "__pycache__" || name.starts_with('.') {
                continue;
            }
            walk(&entry.path(), newest)?;
        }
    } else if path.extension().is_none_or(|e| e != "wasm") {
        let modified = meta.modified()?;
        if modified > *newest {
            *newest = modified;
        }
    }
    Ok(())
}

/// Whether `out` exists and is newer than every source.
pub fn up_to_date(out: &Path, sources: &[PathBuf]) -> Result<bool> {
    let Ok(built) = std::fs::metadata(out).and_then(|m| m.modified()) else {
        return Ok(false);
    };
    Ok(built > newest_mtime(sources)?)
}

/// Writes `contents` to `path` unless it already holds exactly that (so an
/// unchanged generated file keeps its modification time).
pub fn write_if_changed(path: &Path, contents: &str) -> Result<()> {
    if std::fs::read_to_string(path).is_ok_and(|old| old == contents) {
        return Ok(());
    }
    std::fs::write(path, contents).with_context(|| format!("writing {}", path.display()))
}

/// The CRD the memcached examples ship: the Rust example's, the one source.
pub fn memcached_crd(root: &Path) -> Result<String> {
    let path = root.join("examples/rust-memcached/crd.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(text.trim_end().to_string())
}

/// Runs a command to completion, failing with the command line if it fails.
pub fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("starting {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed ({status})");
    }
    Ok(())
}

/// Moves a freshly built `tmp` over `out` (never leaving a half-written
/// component behind) and reports its size.
pub fn finish(lang: &str, tmp: &Path, out: &Path) -> Result<PathBuf> {
    std::fs::rename(tmp, out)
        .with_context(|| format!("moving {} to {}", tmp.display(), out.display()))?;
    let size = std::fs::metadata(out)?.len();
    eprintln!(
        "xtask: {lang}: built {} ({:.1} MB)",
        out.display(),
        size as f64 / 1_000_000.0
    );
    Ok(out.to_path_buf())
}

/// Installs Debian packages with apt-get for `what` (e.g. "the C example"),
/// as root; otherwise fails saying which packages to install.
pub fn apt_install(what: &str, packages: &[&str]) -> Result<()> {
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    let have_apt = Command::new("apt-get").arg("--version").output().is_ok();
    if !is_root || !have_apt {
        bail!(
            "{what} needs the Debian packages {}: install them",
            packages.join(" ")
        );
    }
    eprintln!(
        "xtask: installing {} with apt-get for {what}",
        packages.join(" ")
    );
    run(Command::new("apt-get").args(["update", "-qq"]))?;
    run(Command::new("apt-get")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .args(["install", "-y", "-qq"])
        .args(packages))
    .with_context(|| format!("installing {}", packages.join(" ")))
}
