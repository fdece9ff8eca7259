//! Swap from a registry with `revisionActivationPolicy: Manual`: a new
//! build pushed with `operon push`, the ClusterReconcilerPlugin's source
//! pointed at it, the revision prepared (fetched, verified, compiled) while
//! the old one serves; then the clock starts when the revision is set
//! `Active` and stops at the first reconcile on it (`firstReconcileAt` in
//! `operon plugins`, the host's clock, as for [`super::swap`]).
//!
//! Side by side in the same run: the directory mode's cold swap of builds
//! of the same component (rename → first reconcile, compile included),
//! which is what a Manual activation takes the compile out of.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
};
use serde_json::{Value, json};

use super::controllers::{Binaries, Kind, Running, http_get};
use super::swap::{unix, variant};
use super::{Section, Setup, cluster, stats};
use crate::plugins;

const PLUGIN: &str = "bench-memcached";
/// The admin endpoint's name of the object's slot (`crp/<name>`).
const SLOT_PATH: &str = "/plugins/crp%2Fbench-memcached";

fn gvk(kind: &str) -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk("operon.dev", "v1alpha1", kind))
}

/// `operon push`; the digest it prints.
fn push(operon: &Path, file: &Path, reference: &str) -> Result<String> {
    let out = Command::new(operon)
        .args(["push", "--plain-http"])
        .arg(file)
        .arg(reference)
        .output()
        .context("running operon push")?;
    if !out.status.success() {
        bail!(
            "operon push {reference}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8(out.stdout)?.trim().to_string())
}

/// The active revision of the slot as the admin endpoint shows it.
fn active(admin: &str) -> Result<Value> {
    let (code, body) = http_get(admin, SLOT_PATH)?;
    if code != 200 {
        return Ok(Value::Null);
    }
    let slot: Value = serde_json::from_str(&body)?;
    Ok(slot["revisions"]
        .as_array()
        .and_then(|rs| rs.iter().find(|r| r["state"] == "active"))
        .cloned()
        .unwrap_or(Value::Null))
}

/// The revision object of `digest` once it is `Compiled=True`, with the
/// compile time its condition reports (ms).
async fn prepared(revisions: &Api<DynamicObject>, digest: &str) -> Result<(String, f64)> {
    let deadline = Instant::now() + Duration::from_secs(180);
    while Instant::now() < deadline {
        let list = revisions
            .list(&ListParams::default().labels(&format!("operon.dev/plugin-object={PLUGIN}")))
            .await?;
        for r in list.items {
            if r.data["spec"]["digest"] != digest {
                continue;
            }
            let compiled = r.data["status"]["conditions"]
                .as_array()
                .and_then(|cs| cs.iter().find(|c| c["type"] == "Compiled"))
                .cloned()
                .unwrap_or(Value::Null);
            if compiled["status"] == "True" {
                let message = compiled["message"].as_str().unwrap_or_default();
                let ms = message
                    .split_once("compiled in ")
                    .and_then(|(_, rest)| rest.split(' ').next()?.parse().ok())
                    .unwrap_or(f64::NAN);
                return Ok((r.metadata.name.unwrap_or_default(), ms));
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("the revision of {digest} was not compiled within 180 s")
}

/// Sets the revision Active; the time until the first reconcile on it
/// and until it was swapped in (ms).
async fn activate(revisions: &Api<DynamicObject>, admin: &str, name: &str) -> Result<(f64, f64)> {
    let t0 = unix(SystemTime::now());
    revisions
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"desiredState": "Active"}})),
        )
        .await?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let a = tokio::task::block_in_place(|| active(admin))?;
        let activated = a["activatedAt"].as_f64().unwrap_or(0.0);
        if activated < t0 {
            continue;
        }
        if let Some(first) = a["tracker"]["firstReconcileAt"].as_f64() {
            return Ok(((first - t0) * 1000.0, (activated - t0) * 1000.0));
        }
    }
    bail!("no reconcile on revision {name} within 120 s")
}

struct Samples {
    /// Activation → first reconcile.
    total: Vec<f64>,
    /// Activation → swapped in.
    active: Vec<f64>,
    /// Compile at preparation, before the activation.
    compile: Vec<f64>,
}

/// Directory mode, cold builds: rename → first reconcile (ms), compile (ms).
fn directory_cold(
    host: Running,
    bins: &Binaries,
    rust: &[u8],
    n: usize,
) -> Result<(Vec<f64>, Vec<f64>)> {
    let admin = host.admin.clone().context("operon has an admin address")?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while host.operon_reconciles()? < 1.0 {
        if Instant::now() > deadline {
            bail!("operon did not reconcile the parent within 120 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let (mut total, mut compile) = (Vec::new(), Vec::new());
    for i in 0..n {
        let s = super::swap::swap(&admin, &bins.plugins, &variant(rust, 1000 + i))?;
        eprintln!(
            "xtask bench:   directory cold {}/{n}: {:.1} ms",
            i + 1,
            s.total
        );
        total.push(s.total);
        compile.push(s.compile);
        std::thread::sleep(Duration::from_millis(200));
    }
    host.stop()?;
    Ok((total, compile))
}

pub async fn section(setup: &Setup) -> Result<Section> {
    let n = if setup.quick { 3 } else { 10 };
    eprintln!(
        "xtask bench: manual activation from a registry: fresh cluster, one Memcached parent"
    );
    let cluster = cluster::start("packages").await?;
    cluster.namespace("bench").await?;
    let state = cluster
        .kubeconfig
        .parent()
        .context("the cluster's state dir")?;
    let registry = operon_test_support::controlplane::registries(state)?.open;
    let rust = std::fs::read(plugins::wasm_dir().join("rust_memcached.wasm"))
        .context("reading the Rust example")?;
    let dir = plugins::target_dir().join("bench-packages-plugins");
    let cache = plugins::target_dir().join("bench-packages-cache");
    let builds = plugins::target_dir().join("bench-packages-builds");
    for d in [&dir, &cache, &builds] {
        let _ = std::fs::remove_dir_all(d);
        std::fs::create_dir_all(d)?;
    }
    std::fs::write(dir.join("memcached.wasm"), &rust)?;
    let mut bins = Binaries {
        operon: setup.bins.operon.clone(),
        native: setup.bins.native.clone(),
        plugins: dir.clone(),
        logs: setup.bins.logs.clone(),
        extra: vec!["--cache-dir".into(), cache.display().to_string()],
    };
    // The host installs the Memcached CRD; the parent comes after it.
    let first = tokio::task::block_in_place(|| {
        Running::start(
            Kind::Operon,
            &bins,
            &cluster.kubeconfig,
            "bench",
            "packages-dir",
        )
    })?;
    cluster::create_parents(&cluster.client, "bench", 1, 1, 1).await?;
    let (dir_total, dir_compile, bins_back) = {
        let bins = bins.clone();
        let rust = rust.clone();
        tokio::task::spawn_blocking(move || {
            directory_cold(first, &bins, &rust, n).map(|(t, c)| (t, c, bins))
        })
        .await??
    };
    bins = bins_back;

    // The same component from the registry, as a plugin object.
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    bins.extra.extend(
        [
            "--plugin-objects",
            "--insecure-registry",
            &registry,
            "--source-poll-s",
            "1",
        ]
        .map(String::from),
    );
    let repo = format!("{registry}/bench/memcached");
    let mut digests = Vec::new();
    for i in 0..=n {
        let file = builds.join(format!("v{i}.wasm"));
        std::fs::write(&file, variant(&rust, 2000 + i))?;
        digests.push(push(&bins.operon, &file, &format!("{repo}:v{i}"))?);
    }
    let host = tokio::task::block_in_place(|| {
        Running::start(
            Kind::Operon,
            &bins,
            &cluster.kubeconfig,
            "bench",
            "packages",
        )
    })?;
    let admin = host.admin.clone().context("operon has an admin address")?;
    let plugins_api: Api<DynamicObject> =
        Api::all_with(cluster.client.clone(), &gvk("ClusterReconcilerPlugin"));
    let revisions: Api<DynamicObject> = Api::all_with(
        cluster.client.clone(),
        &gvk("ClusterReconcilerPluginRevision"),
    );
    let object: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "operon.dev/v1alpha1", "kind": "ClusterReconcilerPlugin",
        "metadata": {"name": PLUGIN},
        "spec": {"source": {"image": format!("{repo}:v0")},
                 "revisionActivationPolicy": "Manual", "revisionHistoryLimit": 2}
    }))?;
    plugins_api
        .patch(
            PLUGIN,
            &PatchParams::apply("xtask-bench").force(),
            &Patch::Apply(&object),
        )
        .await?;
    prepared(&revisions, &digests[0]).await?;
    let mut samples = Samples {
        total: Vec::new(),
        active: Vec::new(),
        compile: Vec::new(),
    };
    for (i, digest) in digests.iter().enumerate().skip(1) {
        plugins_api
            .patch(
                PLUGIN,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"source": {"image": format!("{repo}:v{i}")}}})),
            )
            .await?;
        let (name, compile) = prepared(&revisions, digest).await?;
        let (total, active) = activate(&revisions, &admin, &name).await?;
        eprintln!(
            "xtask bench:   manual activation {i}/{n}: {total:.1} ms (compiled before: {compile:.0} ms)"
        );
        samples.total.push(total);
        samples.active.push(active);
        samples.compile.push(compile);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::task::block_in_place(|| host.stop())?;
    let _ = plugins_api.delete(PLUGIN, &Default::default()).await;
    drop(cluster);
    for d in [&cache, &builds] {
        let _ = std::fs::remove_dir_all(d);
    }
    markdown(&samples, &dir_total, &dir_compile, rust.len())
}

fn markdown(s: &Samples, dir_total: &[f64], dir_compile: &[f64], size: usize) -> Result<Section> {
    let mut md = String::new();
    writeln!(md, "## Hot swap from a registry: Manual activation\n")?;
    writeln!(
        md,
        "The Rust example ({:.1} MB) pushed with `operon push` as new builds (a custom section \
         each: a new digest), a ClusterReconcilerPlugin with `revisionActivationPolicy: Manual` \
         pointed at each in turn: the revision is fetched, verified and compiled while the old \
         one serves; the clock starts when it is set `Active` (`kubectl patch`) and stops at the \
         first reconcile on it, by the host's clock. Side by side in the same run, on the same \
         cluster: the directory mode's cold swap (rename → first reconcile, compile included) \
         of builds of the same component.\n",
        size as f64 / 1e6
    )?;
    writeln!(
        md,
        "| mode | samples | median | p99 | median until active | median compile in the swap |"
    )?;
    writeln!(md, "|---|---:|---:|---:|---:|---:|")?;
    let manual = stats::median(s.total.clone());
    let dir = stats::median(dir_total.to_vec());
    writeln!(
        md,
        "| directory, cold build | {} | {dir:.0} ms | {:.0} ms | — | {:.0} ms |",
        dir_total.len(),
        stats::percentile(dir_total.to_vec(), 0.99),
        stats::median(dir_compile.to_vec()),
    )?;
    writeln!(
        md,
        "| registry, Manual, activated | {} | {manual:.0} ms | {:.0} ms | {:.0} ms | 0 ms (compiled {:.0} ms before, at preparation) |",
        s.total.len(),
        stats::percentile(s.total.clone(), 0.99),
        stats::median(s.active.clone()),
        stats::median(s.compile.clone()),
    )?;
    writeln!(
        md,
        "\nManual activation / directory cold swap (medians): **{:.3}**. The activation goes \
         through the package controller (the patch is watched, the prepared revision offered \
         to the supervisor) and waits for no directory poll.\n",
        manual / dir
    )?;
    Ok(Section {
        markdown: md,
        goals: Vec::new(),
    })
}
