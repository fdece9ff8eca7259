//! The launcher for the real control plane built from `tests/controlplane`.
//!
//! Std-only on purpose: `xtask` uses this module (with the `client` feature
//! off) for `cargo xtask cluster ...`, and the [`crate::TestEnv`] fixture uses
//! it to start a cluster for a test binary. There is one implementation of
//! "build, start, stop": the heavy lifting (PKI, processes, readiness) is in
//! the Go binary's `up`/`down`/`status`/`env` subcommands; this module finds
//! or builds that binary in the cache and drives it.
//!
//! Cache: `$OPERON_CONTROLPLANE_CACHE`, else `$XDG_CACHE_HOME/operon/controlplane`,
//! else `~/.cache/operon/controlplane`; the binary lives in
//! `<cache>/<key>/bin/operon-controlplane` where `<key>` hashes go.mod, go.sum,
//! the module's Go sources, `go version` and the build flags. Go's own module
//! and build caches (GOMODCACHE, GOCACHE) stay at their defaults, outside the
//! repository, so a rebuild after a source change is incremental.

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

/// File name of the control-plane binary inside `<cache>/<key>/bin/`.
pub const BINARY_NAME: &str = "operon-controlplane";

const LDFLAGS: &str = "-s -w";

/// The pieces compiled one after another on a cold build, so the log shows
/// which component is being built. Each step fills Go's build cache; the
/// final step only compiles `main` and links.
const BUILD_STEPS: &[(&str, &str)] = &[
    ("etcd", "go.etcd.io/etcd/server/v3/etcdmain"),
    ("kube-apiserver", "k8s.io/kubernetes/cmd/kube-apiserver/app"),
    (
        "kube-controller-manager",
        "k8s.io/kubernetes/cmd/kube-controller-manager/app",
    ),
    ("kube-scheduler", "k8s.io/kubernetes/cmd/kube-scheduler/app"),
    ("kwok", "sigs.k8s.io/kwok/pkg/kwok/cmd"),
    ("helm", "helm.sh/helm/v4/pkg/cmd"),
    (
        "crane",
        "github.com/google/go-containerregistry/cmd/crane/cmd",
    ),
    (
        "registry",
        "github.com/distribution/distribution/v3/registry",
    ),
];

fn progress(msg: std::fmt::Arguments<'_>) {
    // Straight to the stderr file descriptor: not swallowed by libtest's
    // output capture, so a cold build inside `cargo test` shows it is alive.
    let _ = writeln!(std::io::stderr(), "[operon controlplane] {msg}");
}

/// The repository root: the nearest directory holding `wit/reconciler.wit`
/// above the running package's directory (cargo sets `CARGO_MANIFEST_DIR`
/// for `cargo run` and `cargo test`) or the current directory. Found at run
/// time, not compiled in, because a target directory shared by two
/// checkouts (as CI's cache is) may hand one checkout a binary built in the
/// other; falls back to two levels above this crate.
pub fn repo_root() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .into_iter()
        .chain(std::env::current_dir().ok())
        .find_map(|start| {
            start
                .ancestors()
                .find(|dir| dir.join("wit/reconciler.wit").is_file())
                .map(Path::to_path_buf)
        })
        .unwrap_or_else(|| {
            let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
            fs::canonicalize(&root).unwrap_or(root)
        })
}

/// The Go module that builds the control plane (`tests/controlplane`).
/// Overridable with `OPERON_CONTROLPLANE_MODULE`.
pub fn module_dir() -> PathBuf {
    match std::env::var_os("OPERON_CONTROLPLANE_MODULE") {
        Some(dir) => PathBuf::from(dir),
        None => repo_root().join("tests/controlplane"),
    }
}

/// Where built binaries are cached, outside the repository.
pub fn cache_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("OPERON_CONTROLPLANE_CACHE") {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("operon/controlplane")
}

/// The cargo target directory (for the default state directories).
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                repo_root().join(dir)
            }
        }
        None => repo_root().join("target"),
    }
}

/// State directory of the developer cluster (`cargo xtask cluster up`).
pub fn default_state_dir() -> PathBuf {
    target_dir().join("operon-cluster")
}

fn go_command() -> PathBuf {
    if let Some(go) = std::env::var_os("GO") {
        return PathBuf::from(go);
    }
    let in_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("go").is_file()))
        .unwrap_or(false);
    if !in_path && Path::new("/usr/local/go/bin/go").is_file() {
        return PathBuf::from("/usr/local/go/bin/go");
    }
    PathBuf::from("go")
}

/// Content hash of everything that determines the binary.
pub fn cache_key(module: &Path) -> Result<String> {
    let mut h = Sha256::new();
    let mut files = vec![module.join("go.mod"), module.join("go.sum")];
    let mut sources: Vec<PathBuf> = fs::read_dir(module)
        .with_context(|| format!("read {}", module.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|x| x == "go") && !p.to_string_lossy().ends_with("_test.go")
        })
        .collect();
    sources.sort();
    files.extend(sources);
    for f in &files {
        let bytes = fs::read(f).with_context(|| format!("read {}", f.display()))?;
        h.update(f.file_name().unwrap().as_encoded_bytes());
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(&bytes);
    }
    let out = Command::new(go_command())
        .arg("version")
        .output()
        .context("run `go version` (is Go installed? set GO=/path/to/go)")?;
    h.update(&out.stdout);
    h.update(format!("-trimpath -ldflags={LDFLAGS}").as_bytes());
    let digest = h.finalize();
    Ok(digest.iter().take(8).map(|b| format!("{b:02x}")).collect())
}

/// Path of the cached binary for the current sources (it may not exist yet).
pub fn binary_path() -> Result<PathBuf> {
    let key = cache_key(&module_dir())?;
    Ok(cache_root().join(key).join("bin").join(BINARY_NAME))
}

/// Returns the cached control-plane binary, building it first if needed.
/// Concurrent callers (parallel test binaries) wait on a file lock, so it is
/// built once. A cold build prints each component and the elapsed time.
pub fn ensure_binary() -> Result<PathBuf> {
    let module = module_dir();
    let key = cache_key(&module)?;
    let dir = cache_root().join(&key);
    let bin = dir.join("bin").join(BINARY_NAME);
    if bin.is_file() {
        return Ok(bin);
    }
    fs::create_dir_all(dir.join("bin")).with_context(|| format!("create {}", dir.display()))?;
    let lock = File::create(dir.join("build.lock"))?;
    lock.lock().context("lock the control-plane build")?;
    if bin.is_file() {
        return Ok(bin); // another process built it while we waited
    }
    build(&module, &bin)?;
    prune_cache(&cache_root(), KEEP_BUILDS);
    Ok(bin)
}

/// How many cached builds (keys) to keep; older ones are removed after a build.
const KEEP_BUILDS: usize = 3;

fn prune_cache(root: &Path, keep: usize) {
    let Ok(entries) = fs::read_dir(root) else {
        return;
    };
    let mut builds: Vec<(std::time::SystemTime, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let bin = e.path().join("bin").join(BINARY_NAME);
            let modified = fs::metadata(&bin).and_then(|m| m.modified()).ok()?;
            Some((modified, e.path()))
        })
        .collect();
    builds.sort_by_key(|b| std::cmp::Reverse(b.0));
    for (_, dir) in builds.into_iter().skip(keep) {
        progress(format_args!("removing old build {}", dir.display()));
        let _ = fs::remove_dir_all(dir);
    }
}

fn build(module: &Path, bin: &Path) -> Result<()> {
    let total = Instant::now();
    progress(format_args!(
        "building {} from {} (cold build: several minutes; Go caches make later builds fast)",
        bin.display(),
        module.display()
    ));
    let steps: Vec<(&str, Vec<String>)> = BUILD_STEPS
        .iter()
        .map(|(name, pkg)| {
            (
                *name,
                vec!["build".into(), "-trimpath".into(), (*pkg).into()],
            )
        })
        .chain(std::iter::once((
            "operon-controlplane (link)",
            vec![
                "build".into(),
                "-trimpath".into(),
                format!("-ldflags={LDFLAGS}"),
                "-o".into(),
                bin.with_extension("tmp").to_string_lossy().into_owned(),
                ".".into(),
            ],
        )))
        .collect();
    let n = steps.len();
    for (i, (name, args)) in steps.into_iter().enumerate() {
        let start = Instant::now();
        progress(format_args!("[{}/{n}] {name} ...", i + 1));
        let done = Arc::new(AtomicBool::new(false));
        let ticker = {
            let done = done.clone();
            let name = name.to_string();
            std::thread::spawn(move || {
                let mut last = Instant::now();
                while !done.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(250));
                    if last.elapsed() >= Duration::from_secs(30) {
                        last = Instant::now();
                        progress(format_args!(
                            "    still building {name}: {:.0?} (total {:.0?})",
                            Duration::from_secs(start.elapsed().as_secs()),
                            Duration::from_secs(total.elapsed().as_secs())
                        ));
                    }
                }
            })
        };
        let status = Command::new(go_command())
            .args(&args)
            .current_dir(module)
            .stdin(Stdio::null())
            .status();
        done.store(true, Ordering::Relaxed);
        let _ = ticker.join();
        let status = status.context("run `go build`")?;
        if !status.success() {
            bail!(
                "`go {}` failed in {} ({status})",
                args.join(" "),
                module.display()
            );
        }
        progress(format_args!(
            "[{}/{n}] {name} done in {:.1?}",
            i + 1,
            start.elapsed()
        ));
    }
    fs::rename(bin.with_extension("tmp"), bin)?;
    progress(format_args!("built in {:.1?}", total.elapsed()));
    Ok(())
}

/// Options for [`up`].
#[derive(Clone, Debug)]
pub struct UpOptions {
    /// Holds PKI, kubeconfigs, etcd data, logs and the pids of the processes.
    pub state_dir: PathBuf,
    /// Number of kwok fake nodes.
    pub nodes: u32,
    /// When set, a watchdog process stops the cluster once this pid exits
    /// (covers a test binary or xtask that is killed before it cleans up).
    pub owner_pid: Option<u32>,
    /// How long to wait for readiness (apiserver, controllers, nodes).
    pub timeout: Duration,
    /// Extra kube-apiserver flags, e.g. `--watch-cache=false`.
    pub apiserver_args: Vec<String>,
}

impl UpOptions {
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        UpOptions {
            state_dir: state_dir.into(),
            nodes: 3,
            owner_pid: None,
            timeout: Duration::from_secs(180),
            apiserver_args: Vec::new(),
        }
    }
}

/// Path of the admin kubeconfig inside a state directory.
pub fn kubeconfig_path(state_dir: &Path) -> PathBuf {
    state_dir.join("admin.kubeconfig")
}

fn absolute(p: &Path) -> Result<PathBuf> {
    Ok(if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()?.join(p)
    })
}

/// Builds if needed, starts the control plane (or finds it already running in
/// that state directory) and waits until it is ready. Returns the admin
/// kubeconfig path. Progress goes to stderr.
pub fn up(opts: &UpOptions) -> Result<PathBuf> {
    let bin = ensure_binary()?;
    let state_dir = absolute(&opts.state_dir)?;
    let mut cmd = Command::new(&bin);
    cmd.arg("up")
        .arg(format!("--state-dir={}", state_dir.display()))
        .arg(format!("--nodes={}", opts.nodes))
        .arg(format!("--timeout={}s", opts.timeout.as_secs().max(1)));
    if let Some(pid) = opts.owner_pid {
        cmd.arg(format!("--owner-pid={pid}"));
    }
    for arg in &opts.apiserver_args {
        cmd.arg(format!("--apiserver-arg={arg}"));
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("start {}", bin.display()))?;
    // Forward the launcher's progress through our own stderr fd.
    let stderr = child.stderr.take().unwrap();
    let fwd = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = writeln!(std::io::stderr(), "{line}");
        }
    });
    let mut out = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut out)?;
    let status = child.wait()?;
    let _ = fwd.join();
    if !status.success() {
        bail!(
            "control plane did not come up ({status}); logs were in {}/logs (see the output above)",
            state_dir.display()
        );
    }
    let path = out
        .lines()
        .last()
        .map(PathBuf::from)
        .unwrap_or_else(|| kubeconfig_path(&state_dir));
    Ok(path)
}

/// The binary that started the cluster in `state_dir` (recorded in its
/// state.json), so `down`/`status` never rebuild just to stop a cluster.
fn binary_for_state(state_dir: &Path) -> Result<PathBuf> {
    if let Ok(json) = fs::read_to_string(state_dir.join("state.json")) {
        let key = "\"binary\": \"";
        if let Some(start) = json.find(key).map(|i| i + key.len())
            && let Some(len) = json[start..].find('"')
        {
            let bin = PathBuf::from(&json[start..start + len]);
            if bin.is_file() {
                return Ok(bin);
            }
        }
    }
    ensure_binary()
}

fn run_bin(sub: &str, state_dir: &Path) -> Result<std::process::ExitStatus> {
    launcher(state_dir, sub)?
        .status()
        .with_context(|| format!("run the control plane's {sub}"))
}

/// The OCI registries `up` started beside the cluster (tool_registry.go):
/// plain HTTP on loopback, one open and one behind basic auth.
#[derive(Debug, Clone)]
pub struct Registries {
    /// `host:port` of the open registry.
    pub open: String,
    /// `host:port` of the registry that requires [`Registries::username`].
    pub auth: String,
    pub username: String,
    pub password: String,
}

/// Reads the registries of the cluster in `state_dir` from the binary's
/// `env` subcommand (the launcher's one source of truth, no JSON parser
/// needed in this std-only module).
pub fn registries(state_dir: &Path) -> Result<Registries> {
    let out = launcher(state_dir, "env")?
        .output()
        .context("run the control plane's env")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let var = |name: &str| -> Result<String> {
        let prefix = format!("export {name}=");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .map(|v| v.trim_matches('\'').to_string())
            .with_context(|| {
                format!(
                    "{name} missing from `env` of the cluster in {} (started by an older launcher?)",
                    state_dir.display()
                )
            })
    };
    Ok(Registries {
        open: var("OPERON_REGISTRY")?,
        auth: var("OPERON_REGISTRY_AUTH")?,
        username: var("OPERON_REGISTRY_USERNAME")?,
        password: var("OPERON_REGISTRY_PASSWORD")?,
    })
}

/// Stops exactly the processes recorded in `state_dir` and removes it.
pub fn down(state_dir: &Path) -> Result<()> {
    if !state_dir.exists() {
        return Ok(());
    }
    let status = run_bin("down", state_dir)?;
    if !status.success() {
        bail!("`down` failed ({status}) for {}", state_dir.display());
    }
    Ok(())
}

/// Prints components, pids, health and log files. Ok(true) when healthy.
pub fn status(state_dir: &Path) -> Result<bool> {
    Ok(run_bin("status", state_dir)?.success())
}

/// How [`restart`] stops a component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGTERM: a graceful shutdown.
    Term,
    /// SIGKILL: a crash.
    Kill,
}

/// Stops one component of the cluster in `state_dir` (`etcd`,
/// `kube-apiserver`, ...) with `signal`, keeps it down for `down_for`,
/// starts it again with the same flags and waits until it is healthy.
pub fn restart(
    state_dir: &Path,
    component: &str,
    signal: Signal,
    down_for: Duration,
) -> Result<()> {
    let signal = match signal {
        Signal::Term => "TERM",
        Signal::Kill => "KILL",
    };
    let status = launcher(state_dir, "restart")?
        .args(["--component", component, "--signal", signal])
        .arg(format!("--down-for={}ms", down_for.as_millis()))
        .status()
        .with_context(|| format!("restart {component}"))?;
    if !status.success() {
        bail!(
            "restarting {component} failed ({status}); its log is in {}/logs",
            state_dir.display()
        );
    }
    Ok(())
}

/// Compacts etcd's history up to its current revision, every `every` for
/// `lasting` (once when `every` is zero), so that a watch resuming from an
/// older resource version is answered 410 Gone. Blocks until done.
pub fn compact(state_dir: &Path, every: Duration, lasting: Duration) -> Result<()> {
    let status = launcher(state_dir, "compact")?
        .arg(format!("--every={}ms", every.as_millis()))
        .arg(format!("--for={}ms", lasting.as_millis()))
        .stdout(Stdio::null())
        .status()
        .context("compact etcd")?;
    if !status.success() {
        bail!("compacting etcd failed ({status})");
    }
    Ok(())
}

/// The launcher's subcommand `sub` for the cluster in `state_dir`.
fn launcher(state_dir: &Path, sub: &str) -> Result<Command> {
    let state_dir = absolute(state_dir)?;
    let mut cmd = Command::new(binary_for_state(&state_dir)?);
    cmd.arg(sub)
        .arg(format!("--state-dir={}", state_dir.display()))
        .stdin(Stdio::null());
    Ok(cmd)
}

/// A running control plane that is stopped (and its state removed) on drop.
#[derive(Debug)]
pub struct ClusterGuard {
    state_dir: PathBuf,
    kubeconfig: PathBuf,
    stopped: bool,
}

impl ClusterGuard {
    /// Starts a cluster (see [`up`]); it stops when the guard is dropped.
    pub fn start(opts: &UpOptions) -> Result<ClusterGuard> {
        let kubeconfig = up(opts)?;
        Ok(ClusterGuard {
            state_dir: absolute(&opts.state_dir)?,
            kubeconfig,
            stopped: false,
        })
    }

    /// The admin kubeconfig (client certificate in group system:masters).
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// Stops the cluster now and reports errors (drop ignores them).
    pub fn stop(mut self) -> Result<()> {
        self.stopped = true;
        down(&self.state_dir)
    }
}

impl Drop for ClusterGuard {
    fn drop(&mut self) {
        if !self.stopped {
            self.stopped = true;
            if let Err(e) = down(&self.state_dir) {
                progress(format_args!("stopping the control plane failed: {e:#}"));
            }
        }
    }
}
