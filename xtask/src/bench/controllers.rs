//! The two controllers under test as processes: `operon run` with the
//! memcached component, and the native baseline (`baselines/native-memcached`),
//! each started on one namespace with its default concurrency, its logs in
//! a file, and stopped with SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// Which controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Operon,
    Native,
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Kind::Operon => "operon run (Wasm)",
            Kind::Native => "native kube-rs",
        }
    }

    fn slug(self) -> &'static str {
        match self {
            Kind::Operon => "operon",
            Kind::Native => "native",
        }
    }
}

/// Where the binaries and the component are.
#[derive(Clone)]
pub struct Binaries {
    pub operon: PathBuf,
    pub native: PathBuf,
    /// A directory holding only the memcached component.
    pub plugins: PathBuf,
    /// Where controller logs go.
    pub logs: PathBuf,
    /// More arguments for `operon run`.
    pub extra: Vec<String>,
}

/// A running controller, killed if dropped before [`Running::stop`].
pub struct Running {
    pub kind: Kind,
    child: Child,
    /// operon's /metrics address.
    metrics: Option<String>,
    /// operon's admin address (`operon plugins`).
    pub admin: Option<String>,
    /// The native baseline's stdout lines after `synced`.
    lines: Option<mpsc::Receiver<String>>,
    log: PathBuf,
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A plain HTTP GET on loopback: (status code, body).
pub fn http_get(addr: &str, path: &str) -> Result<(u16, String)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = String::new();
    s.read_to_string(&mut buf)?;
    let code = buf
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = buf
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((code, body))
}

impl Running {
    /// Starts `kind` on `namespace` and waits until its caches are synced
    /// (operon: `/readyz` answers 200; native: it prints `synced`).
    pub fn start(
        kind: Kind,
        bins: &Binaries,
        kubeconfig: &Path,
        namespace: &str,
        tag: &str,
    ) -> Result<Running> {
        std::fs::create_dir_all(&bins.logs)?;
        let log = bins.logs.join(format!("{}-{tag}.log", kind.slug()));
        let stderr =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let mut running = match kind {
            Kind::Operon => {
                let (m, h, a) = (free_port()?, free_port()?, free_port()?);
                let child = Command::new(&bins.operon)
                    .args(["run", "--plugins"])
                    .arg(&bins.plugins)
                    .arg("--kubeconfig")
                    .arg(kubeconfig)
                    .args(["--namespace", namespace])
                    .args(["--metrics-addr", &format!("127.0.0.1:{m}")])
                    .args(["--health-addr", &format!("127.0.0.1:{h}")])
                    .args(["--admin-addr", &format!("127.0.0.1:{a}")])
                    .args(&bins.extra)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(stderr)
                    .spawn()
                    .with_context(|| format!("starting {}", bins.operon.display()))?;
                let running = Running {
                    kind,
                    child,
                    metrics: Some(format!("127.0.0.1:{m}")),
                    admin: Some(format!("127.0.0.1:{a}")),
                    lines: None,
                    log,
                };
                running.wait_ready(&format!("127.0.0.1:{h}"))?;
                running
            }
            Kind::Native => {
                let mut child = Command::new(&bins.native)
                    .env("KUBECONFIG", kubeconfig)
                    .args(["--namespace", namespace])
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(stderr)
                    .spawn()
                    .with_context(|| format!("starting {}", bins.native.display()))?;
                let stdout = child.stdout.take().context("piped stdout")?;
                let (tx, rx) = mpsc::channel();
                std::thread::spawn(move || {
                    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                        if tx.send(line).is_err() {
                            return;
                        }
                    }
                });
                let running = Running {
                    kind,
                    child,
                    metrics: None,
                    admin: None,
                    lines: Some(rx),
                    log,
                };
                running.wait_synced_line()?;
                running
            }
        };
        running.check_alive()?;
        Ok(running)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// operon's /metrics address (None for the baseline).
    pub fn metrics_addr(&self) -> Option<&str> {
        self.metrics.as_deref()
    }

    fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "{} exited ({status}); see {}",
                self.kind.label(),
                self.log.display()
            );
        }
        Ok(())
    }

    fn wait_ready(&self, health: &str) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            if http_get(health, "/readyz").is_ok_and(|(code, _)| code == 200) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!(
            "operon run was not ready within 120 s; see {}",
            self.log.display()
        )
    }

    fn wait_synced_line(&self) -> Result<()> {
        let rx = self.lines.as_ref().context("no stdout")?;
        match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(line) if line.trim() == "synced" => Ok(()),
            Ok(line) => bail!("native-memcached printed {line:?} before `synced`"),
            Err(_) => bail!(
                "native-memcached did not sync within 120 s; see {}",
                self.log.display()
            ),
        }
    }

    /// operon's reconciles so far (all results), from its /metrics.
    pub fn operon_reconciles(&self) -> Result<f64> {
        let addr = self.metrics.as_deref().context("not operon")?;
        let (_, text) = http_get(addr, "/metrics")?;
        Ok(text
            .lines()
            .filter(|l| l.starts_with("controller_runtime_reconcile_total{"))
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum())
    }

    /// Whether this operon replica holds its Lease (`--leader-elect`),
    /// from `leader_election_master_status` on its /metrics.
    pub fn leads(&self) -> Result<bool> {
        let addr = self.metrics.as_deref().context("not operon")?;
        let (_, text) = http_get(addr, "/metrics")?;
        Ok(text
            .lines()
            .filter(|l| l.starts_with("leader_election_master_status{"))
            .any(|l| l.ends_with(" 1")))
    }

    /// SIGTERM, wait for the exit; returns the reconciles done over the
    /// process's life (operon: read from /metrics just before stopping;
    /// native: its final stats line).
    pub fn stop(mut self) -> Result<f64> {
        let before = match self.kind {
            Kind::Operon => Some(self.operon_reconciles()?),
            Kind::Native => None,
        };
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .context("running kill")?;
        let status = self.child.wait()?;
        if !status.success() {
            bail!(
                "{} exited with {status} on SIGTERM; see {}",
                self.kind.label(),
                self.log.display()
            );
        }
        if let Some(n) = before {
            return Ok(n);
        }
        let rx = self.lines.as_ref().context("no stdout")?;
        while let Ok(line) = rx.recv_timeout(Duration::from_secs(10)) {
            if let Some(n) = line
                .strip_prefix("reconciles=")
                .and_then(|s| s.split_whitespace().next())
                .and_then(|n| n.parse::<f64>().ok())
            {
                return Ok(n);
            }
        }
        bail!("native-memcached printed no stats line on exit")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
