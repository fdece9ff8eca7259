//! End to end: N Memcached parents created at once, time until every
//! parent is Ready and every child applied, for `operon run` and for the
//! native baseline, each run on a fresh control plane, runs alternating.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::Result;

use super::controllers::{Kind, Running};
use super::{Goal, Section, Setup, cluster, procfs, profile, stats};

/// One run of one controller.
struct Run {
    kind: Kind,
    /// From the first create to the last parent Ready / child applied.
    total: Duration,
    /// Creating the parents (the harness's side).
    create: Duration,
    /// Per parent: from its create returning to it being Ready.
    latencies: Vec<Duration>,
    reconciles: f64,
    requests: f64,
    cpu: f64,
    rss: u64,
    /// A `perf` profile over the converge time (first round only).
    profile: Option<String>,
}

/// Parents per run, runs per controller, and `spec.size`.
pub struct Plan {
    pub parents: usize,
    pub repeats: usize,
    pub size: i32,
}

impl Plan {
    pub fn new(quick: bool) -> Plan {
        if quick {
            Plan {
                parents: 200,
                repeats: 1,
                size: 0,
            }
        } else {
            Plan {
                parents: 1000,
                repeats: 3,
                size: 0,
            }
        }
    }
}

async fn one(setup: &Setup, plan: &Plan, kind: Kind, round: usize) -> Result<Run> {
    let tag = format!(
        "e2e-{}-{round}",
        if kind == Kind::Operon { "o" } else { "n" }
    );
    eprintln!(
        "xtask bench: end to end, {} round {}: fresh cluster, {} parents",
        kind.label(),
        round + 1,
        plan.parents
    );
    let cluster = cluster::start(&tag).await?;
    let ns = "bench".to_string();
    cluster.namespace(&ns).await?;
    let running = tokio::task::block_in_place(|| {
        Running::start(kind, &setup.bins, &cluster.kubeconfig, &ns, &tag)
    })?;
    let pid = running.pid();
    let before = cluster::apiserver_requests(&cluster.client).await?;
    let cpu0 = procfs::cpu_seconds(pid)?;
    let recording = if round == 0 {
        profile::start(pid, &tag)
    } else {
        None
    };
    let watch = tokio::spawn(cluster::wait_converged(
        cluster.client.clone(),
        ns.clone(),
        plan.parents,
        Duration::from_secs(900),
        None,
    ));
    let t0 = Instant::now();
    let created =
        cluster::create_parents(&cluster.client, &ns, plan.parents, plan.size, 32).await?;
    let create = t0.elapsed();
    let converged = watch.await??;
    let profile = recording
        .map(|r| {
            r.finish(&format!(
                "{}, converging {} parents",
                kind.label(),
                plan.parents
            ))
        })
        .transpose()?;
    let cpu = procfs::cpu_seconds(pid)? - cpu0;
    let rss = procfs::memory(pid)?.rss;
    let after = cluster::apiserver_requests(&cluster.client).await?;
    let reconciles = tokio::task::block_in_place(|| running.stop())?;
    let latencies = converged
        .ready_at
        .iter()
        .filter_map(|(name, ready)| Some(ready.saturating_duration_since(*created.get(name)?)))
        .collect();
    let run = Run {
        kind,
        total: converged.at - t0,
        create,
        latencies,
        reconciles,
        requests: cluster::controller_requests(&before, &after),
        cpu,
        rss,
        profile,
    };
    eprintln!(
        "xtask bench:   {}: converged in {:.2?} ({} reconciles, {:.0} API requests, {:.2} CPU s)",
        kind.label(),
        run.total,
        run.reconciles,
        run.requests,
        run.cpu
    );
    Ok(run)
}

/// Runs the end-to-end comparison and renders its section.
pub async fn section(setup: &Setup) -> Result<Section> {
    let plan = Plan::new(setup.quick);
    let mut runs = Vec::new();
    for round in 0..plan.repeats {
        // Alternate who goes first, so drift (caches, thermal, neighbours)
        // does not favour one side.
        let order = if round % 2 == 0 {
            [Kind::Operon, Kind::Native]
        } else {
            [Kind::Native, Kind::Operon]
        };
        for kind in order {
            runs.push(one(setup, &plan, kind, round).await?);
        }
    }
    render(&plan, &runs)
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn render(plan: &Plan, runs: &[Run]) -> Result<Section> {
    let mut md = String::new();
    writeln!(md, "## End to end: {} parents at once\n", plan.parents)?;
    writeln!(
        md,
        "{n} `Memcached` parents (`spec.size: {size}`) created at once ({conc} creates in flight) \
         in an empty namespace of a fresh local control plane (etcd, kube-apiserver, \
         kube-controller-manager, kube-scheduler, kwok; a new one for every run), with one \
         controller watching that namespace: `operon run` (release build, the memcached \
         component from `cargo xtask build`, defaults: `--workers 4 --concurrency 8`) or the \
         native baseline (`baselines/native-memcached`: the same reconcile logic linked \
         natively, kube-runtime's controller with concurrency 4, the same server-side applies, \
         pruning and status patches). Time: from the first create to the moment every parent is \
         `Ready` and `Synced` for its generation and every Deployment and Service exists, seen by \
         a watch. {runs} run(s) per controller, alternating which goes first.\n",
        n = plan.parents,
        size = plan.size,
        conc = 32,
        runs = plan.repeats,
    )?;
    writeln!(
        md,
        "`spec.size: 0` keeps kube-controller-manager (20 requests/s by default) and kwok out of \
         the critical path: a parent is Ready as soon as its controller has applied its children \
         and patched its status, so the time is the controllers' own. API requests: the API \
         server's `apiserver_request_total` over the run, counting the controller's verbs \
         (apply/patch/delete of Deployments and Services, patch/get of Memcacheds, events); \
         reconciles: operon's `controller_runtime_reconcile_total`, the baseline's own count, \
         both read at convergence. Both queues dedupe and re-run a key changed while in \
         flight; the controllers' own writes (children created, status patched) come back as \
         watch events and cause further, no-op reconciles (server-side applies that change \
         nothing, no status patch): how many of those fall before convergence depends on each \
         queue's order, hence different reconciles per parent.\n"
    )?;
    writeln!(
        md,
        "| controller | converged: median | min – max | vs native | per-parent latency: median | p99 | reconciles/s | API requests / reconcile | reconciles / parent | CPU s | CPU µs / reconcile | RSS after |"
    )?;
    writeln!(
        md,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    )?;
    let of = |k: Kind| runs.iter().filter(move |r| r.kind == k);
    let median_total = |k: Kind| stats::median(of(k).map(|r| secs(r.total)).collect());
    let native_median = median_total(Kind::Native);
    for kind in [Kind::Operon, Kind::Native] {
        let totals: Vec<f64> = of(kind).map(|r| secs(r.total)).collect();
        let lat: Vec<f64> = of(kind)
            .flat_map(|r| r.latencies.iter().map(|d| secs(*d)))
            .collect();
        let reconciles: f64 = of(kind).map(|r| r.reconciles).sum();
        let requests: f64 = of(kind).map(|r| r.requests).sum();
        let time: f64 = totals.iter().sum();
        let cpu: f64 = of(kind).map(|r| r.cpu).sum();
        let rss = stats::median(of(kind).map(|r| r.rss as f64).collect());
        let med = stats::median(totals.clone());
        writeln!(
            md,
            "| {} | {:.2} s | {:.2} – {:.2} s | {:.2} | {:.2} s | {:.2} s | {:.0} | {:.2} | {:.1} | {:.2} | {:.0} | {:.0} MiB |",
            kind.label(),
            med,
            stats::min(&totals),
            stats::max(&totals),
            med / native_median,
            stats::median(lat.clone()),
            stats::percentile(lat, 0.99),
            reconciles / time,
            requests / reconciles.max(1.0),
            reconciles / (plan.parents * plan.repeats) as f64,
            cpu / plan.repeats as f64,
            cpu / reconciles.max(1.0) * 1e6,
            procfs::mib(rss as u64),
        )?;
    }
    let create = stats::median(runs.iter().map(|r| secs(r.create)).collect());
    writeln!(
        md,
        "\nCreating the {} parents took {create:.2} s (median over all runs); reconciles/s is over \
         the whole converge time, CPU s is the controller process's user+system time during it \
         (per run).\n",
        plan.parents
    )?;
    let profiles: Vec<&String> = runs.iter().filter_map(|r| r.profile.as_ref()).collect();
    if !profiles.is_empty() {
        writeln!(
            md,
            "### Where the time goes\n\n`perf record` (CPU clock, 499 Hz) of each controller \
             process over its first converge, by shared object and by symbol (self time, \
             symbols over 1 %). The Wasm guest's code is JIT-compiled: it appears as the \
             compiled component's mapping (`*.cwasm`, no symbols), not as the `operon` \
             binary.\n"
        )?;
        for p in profiles {
            md.push_str(p);
        }
    }
    let ratio = median_total(Kind::Operon) / native_median;
    let cpu_per_reconcile = |k: Kind| {
        of(k).map(|r| r.cpu).sum::<f64>() / of(k).map(|r| r.reconciles).sum::<f64>().max(1.0)
    };
    let cpu_ratio = cpu_per_reconcile(Kind::Operon) / cpu_per_reconcile(Kind::Native);
    Ok(Section {
        markdown: md,
        goals: vec![Goal {
            goal: "end-to-end time, operon / native",
            target: "≤ 1.10".into(),
            measured: format!("{ratio:.2} (CPU per reconcile: {cpu_ratio:.2})"),
            met: Some(ratio <= 1.10),
        }],
    })
}
