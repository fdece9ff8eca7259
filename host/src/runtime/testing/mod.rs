//! What the runtime's unit tests share: the fake API server
//! ([`fake_api`]), the built test components, one engine, and waiting on a
//! condition (never on a duration: a timed assertion is flaky on a shared
//! machine).

pub mod fake_api;
mod patch;

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::Semaphore;

use super::cache::Caches;
use super::controller::{Options, Shared};
use super::queue::Backoff;
use crate::engine::{Engine, EngineConfig};
use crate::kinds::Kinds;
use crate::server::Metrics;
pub use fake_api::FakeApi;

/// The namespace the tests' parents live in.
pub const NS: &str = "demo";

/// How long a condition may take before the test fails (generous: a
/// loaded machine is slow, and only a broken host waits this long).
const PATIENCE: Duration = Duration::from_secs(60);

/// Cargo's target directory (honouring `CARGO_TARGET_DIR`).
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

/// One engine for every test of the process (each has its own runtime,
/// client and caches). Compiled components are cached in the target
/// directory (entries are keyed by digest and written atomically, so runs
/// and processes share it safely): tests loading the same bytes compile
/// them once.
pub fn engine() -> Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let cache = target_dir().join("operon-unit-compile-cache");
            Engine::new(EngineConfig {
                pool_instances: 32,
                cache_dir: Some(cache),
                ..EngineConfig::default()
            })
            .expect("an engine")
        })
        .clone()
}

/// A built test component by package name: in `$OPERON_PLUGIN_DIR`, else
/// `<target>/wasm32-wasip2/plugin` (`cargo xtask build` puts them there).
pub fn component(package: &str) -> PathBuf {
    let dir = std::env::var_os("OPERON_PLUGIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("wasm32-wasip2/plugin"));
    let path = dir.join(format!("{}.wasm", package.replace('-', "_")));
    assert!(
        path.exists(),
        "component {} not found: build the test components with `cargo xtask build` \
         (or `cargo build --target wasm32-wasip2 --profile plugin -p {package}`), \
         or point OPERON_PLUGIN_DIR at them",
        path.display()
    );
    path
}

/// What every controller of a test host shares, over the fake.
/// Controller options for tests: two workers, millisecond backoff (so
/// retries happen within a test), grants enforced, every namespace.
pub fn options() -> Options {
    Options {
        workers: 2,
        backoff: Backoff {
            base: Duration::from_millis(5),
            max: Duration::from_millis(50),
        },
        enforce_grants: true,
        namespace: None,
    }
}

pub fn shared(fake: &FakeApi) -> Shared {
    let metrics = Arc::new(Metrics::default());
    let kinds = Arc::new(Kinds::new(fake.client()));
    Shared {
        caches: Arc::new(Caches::new(kinds, None, metrics.clone())),
        metrics,
        global: Arc::new(Semaphore::new(8)),
        may_write: crate::runtime::leader::Gate::open(),
    }
}

/// Waits until `f` gives a value; fails the test naming `what` after
/// [`PATIENCE`].
pub async fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let waited = tokio::time::timeout(PATIENCE, async {
        loop {
            if let Some(v) = f() {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    waited.unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// `controller_runtime_reconcile_total` of a controller, for one result
/// (`success`, `error`, `requeue_after`) or all of them.
pub fn reconciles(metrics: &Metrics, controller: &str, result: Option<&str>) -> u64 {
    let controller = format!("controller=\"{controller}\"");
    let result = result.map(|r| format!("result=\"{r}\""));
    metrics
        .render()
        .lines()
        .filter(|l| l.starts_with("controller_runtime_reconcile_total{"))
        .filter(|l| l.contains(&controller))
        .filter(|l| result.as_ref().is_none_or(|r| l.contains(r.as_str())))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// The `Synced` condition of an object's status.
pub fn synced(object: &Value) -> Option<&Value> {
    object
        .pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Synced")
}

/// `(status, reason)` of the `Synced` condition, e.g. `("False", "ReconcileError")`.
pub fn synced_as(object: &Value) -> Option<(String, String)> {
    let c = synced(object)?;
    Some((c["status"].as_str()?.into(), c["reason"].as_str()?.into()))
}
