//! A real PostgreSQL in tests (the Debian `postgresql` package; `cargo
//! xtask test` installs it): a scratch directory the postgres user owns,
//! commands run as that user (PostgreSQL refuses root; as root they go
//! through `runuser`) with exactly the environment given, and every server
//! started in it stopped, and the directory removed, on drop.
//!
//! Shared by the postgres plugin's tests and the backup plugin's script
//! tests (`#[path]`): each adds its own ways to start a server.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output};
use std::sync::atomic::{AtomicU32, Ordering};

/// The newest installed PostgreSQL's bin directory and major.
pub fn pg_bin() -> (PathBuf, i64) {
    let mut found: Vec<(i64, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let major = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").exists().then_some((major, bin))
        })
        .collect();
    found.sort();
    let (major, bin) = found.pop().expect(
        "PostgreSQL is not installed (/usr/lib/postgresql/<major>/bin): install the Debian \
         package `postgresql` (`cargo xtask test` does it)",
    );
    (bin, major)
}

pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// No environment but PATH and HOME.
pub fn no_env() -> BTreeMap<&'static str, String> {
    BTreeMap::new()
}

/// The scratch directory and the servers started in it.
pub struct Sandbox {
    pub dir: PathBuf,
    pub bin: PathBuf,
    pub major: i64,
    /// Data directories with a server, and its process when the test
    /// spawned it (not when `pg_ctl` daemonized it).
    servers: Vec<(Option<Child>, PathBuf)>,
}

impl Sandbox {
    /// A fresh directory `<temp>/operon-<prefix>-<name>-<pid>-<n>`.
    pub fn new(prefix: &str, name: &str) -> Sandbox {
        static N: AtomicU32 = AtomicU32::new(0);
        let (bin, major) = pg_bin();
        let dir = std::env::temp_dir().join(format!(
            "operon-{prefix}-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let sb = Sandbox {
            dir,
            bin,
            major,
            servers: Vec::new(),
        };
        sb.chown();
        sb
    }

    /// Gives everything in the directory to the postgres user (as root).
    pub fn chown(&self) {
        if is_root() {
            let st = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&self.dir)
                .status()
                .unwrap();
            assert!(st.success());
        }
    }

    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.join(p)
    }

    /// A command as the postgres user with exactly `env` (plus PATH, HOME).
    pub fn command<K: AsRef<OsStr>>(
        &self,
        program: &str,
        args: &[&str],
        env: &BTreeMap<K, String>,
    ) -> Command {
        let path = format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", self.bin.display());
        let mut cmd = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", program]);
            c
        } else {
            Command::new(program)
        };
        cmd.args(args)
            .env_clear()
            .env("PATH", path)
            .env("HOME", &self.dir)
            .envs(env.iter())
            .current_dir(&self.dir);
        cmd
    }

    pub fn run<K: AsRef<OsStr>>(
        &self,
        program: &str,
        args: &[&str],
        env: &BTreeMap<K, String>,
    ) -> Output {
        self.command(program, args, env).output().unwrap()
    }

    /// Runs and asserts success; its trimmed stdout.
    pub fn ok<K: AsRef<OsStr>>(
        &self,
        program: &str,
        args: &[&str],
        env: &BTreeMap<K, String>,
    ) -> String {
        let out = self.run(program, args, env);
        assert!(
            out.status.success(),
            "{program} {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Remembers a server on `pgdata` to stop on drop.
    pub fn track(&mut self, process: Option<Child>, pgdata: PathBuf) {
        self.servers.push((process, pgdata));
    }

    /// The exit status of a spawned server that has exited, if any.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.servers
            .iter_mut()
            .find_map(|(child, _)| child.as_mut()?.try_wait().ok().flatten())
    }

    /// Stops the server of a data directory (fast shutdown) and reaps it.
    pub fn stop(&mut self, pgdata: &Path) {
        let _ = self.run(
            "pg_ctl",
            &["stop", "-D", pgdata.to_str().unwrap(), "-m", "fast", "-w"],
            &no_env(),
        );
        if let Some(i) = self.servers.iter().position(|(_, d)| d == pgdata) {
            let (child, _) = self.servers.remove(i);
            if let Some(mut child) = child {
                let _ = child.wait();
            }
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let dirs: Vec<PathBuf> = self.servers.iter().map(|(_, d)| d.clone()).collect();
        for d in dirs {
            let _ = self.run(
                "pg_ctl",
                &["stop", "-D", d.to_str().unwrap(), "-m", "immediate", "-w"],
                &no_env(),
            );
        }
        for (child, _) in &mut self.servers {
            if let Some(child) = child {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
