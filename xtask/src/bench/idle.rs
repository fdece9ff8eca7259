//! Steady state: CPU the controllers use when nothing changes.
//!
//! Both run side by side on a namespace of converged parents; the window
//! starts once the harness's own watch has seen no change at all for 10 s
//! (kube-controller-manager has finished creating ReplicaSets and updating
//! Deployment statuses), so any CPU in the window is the controllers' own:
//! polling, resyncs, timers.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::Result;

use super::controllers::Kind;
use super::memory::start_both;
use super::{Goal, Section, Setup, cluster, procfs, profile};

pub async fn section(setup: &Setup) -> Result<Section> {
    let (n, window) = if setup.quick {
        (200, Duration::from_secs(10))
    } else {
        (1_000, Duration::from_secs(30))
    };
    eprintln!("xtask bench: idle CPU: fresh cluster, both controllers, {n} parents");
    let cluster = cluster::start("idle").await?;
    let ns = "bench".to_string();
    cluster.namespace(&ns).await?;
    let both = start_both(setup, &cluster.kubeconfig, &ns, "idle")?;
    let watch = tokio::spawn(cluster::wait_converged(
        cluster.client.clone(),
        ns.clone(),
        n,
        Duration::from_secs(600),
        Some(Duration::from_secs(10)),
    ));
    cluster::create_parents(&cluster.client, &ns, n, 0, 32).await?;
    let converged = watch.await??;
    let before: Vec<f64> = both
        .iter()
        .map(|r| procfs::cpu_seconds(r.pid()))
        .collect::<Result<_>>()?;
    let reconciles_before = tokio::task::block_in_place(|| both[0].operon_reconciles())?;
    let recording = profile::start(both[0].pid(), "idle");
    tokio::time::sleep(window).await;
    let profile = recording
        .map(|r| r.finish(&format!("{}, idle", Kind::Operon.label())))
        .transpose()?;
    let used: Vec<f64> = both
        .iter()
        .zip(&before)
        .map(|(r, b)| Ok(procfs::cpu_seconds(r.pid())? - b))
        .collect::<Result<_>>()?;
    let reconciles =
        tokio::task::block_in_place(|| both[0].operon_reconciles())? - reconciles_before;
    for r in both {
        tokio::task::block_in_place(|| r.stop())?;
    }
    drop(cluster);

    let mut md = String::new();
    writeln!(md, "## Steady state: CPU when nothing changes\n")?;
    writeln!(
        md,
        "Both controllers side by side on {n} converged parents; the window opens once the \
         harness's watch of the namespace has seen no change for 10 s{quiet}. User + system \
         CPU time from `/proc/<pid>/stat` over {w} s. operon reconciled {reconciles:.0} times in \
         the window (from its `/metrics`).\n",
        w = window.as_secs(),
        quiet = if converged.quiet {
            ""
        } else {
            " (not reached within 600 s: measured anyway)"
        },
    )?;
    writeln!(
        md,
        "| controller | CPU over the window | share of one core |"
    )?;
    writeln!(md, "|---|---:|---:|")?;
    for (i, kind) in [Kind::Operon, Kind::Native].into_iter().enumerate() {
        writeln!(
            md,
            "| {} | {:.0} ms | {:.2} % |",
            kind.label(),
            used[i] * 1e3,
            used[i] / window.as_secs_f64() * 100.0
        )?;
    }
    md.push('\n');
    if let Some(p) = profile {
        writeln!(
            md,
            "Where operon's idle time goes (`perf record` over the window; a thread that \
             wakes on a timer shows as the kernel's timer and scheduler paths and the \
             sleep call):\n"
        )?;
        md.push_str(&p);
    }
    let share = used[0] / window.as_secs_f64() * 100.0;
    Ok(Section {
        markdown: md,
        goals: vec![Goal {
            goal: "idle CPU of operon",
            target: "≈ 0 (≤ 0.5 % of a core)".into(),
            measured: format!(
                "{share:.2} % (native {:.2} %)",
                used[1] / window.as_secs_f64() * 100.0
            ),
            met: Some(share <= 0.5),
        }],
    })
}
