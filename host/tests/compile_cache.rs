//! The compile cache under damage: a truncated artifact, a flipped byte,
//! another component's artifact under this one's name, an unwritable cache
//! directory, a full disk. Each damaged artifact is refused before any of its code is
//! loaded (the counters name the reason: a flipped byte that reached
//! wasmtime would show as `incompatible`, or not at all), the component is
//! compiled again, works, and the next load is a hit.

mod common;

use std::path::{Path, PathBuf};

use operon::contract::Request;
use operon::engine::{CacheCounters, Engine, EngineConfig, Limits, Rejection};
use operon::plugin::{CallContext, Plugin};

fn engine(dir: &Path) -> Engine {
    Engine::new(EngineConfig {
        cache_dir: Some(dir.to_path_buf()),
        ..EngineConfig::default()
    })
    .unwrap()
}

/// Loads `package` with a fresh engine (as after a restart), checks that it
/// answers, and returns whether it came from the cache and the counters.
fn load(dir: &Path, package: &str) -> (bool, std::sync::Arc<CacheCounters>) {
    let engine = engine(dir);
    let plugin =
        Plugin::load_file(&engine, &common::component(package), Limits::default()).unwrap();
    let widget = r#"{"apiVersion":"test.operon.dev/v1","kind":"Widget","metadata":{"name":"w","namespace":"default"}}"#;
    let request = Request::new(widget.into(), vec![], vec![]);
    let (result, _) = plugin.reconcile(&request, &CallContext::offline("default/w"));
    result.unwrap_or_else(|e| panic!("{package} answers after the load: {e:?}"));
    (plugin.info().from_cache, engine.cache_counters().unwrap())
}

/// The cached artifact of `package` (the only `.cwasm` of its digest).
fn artifact(dir: &Path, package: &str) -> PathBuf {
    let digest = operon::engine::CompileCache::digest_of(
        &std::fs::read(common::component(package)).unwrap(),
    );
    let found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            name.starts_with(&digest) && name.ends_with(".cwasm")
        })
        .collect();
    assert_eq!(found.len(), 1, "{found:?}");
    found.into_iter().next().unwrap()
}

/// Damages the artifact with `damage`, then shows the next load refuse it
/// for `reason`, compile, serve, and the one after hit the cache again.
fn refused_then_healed(
    case: &str,
    package: &str,
    reason: Rejection,
    damage: impl FnOnce(&Path, &Path),
) {
    let dir = common::temp_dir(&format!("cache-{case}"));
    let (from_cache, _) = load(&dir, package);
    assert!(!from_cache, "first load compiles");
    damage(&dir, &artifact(&dir, package));
    let (from_cache, counters) = load(&dir, package);
    assert!(!from_cache, "the damaged artifact is not loaded");
    for why in Rejection::ALL {
        let want = u64::from(why == reason);
        assert_eq!(counters.rejected(why), want, "{} refusals", why.label());
    }
    assert_eq!(counters.hits.load(std::sync::atomic::Ordering::Relaxed), 0);
    let (from_cache, counters) = load(&dir, package);
    assert!(from_cache, "the artifact was written again");
    assert_eq!(counters.rejected(reason), 0);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_truncated_artifact_is_refused_and_compiled_again() {
    refused_then_healed(
        "truncated",
        "test-plugin-trivial",
        Rejection::Truncated,
        |_, path| {
            let bytes = std::fs::read(path).unwrap();
            std::fs::write(path, &bytes[..bytes.len() / 2]).unwrap();
        },
    );
}

#[test]
fn a_flipped_byte_is_refused_before_wasmtime_sees_it() {
    refused_then_healed(
        "flipped",
        "test-plugin-trivial",
        Rejection::Integrity,
        |_, path| {
            let mut bytes = std::fs::read(path).unwrap();
            // In the machine code, not the trailer: the seal catches it.
            let at = bytes.len() / 3;
            bytes[at] ^= 0x01;
            std::fs::write(path, bytes).unwrap();
        },
    );
}

#[test]
fn another_components_artifact_under_this_name_is_refused() {
    refused_then_healed(
        "another",
        "test-plugin-trivial",
        Rejection::Integrity,
        |dir, path| {
            // A valid, sealed artifact — of another component.
            let (_, _) = load(dir, "test-plugin-reads");
            std::fs::copy(artifact(dir, "test-plugin-reads"), path).unwrap();
        },
    );
}

#[test]
fn an_artifact_without_its_seal_is_refused() {
    refused_then_healed(
        "unsealed",
        "test-plugin-trivial",
        Rejection::Truncated,
        |_, path| {
            let engine = wasmtime::Engine::new(&wasmtime::Config::new()).unwrap();
            let bytes = std::fs::read(common::component("test-plugin-trivial")).unwrap();
            let component = wasmtime::component::Component::new(&engine, &bytes).unwrap();
            std::fs::write(path, component.serialize().unwrap()).unwrap();
        },
    );
}

#[test]
fn an_unwritable_cache_costs_a_compile_and_is_counted() {
    // A file where the cache directory should be: nothing can be created
    // under it, whoever runs the test (root ignores permission bits).
    let blocker = common::temp_dir("cache-blocked").join("not-a-dir");
    std::fs::write(&blocker, b"").unwrap();
    let dir = blocker.join("compiled");
    for _ in 0..2 {
        let (from_cache, counters) = load(&dir, "test-plugin-trivial");
        assert!(!from_cache);
        let c = |n: &std::sync::atomic::AtomicU64| n.load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!((c(&counters.compiled), c(&counters.write_failures)), (1, 1));
    }
}

#[test]
fn a_full_disk_costs_a_compile_and_is_counted() {
    let dir = common::temp_dir("cache-full");
    let (_, _) = load(&dir, "test-plugin-trivial");
    // The artifact's temporary file, where the next write goes, is made
    // /dev/full: every write there fails with ENOSPC, as on a full disk.
    let path = artifact(&dir, "test-plugin-trivial");
    std::fs::remove_file(&path).unwrap();
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::os::unix::fs::symlink("/dev/full", &tmp).unwrap();
    let (from_cache, counters) = load(&dir, "test-plugin-trivial");
    assert!(!from_cache, "compiled, and it answered");
    let c = |n: &std::sync::atomic::AtomicU64| n.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!((c(&counters.compiled), c(&counters.write_failures)), (1, 1));
    assert!(
        !path.exists(),
        "no partial artifact left under the real name"
    );
    assert!(!tmp.exists(), "the failed temporary file is removed");
    std::fs::remove_dir_all(dir).unwrap();
}
