//! Leader election: how long reconciling stops when the leader goes.
//!
//! Two replicas (`--leader-elect`, client-go's default timings: lease
//! 15 s, renew deadline 10 s, retry 2 s) over ten Memcached parents. Each
//! sample stops the leader and takes the time from just before the signal
//! to the first reconcile finished by the standby, by the standby's own
//! clock (`firstReconcileAt` in `operon plugins`: a standby reconciles
//! nothing before it is elected, so its first reconcile is the first after
//! the takeover). Then a fresh standby is started (warm before it counts)
//! and the roles turn.
//! - Handover: SIGTERM, the leader drains and releases the Lease; the
//!   standby watching it takes over.
//! - Failover: SIGKILL, no release; the standby waits out the lease.
//!
//! Baseline, side by side: one replica without election restarted
//! (SIGTERM, start again, compile cache warm), stop → first reconcile.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};

use super::controllers::{Binaries, Kind, Running};
use super::swap::{first_reconcile, unix};
use super::{Goal, Section, Setup, cluster, stats};

const LEASE_S: f64 = 15.0;

/// The replica `identity` of the namespace's election.
fn replica(setup: &Setup, kubeconfig: &Path, ns: &str, identity: &str) -> Result<Running> {
    let bins = Binaries {
        operon: setup.bins.operon.clone(),
        native: setup.bins.native.clone(),
        plugins: setup.bins.plugins.clone(),
        logs: setup.bins.logs.clone(),
        extra: [
            "--leader-elect",
            "--leader-elect-namespace",
            ns,
            "--identity",
            identity,
        ]
        .map(String::from)
        .to_vec(),
    };
    Running::start(
        Kind::Operon,
        &bins,
        kubeconfig,
        ns,
        &format!("leader-{identity}"),
    )
}

/// Waits until `host` reports a first reconcile at or after `since`
/// (unix seconds); returns it.
fn first_after(host: &Running, since: f64) -> Result<f64> {
    let admin = host.admin.clone().context("operon has an admin address")?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(t) = first_reconcile(&admin)?.filter(|t| *t >= since) {
            return Ok(t);
        }
        if Instant::now() > deadline {
            bail!("the standby did not reconcile within 120 s of the leader's stop");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits until `host` leads.
fn elected(host: &Running) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !host.leads()? {
        if Instant::now() > deadline {
            bail!("no replica was elected within 120 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// `n` takeovers, by SIGTERM (`kill = false`) or SIGKILL; returns the
/// samples (ms) and the replicas left running.
fn takeovers(
    setup: &Setup,
    kubeconfig: &Path,
    ns: &str,
    mut pair: (Running, Running),
    n: usize,
    kill: bool,
    counter: &mut usize,
) -> Result<(Vec<f64>, (Running, Running))> {
    let mut samples = Vec::new();
    for i in 0..n {
        let (leader, standby) = pair;
        let t0 = unix(SystemTime::now());
        if kill {
            drop(leader); // SIGKILL, reaped
        } else {
            leader.stop()?;
        }
        let first = first_after(&standby, t0)?;
        let ms = (first - t0) * 1000.0;
        let how = if kill {
            "failover (SIGKILL)"
        } else {
            "handover (SIGTERM)"
        };
        eprintln!("xtask bench:   {how} {}/{n}: {ms:.0} ms", i + 1);
        samples.push(ms);
        *counter += 1;
        let fresh = replica(setup, kubeconfig, ns, &format!("r{counter}"))?;
        elected(&standby)?;
        pair = (standby, fresh);
    }
    Ok((samples, pair))
}

/// The baseline: one replica, no election, restarted `n` times.
fn restarts(
    mut host: Running,
    setup: &Setup,
    kubeconfig: &Path,
    ns: &str,
    n: usize,
) -> Result<Vec<f64>> {
    let mut samples = Vec::new();
    for i in 0..n {
        let t0 = unix(SystemTime::now());
        host.stop()?;
        host = Running::start(Kind::Operon, &setup.bins, kubeconfig, ns, "single")?;
        let first = first_after(&host, t0)?;
        let ms = (first - t0) * 1000.0;
        eprintln!(
            "xtask bench:   single replica restart {}/{n}: {ms:.0} ms",
            i + 1
        );
        samples.push(ms);
    }
    host.stop()?;
    Ok(samples)
}

pub async fn section(setup: &Setup) -> Result<Section> {
    let n = if setup.quick { 3 } else { 7 };
    eprintln!("xtask bench: leader election: fresh cluster, two replicas, ten parents");
    let cluster = cluster::start("leader").await?;
    let ns = "bench".to_string();
    cluster.namespace(&ns).await?;
    let kubeconfig = cluster.kubeconfig.clone();
    // The baseline's host first: it installs the CRD the parents need.
    let single = tokio::task::block_in_place(|| {
        Running::start(Kind::Operon, &setup.bins, &kubeconfig, &ns, "single")
    })?;
    cluster::create_parents(&cluster.client, &ns, 10, 1, 4).await?;
    let (handover, failover, restart) = tokio::task::block_in_place(|| {
        while single.operon_reconciles()? < 10.0 {
            std::thread::sleep(Duration::from_millis(50));
        }
        let restart = restarts(single, setup, &kubeconfig, &ns, n)?;
        let a = replica(setup, &kubeconfig, &ns, "r0")?;
        elected(&a)?;
        let b = replica(setup, &kubeconfig, &ns, "r1")?;
        let mut counter = 1;
        let (handover, pair) = takeovers(setup, &kubeconfig, &ns, (a, b), n, false, &mut counter)?;
        let (failover, (leader, standby)) =
            takeovers(setup, &kubeconfig, &ns, pair, n, true, &mut counter)?;
        leader.stop()?;
        standby.stop()?;
        anyhow::Ok((handover, failover, restart))
    })?;
    drop(cluster);
    markdown(handover, failover, restart)
}

fn markdown(handover: Vec<f64>, failover: Vec<f64>, restart: Vec<f64>) -> Result<Section> {
    let row = |v: &[f64]| {
        let v = v.to_vec();
        format!(
            "{} | {:.0} ms | {:.0} ms | {:.0} ms",
            v.len(),
            stats::median(v.clone()),
            stats::min(&v),
            stats::max(&v)
        )
    };
    let mut md = String::new();
    writeln!(md, "## Leader election: handover and failover\n")?;
    writeln!(
        md,
        "Two replicas of `operon run --leader-elect` (lease 15 s, renew deadline 10 s, retry \
         2 s: client-go's defaults) over ten Memcached parents. From just before the leader is \
         signalled to the first reconcile finished by the standby, by the standby's own clock \
         (`firstReconcileAt` in `operon plugins`); a fresh standby is started, warm, before the \
         next sample. Baseline: one replica without election, restarted (SIGTERM, start again, \
         compile cache warm), stop → first reconcile.\n"
    )?;
    writeln!(
        md,
        "| what | samples | median | min | max |\n|---|---:|---:|---:|---:|"
    )?;
    writeln!(
        md,
        "| handover: SIGTERM on the leader | {} |",
        row(&handover)
    )?;
    writeln!(
        md,
        "| failover: SIGKILL on the leader | {} |",
        row(&failover)
    )?;
    writeln!(
        md,
        "| baseline: one replica restarted | {} |",
        row(&restart)
    )?;
    writeln!(
        md,
        "\nThe baseline is a process restart on the same machine, its compile cache warm and the \
         cluster small: a replacement Pod in a real cluster adds scheduling, an image pull and a \
         cold cache, and nothing reconciles meanwhile; a standby has all of that done. A \
         failover is the lease duration by design (the standby cannot tell a dead leader from a \
         slow one sooner); a shorter `--leader-elect-lease-duration-s` shortens it.\n"
    )?;
    let (h, f) = (stats::median(handover), stats::median(failover));
    let failover_goal = (LEASE_S + 1.0) * 1000.0;
    Ok(Section {
        markdown: md,
        goals: vec![
            Goal {
                goal: "Handover after SIGTERM (median)",
                target: "≤ 1 s".into(),
                measured: format!("{h:.0} ms"),
                met: Some(h <= 1000.0),
            },
            Goal {
                goal: "Failover after SIGKILL (median)",
                target: "≤ lease duration + 1 s (16 s)".into(),
                measured: format!("{:.1} s", f / 1000.0),
                met: Some(f <= failover_goal),
            },
        ],
    })
}
