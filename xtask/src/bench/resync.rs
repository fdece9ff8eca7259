//! A resync of converged parents: what a controller's restart costs the
//! API server when nothing needs to change. N parents converge, the
//! controller is stopped and started again (it lists, and reconciles every
//! parent), and the API server's request counters are read until they stop
//! moving. operon compares each child with its cache and sends nothing
//! when nothing changed; the native baseline re-applies every child, as
//! kube-rs and controller-runtime controllers do.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use super::controllers::{Kind, Running};
use super::{Goal, Section, Setup, cluster, procfs, stats};

/// One resync of one controller.
struct Run {
    kind: Kind,
    reconciles: f64,
    requests: f64,
    writes: f64,
    /// From the restart's start to the last request it caused.
    took: Duration,
    cpu: f64,
}

/// How long the request counters must stand still to call a resync done.
const QUIET: Duration = Duration::from_secs(8);

async fn one(setup: &Setup, kind: Kind, parents: usize, round: usize) -> Result<Run> {
    let tag = format!(
        "resync-{}-{round}",
        if kind == Kind::Operon { "o" } else { "n" }
    );
    eprintln!(
        "xtask bench: resync, {} round {}: {parents} parents converge, then a restart",
        kind.label(),
        round + 1
    );
    let cluster = cluster::start(&tag).await?;
    let ns = "bench".to_string();
    cluster.namespace(&ns).await?;
    let first = tokio::task::block_in_place(|| {
        Running::start(
            kind,
            &setup.bins,
            &cluster.kubeconfig,
            &ns,
            &format!("{tag}-a"),
        )
    })?;
    let watch = tokio::spawn(cluster::wait_converged(
        cluster.client.clone(),
        ns.clone(),
        parents,
        Duration::from_secs(900),
        Some(Duration::from_secs(5)),
    ));
    cluster::create_parents(&cluster.client, &ns, parents, 0, 32).await?;
    watch.await??;
    tokio::task::block_in_place(|| first.stop())?;

    let before = cluster::apiserver_requests(&cluster.client).await?;
    let t0 = Instant::now();
    let second = tokio::task::block_in_place(|| {
        Running::start(
            kind,
            &setup.bins,
            &cluster.kubeconfig,
            &ns,
            &format!("{tag}-b"),
        )
    })?;
    let cpu0 = procfs::cpu_seconds(second.pid())?;
    let (mut last, mut moved) = (-1.0, Instant::now());
    let mut done: Option<Instant> = None;
    let mut now = cluster::apiserver_requests(&cluster.client).await?;
    loop {
        let seen = cluster::controller_requests(&before, &now);
        if seen != last {
            (last, moved) = (seen, Instant::now());
        }
        if done.is_none() && resynced(&second, seen, parents)? {
            done = Some(Instant::now());
        }
        if done.is_some() && moved.elapsed() >= QUIET {
            break;
        }
        if t0.elapsed() > Duration::from_secs(600) {
            bail!("the resync's requests did not settle within 10 min");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        now = cluster::apiserver_requests(&cluster.client).await?;
    }
    let settled = done.map_or(moved, |d| d.max(moved));
    let cpu = procfs::cpu_seconds(second.pid())? - cpu0;
    let reconciles = tokio::task::block_in_place(|| second.stop())?;
    if reconciles < parents as f64 {
        bail!(
            "{} reconciled {reconciles} times on its restart, fewer than the {parents} parents",
            kind.label()
        );
    }
    let run = Run {
        kind,
        reconciles,
        requests: cluster::controller_requests(&before, &now),
        writes: cluster::controller_writes(&before, &now),
        took: settled.duration_since(t0),
        cpu,
    };
    eprintln!(
        "xtask bench:   {}: {} reconciles, {:.0} API requests ({:.0} writes), {:.2} CPU s",
        kind.label(),
        run.reconciles,
        run.requests,
        run.writes,
        run.cpu
    );
    Ok(run)
}

/// Whether the restarted controller has reconciled every parent: operon
/// says so in its metrics; the baseline counts only at exit, but re-applies
/// as it reconciles, so its requests show it at work.
fn resynced(running: &Running, requests: f64, parents: usize) -> Result<bool> {
    Ok(match running.metrics_addr() {
        Some(_) => running.operon_reconciles()? >= parents as f64,
        None => requests > 0.0,
    })
}

/// Runs the resync comparison and renders its section.
pub async fn section(setup: &Setup) -> Result<Section> {
    let (parents, repeats) = if setup.quick { (200, 1) } else { (1000, 2) };
    let mut runs = Vec::new();
    for round in 0..repeats {
        let order = if round % 2 == 0 {
            [Kind::Operon, Kind::Native]
        } else {
            [Kind::Native, Kind::Operon]
        };
        for kind in order {
            runs.push(one(setup, kind, parents, round).await?);
        }
    }
    render(parents, repeats, &runs)
}

fn render(parents: usize, repeats: usize, runs: &[Run]) -> Result<Section> {
    let mut md = String::new();
    writeln!(md, "## Resync: {parents} converged parents, a restart\n")?;
    writeln!(
        md,
        "{parents} `Memcached` parents (`spec.size: 0`) converge under one controller on a fresh \
         control plane; the controller is stopped (SIGTERM) and started again, and reconciles \
         every parent from its new caches. Counted from the restart until the API server's \
         `apiserver_request_total` for the controller's verbs (as in the end-to-end section) \
         stands still for {} s. operon compares each desired child with its cached self \
         (`host/src/apply/unchanged.rs`) and sends nothing when nothing would change; the native \
         baseline server-side applies every child on every reconcile, as kube-rs and \
         controller-runtime controllers do. {repeats} run(s) per controller, alternating which \
         goes first (`cargo xtask bench --only resync`).\n",
        QUIET.as_secs()
    )?;
    writeln!(
        md,
        "| controller | reconciles | API requests / reconcile | writes / reconcile | writes: total | settled after | CPU ms / reconcile |"
    )?;
    writeln!(md, "|---|---:|---:|---:|---:|---:|---:|")?;
    let of = |k: Kind| runs.iter().filter(move |r| r.kind == k);
    for kind in [Kind::Operon, Kind::Native] {
        let reconciles: f64 = of(kind).map(|r| r.reconciles).sum();
        let requests: f64 = of(kind).map(|r| r.requests).sum();
        let writes: f64 = of(kind).map(|r| r.writes).sum();
        let cpu: f64 = of(kind).map(|r| r.cpu).sum();
        let took = stats::median(of(kind).map(|r| r.took.as_secs_f64()).collect());
        writeln!(
            md,
            "| {} | {:.0} | {:.2} | {:.2} | {:.0} | {took:.1} s | {:.2} |",
            kind.label(),
            reconciles / repeats as f64,
            requests / reconciles.max(1.0),
            writes / reconciles.max(1.0),
            writes / repeats as f64,
            cpu / reconciles.max(1.0) * 1e3,
        )?;
    }
    writeln!(
        md,
        "\n\"Settled after\": from the restart (start-up and initial lists included) to the \
         last request it caused or, later, the moment every parent was reconciled (operon's \
         `controller_runtime_reconcile_total`; sampled every 0.5 s); the quiet period after it \
         is not counted.\n"
    )?;
    let per = |k: Kind| {
        of(k).map(|r| r.writes).sum::<f64>() / of(k).map(|r| r.reconciles).sum::<f64>().max(1.0)
    };
    let operon = per(Kind::Operon);
    Ok(Section {
        markdown: md,
        goals: vec![Goal {
            goal: "writes per no-op reconcile (resync of converged parents)",
            target: "0".into(),
            measured: format!("{operon:.2} (native {:.2})", per(Kind::Native)),
            met: Some(operon == 0.0),
        }],
    })
}
