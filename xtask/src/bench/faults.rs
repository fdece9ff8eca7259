//! Faults: how the host comes through each fault of `host/tests/faults_e2e.rs`
//! (a black hole between host and API server, reset connections, latency
//! with jitter, a bandwidth squeeze, a failing admission webhook; each
//! under churn), run on a private control plane, and of
//! `host/tests/cluster_faults_e2e.rs` (API server and etcd restarts, etcd
//! compaction, a 410 on the first watch, APF throttling; each test on a
//! control plane of its own), one test at a time, three times. The test asserts what
//! must hold (the host stays up, `/readyz` tells when caches are stale,
//! no hot loop, no lost, duplicated or orphaned child); this section reads
//! the figures each run prints (`FAULT <name> key=value...`) and reports
//! their medians. No baseline here: kube-rs' default client has no read
//! timeout, so a controller built on it waits forever on the black hole.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::{Context, Result, bail};

use super::{Section, Setup, cluster, stats};
use crate::plugins;

/// One run's figures for one fault.
#[derive(Debug, Default)]
struct Run {
    lasted_s: f64,
    stale_after_s: Option<f64>,
    watch_errors: f64,
    /// Of the watch errors, those answered 410 Gone (history expired).
    expired: f64,
    converged_s: f64,
}

fn parse(line: &str) -> Option<(String, Run)> {
    let rest = line.strip_prefix("FAULT ")?;
    let mut words = rest.split_whitespace();
    let name = words.next()?.to_string();
    let mut run = Run::default();
    for word in words {
        let (key, value) = word.split_once('=')?;
        let number = value.parse::<f64>().ok();
        match key {
            "lasted_s" => run.lasted_s = number?,
            "stale_after_s" => run.stale_after_s = number,
            "watch_errors" => run.watch_errors = number?,
            "expired" => run.expired = number?,
            "converged_s" => run.converged_s = number?,
            _ => {}
        }
    }
    Some((name, run))
}

/// One run of a fault test binary, one test at a time: its FAULT lines.
async fn run_tests(
    setup: &Setup,
    cluster: &cluster::Cluster,
    test: &str,
) -> Result<Vec<(String, Run)>> {
    let mut cmd = plugins::cargo();
    cmd.args(["test", "-p", "operon", "--test", test, "--"])
        .args([
            "--nocapture",
            "--test-threads",
            "1",
            "--skip",
            "compile_cache",
        ])
        .env("OPERON_TEST_KUBECONFIG", &cluster.kubeconfig)
        .env("OPERON_PLUGIN_DIR", &setup.bins.plugins);
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await?
        .with_context(|| format!("running {test}"))?;
    let text = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        // libtest's verdicts are on stdout, the panics on stderr (among
        // the hosts' logs): the lines that say what failed and why.
        let stdout = String::from_utf8_lossy(&out.stdout);
        let verdicts = stdout
            .lines()
            .filter(|l| l.starts_with("test ") || l.contains("panicked"));
        let mut panics = text.lines().skip_while(|l| !l.contains("panicked"));
        let why: Vec<&str> = verdicts.chain(panics.by_ref().take(3)).collect();
        bail!("{test} failed:\n{}", why.join("\n"));
    }
    Ok(text.lines().filter_map(parse).collect())
}

pub async fn section(setup: &Setup) -> Result<Section> {
    let cluster = cluster::start("faults").await?;
    let runs = if setup.quick { 1 } else { 3 };
    let mut by_fault: BTreeMap<String, Vec<Run>> = BTreeMap::new();
    for n in 1..=runs {
        eprintln!("xtask bench: faults, run {n} of {runs}");
        for test in ["faults_e2e", "cluster_faults_e2e"] {
            for (name, run) in run_tests(setup, &cluster, test).await? {
                by_fault.entry(name).or_default().push(run);
            }
        }
    }
    if by_fault.is_empty() {
        bail!("the faults tests printed no FAULT line");
    }
    let mut md = String::new();
    writeln!(
        md,
        "## Faults: the connection to the API server, and the control plane\n"
    )?;
    writeln!(
        md,
        "Each fault of `host/tests/faults_e2e.rs` and `host/tests/cluster_faults_e2e.rs`, under churn (sizes changed, parents created and deleted every 100 ms), the host with `--request-timeout-s 5 --watch-timeout-s 5`, behind Toxiproxy where its connection is the fault (silent death: behind the tests' relay, which freezes its open connections); the restarts, compaction and throttling each on a control plane of their own (1 node). Medians of {runs} run(s) (`cargo xtask bench --only faults`); lost, duplicated and orphaned children are asserted 0 by the test.\n"
    )?;
    writeln!(
        md,
        "| fault | lasted | /readyz stale after | watch errors (of which 410) | converged after it ended (silent death: after it began) | lost / duplicated / orphaned |"
    )?;
    writeln!(md, "| --- | --- | --- | --- | --- | --- |")?;
    for (name, runs) in &by_fault {
        let stale: Vec<f64> = runs.iter().filter_map(|r| r.stale_after_s).collect();
        let stale = match stale.len() {
            0 => "stayed ready".to_string(),
            _ => format!("{:.1} s", stats::median(stale)),
        };
        let median = |f: fn(&Run) -> f64| stats::median(runs.iter().map(f).collect());
        let lasted = match median(|r| r.lasted_s) {
            l if l.is_infinite() => "for good (new connections work)".to_string(),
            l => format!("{l:.0} s"),
        };
        writeln!(
            md,
            "| {name} | {lasted} | {stale} | {:.0} ({:.0}) | {:.1} s | 0 / 0 / 0 |",
            median(|r| r.watch_errors).max(0.0),
            median(|r| r.expired),
            median(|r| r.converged_s),
        )?;
    }
    writeln!(md)?;
    Ok(Section {
        markdown: md,
        goals: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_fault_line() {
        let (name, run) =
            parse("FAULT black-hole lasted_s=30 stale_after_s=15.2 watch_errors=5 expired=1 converged_s=2.3")
                .unwrap();
        assert_eq!(run.expired, 1.0);
        assert_eq!(name, "black-hole");
        assert_eq!(
            (
                run.lasted_s,
                run.stale_after_s,
                run.watch_errors,
                run.converged_s
            ),
            (30.0, Some(15.2), 5.0, 2.3)
        );
        let (_, run) =
            parse("FAULT latency lasted_s=20 stale_after_s=- watch_errors=0 converged_s=1.7")
                .unwrap();
        assert_eq!(run.stale_after_s, None);
        assert!(parse("test latency ... ok").is_none());
    }
}
