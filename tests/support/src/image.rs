//! The host's OCI image, built without a container engine: a root
//! filesystem of the `operon` binary and exactly the shared libraries it
//! loads (as `ldd` lists them), the CA bundle and a passwd entry for the
//! non-root user, packed as one layer and pushed with `crane` (compiled
//! into the control-plane binary, like every other tool here).
//!
//! Std-only and here, not in `xtask`, for the same reason as
//! [`crate::controlplane`]: `cargo xtask image` builds the release image
//! with it, and the host's `image_e2e` test builds one from the test's own
//! binary with the very same code, then unpacks it and runs it under
//! `chroot`.
//!
//! Why glibc and `ldd` rather than a static (musl) build: the workspace
//! builds ring and wasmtime's C parts with the system's gcc, and there is
//! no musl toolchain here; copying what the dynamic loader would load is
//! exact, and the test proves the result complete by running it with
//! nothing else around.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::controlplane;

/// The user the host runs as in the image (distroless' `nonroot`).
pub const USER: u32 = 65532;

/// Where the image expects writable storage (an emptyDir in the chart):
/// the compile cache and fetched artifacts.
pub const CACHE_DIR: &str = "/var/cache/operon";

/// The CA bundle, at the path rustls' native roots and Go look first.
const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// What a built image is.
#[derive(Debug, Clone)]
pub struct Built {
    /// `registry/repository@sha256:...`.
    pub pinned: String,
    /// Every file of the root filesystem, relative to it.
    pub files: Vec<PathBuf>,
}

/// A `crane` command (the control plane's `operon-controlplane crane`),
/// allowed plain HTTP: the test registry is on loopback.
pub fn crane() -> Result<Command> {
    let mut cmd = Command::new(controlplane::ensure_binary()?);
    cmd.args(["crane", "--insecure"]);
    Ok(cmd)
}

fn run(cmd: &mut Command, what: &str) -> Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The shared libraries `binary` loads, as absolute paths (the dynamic
/// loader among them); empty for a static binary.
pub fn libraries(binary: &Path) -> Result<Vec<PathBuf>> {
    let out = Command::new("ldd")
        .arg(binary)
        .output()
        .context("running ldd")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if text.contains("not a dynamic executable") || text.contains("statically linked") {
        return Ok(Vec::new());
    }
    if !out.status.success() {
        bail!(
            "ldd {}: {}",
            binary.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut libs = Vec::new();
    for line in text.lines() {
        // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)",
        // "/lib64/ld-linux-x86-64.so.2 (0x...)", "linux-vdso.so.1 (0x...)".
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line
                .split_whitespace()
                .next()
                .filter(|p| p.starts_with('/')),
        };
        match path {
            Some("not") => bail!("ldd {}: {line}", binary.display()),
            Some(p) if p.starts_with('/') => libs.push(PathBuf::from(p)),
            _ => {}
        }
    }
    Ok(libs)
}

fn copy_to(rootfs: &Path, from: &Path, at: &str) -> Result<PathBuf> {
    let rel = PathBuf::from(at.trim_start_matches('/'));
    let to = rootfs.join(&rel);
    fs::create_dir_all(to.parent().unwrap())?;
    // fs::copy follows symlinks: the image holds the library itself under
    // the name the loader asks for.
    fs::copy(from, &to).with_context(|| format!("copying {} into the image", from.display()))?;
    Ok(rel)
}

/// Fills `rootfs` (emptied first) with what the image holds; returns its
/// files.
pub fn assemble(binary: &Path, rootfs: &Path) -> Result<Vec<PathBuf>> {
    let _ = fs::remove_dir_all(rootfs);
    fs::create_dir_all(rootfs)?;
    let mut files = vec![copy_to(rootfs, binary, "/operon")?];
    for lib in libraries(binary)? {
        files.push(copy_to(rootfs, &lib, &lib.to_string_lossy())?);
    }
    if Path::new(CA_BUNDLE).is_file() {
        files.push(copy_to(rootfs, Path::new(CA_BUNDLE), CA_BUNDLE)?);
    }
    let etc = rootfs.join("etc");
    fs::create_dir_all(&etc)?;
    fs::write(
        etc.join("passwd"),
        format!("nonroot:x:{USER}:{USER}:nonroot:/home/nonroot:/sbin/nologin\n"),
    )?;
    fs::write(etc.join("group"), format!("nonroot:x:{USER}:\n"))?;
    files.extend(["etc/passwd", "etc/group"].map(PathBuf::from));
    for dir in ["home/nonroot", CACHE_DIR.trim_start_matches('/'), "tmp"] {
        fs::create_dir_all(rootfs.join(dir))?;
    }
    files.sort();
    Ok(files)
}

/// One reproducible layer of `rootfs`: sorted, owned by root, time zero.
/// The writable directories belong to the non-root user.
fn layer(rootfs: &Path, tarball: &Path) -> Result<()> {
    let owned = |dir: &str| format!("./{}", dir.trim_start_matches('/'));
    run(
        Command::new("tar")
            .args(["--sort=name", "--mtime=@0", "--numeric-owner"])
            .args(["--owner=0", "--group=0"])
            .arg("-C")
            .arg(rootfs)
            .arg("-cf")
            .arg(tarball)
            .args([
                "--exclude",
                &owned(CACHE_DIR),
                "--exclude",
                "./home/nonroot",
            ])
            .arg("."),
        "tar (image layer)",
    )?;
    // The directories the user writes to, appended with its ownership.
    run(
        Command::new("tar")
            .args(["--mtime=@0", "--numeric-owner"])
            .args([format!("--owner={USER}"), format!("--group={USER}")])
            .arg("-C")
            .arg(rootfs)
            .arg("-rf")
            .arg(tarball)
            .args(["--no-recursion", "./home/nonroot", "./var/cache/operon"]),
        "tar (writable directories)",
    )?;
    Ok(())
}

/// The OCI name of this machine's architecture (the binary's: it is
/// built here).
pub fn architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// Builds the image of `binary` in `work` and pushes it as `reference`
/// (`registry/repository:tag`): non-root, entrypoint `operon run`.
pub fn build_and_push(binary: &Path, work: &Path, reference: &str) -> Result<Built> {
    let rootfs = work.join("rootfs");
    let files = assemble(binary, &rootfs)?;
    let tarball = work.join("layer.tar");
    layer(&rootfs, &tarball)?;
    run(
        crane()?
            .args(["append", "--oci-empty-base", "-f"])
            .arg(&tarball)
            .args(["-t", reference]),
        "crane append",
    )?;
    let user = format!("{USER}:{USER}");
    let platform = format!("linux/{}", architecture());
    let cache = format!("OPERON_CACHE_DIR={CACHE_DIR}/compiled");
    run(
        crane()?
            .args(["mutate", reference, "--set-platform", &platform])
            .args([
                "--entrypoint",
                "/operon,run",
                "--user",
                &user,
                "--workdir",
                "/",
            ])
            .args(["-e", "HOME=/home/nonroot", "-e", &cache])
            .args(["-l", "org.opencontainers.image.title=operon"])
            .args(["-t", reference]),
        "crane mutate",
    )?;
    let digest = run(crane()?.args(["digest", reference]), "crane digest")?;
    let repository = reference.rsplit_once(':').map_or(reference, |(r, _)| r);
    Ok(Built {
        pinned: format!("{repository}@{digest}"),
        files,
    })
}

/// Unpacks the image's layers (flattened, as a runtime would see them)
/// into `dir`, emptied first.
pub fn unpack(reference: &str, dir: &Path) -> Result<()> {
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(dir)?;
    let tarball = dir.with_extension("tar");
    run(
        crane()?.args(["export", reference]).arg(&tarball),
        "crane export",
    )?;
    run(
        Command::new("tar")
            .args(["--same-owner", "-xf"])
            .arg(&tarball)
            .arg("-C")
            .arg(dir),
        "tar -x (image)",
    )?;
    fs::remove_file(&tarball)?;
    Ok(())
}

/// The image's config (`crane config`), as JSON text.
pub fn config(reference: &str) -> Result<String> {
    run(crane()?.args(["config", reference]), "crane config")
}
