//! What the Wasm boundary costs: the same reconcile logic called natively
//! (the plugin crate linked as an rlib, called through operon-sdk's native
//! path) and through the engine (fresh instance from the pre-instantiated
//! component, call, decoding of the answer), on the same inputs, including a
//! large parent; and how much memory a loaded plugin holds.
//!
//! Run through `cargo xtask bench`, which builds the components. Prints a
//! Markdown section to `$OPERON_BENCH_REPORT`, with `<!-- goal: ... -->`
//! lines the summary of BENCHMARKS.md picks up.

use std::sync::Arc;
use std::time::{Duration, Instant};

use operon::cli::read_objects;
use operon::contract::{ObjectSet, Request};
use operon::engine::{Engine, EngineConfig, Limits};
use operon::plugin::{CallContext, Plugin};
use operon_sdk::Reconciler;
use serde_json::{Value, json};

/// Which reconciler a case runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Logic {
    Memcached,
    Postgres,
}

impl Logic {
    fn component(self) -> &'static str {
        match self {
            Logic::Memcached => "rust_memcached.wasm",
            Logic::Postgres => "postgres.wasm",
        }
    }

    /// The goal line's key (see `goals_in` in xtask/src/bench.rs).
    fn goal(self) -> &'static str {
        match self {
            Logic::Memcached => "wasm-native-memcached",
            Logic::Postgres => "wasm-native-postgres",
        }
    }
}

/// One input, as JSON text: what the host hands the component.
struct Case {
    logic: Logic,
    label: String,
    parent: String,
    observed: Vec<String>,
}

impl Case {
    fn bytes(&self) -> usize {
        self.parent.len() + self.observed.iter().map(String::len).sum::<usize>()
    }
}

fn plugin_dir() -> std::path::PathBuf {
    std::path::PathBuf::from(
        std::env::var_os("OPERON_PLUGIN_DIR")
            .expect("OPERON_PLUGIN_DIR is not set: run the benchmarks with `cargo xtask bench`"),
    )
}

/// `managedFields` as the API server keeps them for an object written by a
/// few managers: a large, realistic part of every cached object.
fn managed_fields(managers: usize, fields: usize) -> Value {
    let entries: Vec<Value> = (0..managers)
        .map(|m| {
            let mut f = serde_json::Map::new();
            for i in 0..fields {
                f.insert(format!("f:field-{m}-{i}"), json!({}));
            }
            json!({"manager": format!("manager-{m}"), "operation": "Apply",
                   "apiVersion": "v1", "time": "2024-05-01T12:00:00Z",
                   "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {"f:annotations": f}}})
        })
        .collect();
    Value::Array(entries)
}

/// The fixture's parent and children, made large the way real objects
/// are: hundreds of annotations and labels and long managedFields
/// (memcached has no list in its spec to grow).
fn enlarge(mut obj: Value, annotations: usize) -> Value {
    let meta = obj["metadata"].as_object_mut().expect("metadata");
    let a: serde_json::Map<String, Value> = (0..annotations)
        .map(|i| {
            (
                format!("example.com/annotation-{i:04}"),
                json!(format!("value {i} ").repeat(8)),
            )
        })
        .collect();
    meta.insert("annotations".into(), Value::Object(a));
    let labels = meta
        .entry("labels")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .expect("labels");
    for i in 0..annotations / 4 {
        labels.insert(format!("example.com/label-{i:03}"), json!(format!("v{i}")));
    }
    meta.insert("managedFields".into(), managed_fields(4, annotations / 2));
    obj
}

/// A PostgresCluster with `n` more users, each owning a database of its own.
fn many_users(mut parent: Value, n: usize) -> Value {
    let spec = &mut parent["spec"];
    for i in 0..n {
        let (user, db) = (format!("user_{i:03}"), format!("db_{i:03}"));
        spec["users"]
            .as_array_mut()
            .expect("users")
            .push(json!({"name": user, "databases": [db]}));
        spec["databases"]
            .as_array_mut()
            .expect("databases")
            .push(json!({"name": db, "owner": user}));
    }
    parent
}

fn cases() -> Vec<Case> {
    let root = operon_test_support::controlplane::repo_root();
    let text = |v: &Value| v.to_string();
    let fixture = |dir: &str| {
        let dir = root.join(dir);
        let parent = read_objects(&dir.join("parent.yaml")).expect("parent fixture")[0].clone();
        let observed = read_objects(&dir.join("observed.yaml")).expect("observed fixture");
        (parent, observed)
    };
    let (parent, observed) = fixture("examples/rust-memcached/fixtures");
    let (pg, pg_observed) = fixture("plugins/postgres/fixtures/running");
    let mut cases = vec![
        Case {
            logic: Logic::Memcached,
            label: "memcached: fixture".into(),
            parent: text(&parent),
            observed: observed.iter().map(text).collect(),
        },
        Case {
            logic: Logic::Memcached,
            label: "memcached: large parent and children".into(),
            parent: text(&enlarge(parent, 400)),
            observed: observed
                .into_iter()
                .map(|o| text(&enlarge(o, 200)))
                .collect(),
        },
        Case {
            logic: Logic::Postgres,
            label: "postgres: `running` fixture (3 instances)".into(),
            parent: text(&pg),
            observed: pg_observed.iter().map(text).collect(),
        },
    ];
    // How the reconcile grows with the spec: each user is a Secret, a role,
    // a database and its grants, so the time should grow linearly.
    cases.extend([10, 100, 300, 1000].map(|n| Case {
        logic: Logic::Postgres,
        label: format!("postgres: {n} more users and databases"),
        parent: text(&many_users(pg.clone(), n)),
        observed: pg_observed.iter().map(text).collect(),
    }));
    cases
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Median, p99 and the number of calls: up to `samples` runs of `f` after a
/// tenth as many warm-ups, fewer for slow inputs so that a row takes about
/// `budget` (at least 200 calls, so the p99 still means something).
fn measure(samples: usize, budget: Duration, mut f: impl FnMut()) -> (Duration, Duration, usize) {
    let probe = Instant::now();
    f();
    let per_call = probe.elapsed().max(Duration::from_nanos(1));
    let samples = samples
        .min((budget.as_nanos() / per_call.as_nanos()) as usize)
        .max(200);
    for _ in 0..samples / 10 {
        f();
    }
    let mut times: Vec<Duration> = (0..samples)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort();
    (percentile(&times, 0.5), percentile(&times, 0.99), samples)
}

/// The native path on the same JSON text the host would send: parse,
/// build the SDK request, reconcile; the answer is JSON values, as the
/// host's decoded outcome is.
fn native(case: &Case) {
    let parent: Value = serde_json::from_str(&case.parent).expect("parent JSON");
    let request = case
        .observed
        .iter()
        .map(|o| serde_json::from_str::<Value>(o).expect("observed JSON"))
        .fold(
            operon_sdk::Request::new(parent),
            operon_sdk::Request::with_observed,
        );
    let ctx = operon_sdk::Context::fake(operon_sdk::testing::FakeCluster::new());
    let response = match case.logic {
        Logic::Memcached => rust_memcached::MemcachedReconciler::reconcile(&ctx, request),
        Logic::Postgres => postgres::PostgresReconciler::reconcile(&ctx, request),
    };
    std::hint::black_box(response.expect("native reconcile"));
}

fn call_context() -> CallContext {
    CallContext {
        cluster: Arc::new(ObjectSet::new()),
        namespace: None,
        subject: "bench".into(),
        fixed_time: None,
    }
}

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|t| {
            let line = t.lines().find(|l| l.starts_with("VmRSS:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(0, |kib| kib * 1024)
}

/// Resident memory added per loaded plugin: `copies` loads of the same
/// component (from the compile cache, as after a restart), each called
/// once so its instance slot is touched.
fn memory_per_plugin(wasm: &std::path::Path, copies: usize) -> (f64, u64) {
    let cache = std::env::temp_dir().join(format!("operon-bench-native-{}", std::process::id()));
    let engine = Engine::new(EngineConfig {
        pooling: true,
        cache_dir: Some(cache.clone()),
        ..EngineConfig::default()
    })
    .expect("engine");
    let first = Plugin::load_file(&engine, wasm, Limits::default()).expect("load");
    let case = &cases()[0];
    let request = Request::new(case.parent.clone(), case.observed.clone(), vec![]);
    let ctx = call_context();
    first.reconcile(&request, &ctx).0.expect("reconcile");
    let before = rss_bytes();
    let plugins: Vec<Plugin> = (0..copies)
        .map(|_| {
            let p = Plugin::load_file(&engine, wasm, Limits::default()).expect("load");
            p.reconcile(&request, &ctx).0.expect("reconcile");
            p
        })
        .collect();
    let after = rss_bytes();
    drop(plugins);
    let _ = std::fs::remove_dir_all(cache);
    (
        after.saturating_sub(before) as f64 / copies as f64,
        std::fs::metadata(wasm).map_or(0, |m| m.len()),
    )
}

fn main() {
    let quick = std::env::var_os("OPERON_BENCH_QUICK").is_some();
    let (samples, budget) = if quick {
        (1_000, Duration::from_secs(1))
    } else {
        (20_000, Duration::from_secs(5))
    };
    let engine = Engine::new(EngineConfig {
        pooling: true,
        cache_dir: None,
        ..EngineConfig::default()
    })
    .expect("engine");
    let load = |logic: Logic| {
        let wasm = plugin_dir().join(logic.component());
        Plugin::load_file(&engine, &wasm, Limits::default())
            .unwrap_or_else(|e| panic!("{}: {e}", wasm.display()))
    };
    let plugins = [
        (Logic::Memcached, load(Logic::Memcached)),
        (Logic::Postgres, load(Logic::Postgres)),
    ];
    let ctx = call_context();

    let mut md = String::new();
    md.push_str("## Wasm vs native: the same reconcile logic\n\n");
    md.push_str(&format!(
        "The memcached and Postgres reconcilers (`examples/rust-memcached`, `plugins/postgres`) \
         called natively — the crate linked as an rlib, JSON text parsed into an operon-sdk `Request`, `reconcile` called \
         directly — and through the engine — fresh instance from the pre-instantiated \
         component, the same JSON text in, the answer decoded — on the same inputs. \
         Up to {samples} calls per row (fewer for slow inputs: about {} s of calls; the \
         count is in the table) after a tenth as many warm-up calls, one thread. The ratio is the cost of \
         the boundary: instantiation, copying the JSON in and out, and the guest's code \
         running as Wasm.\n\n",
        budget.as_secs()
    ));
    md.push_str("| input | size | calls | native: median | native: p99 | Wasm: median | Wasm: p99 | Wasm / native (median) |\n");
    md.push_str("|---|---:|---:|---:|---:|---:|---:|---:|\n");
    let mut ratios = Vec::new();
    for case in cases() {
        let request = Request::new(case.parent.clone(), case.observed.clone(), vec![]);
        let plugin = &plugins
            .iter()
            .find(|(l, _)| *l == case.logic)
            .expect("a plugin per logic")
            .1;
        let native = measure(samples, budget, || native(&case));
        let wasm = measure(samples, budget, || {
            std::hint::black_box(plugin.reconcile(&request, &ctx).0.expect("reconcile"));
        });
        let ratio = us(wasm.0) / us(native.0);
        ratios.push((case.logic, ratio));
        eprintln!(
            "{}: native {:?}/{:?}, wasm {:?}/{:?}",
            case.label, native.0, native.1, wasm.0, wasm.1
        );
        md.push_str(&format!(
            "| {} | {:.1} KiB | {} | {:.1} µs | {:.1} µs | {:.1} µs | {:.1} µs | {:.2} |\n",
            case.label,
            case.bytes() as f64 / 1024.0,
            native.2.min(wasm.2),
            us(native.0),
            us(native.1),
            us(wasm.0),
            us(wasm.1),
            ratio
        ));
    }
    for (logic, target) in [
        (Logic::Memcached, "≤ 1.5 (asked of Postgres)"),
        (Logic::Postgres, "≤ 1.5"),
    ] {
        let worst = ratios
            .iter()
            .filter(|(l, _)| *l == logic)
            .map(|(_, r)| *r)
            .fold(0.0, f64::max);
        md.push_str(&format!(
            "<!-- goal: {} | {target} | {worst:.2} (worst row) | {} -->\n",
            logic.goal(),
            if worst <= 1.5 { "yes" } else { "no" }
        ));
    }

    let copies = if quick { 4 } else { 16 };
    let (per_plugin, size) =
        memory_per_plugin(&plugin_dir().join(Logic::Memcached.component()), copies);
    md.push_str("\n### Memory per loaded plugin\n\n");
    md.push_str(&format!(
        "{copies} more copies of the memcached component ({:.1} MiB) loaded into one engine \
         (pooling allocator, compiled code from the compile cache, as after a restart), each \
         called once: resident memory grows by **{:.2} MiB per plugin** (VmRSS before and \
         after). Watches are not included: a plugin shares the host's watch of each kind it \
         uses (see the memory section for what cached objects cost).\n\n",
        size as f64 / (1 << 20) as f64,
        per_plugin / (1 << 20) as f64
    ));
    match std::env::var_os("OPERON_BENCH_REPORT") {
        Some(path) => std::fs::write(&path, &md).expect("writing the report"),
        None => print!("{md}"),
    }
}
