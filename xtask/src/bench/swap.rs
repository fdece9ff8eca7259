//! Swap latency: from a new build renamed into the plugin directory to the
//! first reconcile finished on it, for the Rust memcached example and the
//! Python one (an 18 MB component), cold (never compiled) and cached (in
//! the compile cache, not among the kept revisions).
//!
//! Each build is the component with a custom section appended holding a
//! counter: a new digest, the same behaviour. The start is taken just
//! before `rename(2)`; the end is the host's own timestamp of the first
//! reconcile of the new revision (`firstReconcileAt` in `operon plugins`),
//! so polling the admin endpoint does not add to the figure.
//!
//! The baseline, side by side: what a controller without hot swap does to
//! deploy a new build — stop the process, put the build in place, start
//! it again — timed the same way (stop → first reconcile of the restarted
//! host), with the build already in the compile cache.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use super::controllers::{Binaries, Kind, Running, http_get};
use super::{Goal, Section, Setup, cluster, stats};
use crate::plugins;

/// The file the builds are published as.
const FILE: &str = "memcached.wasm";

/// Builds of one component cycled through in the cached runs: more than
/// the host keeps (`--keep-revisions 2`), so each comes from the compile
/// cache rather than from memory.
const CYCLE: usize = 4;

/// `bytes` with a custom section `operon-bench` holding `n` appended.
pub(super) fn variant(bytes: &[u8], n: usize) -> Vec<u8> {
    let name = b"operon-bench";
    let payload = n.to_le_bytes();
    let mut content = Vec::new();
    leb128(&mut content, name.len());
    content.extend_from_slice(name);
    content.extend_from_slice(&payload);
    let mut out = bytes.to_vec();
    out.push(0); // custom section id
    leb128(&mut out, content.len());
    out.extend_from_slice(&content);
    out
}

fn leb128(out: &mut Vec<u8>, mut v: usize) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

pub(super) fn unix(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// One measured swap.
pub(super) struct Sample {
    /// Rename → first reconcile on the new revision, ms.
    pub total: f64,
    /// Rename → the new revision active (found, compiled, swapped), ms.
    pub active: f64,
    pub compile: f64,
}

/// Publishes `bytes` (write aside, rename) and waits for the first
/// reconcile on the revision it becomes.
pub(super) fn swap(admin: &str, dir: &Path, bytes: &[u8]) -> Result<Sample> {
    let tmp = dir.join(format!(".{FILE}.tmp"));
    std::fs::write(&tmp, bytes)?;
    let t0 = unix(SystemTime::now());
    std::fs::rename(&tmp, dir.join(FILE))?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
        let (code, body) = http_get(admin, "/plugins/memcached")?;
        if code != 200 {
            bail!("the admin endpoint answered {code}: {body}");
        }
        let plugin: Value = serde_json::from_str(&body)?;
        let active = plugin["revisions"]
            .as_array()
            .and_then(|rs| rs.iter().find(|r| r["state"] == "active"))
            .cloned()
            .unwrap_or(Value::Null);
        let activated = active["activatedAt"].as_f64().unwrap_or(0.0);
        if activated < t0 {
            continue;
        }
        if let Some(first) = active["tracker"]["firstReconcileAt"].as_f64() {
            return Ok(Sample {
                total: (first - t0) * 1000.0,
                active: (activated - t0) * 1000.0,
                compile: active["compileMs"].as_f64().unwrap_or(0.0),
            });
        }
    }
    bail!("no reconcile on the new revision within 120 s")
}

struct Row {
    component: String,
    size_mb: f64,
    mode: &'static str,
    samples: Vec<Sample>,
}

/// Cold then cached swaps of one component.
fn measure(
    admin: &str,
    dir: &Path,
    label: &str,
    bytes: &[u8],
    cold: usize,
    cached: usize,
    counter: &mut usize,
) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    let mut builds = Vec::new();
    let mut samples = Vec::new();
    for i in 0..cold.max(CYCLE) {
        *counter += 1;
        let build = variant(bytes, *counter);
        let s = swap(admin, dir, &build)?;
        eprintln!(
            "xtask bench:   {label} cold {}/{}: {:.1} ms",
            i + 1,
            cold.max(CYCLE),
            s.total
        );
        if builds.len() < CYCLE {
            builds.push(build);
        }
        samples.push(s);
        std::thread::sleep(Duration::from_millis(200));
    }
    rows.push(Row {
        component: label.to_string(),
        size_mb: bytes.len() as f64 / 1e6,
        mode: "cold (compiled)",
        samples,
    });
    let mut samples = Vec::new();
    for i in 0..cached {
        let s = swap(admin, dir, &builds[i % CYCLE])?;
        eprintln!(
            "xtask bench:   {label} cached {}/{cached}: {:.1} ms",
            i + 1,
            s.total
        );
        samples.push(s);
        std::thread::sleep(Duration::from_millis(200));
    }
    rows.push(Row {
        component: label.to_string(),
        size_mb: bytes.len() as f64 / 1e6,
        mode: "cached (compile cache)",
        samples,
    });
    Ok(rows)
}

/// The first reconcile of the host's active revision, by its clock.
pub(super) fn first_reconcile(admin: &str) -> Result<Option<f64>> {
    let (code, body) = http_get(admin, "/plugins/memcached")?;
    if code != 200 {
        return Ok(None);
    }
    let plugin: Value = serde_json::from_str(&body)?;
    Ok(plugin["revisions"]
        .as_array()
        .and_then(|rs| rs.iter().find(|r| r["state"] == "active"))
        .and_then(|r| r["tracker"]["firstReconcileAt"].as_f64()))
}

/// Restart deploys: stop the host, put the build in place, start it, until
/// its first reconcile. Returns the samples (ms) and the running host.
fn restarts(
    mut host: Running,
    bins: &Binaries,
    kubeconfig: &Path,
    ns: &str,
    builds: &[Vec<u8>],
    n: usize,
) -> Result<(Vec<f64>, Running)> {
    let mut samples = Vec::new();
    for i in 0..n {
        let t0 = unix(SystemTime::now());
        host.stop()?;
        std::fs::write(bins.plugins.join(FILE), &builds[i % builds.len()])?;
        host = Running::start(Kind::Operon, bins, kubeconfig, ns, "swap")?;
        let admin = host.admin.clone().context("operon has an admin address")?;
        let deadline = Instant::now() + Duration::from_secs(120);
        let first = loop {
            if let Some(t) = first_reconcile(&admin)? {
                break t;
            }
            if Instant::now() > deadline {
                bail!("the restarted host did not reconcile within 120 s");
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let ms = (first - t0) * 1000.0;
        eprintln!("xtask bench:   restart {}/{n}: {ms:.1} ms", i + 1);
        samples.push(ms);
    }
    Ok((samples, host))
}

pub async fn section(setup: &Setup) -> Result<Section> {
    let (rust_n, python_cold, python_cached, restart_n) = if setup.quick {
        (5, 2, 4, 2)
    } else {
        (20, 5, 10, 5)
    };
    eprintln!("xtask bench: swap latency: fresh cluster, one Memcached parent");
    let cluster = cluster::start("swap").await?;
    let ns = "bench".to_string();
    cluster.namespace(&ns).await?;
    let wasm = plugins::wasm_dir();
    let rust =
        std::fs::read(wasm.join("rust_memcached.wasm")).context("reading the Rust example")?;
    let python =
        std::fs::read(wasm.join("python_memcached.wasm")).context("reading the Python example")?;
    let dir = plugins::target_dir().join("bench-swap-plugins");
    let cache = plugins::target_dir().join("bench-swap-cache");
    for d in [&dir, &cache] {
        let _ = std::fs::remove_dir_all(d);
        std::fs::create_dir_all(d)?;
    }
    std::fs::write(dir.join(FILE), &rust)?;
    let bins = Binaries {
        operon: setup.bins.operon.clone(),
        native: setup.bins.native.clone(),
        plugins: dir.clone(),
        logs: setup.bins.logs.clone(),
        extra: vec![
            "--cache-dir".into(),
            cache.display().to_string(),
            "--keep-revisions".into(),
            "2".into(),
        ],
    };
    let host = Running::start(Kind::Operon, &bins, &cluster.kubeconfig, &ns, "swap")?;
    cluster::create_parents(&cluster.client, &ns, 1, 1, 1).await?;
    let admin = host.admin.clone().context("operon has an admin address")?;
    let kubeconfig = cluster.kubeconfig.clone();
    let (rows, restart, host) = tokio::task::spawn_blocking(move || {
        // The first reconcile of the starting revision, before any swap.
        let deadline = Instant::now() + Duration::from_secs(120);
        while host.operon_reconciles()? < 1.0 {
            if Instant::now() > deadline {
                bail!("operon did not reconcile the parent within 120 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut counter = 0;
        let mut rows = measure(
            &admin,
            &dir,
            "Rust example",
            &rust,
            rust_n,
            rust_n,
            &mut counter,
        )?;
        // The baseline on the same builds (all in the compile cache now).
        let builds: Vec<Vec<u8>> = (1..=CYCLE).map(|n| variant(&rust, n)).collect();
        let (restart, host) = restarts(host, &bins, &kubeconfig, "bench", &builds, restart_n)?;
        let admin = host.admin.clone().context("operon has an admin address")?;
        rows.extend(measure(
            &admin,
            &dir,
            "Python example",
            &python,
            python_cold,
            python_cached,
            &mut counter,
        )?);
        anyhow::Ok((rows, restart, host))
    })
    .await??;
    tokio::task::block_in_place(|| host.stop())?;
    drop(cluster);
    let _ = std::fs::remove_dir_all(&cache);

    let mut md = String::new();
    writeln!(md, "## Hot swap: swap latency\n")?;
    writeln!(
        md,
        "A new build renamed into the plugin directory of a running `operon run` (one Memcached \
         parent, default `--watch-interval-ms 100`), until the first reconcile on the new \
         revision has finished, by the host's own clock (`firstReconcileAt` in `operon plugins`). \
         Cold: a build never compiled; cached: one in the compile cache but not among the kept \
         revisions (`--keep-revisions 2`, {CYCLE} builds cycled). \"Active\" is rename → the new \
         revision swapped in (the directory poll, compile or cache load, checks, draining the \
         old revision); the rest is the reconcile. The Python example is swapped in over the Rust \
         one (same plugin name and kinds: a change of language under a running host).\n"
    )?;
    writeln!(
        md,
        "| component | size | build | samples | median | p99 | median until active | median compile |"
    )?;
    writeln!(md, "|---|---:|---|---:|---:|---:|---:|---:|")?;
    let mut goals = Vec::new();
    for r in &rows {
        let total: Vec<f64> = r.samples.iter().map(|s| s.total).collect();
        let active: Vec<f64> = r.samples.iter().map(|s| s.active).collect();
        let compile: Vec<f64> = r.samples.iter().map(|s| s.compile).collect();
        let (median, p99) = (stats::median(total.clone()), stats::percentile(total, 0.99));
        writeln!(
            md,
            "| {} | {:.1} MB | {} | {} | {median:.0} ms | {p99:.0} ms | {:.0} ms | {:.0} ms |",
            r.component,
            r.size_mb,
            r.mode,
            r.samples.len(),
            stats::median(active),
            stats::median(compile),
        )?;
        if r.component.starts_with("Rust") {
            goals.push(Goal {
                goal: if r.mode.starts_with("cold") {
                    "Swap latency, Rust example, cold"
                } else {
                    "Swap latency, Rust example, cached"
                },
                target: "< 200 ms (median)".into(),
                measured: format!("{median:.0} ms median, {p99:.0} ms p99"),
                met: Some(median < 200.0),
            });
        }
    }
    md.push('\n');
    let swap_cached = rows
        .iter()
        .find(|r| r.component.starts_with("Rust") && r.mode.starts_with("cached"))
        .map_or(f64::NAN, |r| {
            stats::median(r.samples.iter().map(|s| s.total).collect())
        });
    let restart_median = stats::median(restart.clone());
    writeln!(
        md,
        "Baseline, side by side: deploying a new build the way a controller without hot swap \
         must: stop the process (SIGTERM, in-flight reconciles drained), put the build in \
         place, start it; from the stop to the restarted host's first reconcile, the build in \
         the compile cache, {} samples: median {restart_median:.0} ms, p99 {:.0} ms. Hot swap of \
         the same cached builds / restart (medians): **{:.3}**. During a restart nothing \
         reconciles and every watch lists again; during a swap the old revision serves until \
         the new one takes over.\n",
        restart.len(),
        stats::percentile(restart, 0.99),
        swap_cached / restart_median
    )?;
    Ok(Section {
        markdown: md,
        goals,
    })
}
