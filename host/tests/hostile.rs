//! Hostile plugins are contained: each misbehaviour fails (or is absorbed
//! by) its own call with the exact reason, while a well-behaved plugin in
//! the same engine keeps reconciling.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};

use operon::contract::{ConfigEntry, Outcome, Request};
use operon::engine::{Engine, EngineConfig, Limits, TrapReason};
use operon::plugin::{CallContext, CallError, Plugin};
use serde_json::Value;

fn widget(mode: &str) -> Request {
    let mut r = Request::new(
        r#"{"apiVersion":"test.operon.dev/v1","kind":"Widget","metadata":{"name":"w","namespace":"default"}}"#.into(),
        vec![],
        vec![],
    );
    r.config.push(ConfigEntry {
        key: "mode".into(),
        value: mode.into(),
    });
    r
}

/// Runs the hostile call while a well-behaved plugin reconciles in a loop
/// on another thread of the same engine; asserts the neighbour never failed
/// and made progress before, during and after.
fn contained(mode: &str, limits: Limits) -> Result<Outcome, CallError> {
    let engine = Engine::new(EngineConfig {
        cache_dir: None,
        ..EngineConfig::default()
    })
    .unwrap();
    let hostile =
        Plugin::load_file(&engine, &common::component("test-plugin-hostile"), limits).unwrap();
    let good = Arc::new(
        Plugin::load_file(
            &engine,
            &common::component("rust-memcached"),
            Limits::default(),
        )
        .unwrap(),
    );
    let parent = operon::cli::read_objects(&common::memcached_fixture("parent.yaml"))
        .unwrap()
        .remove(0);
    let (stop, calls, started) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(Barrier::new(2)),
    );
    let neighbour = {
        let (stop, calls, started, good) =
            (stop.clone(), calls.clone(), started.clone(), good.clone());
        std::thread::spawn(move || {
            let request = Request::new(parent.to_string(), vec![], vec![]);
            let ctx = CallContext::offline("demo/example");
            let mut first = true;
            while first || !stop.load(Ordering::SeqCst) {
                let out = good
                    .reconcile(&request, &ctx)
                    .0
                    .expect("the neighbour's reconcile");
                assert_eq!(out.children.len(), 2);
                calls.fetch_add(1, Ordering::SeqCst);
                if first {
                    started.wait();
                    first = false;
                }
            }
        })
    };
    started.wait();
    let result = hostile
        .reconcile(&widget(mode), &CallContext::offline("default/w"))
        .0;
    let during = calls.load(Ordering::SeqCst);
    stop.store(true, Ordering::SeqCst);
    neighbour.join().expect("the neighbour never failed");
    assert!(during >= 1, "the neighbour reconciled meanwhile");
    // And the engine still serves both afterwards.
    good.reconcile(&Request::new(r#"{"apiVersion":"cache.operon.dev/v1alpha1","kind":"Memcached","metadata":{"name":"x","namespace":"n"},"spec":{"size":1}}"#.into(), vec![], vec![]), &CallContext::offline("n/x")).0.unwrap();
    result
}

fn trap(result: Result<Outcome, CallError>) -> (TrapReason, String) {
    match result {
        Err(CallError::Trap { reason, detail }) => (reason, detail),
        other => panic!("expected a trap, got {:?}", other.map(|o| o.children.len())),
    }
}

#[test]
fn deep_recursion_overflows_the_stack_and_only_that_call_fails() {
    let (reason, _) = trap(contained("recurse", Limits::default()));
    assert_eq!(reason, TrapReason::StackOverflow);
}

#[test]
fn a_flood_of_output_is_capped_and_the_call_still_succeeds() {
    // Generous time: this case is about the cap, not about speed.
    let limits = Limits {
        timeout: std::time::Duration::from_secs(60),
        ..Limits::default()
    };
    let out = contained("flood", limits).expect("printing too much is not an error");
    assert!(out.children.is_empty());
}

#[test]
fn a_hundred_megabyte_child_hits_the_memory_limit() {
    let limits = Limits {
        memory_bytes: 128 << 20,
        ..Limits::default()
    };
    let (reason, detail) = trap(contained("huge-child", limits));
    assert_eq!(reason, TrapReason::MemoryLimit, "{detail}");
}

#[test]
fn a_hundred_thousand_children_are_refused_before_anything_is_applied() {
    // Generous time: this case is about the refusal, not about speed.
    let limits = Limits {
        timeout: std::time::Duration::from_secs(60),
        ..Limits::default()
    };
    let out = contained("many-children", limits).expect("the engine decodes them");
    assert_eq!(out.children.len(), 100_000);
    let engine = Engine::new(EngineConfig {
        cache_dir: None,
        ..EngineConfig::default()
    })
    .unwrap();
    let hostile = Plugin::load_file(
        &engine,
        &common::component("test-plugin-hostile"),
        Limits::default(),
    )
    .unwrap();
    let parent: Value = serde_json::from_str(&widget("").parent).unwrap();
    let err = operon::apply::validate::check(
        &out,
        hostile.registration(),
        &parent,
        &operon::apply::validate::WriteGrant {
            max_children: operon::apply::MAX_CHILDREN,
            service_account_tokens: false,
            confined: false,
        },
        &|_| Some(true),
    )
    .unwrap_err();
    let err = err.to_string();
    assert!(err.contains("100000") && err.contains("1000"), "{err}");
}

#[test]
fn files_sockets_environment_and_arguments_are_not_there() {
    let out = contained("probe", Limits::default()).unwrap();
    let status = out.status.unwrap();
    assert!(
        status["file"].as_str().unwrap().starts_with("error"),
        "{status}"
    );
    assert!(
        status["socket"].as_str().unwrap().starts_with("error"),
        "{status}"
    );
    assert_eq!(status["envVars"], 0, "{status}");
    assert_eq!(status["args"], 0, "{status}");
}
