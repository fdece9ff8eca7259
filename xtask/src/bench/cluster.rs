//! The cluster side of the end-to-end figures: a private control plane per
//! measurement, Memcached parents created with bounded concurrency, a watch
//! that says when every parent is Ready and every child applied, and the
//! API server's request counters.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ObjectMeta, PostParams};
use kube::runtime::watcher;
use kube::{Client, Resource};
use operon_test_support::controlplane::{ClusterGuard, UpOptions};
use serde_json::json;

use crate::plugins;

/// A private control plane, stopped when dropped.
pub struct Cluster {
    _guard: ClusterGuard,
    pub client: Client,
    pub kubeconfig: PathBuf,
}

/// Starts a fresh control plane (3 kwok nodes) in its own state directory.
pub async fn start(tag: &str) -> Result<Cluster> {
    let state = plugins::target_dir().join(format!("operon-bench-{tag}-{}", std::process::id()));
    let mut opts = UpOptions::new(&state);
    opts.owner_pid = Some(std::process::id());
    let guard = tokio::task::spawn_blocking(move || ClusterGuard::start(&opts)).await??;
    let kubeconfig = guard.kubeconfig().to_path_buf();
    let client = operon_test_support::client_for(&kubeconfig, None).await?;
    Ok(Cluster {
        _guard: guard,
        client,
        kubeconfig,
    })
}

impl Cluster {
    pub async fn namespace(&self, name: &str) -> Result<()> {
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            ..Default::default()
        };
        Api::<Namespace>::all(self.client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .with_context(|| format!("creating namespace {name}"))?;
        Ok(())
    }
}

pub fn memcached() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        "cache.operon.dev",
        "v1alpha1",
        "Memcached",
    ))
}

/// The name of parent `i`.
pub fn parent_name(i: usize) -> String {
    format!("m-{i:05}")
}

/// Creates parents `m-00000`.. with `spec.size`, `concurrency` requests in
/// flight; progress on stderr. Returns when each was created.
pub async fn create_parents(
    client: &Client,
    namespace: &str,
    n: usize,
    size: i32,
    concurrency: usize,
) -> Result<HashMap<String, Instant>> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &memcached());
    let start = Instant::now();
    let mut created = HashMap::with_capacity(n);
    let mut last = Instant::now();
    let mut results = futures::stream::iter(0..n)
        .map(|i| {
            let api = api.clone();
            async move {
                let name = parent_name(i);
                let obj: DynamicObject = serde_json::from_value(json!({
                    "apiVersion": "cache.operon.dev/v1alpha1", "kind": "Memcached",
                    "metadata": {"name": name},
                    "spec": {"size": size}
                }))?;
                api.create(&PostParams::default(), &obj)
                    .await
                    .with_context(|| format!("creating Memcached {namespace}/{name}"))?;
                anyhow::Ok((name, Instant::now()))
            }
        })
        .buffer_unordered(concurrency.max(1));
    while let Some((name, at)) = results.try_next().await? {
        created.insert(name, at);
        if last.elapsed() > Duration::from_secs(5) {
            last = Instant::now();
            eprintln!(
                "xtask bench:   created {}/{n} parents ({:.0?})",
                created.len(),
                start.elapsed()
            );
        }
    }
    Ok(created)
}

/// What [`wait_converged`] saw.
pub struct Converged {
    /// When the last parent became Ready or the last child appeared.
    pub at: Instant,
    /// When each parent was first seen Ready and Synced.
    pub ready_at: HashMap<String, Instant>,
    /// Whether the quiet period asked for was reached.
    pub quiet: bool,
}

/// What the harness needs of a watch event: the object's name, and
/// whether it counts (a parent Ready, a child controlled by a Memcached).
enum Seen {
    Parent(String, bool),
    Deployment(String, bool),
    Service(String, bool),
    Other,
}

fn name_of<K: Resource>(obj: &K) -> String {
    obj.meta().name.clone().unwrap_or_default()
}

fn is_ready(parent: &DynamicObject) -> bool {
    let status = &parent.data["status"];
    let conditions = status["conditions"].as_array();
    let true_ = |ty: &str| {
        conditions.is_some_and(|cs| cs.iter().any(|c| c["type"] == ty && c["status"] == "True"))
    };
    status["observedGeneration"].as_i64() == parent.metadata.generation
        && true_("Ready")
        && true_("Synced")
}

fn controlled_by_memcached<K: Resource>(obj: &K) -> bool {
    obj.meta()
        .owner_references
        .iter()
        .flatten()
        .any(|r| r.controller == Some(true) && r.kind == "Memcached")
}

/// Watches the namespace until `n` parents are Ready (and Synced, for their
/// current generation) and each has its Deployment and Service; then, if
/// `quiet` is set, until no change at all was seen for that long (given up
/// at `timeout`, see [`Converged::quiet`]). Progress on stderr; fails when
/// not converged after `timeout`.
pub async fn wait_converged(
    client: Client,
    namespace: String,
    n: usize,
    timeout: Duration,
    quiet: Option<Duration>,
) -> Result<Converged> {
    let parents: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), &namespace, &memcached());
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &namespace);
    let services: Api<Service> = Api::namespaced(client, &namespace);
    let cfg = watcher::Config::default;
    let mut events = futures::stream::select_all(vec![
        watcher(parents, cfg())
            .map_ok(|e| match e {
                watcher::Event::Apply(o) | watcher::Event::InitApply(o) => {
                    Seen::Parent(name_of(&o), is_ready(&o))
                }
                _ => Seen::Other,
            })
            .boxed(),
        watcher(deployments, cfg())
            .map_ok(|e| match e {
                watcher::Event::Apply(o) | watcher::Event::InitApply(o) => {
                    Seen::Deployment(name_of(&o), controlled_by_memcached(&o))
                }
                _ => Seen::Other,
            })
            .boxed(),
        watcher(services, cfg())
            .map_ok(|e| match e {
                watcher::Event::Apply(o) | watcher::Event::InitApply(o) => {
                    Seen::Service(name_of(&o), controlled_by_memcached(&o))
                }
                _ => Seen::Other,
            })
            .boxed(),
    ]);
    let start = Instant::now();
    let mut ready_at: HashMap<String, Instant> = HashMap::new();
    let (mut d, mut s): (HashSet<String>, HashSet<String>) = Default::default();
    let mut done_at: Option<Instant> = None;
    let mut last_change = Instant::now();
    let mut last_report = Instant::now();
    loop {
        if let Some(at) = done_at {
            match quiet {
                None => break,
                Some(q) if last_change.elapsed() >= q => {
                    return Ok(Converged {
                        at,
                        ready_at,
                        quiet: true,
                    });
                }
                Some(_) => {}
            }
        }
        if start.elapsed() > timeout {
            if let Some(at) = done_at {
                return Ok(Converged {
                    at,
                    ready_at,
                    quiet: false,
                });
            }
            bail!(
                "not converged after {timeout:?}: {}/{n} parents Ready, {} Deployments, {} Services",
                ready_at.len(),
                d.len(),
                s.len()
            );
        }
        if last_report.elapsed() > Duration::from_secs(5) {
            last_report = Instant::now();
            eprintln!(
                "xtask bench:   {}/{n} parents Ready, {} Deployments, {} Services ({:.0?})",
                ready_at.len(),
                d.len(),
                s.len(),
                start.elapsed()
            );
        }
        let next = tokio::time::timeout(Duration::from_millis(500), events.next()).await;
        let Ok(next) = next else { continue };
        let seen = match next {
            Some(Ok(seen)) => seen,
            Some(Err(e)) => {
                eprintln!("xtask bench:   watch error (retrying): {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            None => bail!("the watches ended"),
        };
        let now = Instant::now();
        last_change = now;
        match seen {
            Seen::Parent(name, true) => {
                ready_at.entry(name).or_insert(now);
            }
            Seen::Deployment(name, true) => {
                d.insert(name);
            }
            Seen::Service(name, true) => {
                s.insert(name);
            }
            _ => {}
        }
        if done_at.is_none() && ready_at.len() >= n && d.len() >= n && s.len() >= n {
            done_at = Some(now);
        }
    }
    Ok(Converged {
        at: done_at.unwrap_or_else(Instant::now),
        ready_at,
        quiet: quiet.is_none(),
    })
}

/// The API server's `apiserver_request_total`, summed per (group,
/// resource, subresource, verb).
pub type Requests = BTreeMap<(String, String, String, String), f64>;

/// Reads `apiserver_request_total` from the API server's /metrics (the
/// admin identity may read it).
pub async fn apiserver_requests(client: &Client) -> Result<Requests> {
    let req = http::Request::get("/metrics")
        .body(Vec::new())
        .context("building the /metrics request")?;
    let text = client
        .request_text(req)
        .await
        .context("reading the API server's /metrics")?;
    let mut out = Requests::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("apiserver_request_total{") else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        let label = |name: &str| {
            labels
                .split(',')
                .find_map(|kv| kv.strip_prefix(&format!("{name}=\"")))
                .map(|v| v.trim_end_matches('"').to_string())
                .unwrap_or_default()
        };
        let key = (
            label("group"),
            label("resource"),
            label("subresource"),
            label("verb"),
        );
        *out.entry(key).or_default() += value.parse::<f64>().unwrap_or(0.0);
    }
    Ok(out)
}

/// Requests a memcached controller makes, between two readings: applies,
/// patches and deletes of Deployments and Services, status patches and
/// reads of Memcacheds, events it records. Writes by
/// kube-controller-manager (PUT/POST) and the harness's own creates
/// (POST Memcached) and watches are left out.
pub fn controller_requests(before: &Requests, after: &Requests) -> f64 {
    between(before, after, |verb| verb != "WATCH")
}

/// As [`controller_requests`], writes only (no GET).
pub fn controller_writes(before: &Requests, after: &Requests) -> f64 {
    between(before, after, |verb| verb != "GET" && verb != "WATCH")
}

fn between(before: &Requests, after: &Requests, verbs: impl Fn(&str) -> bool) -> f64 {
    after
        .iter()
        .filter(|((group, resource, _, verb), _)| {
            let verb = verb.as_str();
            verbs(verb)
                && match (group.as_str(), resource.as_str()) {
                    ("apps", "deployments") | ("", "services") => {
                        matches!(verb, "APPLY" | "PATCH" | "DELETE")
                    }
                    ("cache.operon.dev", "memcacheds") => {
                        matches!(verb, "PATCH" | "GET" | "APPLY")
                    }
                    ("events.k8s.io", "events") => matches!(verb, "POST" | "PATCH"),
                    _ => false,
                }
        })
        .map(|(k, v)| v - before.get(k).copied().unwrap_or(0.0))
        .sum()
}
