//! The client side of `cargo xtask demo`: with `operon run` already
//! reconciling the memcached plugin, create the example `Memcached`, show
//! its children and status converging, scale it, swap the plugin for its
//! Python build while the host runs, and clean up.
//!
//! The swap step runs when `OPERON_DEMO_PLUGIN_DIR` (the host's plugin
//! directory), `OPERON_DEMO_SWAP_TO` (the build to put in) and
//! `OPERON_DEMO_OPERON` (the `operon` binary, for `operon plugins`) are set.
//! With `OPERON_DEMO_REGISTRY` (and `OPERON_DEMO_FIRST`, the first build)
//! the plugin comes from that registry instead (see [`registry`]).
//!
//! Run by `cargo xtask demo`, which starts the control plane and the host;
//! by hand: `cargo run -p operon --example demo -- <kubeconfig> [namespace]
//! [health-addr]`.

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams,
};
use serde_json::{Value, json};

mod registry;

fn step(text: &str) {
    println!("\n==> {text}");
}

/// Polls until `check` says done, printing each new observation.
async fn watch_until<F, Fut>(what: &str, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<(bool, String)>>,
{
    let start = Instant::now();
    let mut last = String::new();
    loop {
        let (done, seen) = check().await?;
        if seen != last {
            println!("    [{:>5.1}s] {seen}", start.elapsed().as_secs_f64());
            last = seen;
        }
        if done {
            return Ok(());
        }
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(180),
            "gave up waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn describe_status(v: &Value) -> String {
    let ready = v
        .pointer("/status/readyReplicas")
        .cloned()
        .unwrap_or(json!(0));
    let size = v.pointer("/spec/size").cloned().unwrap_or(Value::Null);
    let conds: Vec<String> = v
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .map(|c| {
                    format!(
                        "{}={} ({})",
                        c["type"].as_str().unwrap_or("?"),
                        c["status"].as_str().unwrap_or("?"),
                        c["message"].as_str().unwrap_or("")
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    format!("readyReplicas {ready}/{size}; {}", conds.join(", "))
}

/// The body of a GET answered 200, if it was.
async fn http_get(addr: &str, path: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: operon\r\nConnection: close\r\n\r\n");
    s.write_all(request.as_bytes()).await.ok()?;
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer).await;
    if !answer.starts_with("HTTP/1.1 200") {
        return None;
    }
    Some(answer.split_once("\r\n\r\n")?.1.to_string())
}

/// Whether `/readyz` answers 200.
async fn readyz(addr: &str) -> bool {
    http_get(addr, "/readyz").await.is_some()
}

/// The active revision of the memcached plugin, from the admin endpoint.
async fn active_revision(admin: &str) -> Option<Value> {
    let body = http_get(admin, "/plugins/memcached").await?;
    let plugin: Value = serde_json::from_str(&body).ok()?;
    plugin["revisions"]
        .as_array()?
        .iter()
        .find(|r| r["state"] == "active")
        .cloned()
}

/// Sets the Memcached's `spec.size` and waits until that many are ready.
async fn scale(parents: &Api<DynamicObject>, name: &str, size: i64) -> anyhow::Result<()> {
    parents
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": size}})),
        )
        .await?;
    watch_until("scaled", || async {
        let v = serde_json::to_value(parents.get(name).await?)?;
        let done = v.pointer("/status/readyReplicas") == Some(&json!(size));
        Ok((done, describe_status(&v)))
    })
    .await
}

/// The registry mode's settings, when `OPERON_DEMO_REGISTRY` is set.
fn from_registry() -> Option<registry::FromRegistry> {
    let var = |name| std::env::var(name).ok();
    Some(registry::FromRegistry {
        registry: var("OPERON_DEMO_REGISTRY")?,
        operon: var("OPERON_DEMO_OPERON")?,
        first: var("OPERON_DEMO_FIRST")?,
        second: var("OPERON_DEMO_SWAP_TO")?,
    })
}

/// Renames the build over the plugin's file and shows the host take it.
async fn hot_swap(
    dir: &str,
    build: &str,
    operon: &str,
    parents: &Api<DynamicObject>,
    name: &str,
) -> anyhow::Result<()> {
    let admin = "127.0.0.1:9092";
    step("hot swap: the Python build of the plugin replaces the Rust one; the host keeps running");
    println!(
        "    cp {build} {dir}/.rust_memcached.wasm.tmp && mv (rename) it over rust_memcached.wasm"
    );
    let tmp = std::path::Path::new(dir).join(".rust_memcached.wasm.tmp");
    std::fs::copy(build, &tmp)?;
    std::fs::rename(&tmp, std::path::Path::new(dir).join("rust_memcached.wasm"))?;
    watch_until("revision 2", || async {
        let active = active_revision(admin).await.unwrap_or(Value::Null);
        let seen = format!(
            "active revision {} ({}, {:.1} MB, {} ms to compile or load from cache)",
            active["number"],
            active["digest"].as_str().map_or("-", |d| &d[..12]),
            active["sizeBytes"].as_f64().unwrap_or(0.0) / 1e6,
            active["compileMs"].as_f64().unwrap_or(0.0).round()
        );
        Ok((active["number"] == 2, seen))
    })
    .await?;
    step("scale to 2: now the Python build reconciles");
    scale(parents, name, 2).await?;
    step(
        "operon plugins history memcached (rollback would be `operon plugins rollback memcached`)",
    );
    let status = std::process::Command::new(operon)
        .args(["plugins", "--admin-addr", admin, "history", "memcached"])
        .status()?;
    anyhow::ensure!(status.success(), "operon plugins history failed");
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let kubeconfig = args
        .next()
        .ok_or_else(|| anyhow::anyhow!("usage: demo <kubeconfig> <namespace>"))?;
    let ns = args.next().unwrap_or_else(|| "demo".into());
    let health = args.next().unwrap_or_else(|| "127.0.0.1:9091".into());
    step(&format!(
        "wait for operon to be ready (http://{health}/readyz: CRDs installed, caches synced)"
    ));
    watch_until("operon ready", || async {
        Ok((readyz(&health).await, "waiting".to_string()))
    })
    .await?;
    let client = operon::client(Some(kubeconfig.as_ref())).await?;
    let from_registry = from_registry();
    if let Some(r) = &from_registry {
        r.install(&client).await?;
    }

    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ssa = PatchParams::apply("operon-demo").force();
    namespaces
        .patch(
            &ns,
            &ssa,
            &Patch::Apply(
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
            ),
        )
        .await?;

    let manifest = std::fs::read_to_string(
        operon_test_support::controlplane::repo_root()
            .join("examples/rust-memcached/fixtures/memcached.yaml"),
    )?;
    let mut parent = operon::cli::parse_objects(&manifest)?.remove(0);
    parent["metadata"]["namespace"] = json!(ns);
    let name = parent["metadata"]["name"]
        .as_str()
        .unwrap_or("example")
        .to_string();
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "cache.operon.dev",
        "v1alpha1",
        "Memcached",
    ));
    let parents: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &ar);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let services: Api<Service> = Api::namespaced(client.clone(), &ns);

    step(&format!(
        "apply Memcached {ns}/{name} (spec.size {})",
        parent["spec"]["size"]
    ));
    parents.patch(&name, &ssa, &Patch::Apply(&parent)).await?;

    step(
        "operon creates the Deployment and the Service (server-side apply, owned by the Memcached)",
    );
    watch_until("children", || async {
        let d = deployments.get_opt(&name).await?;
        let s = services.get_opt(&name).await?;
        let seen = format!(
            "Deployment: {}, Service: {}",
            d.as_ref().map_or("-".into(), |d| format!(
                "replicas {}",
                d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0)
            )),
            s.as_ref().map_or("-", |_| "present")
        );
        Ok((d.is_some() && s.is_some(), seen))
    })
    .await?;

    step("kwok runs the pods; the status converges to Ready");
    watch_until("Ready", || async {
        let v = serde_json::to_value(parents.get(&name).await?)?;
        let ready = v
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            });
        Ok((ready, describe_status(&v)))
    })
    .await?;

    step("scale to 4: the Deployment follows spec.size");
    scale(&parents, &name, 4).await?;

    match (&from_registry, std::env::var("OPERON_DEMO_PLUGIN_DIR")) {
        (Some(r), _) => r.swap(&client, &parents, &name).await?,
        (None, Ok(dir)) => {
            if let (Ok(build), Ok(operon)) = (
                std::env::var("OPERON_DEMO_SWAP_TO"),
                std::env::var("OPERON_DEMO_OPERON"),
            ) {
                hot_swap(&dir, &build, &operon, &parents, &name).await?;
            }
        }
        (None, Err(_)) => {}
    }

    step("to look around yourself: `cargo xtask cluster up` keeps a cluster running, then");
    println!(
        "    cargo run -p operon -- run --plugins <dir with rust_memcached.wasm> --kubeconfig <its kubeconfig>"
    );
    println!("    eval \"$(cargo xtask cluster env)\"");
    println!("    kubectl -n {ns} get memcacheds,deployments,services,pods");
    println!("    kubectl -n {ns} get memcached {name} -o yaml    # status, conditions");
    println!("    kubectl -n {ns} get events                       # what operon recorded");
    if from_registry.is_some() {
        println!(
            "    kubectl get crp,crprev                           # the plugin object, its revisions"
        );
    }

    step("delete the Memcached: its children are garbage-collected");
    parents.delete(&name, &DeleteParams::background()).await?;
    watch_until("garbage collection", || async {
        let left = deployments.get_opt(&name).await?.is_some() as u8
            + services.get_opt(&name).await?.is_some() as u8;
        Ok((left == 0, format!("{left} children left")))
    })
    .await?;
    if let Some(r) = &from_registry {
        r.uninstall(&client).await?;
    }
    println!("\ndemo complete");
    Ok(())
}
