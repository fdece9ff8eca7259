//! The plugin's rules, checked natively: every golden scenario of
//! `fixtures/` (the files `operon reconcile` runs in
//! host/tests/scaling_e2e.rs), every refusal's message, and decisions over
//! time through a small simulated cluster whose load the test drives.

use std::path::{Path, PathBuf};
use std::time::Duration;

use operon_scaling::plan::reconcile_at;
use operon_scaling::{CRD, ScalingReconciler, policies_for};
use operon_sdk::testing::FakeCluster;
use operon_sdk::{EventType, ObjectRef, PatchType, Reconciler, Request, Response};
use serde_json::{Value, json};

/// `--now` of the golden runs: 2026-01-01T00:00:00Z.
const T0: i64 = 1_767_225_600;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

fn read_yaml(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    docs.into_iter()
        .flat_map(|d| match d {
            Value::Array(items) => items,
            other => vec![other],
        })
        .collect()
}

fn scenarios() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir())
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            e.path()
                .join("parent.yaml")
                .exists()
                .then(|| e.file_name().to_string_lossy().to_string())
        })
        .collect();
    names.sort();
    names
}

fn run(name: &str) -> Response {
    let parent = read_yaml(&dir().join(name).join("parent.yaml")).remove(0);
    let mut cluster = FakeCluster::new();
    for o in read_yaml(&dir().join(name).join("related.yaml")) {
        cluster.insert(o);
    }
    reconcile_at(&cluster.into_context(), &Request::new(parent), T0)
        .unwrap_or_else(|e| panic!("{name}: {e:?}"))
}

/// The response in the shape `operon reconcile -o json` prints.
fn as_cli_json(resp: &Response) -> Value {
    let events: Vec<Value> = resp
        .events
        .iter()
        .map(
            |e| json!({"type": format!("{:?}", e.type_), "reason": e.reason, "message": e.message}),
        )
        .collect();
    let patches: Vec<Value> = resp
        .patches
        .iter()
        .map(|p| {
            let mut v = json!({
                "target": {"apiVersion": p.target.api_version, "kind": p.target.kind,
                           "namespace": p.target.namespace, "name": p.target.name},
                "patchType": format!("{:?}", p.patch_type),
                "body": p.body,
            });
            if let Some(sub) = &p.subresource {
                v["subresource"] = json!(sub);
            }
            v
        })
        .collect();
    let mut v = json!({
        "children": resp.children,
        "events": events,
        "finalized": resp.finalized,
        "patches": patches,
    });
    if let Some(status) = &resp.status {
        v["status"] = status.clone();
    }
    if let Some(after) = resp.requeue_after {
        v["requeueAfterMs"] = json!(after.as_millis() as u64);
    }
    v
}

/// Natively, every scenario gives exactly its golden output (which the CLI
/// test writes from the component with `UPDATE_GOLDEN=1`).
#[test]
fn native_output_matches_the_golden_files() {
    let mut checked = 0;
    for name in scenarios() {
        let golden = dir().join(&name).join("expected.yaml");
        let expected = read_yaml(&golden)
            .pop()
            .unwrap_or_else(|| panic!("{}: empty", golden.display()));
        let actual = as_cli_json(&run(&name));
        assert_eq!(actual, expected, "{name}");
        checked += 1;
    }
    assert!(checked >= 34, "only {checked} golden scenarios");
}

fn condition<'a>(resp: &'a Response, t: &str) -> &'a Value {
    resp.status.as_ref().unwrap()["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == t)
        .unwrap_or_else(|| panic!("no {t} condition"))
}

#[test]
fn every_refusal_changes_nothing_and_says_why() {
    for (name, reason, message) in [
        (
            "invalid-min-above-max",
            "InvalidPolicy",
            "spec.replicas.min 4 is above spec.replicas.max 2",
        ),
        (
            "invalid-min-below-one",
            "InvalidPolicy",
            "spec.replicas.min 0 is below 1: a cluster always keeps its primary",
        ),
        (
            "invalid-unknown-metric",
            "InvalidPolicy",
            "spec.replicas.metric \"qps\" is not one of connections, cpu",
        ),
        (
            "invalid-missing-target-ref",
            "InvalidPolicy",
            "spec.targetRef is required: the PostgresCluster to scale",
        ),
        (
            "invalid-target-kind",
            "InvalidPolicy",
            "spec.targetRef.kind Deployment is not supported: a policy scales a PostgresCluster; \
             spec.targetRef.apiVersion apps/v1 is not supported: a PostgresCluster is postgres.operon.dev/*",
        ),
        (
            "invalid-replicas-target",
            "InvalidPolicy",
            "spec.replicas.target is required: the average per instance to keep; \
             spec.replicas.scaleUpCooldownSeconds -5 is negative",
        ),
        (
            "invalid-lag-bound",
            "InvalidPolicy",
            "spec.replicas.scaleDownStabilizationSeconds -1 is negative; \
             spec.replicas.maxReplicationLagBytes -1 is negative",
        ),
        (
            "invalid-mode",
            "InvalidPolicy",
            "spec.mode \"Auto\" is not one of Enforce, Recommend",
        ),
        (
            "invalid-empty",
            "InvalidPolicy",
            "the policy has neither spec.replicas nor spec.storage: nothing to scale",
        ),
        (
            "invalid-storage-fields",
            "InvalidPolicy",
            "spec.storage.triggerPercent 120 is not above 0 and at most 100; \
             spec.storage.step \"lots\" is not a storage quantity (e.g. 5Gi); \
             spec.storage.maxSize is required; spec.storage.cooldownSeconds -1 is negative",
        ),
        (
            "invalid-storage-max-below-current",
            "InvalidPolicy",
            "spec.storage.maxSize 5Gi is below the current size 10Gi of PostgresCluster demo/hippo",
        ),
        (
            "invalid-sync-period",
            "InvalidPolicy",
            "spec.syncPeriodSeconds 0 is below 1",
        ),
        (
            "target-conflict",
            "TargetConflict",
            "PostgresScalingPolicy a-hippo also manages the replicas of PostgresCluster demo/hippo: \
             of overlapping policies the first by name acts",
        ),
        (
            "target-not-found",
            "TargetNotFound",
            "PostgresCluster demo/nope (spec.targetRef) does not exist",
        ),
    ] {
        let resp = run(name);
        assert!(resp.patches.is_empty(), "{name}: patches");
        let active = condition(&resp, "Active");
        assert_eq!(
            (&active["status"], &active["reason"], &active["message"]),
            (&json!("False"), &json!(reason), &json!(message)),
            "{name}"
        );
        let blocked = condition(&resp, "Blocked");
        assert_eq!(
            (&blocked["status"], &blocked["reason"]),
            (&json!("True"), &json!(reason)),
            "{name}"
        );
        assert_eq!(resp.events.len(), 1, "{name}");
        assert_eq!(resp.events[0].type_, EventType::Warning, "{name}");
        assert_eq!(resp.events[0].message, message, "{name}");
    }
}

#[test]
fn a_refusal_is_announced_once() {
    let first = run("invalid-mode");
    let mut parent = read_yaml(&dir().join("invalid-mode/parent.yaml")).remove(0);
    parent["status"] = first.status.clone().unwrap();
    let ctx = FakeCluster::new().into_context();
    let again = reconcile_at(&ctx, &Request::new(parent), T0 + 60).unwrap();
    assert!(again.events.is_empty(), "{:?}", again.events);
    assert_eq!(again.status, first.status, "nothing moved, not even times");
}

#[test]
fn enforce_patches_the_scale_subresource_and_the_storage_size() {
    let resp = run("scale-up");
    assert_eq!(resp.patches.len(), 1);
    let p = &resp.patches[0];
    assert_eq!(p.subresource.as_deref(), Some("scale"));
    assert_eq!(p.patch_type, PatchType::Merge);
    assert_eq!(p.body, json!({"spec": {"replicas": 3}}));
    assert_eq!(
        p.target,
        ObjectRef::new(
            "postgres.operon.dev/v1alpha1",
            "PostgresCluster",
            Some("demo"),
            "hippo"
        )
    );
    // Without figures, the bounds still hold.
    let resp = run("bounds-without-figures");
    assert_eq!(resp.patches[0].body, json!({"spec": {"replicas": 2}}));
    assert_eq!(condition(&resp, "Active")["reason"], "FiguresUnavailable");
    assert_eq!(condition(&resp, "Limited")["reason"], "TooFewInstances");
    let resp = run("storage-grow");
    assert_eq!(
        resp.patches[0].body,
        json!({"spec": {"storage": {"size": "15Gi"}}})
    );
    assert_eq!(resp.patches[0].subresource, None);
    let resp = run("storage-grow-capped");
    assert_eq!(
        resp.patches[0].body,
        json!({"spec": {"storage": {"size": "50Gi"}}})
    );
    assert_eq!(condition(&resp, "Limited")["reason"], "StorageAtMaximum");
}

#[test]
fn recommend_and_holds_change_nothing() {
    for name in ["recommend", "target-paused", "target-upgrading"] {
        let resp = run(name);
        assert!(resp.patches.is_empty(), "{name}");
        let st = resp.status.as_ref().unwrap();
        assert_eq!(st["recommendation"]["instances"], 3, "{name}");
        assert!(st.get("lastScaleTime").is_none(), "{name}");
    }
    let st = run("recommend").status.unwrap();
    assert_eq!(st["recommendation"]["storageSize"], "15Gi");
    assert_eq!(
        condition(&run("target-paused"), "Blocked")["reason"],
        "TargetPaused"
    );
}

#[test]
fn waits_come_back_when_they_end() {
    for (name, reason, secs) in [
        ("scale-up-cooldown", "ScaleUpCooldown", 30),
        ("scale-down-stabilizing", "ScaleDownStabilizing", 300),
        ("storage-cooldown", "StorageCooldown", 500),
    ] {
        let resp = run(name);
        assert!(resp.patches.is_empty(), "{name}");
        assert_eq!(condition(&resp, "Blocked")["reason"], reason, "{name}");
        assert_eq!(
            resp.requeue_after,
            Some(Duration::from_secs(secs)),
            "{name}"
        );
    }
    // Lag has no end time: the sync period (default 30s) looks again.
    let resp = run("scale-down-lag");
    assert_eq!(condition(&resp, "Blocked")["reason"], "ReplicationLag");
    assert_eq!(resp.requeue_after, Some(Duration::from_secs(30)));
    // A refused spec waits for an edit; a missing target is looked for.
    assert_eq!(run("invalid-mode").requeue_after, None);
    assert_eq!(
        run("target-not-found").requeue_after,
        Some(Duration::from_secs(30))
    );
}

/// A PostgresCluster the test scales by the policy's patches, and instance
/// Pods whose figures the test sets: the Postgres plugin's part (Pods
/// follow `spec.instances`, the primary is instance 0) in a few lines.
struct Sim {
    policy: Value,
    cluster: Value,
    connections: f64,
    disk: f64,
    now: i64,
    /// Every `spec.instances` the cluster had, in order.
    instances_seen: Vec<i64>,
    sizes_seen: Vec<String>,
}

impl Sim {
    fn new(spec: Value) -> Sim {
        Sim {
            policy: json!({
                "apiVersion": "postgres.operon.dev/v1alpha1", "kind": "PostgresScalingPolicy",
                "metadata": {"name": "auto", "namespace": "demo", "generation": 1},
                "spec": spec,
            }),
            cluster: json!({
                "apiVersion": "postgres.operon.dev/v1alpha1", "kind": "PostgresCluster",
                "metadata": {"name": "hippo", "namespace": "demo", "generation": 1},
                "spec": {"version": 16, "instances": 1, "storage": {"size": "1Gi"}},
            }),
            connections: 0.0,
            disk: 10.0,
            now: T0,
            instances_seen: vec![1],
            sizes_seen: vec!["1Gi".into()],
        }
    }

    fn instances(&self) -> i64 {
        self.cluster["spec"]["instances"].as_i64().unwrap()
    }

    /// The total load spreads evenly over the instances.
    fn pods(&self) -> Vec<Value> {
        let n = self.instances();
        (0..n)
            .map(|i| {
                json!({"apiVersion": "v1", "kind": "Pod", "metadata": {
                "name": format!("hippo-{i}-0"), "namespace": "demo",
                "labels": {"postgres.operon.dev/cluster": "hippo",
                           "postgres.operon.dev/component": "instance",
                           "postgres.operon.dev/role": if i == 0 { "primary" } else { "replica" }},
                "annotations": {
                    "postgres.operon.dev/connections": (self.connections / n as f64).to_string(),
                    "postgres.operon.dev/replication-lag-bytes": "0",
                    "postgres.operon.dev/disk-used-percent": self.disk.to_string(),
                }}})
            })
            .collect()
    }

    /// One reconcile at the current time; the host's part applied: status
    /// stored, patches applied to the cluster.
    fn reconcile(&mut self) -> Response {
        let mut fake = FakeCluster::new().with(self.cluster.clone());
        for p in self.pods() {
            fake.insert(p);
        }
        let resp = reconcile_at(
            &fake.into_context(),
            &Request::new(self.policy.clone()),
            self.now,
        )
        .unwrap();
        if let Some(status) = &resp.status {
            self.policy["status"] = status.clone();
        }
        if !resp.patches.is_empty() {
            let g = self.cluster["metadata"]["generation"].as_i64().unwrap();
            self.cluster["metadata"]["generation"] = json!(g + 1);
        }
        for p in &resp.patches {
            if p.subresource.as_deref() == Some("scale") {
                self.cluster["spec"]["instances"] = p.body["spec"]["replicas"].clone();
                self.instances_seen.push(self.instances());
            } else {
                self.cluster["spec"]["storage"]["size"] = p.body["spec"]["storage"]["size"].clone();
                self.sizes_seen.push(
                    self.cluster["spec"]["storage"]["size"]
                        .as_str()
                        .unwrap()
                        .into(),
                );
            }
        }
        resp
    }

    /// Advances the clock by `secs`, reconciling every second (as Pod
    /// figures changing that often would).
    fn run_for(&mut self, secs: i64) {
        for _ in 0..secs {
            self.now += 1;
            self.reconcile();
        }
    }
}

fn replicas_spec(mode: &str) -> Value {
    json!({
        "targetRef": {"name": "hippo"}, "mode": mode,
        "replicas": {"min": 1, "max": 4, "metric": "connections", "target": 10,
                     "scaleUpCooldownSeconds": 20, "scaleDownStabilizationSeconds": 60},
        // Long, so that requeues show the ends of waits.
        "syncPeriodSeconds": 3600,
    })
}

#[test]
fn a_flapping_metric_does_not_flap_the_cluster() {
    let mut sim = Sim::new(replicas_spec("Enforce"));
    sim.connections = 35.0;
    sim.run_for(5);
    assert_eq!(sim.instances(), 4, "up at once (35 / 10, ceil)");
    // Load flaps between high and nothing every 5 seconds for 3 minutes.
    for i in 0..36 {
        sim.connections = if i % 2 == 0 { 0.0 } else { 35.0 };
        sim.run_for(5);
    }
    assert_eq!(
        sim.instances_seen,
        [1, 4],
        "held at 4 while the load flapped"
    );
    // Quiet for good: exactly one scale-down, once the window has passed.
    sim.connections = 0.0;
    sim.run_for(59);
    assert_eq!(sim.instances(), 4, "the window is 60s");
    sim.run_for(2);
    assert_eq!(sim.instances_seen, [1, 4, 1]);
}

#[test]
fn scale_ups_keep_the_cooldown_apart() {
    let mut sim = Sim::new(replicas_spec("Enforce"));
    sim.connections = 15.0;
    sim.run_for(1);
    assert_eq!(sim.instances(), 2);
    // More load right away: the next step waits for the 20s cooldown.
    sim.connections = 35.0;
    sim.run_for(19);
    assert_eq!(sim.instances(), 2);
    sim.run_for(1);
    assert_eq!(sim.instances_seen, [1, 2, 4]);
}

#[test]
fn the_requeue_lands_on_the_end_of_the_window() {
    let mut sim = Sim::new(replicas_spec("Enforce"));
    sim.connections = 35.0;
    sim.reconcile();
    sim.now += 100;
    sim.connections = 5.0;
    let resp = sim.reconcile();
    let wait = resp.requeue_after.expect("a requeue").as_secs() as i64;
    assert_eq!(wait, 60);
    // Nothing else happens until then; the requeue alone scales down.
    sim.now += wait;
    sim.reconcile();
    assert_eq!(sim.instances_seen, [1, 4, 1]);
}

#[test]
fn a_change_not_yet_in_the_cache_is_not_made_twice() {
    let mut sim = Sim::new(replicas_spec("Enforce"));
    sim.connections = 35.0;
    let stale = sim.cluster.clone();
    sim.reconcile();
    assert_eq!(sim.instances(), 4);
    // The policy's status update brings it round before the cluster's
    // change reached the cache: nothing again, the status is left.
    let fresh = std::mem::replace(&mut sim.cluster, stale);
    sim.now += 1;
    let resp = sim.reconcile();
    assert!(resp.patches.is_empty() && resp.events.is_empty());
    assert_eq!(resp.status, None);
    assert_eq!(resp.requeue_after, Some(Duration::from_secs(1)));
    // Once it has arrived, the policy decides as usual: nothing to do.
    sim.cluster = fresh;
    let resp = sim.reconcile();
    assert!(resp.patches.is_empty());
    assert_eq!(condition(&resp, "Blocked")["reason"], "NotBlocked");
    // A change that never shows (someone set the same value) is waited
    // for only so long.
    let mut sim = Sim::new(replicas_spec("Enforce"));
    sim.connections = 35.0;
    let stale = sim.cluster.clone();
    sim.reconcile();
    sim.cluster = stale;
    sim.now += operon_scaling::plan::IN_FLIGHT_SECS;
    let mut spec = sim.policy["spec"].clone();
    spec["replicas"]["scaleUpCooldownSeconds"] = json!(0);
    sim.policy["spec"] = spec;
    assert_eq!(sim.reconcile().patches.len(), 1);
}

#[test]
fn lag_holds_the_scale_down_until_the_replicas_catch_up() {
    let mut spec = replicas_spec("Enforce");
    spec["replicas"]["maxReplicationLagBytes"] = json!(1000);
    let mut sim = Sim::new(spec);
    sim.connections = 35.0;
    sim.reconcile();
    sim.connections = 0.0;
    sim.now += 1;
    sim.reconcile();
    sim.now += 120;
    // The window has passed, but a lagging replica: the cluster keeps its four instances.
    let mut fake = FakeCluster::new().with(sim.cluster.clone());
    for mut p in sim.pods() {
        p["metadata"]["annotations"]["postgres.operon.dev/replication-lag-bytes"] = json!("5000");
        fake.insert(p);
    }
    let resp = reconcile_at(
        &fake.into_context(),
        &Request::new(sim.policy.clone()),
        sim.now,
    )
    .unwrap();
    assert!(resp.patches.is_empty());
    let blocked = condition(&resp, "Blocked");
    assert_eq!(blocked["reason"], "ReplicationLag");
    assert!(
        blocked["message"]
            .as_str()
            .unwrap()
            .contains("replica hippo-1-0 lags 5000 bytes"),
        "{blocked}"
    );
    // Caught up: down to one.
    sim.reconcile();
    assert_eq!(sim.instances_seen, [1, 4, 1]);
}

#[test]
fn recommend_mode_never_patches() {
    let mut spec = replicas_spec("Recommend");
    spec["storage"] =
        json!({"triggerPercent": 80, "step": "1Gi", "maxSize": "3Gi", "cooldownSeconds": 0});
    let mut sim = Sim::new(spec);
    sim.connections = 35.0;
    sim.disk = 95.0;
    sim.run_for(30);
    sim.connections = 0.0;
    sim.run_for(120);
    assert_eq!(sim.instances_seen, [1]);
    assert_eq!(sim.sizes_seen, ["1Gi"]);
    let st = &sim.policy["status"];
    assert_eq!(st["recommendation"]["instances"], 1);
    assert_eq!(st["recommendation"]["storageSize"], "2Gi");
}

#[test]
fn storage_grows_step_by_step_to_the_maximum() {
    let mut sim = Sim::new(json!({
        "targetRef": {"name": "hippo"}, "mode": "Enforce",
        "storage": {"triggerPercent": 80, "step": "1Gi", "maxSize": "3Gi", "cooldownSeconds": 30},
    }));
    sim.disk = 90.0;
    sim.run_for(100);
    assert_eq!(
        sim.sizes_seen,
        ["1Gi", "2Gi", "3Gi"],
        "30s apart, then the maximum"
    );
    assert_eq!(
        sim.policy["status"]["conditions"][1]["reason"],
        "StorageAtMaximum"
    );
}

#[test]
fn never_below_one_nor_without_the_primary() {
    let mut sim = Sim::new(replicas_spec("Enforce"));
    sim.connections = 0.0;
    sim.run_for(200);
    assert_eq!(sim.instances_seen, [1], "no load keeps the primary");
}

#[test]
fn related_objects_map_to_the_policies_that_target_their_cluster() {
    let policy = |name: &str, target: &str| {
        json!({"apiVersion": "postgres.operon.dev/v1alpha1", "kind": "PostgresScalingPolicy",
               "metadata": {"name": name, "namespace": "demo"},
               "spec": {"targetRef": {"name": target}}})
    };
    let ctx = FakeCluster::new()
        .with(policy("a", "hippo"))
        .with(policy("b", "other"))
        .into_context();
    let pod = |component: &str| {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "hippo-0-0", "namespace": "demo",
               "labels": {"postgres.operon.dev/cluster": "hippo", "postgres.operon.dev/component": component}}})
    };
    let a = ObjectRef::new(
        "postgres.operon.dev/v1alpha1",
        "PostgresScalingPolicy",
        Some("demo"),
        "a",
    );
    assert_eq!(
        policies_for(&ctx, &pod("instance")),
        std::slice::from_ref(&a)
    );
    assert!(
        policies_for(&ctx, &pod("sql")).is_empty(),
        "Job Pods carry no figures"
    );
    let cluster = json!({"apiVersion": "postgres.operon.dev/v1alpha1", "kind": "PostgresCluster",
                         "metadata": {"name": "hippo", "namespace": "demo"}});
    assert_eq!(ScalingReconciler::map_related(&ctx, &cluster), [a]);
}

#[test]
fn registration_asks_for_exactly_what_the_grants_file_gives() {
    let reg = ScalingReconciler::describe();
    assert_eq!(reg.name, "scaling");
    assert!(reg.owns.is_empty(), "the plugin owns nothing");
    let reads: Vec<String> = reg
        .capabilities
        .reads
        .iter()
        .map(|g| format!("{}/{}", g.api_version(), g.kind))
        .collect();
    let patches: Vec<String> = reg
        .capabilities
        .patches
        .iter()
        .map(|g| format!("{}/{}", g.api_version(), g.kind))
        .collect();
    let grants = read_yaml(&Path::new(env!("CARGO_MANIFEST_DIR")).join("grants.yaml")).remove(0);
    let grant = &grants["plugins"]["scaling"];
    assert_eq!(json!(reads), grant["reads"]);
    assert_eq!(json!(patches), grant["patches"]);
    let crd: Value = serde_json::from_str(CRD).unwrap();
    assert_eq!(crd["spec"]["names"]["kind"], "PostgresScalingPolicy");
}
