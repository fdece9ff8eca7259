//! PostgreSQL for the postgres plugin's tests (`plugins/postgres/tests/
//! postgres.rs`), which run the generated configuration, entrypoint and SQL
//! against a real server: the Debian `postgresql` package, installed with
//! apt-get when missing (as the C toolchain is), never skipped.

use anyhow::Result;
use std::path::Path;

use super::common::apt_install;

/// Whether a server binary is installed (`/usr/lib/postgresql/<major>/bin`);
/// if not, installs the package as root, or says what to install.
pub fn ensure() -> Result<()> {
    let installed = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.flatten().any(|v| v.path().join("bin/postgres").exists()))
        .unwrap_or(false);
    if installed && Path::new("/usr/sbin/runuser").exists() {
        return Ok(());
    }
    apt_install("the postgres plugin's tests", &["postgresql", "util-linux"])
}
