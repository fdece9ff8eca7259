//! Soak: what the host holds after a long run, not how fast it is.
//! 30 minutes (5 with `--quick`) of churn on 100 parents (a tenth of them
//! resized every second, one created and the oldest deleted every 10 s),
//! with a new build of the memcached component swapped in every minute.
//! Resident memory, open file descriptors, threads and (operon) tokio tasks
//! are sampled every 15 s; the section reports their least-squares slope
//! per hour after a 2-minute warm-up. The baseline runs side by side on
//! the same parents: the native kube-rs controller, which gets the churn
//! but no swaps (it has none). Goal: flat.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use serde_json::json;

use super::controllers::{Binaries, Kind, Running, http_get};
use super::swap::{swap, variant};
use super::{Goal, Section, Setup, cluster, procfs};
use crate::plugins;

/// One sample of one controller.
#[derive(Debug, Clone, Copy)]
struct Sample {
    /// Seconds since the soak began.
    at: f64,
    rss_mib: f64,
    fds: f64,
    threads: f64,
    /// operon's `operon_runtime_tasks`; None for the baseline.
    tasks: Option<f64>,
}

fn tasks(metrics: &str) -> Result<f64> {
    let (_, text) = http_get(metrics, "/metrics")?;
    text.lines()
        .find_map(|l| l.strip_prefix("operon_runtime_tasks "))
        .and_then(|v| v.trim().parse().ok())
        .context("no operon_runtime_tasks in operon's /metrics")
}

fn sample(r: &Running, at: f64) -> Result<Sample> {
    let pid = r.pid();
    Ok(Sample {
        at,
        rss_mib: procfs::mib(procfs::memory(pid)?.rss),
        fds: procfs::open_fds(pid)?,
        threads: procfs::threads(pid)?,
        tasks: r.metrics_addr().map(tasks).transpose()?,
    })
}

/// The least-squares slope of `(x, y)`, in y per unit of x.
fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if points.len() < 2 {
        return 0.0;
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if sxx == 0.0 { 0.0 } else { sxy / sxx }
}

/// Changes until `stop`: sizes of a tenth of the parents every second; a
/// parent created and the oldest churned one deleted every 10 s.
async fn churn(client: kube::Client, ns: String, parents: usize, stop: Arc<AtomicBool>) -> usize {
    let api: Api<DynamicObject> = Api::namespaced_with(client, &ns, &cluster::memcached());
    let mut round = 0usize;
    let mut added = std::collections::VecDeque::new();
    let mut changes = 0;
    while !stop.load(Ordering::Relaxed) {
        round += 1;
        for i in (round % 10..parents).step_by(10) {
            let patch = Patch::Merge(json!({"spec": {"size": (round + i) % 3 + 1}}));
            let name = cluster::parent_name(i);
            changes += usize::from(
                api.patch(&name, &PatchParams::default(), &patch)
                    .await
                    .is_ok(),
            );
        }
        if round.is_multiple_of(10) {
            let name = format!("soak-{round}");
            let parent: DynamicObject = serde_json::from_value(json!({
                "apiVersion": "cache.operon.dev/v1alpha1", "kind": "Memcached",
                "metadata": {"name": name}, "spec": {"size": 1}
            }))
            .expect("a Memcached");
            if api.create(&Default::default(), &parent).await.is_ok() {
                changes += 1;
                added.push_back(name);
            }
            if added.len() > 5
                && let Some(gone) = added.pop_front()
            {
                changes +=
                    usize::from(api.delete(&gone, &DeleteParams::background()).await.is_ok());
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    changes
}

/// The swaps, every minute until `stop`: a new digest each time.
fn swaps(admin: &str, dir: &Path, build: &[u8], stop: &AtomicBool) -> Result<usize> {
    let mut n = 0;
    let mut next = Instant::now() + Duration::from_secs(60);
    while !stop.load(Ordering::Relaxed) {
        if Instant::now() >= next {
            n += 1;
            swap(admin, dir, &variant(build, 10_000 + n))?;
            next += Duration::from_secs(60);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(n)
}

pub async fn section(setup: &Setup) -> Result<Section> {
    let (length, parents) = if setup.quick {
        (Duration::from_secs(300), 100)
    } else {
        (Duration::from_secs(1800), 100)
    };
    eprintln!(
        "xtask bench: soak: fresh cluster, both controllers, {parents} parents, {} min",
        length.as_secs() / 60
    );
    let cluster = cluster::start("soak").await?;
    let ns = "bench".to_string();
    cluster.namespace(&ns).await?;
    let dir = plugins::target_dir().join("bench-soak-plugins");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let build = std::fs::read(plugins::wasm_dir().join("rust_memcached.wasm"))
        .context("reading the Rust example")?;
    std::fs::write(dir.join("memcached.wasm"), &build)?;
    let bins = Binaries {
        plugins: dir.clone(),
        extra: vec!["--keep-revisions".into(), "2".into()],
        ..setup.bins.clone()
    };
    let both = tokio::task::block_in_place(|| -> Result<Vec<Running>> {
        Ok(vec![
            Running::start(Kind::Operon, &bins, &cluster.kubeconfig, &ns, "soak")?,
            Running::start(Kind::Native, &bins, &cluster.kubeconfig, &ns, "soak")?,
        ])
    })?;
    cluster::create_parents(&cluster.client, &ns, parents, 1, 16).await?;

    let stop = Arc::new(AtomicBool::new(false));
    let churning = tokio::spawn(churn(
        cluster.client.clone(),
        ns.clone(),
        parents,
        stop.clone(),
    ));
    let admin = both[0].admin.clone().context("operon's admin address")?;
    let (swap_stop, swap_dir) = (stop.clone(), dir.clone());
    let swapping =
        tokio::task::spawn_blocking(move || swaps(&admin, &swap_dir, &build, &swap_stop));
    let began = Instant::now();
    let mut samples: [Vec<Sample>; 2] = [Vec::new(), Vec::new()];
    while began.elapsed() < length {
        let at = began.elapsed().as_secs_f64();
        for (i, r) in both.iter().enumerate() {
            samples[i].push(sample(r, at)?);
        }
        if samples[0].len().is_multiple_of(8) {
            let s = samples[0].last().copied().expect("a sample");
            eprintln!(
                "xtask bench:   soak {:.0} min: operon {:.1} MiB, {:.0} fds, {:.0} tasks",
                at / 60.0,
                s.rss_mib,
                s.fds,
                s.tasks.unwrap_or(0.0)
            );
        }
        tokio::time::sleep(Duration::from_secs(15)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let changes = churning.await?;
    let swapped = swapping.await??;
    for r in both {
        tokio::task::block_in_place(|| r.stop())?;
    }
    drop(cluster);
    report(&samples, length, parents, changes, swapped)
}

/// What is sampled, as the section names it.
#[derive(Debug, Clone, Copy)]
enum Figure {
    Memory,
    Fds,
    Threads,
    Tasks,
}

impl Figure {
    const ALL: [Figure; 4] = [Figure::Memory, Figure::Fds, Figure::Threads, Figure::Tasks];

    fn name(self) -> &'static str {
        match self {
            Figure::Memory => "resident memory",
            Figure::Fds => "open fds",
            Figure::Threads => "threads",
            Figure::Tasks => "tokio tasks",
        }
    }

    fn unit(self) -> &'static str {
        match self {
            Figure::Memory => "MiB",
            _ => "",
        }
    }

    fn of(self, s: &Sample) -> Option<f64> {
        match self {
            Figure::Memory => Some(s.rss_mib),
            Figure::Fds => Some(s.fds),
            Figure::Threads => Some(s.threads),
            Figure::Tasks => s.tasks,
        }
    }

    /// The goal this figure of operon's is held to (threads: a pool that
    /// grows and shrinks with blocking work, not a leak).
    fn goal(self) -> Option<&'static str> {
        match self {
            Figure::Memory => Some("soak: operon's memory flat"),
            Figure::Fds => Some("soak: operon's fds flat"),
            Figure::Tasks => Some("soak: operon's tasks flat"),
            Figure::Threads => None,
        }
    }
}

/// The figures of one controller after the warm-up: start, end, slope/h.
struct Trend {
    first: f64,
    last: f64,
    per_hour: f64,
}

fn trend(samples: &[Sample], figure: Figure) -> Option<Trend> {
    let warm: Vec<(f64, f64)> = samples
        .iter()
        .filter(|s| s.at >= 120.0)
        .filter_map(|s| Some((s.at / 3600.0, figure.of(s)?)))
        .collect();
    Some(Trend {
        first: warm.first()?.1,
        last: warm.last()?.1,
        per_hour: slope(&warm),
    })
}

fn report(
    samples: &[Vec<Sample>; 2],
    length: Duration,
    parents: usize,
    changes: usize,
    swapped: usize,
) -> Result<Section> {
    let mut md = String::new();
    writeln!(md, "## Soak: a long run of churn and hot swaps\n")?;
    writeln!(
        md,
        "{} min on {parents} parents: {changes} changes (a tenth of the parents resized every second, one created and the oldest deleted every 10 s) and {swapped} hot swaps of operon's memcached component (a new digest every minute, `--keep-revisions 2`). Both controllers side by side on the same parents; the baseline gets the churn, not the swaps. Sampled every 15 s from `/proc/<pid>` (tasks: operon's `operon_runtime_tasks`); slopes are least-squares fits after a 2-minute warm-up (`cargo xtask bench --only soak`).\n",
        length.as_secs() / 60
    )?;
    writeln!(
        md,
        "| controller | figure | after warm-up | at the end | slope per hour |"
    )?;
    writeln!(md, "|---|---|---:|---:|---:|")?;
    let mut goals = Vec::new();
    for (i, kind) in [Kind::Operon, Kind::Native].into_iter().enumerate() {
        for figure in Figure::ALL {
            let Some(t) = trend(&samples[i], figure) else {
                continue;
            };
            let unit = figure.unit();
            writeln!(
                md,
                "| {} | {} | {:.1} {unit} | {:.1} {unit} | {:+.2} {unit} |",
                kind.label(),
                figure.name(),
                t.first,
                t.last,
                t.per_hour
            )?;
            if let (Kind::Operon, Some(goal)) = (kind, figure.goal()) {
                // Flat: less than 5 % of the level (or 2 units) per hour.
                let bound = (t.first * 0.05).max(2.0);
                goals.push(Goal {
                    goal,
                    target: format!("|slope| ≤ {bound:.1} {unit}/h"),
                    measured: format!("{:+.2} {unit}/h", t.per_hour),
                    met: Some(t.per_hour.abs() <= bound),
                });
            }
        }
    }
    md.push('\n');
    Ok(Section {
        markdown: md,
        goals,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fits_a_line() {
        let points: Vec<(f64, f64)> = (0..10).map(|x| (x as f64, 3.0 * x as f64 + 1.0)).collect();
        assert!((slope(&points) - 3.0).abs() < 1e-9);
        assert_eq!(slope(&[(1.0, 2.0)]), 0.0);
        let flat: Vec<(f64, f64)> = (0..10).map(|x| (x as f64, 7.0)).collect();
        assert_eq!(slope(&flat), 0.0);
    }
}
