//! PostgreSQL for the postgres plugin's tests (`plugins/postgres/tests/
//! postgres.rs`), which run the generated configuration, entrypoint and SQL
//! against a real server: the Debian `postgresql` package, installed with
//! apt-get when missing (as the C toolchain is), never skipped.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

use super::common::run;

/// Whether a server binary is installed (`/usr/lib/postgresql/<major>/bin`);
/// if not, installs the package as root, or says what to install.
pub fn ensure() -> Result<()> {
    let installed = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.flatten().any(|v| v.path().join("bin/postgres").exists()))
        .unwrap_or(false);
    if installed && Path::new("/usr/sbin/runuser").exists() {
        return Ok(());
    }
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    if !is_root || Command::new("apt-get").arg("--version").output().is_err() {
        bail!(
            "the postgres plugin's tests need a PostgreSQL server: install the Debian package postgresql"
        );
    }
    eprintln!("xtask: postgres: installing postgresql with apt-get");
    run(Command::new("apt-get").args(["update", "-qq"]))?;
    run(Command::new("apt-get")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .args(["install", "-y", "-qq", "postgresql", "util-linux"]))
    .context("installing PostgreSQL")
}
