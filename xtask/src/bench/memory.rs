//! Memory: both controllers side by side over the same namespace of
//! thousands of parents and their children, sampled at the same moment.
//!
//! Side by side rather than one after the other, so both see exactly the
//! same objects (they apply with the same field manager, so their answers
//! agree and neither undoes the other), the same watch traffic and the same
//! machine load.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::Result;

use super::controllers::{Kind, Running};
use super::{Goal, Section, Setup, cluster, procfs, stats};

/// Waits until every process used less than `threshold` of a core over a
/// 2 s window (their queues have drained), at most `max`.
pub async fn wait_calm(pids: &[u32], threshold: f64, max: Duration) -> Result<bool> {
    let start = Instant::now();
    while start.elapsed() < max {
        let before: Vec<f64> = pids
            .iter()
            .map(|p| procfs::cpu_seconds(*p))
            .collect::<Result<_>>()?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let calm = pids
            .iter()
            .zip(&before)
            .map(|(p, b)| Ok(procfs::cpu_seconds(*p)? - b))
            .collect::<Result<Vec<f64>>>()?
            .iter()
            .all(|used| used / 2.0 < threshold);
        if calm {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Starts operon and the baseline on the same namespace.
pub fn start_both(
    setup: &Setup,
    kubeconfig: &std::path::Path,
    ns: &str,
    tag: &str,
) -> Result<Vec<Running>> {
    tokio::task::block_in_place(|| {
        Ok(vec![
            Running::start(Kind::Operon, &setup.bins, kubeconfig, ns, tag)?,
            Running::start(Kind::Native, &setup.bins, kubeconfig, ns, tag)?,
        ])
    })
}

pub async fn section(setup: &Setup) -> Result<Section> {
    let n = if setup.quick { 2_000 } else { 10_000 };
    eprintln!("xtask bench: memory: fresh cluster, both controllers, {n} parents");
    let cluster = cluster::start("memory").await?;
    let ns = "bench".to_string();
    cluster.namespace(&ns).await?;
    let both = start_both(setup, &cluster.kubeconfig, &ns, "memory")?;
    let pids: Vec<u32> = both.iter().map(Running::pid).collect();
    let empty: Vec<procfs::Memory> = pids
        .iter()
        .map(|p| procfs::memory(*p))
        .collect::<Result<_>>()?;
    // On a loaded two-core machine the API server may not get through
    // every write in the time a benchmark run can spend: then memory is
    // sampled anyway (each controller caches every parent as soon as it is
    // created) and the section says how far the children had got.
    let limit = Duration::from_secs(if setup.quick { 600 } else { 1200 });
    let watch = tokio::spawn(cluster::wait_converged(
        cluster.client.clone(),
        ns.clone(),
        n,
        limit,
        None,
    ));
    cluster::create_parents(&cluster.client, &ns, n, 0, 32).await?;
    let (converged, calm) = match watch.await? {
        Ok(_) => (
            String::new(),
            wait_calm(&pids, 0.05, Duration::from_secs(180)).await?,
        ),
        Err(e) => (
            format!(" **Not converged**: {e:#}; sampled at that point."),
            false,
        ),
    };
    let mut samples: Vec<Vec<procfs::Memory>> = vec![Vec::new(); pids.len()];
    for _ in 0..3 {
        for (i, p) in pids.iter().enumerate() {
            samples[i].push(procfs::memory(*p)?);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    for r in both {
        tokio::task::block_in_place(|| r.stop())?;
    }
    drop(cluster);

    let rss = |i: usize| stats::median(samples[i].iter().map(|m| m.rss as f64).collect());
    let pss = |i: usize| {
        let v: Vec<f64> = samples[i]
            .iter()
            .filter_map(|m| m.pss.map(|p| p as f64))
            .collect();
        (!v.is_empty()).then(|| stats::median(v))
    };
    let mut md = String::new();
    writeln!(md, "## Memory: {n} watched parents and their children\n")?;
    writeln!(
        md,
        "Both controllers run side by side on one namespace of a fresh cluster (same field \
         manager, so their applies agree), {n} parents (`spec.size: 0`) created, every parent \
         Ready with its Deployment and Service; then, once both processes use under 5 % of a \
         core{calm}, RSS (`/proc/<pid>/status`) and PSS (`/proc/<pid>/smaps_rollup`), median of \
         3 samples 2 s apart. Each caches {n} parents, {n} Deployments and {n} Services (whole \
         objects, managedFields included, as kube-runtime's reflectors keep them).{converged}\n",
        calm = if calm {
            ""
        } else {
            " (not reached: sampled anyway)"
        },
    )?;
    writeln!(
        md,
        "| controller | RSS, no parents | RSS | PSS | per parent (RSS) | RSS vs native |"
    )?;
    writeln!(md, "|---|---:|---:|---:|---:|---:|")?;
    let native_rss = rss(1);
    for (i, kind) in [Kind::Operon, Kind::Native].into_iter().enumerate() {
        writeln!(
            md,
            "| {} | {:.0} MiB | {:.0} MiB | {} | {:.1} KiB | {:.2} |",
            kind.label(),
            procfs::mib(empty[i].rss),
            procfs::mib(rss(i) as u64),
            pss(i).map_or("n/a".into(), |p| format!(
                "{:.0} MiB",
                procfs::mib(p as u64)
            )),
            (rss(i) - empty[i].rss as f64) / n as f64 / 1024.0,
            rss(i) / native_rss,
        )?;
    }
    md.push('\n');
    let ratio = rss(0) / native_rss;
    Ok(Section {
        markdown: md,
        goals: vec![Goal {
            goal: "resident memory at 10 000 parents, operon / native",
            target: "≤ 1.2".into(),
            measured: format!(
                "{ratio:.2}{}",
                if setup.quick {
                    format!(" (at {n}: quick)")
                } else {
                    String::new()
                }
            ),
            met: Some(ratio <= 1.2),
        }],
    })
}
