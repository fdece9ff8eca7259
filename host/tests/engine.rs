//! The engine through the library API: limits stop hostile plugins and the
//! engine stays usable; the compile cache avoids recompiling; calls run
//! concurrently on one plugin.

mod common;

use std::sync::Arc;
use std::time::Duration;

use operon::contract::{ObjectSet, PluginError, Request};
use operon::engine::{Engine, EngineConfig, Limits, TrapReason};
use operon::plugin::{CallContext, CallError, Plugin};

fn engine() -> Engine {
    Engine::new(EngineConfig {
        cache_dir: None,
        ..EngineConfig::default()
    })
    .unwrap()
}

fn widget() -> Request {
    Request::new(
        r#"{"apiVersion":"test.operon.dev/v1","kind":"Widget","metadata":{"name":"w","namespace":"default"}}"#.into(),
        vec![],
        vec![],
    )
}

fn ctx() -> CallContext {
    CallContext::offline("default/w")
}

fn load(engine: &Engine, package: &str, limits: Limits) -> Plugin {
    Plugin::load_file(engine, &common::component(package), limits).unwrap()
}

fn trap_reason(result: Result<operon::contract::Outcome, CallError>) -> (TrapReason, String) {
    match result {
        Err(CallError::Trap { reason, detail }) => (reason, detail),
        other => panic!("expected a trap, got {other:?}"),
    }
}

#[test]
fn an_endless_loop_is_stopped_by_the_time_limit_and_the_engine_stays_healthy() {
    let engine = engine();
    let limits = Limits {
        timeout: Duration::from_millis(200),
        ..Limits::default()
    };
    let spin = load(&engine, "test-plugin-spin", limits);
    let trivial = load(&engine, "test-plugin-trivial", Limits::default());
    for _ in 0..2 {
        let (reason, detail) = trap_reason(spin.reconcile(&widget(), &ctx()).0);
        assert_eq!(reason, TrapReason::Timeout);
        assert!(detail.contains("200ms"), "{detail}");
        // The next call, on another plugin of the same engine, is unharmed.
        trivial
            .reconcile(&widget(), &ctx())
            .0
            .expect("trivial after a timeout");
    }
}

#[test]
fn unbounded_allocation_is_stopped_by_the_memory_limit_and_the_engine_stays_healthy() {
    let engine = engine();
    let limits = Limits {
        memory_bytes: 32 << 20,
        ..Limits::default()
    };
    let hog = load(&engine, "test-plugin-hog", limits);
    let trivial = load(&engine, "test-plugin-trivial", Limits::default());
    for _ in 0..2 {
        let (reason, detail) = trap_reason(hog.reconcile(&widget(), &ctx()).0);
        assert_eq!(reason, TrapReason::MemoryLimit, "{detail}");
        assert!(detail.contains("33554432"), "{detail}");
        let (out, stats) = trivial.reconcile(&widget(), &ctx());
        out.expect("trivial after a memory-limit hit");
        assert!(stats.memory_peak > 0);
    }
}

#[test]
fn plugin_errors_and_panics_are_reported_as_such() {
    let engine = engine();
    let fails = load(&engine, "test-plugin-fails", Limits::default());
    let with_mode = |mode: &str| {
        let mut r = widget();
        r.config.push(operon::contract::ConfigEntry {
            key: "mode".into(),
            value: mode.into(),
        });
        r
    };
    match fails.reconcile(&with_mode("retryable"), &ctx()).0 {
        Err(CallError::Plugin(PluginError::Retryable(m))) => {
            assert_eq!(m, "database not reachable")
        }
        other => panic!("expected a retryable error, got {other:?}"),
    }
    match fails.reconcile(&with_mode("permanent"), &ctx()).0 {
        Err(e @ CallError::Plugin(PluginError::Permanent(_))) => assert!(!e.is_retryable()),
        other => panic!("expected a permanent error, got {other:?}"),
    }
    let (reason, detail) = trap_reason(fails.reconcile(&with_mode("panic"), &ctx()).0);
    assert_eq!(reason, TrapReason::Unreachable);
    assert!(
        detail.contains("boom"),
        "the panic message is reported: {detail}"
    );
}

#[test]
fn a_second_load_comes_from_the_compile_cache() {
    let dir = common::temp_dir("cache");
    let config = EngineConfig {
        cache_dir: Some(dir.clone()),
        ..EngineConfig::default()
    };
    let wasm = common::component("rust-memcached");
    let first = Plugin::load_file(
        &Engine::new(config.clone()).unwrap(),
        &wasm,
        Limits::default(),
    )
    .unwrap();
    assert!(!first.info().from_cache);
    // A new engine, as after a restart: same settings, so a compatible artifact.
    let second =
        Plugin::load_file(&Engine::new(config).unwrap(), &wasm, Limits::default()).unwrap();
    assert!(second.info().from_cache, "second load recompiled");
    assert_eq!(first.info().digest, second.info().digest);
    assert_eq!(first.registration(), second.registration());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn one_plugin_serves_concurrent_calls_each_in_its_own_sandbox() {
    let engine = engine();
    let plugin = Arc::new(load(&engine, "rust-memcached", Limits::default()));
    let parent = operon::cli::read_objects(&common::memcached_fixture("parent.yaml")).unwrap();
    let request = Arc::new(Request::new(parent[0].to_string(), vec![], vec![]));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (plugin, request) = (plugin.clone(), request.clone());
            std::thread::spawn(move || {
                let ctx = CallContext {
                    cluster: Arc::new(ObjectSet::new()),
                    namespace: None,
                    subject: "t".into(),
                    fixed_time: None,
                };
                (0..25)
                    .map(|_| plugin.reconcile(&request, &ctx).0.unwrap().children.len())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for t in threads {
        assert!(
            t.join().unwrap().iter().all(|&n| n == 2),
            "every call returns a Deployment and a Service"
        );
    }
}
