//! The plugin's rules, checked natively: the golden scenarios of
//! `fixtures/` (the same files `operon reconcile` runs in
//! host/tests/postgres_cli.rs) and multi-step day-2 operations driven
//! through the simulated cluster of `sim`.

mod sim;

use std::collections::BTreeSet;
use std::time::Duration;

use operon_sdk::{EventType, Gvk, Reconciler, Request, Response};
use postgres::children::{LABEL_ROLE, unbase64};
use postgres::plan::{instance_set, reconcile_at};
use postgres::spec::ClusterStatus;
use postgres::{CRD, PostgresReconciler};
use serde_json::{Value, json};
use sim::{NOW, Sim};

fn dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

fn read_yaml(path: &std::path::Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    // `[]` (an empty list) is one document.
    docs.into_iter()
        .flat_map(|d| match d {
            Value::Array(items) => items,
            other => vec![other],
        })
        .collect()
}

fn scenario(name: &str) -> Sim {
    let parent = read_yaml(&dir().join(name).join("parent.yaml")).remove(0);
    let mut sim = Sim::new(parent);
    for o in read_yaml(&dir().join(name).join("observed.yaml")) {
        sim.objects.insert(sim::key(&o), o);
    }
    sim
}

fn status(resp: &Response) -> ClusterStatus {
    resp.status_as()
        .expect("status parses")
        .expect("status set")
}

fn condition<'a>(st: &'a ClusterStatus, t: &str) -> &'a operon_sdk::Condition {
    st.conditions
        .iter()
        .find(|c| c.type_ == t)
        .unwrap_or_else(|| panic!("no {t} condition"))
}

fn names(resp: &Response, kind: &str) -> Vec<String> {
    resp.children
        .iter()
        .filter(|c| c["kind"] == kind)
        .map(|c| c["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

fn sts_image(sim: &Sim, name: &str) -> String {
    sim.get("StatefulSet", name).unwrap()["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap()
        .to_string()
}

fn primary_of(sim: &Sim) -> String {
    sim.parent["status"]["currentPrimary"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The golden files hold the CLI's YAML; natively the same scenario must
/// give the same children, events and status (bar condition times, which
/// the CLI fixes with --now).
#[test]
fn native_output_matches_the_golden_files() {
    let mut checked = 0;
    for entry in std::fs::read_dir(dir()).unwrap() {
        let path = entry.unwrap().path();
        if !path.join("expected.yaml").exists() {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let resp = scenario(&name).reconcile();
        let expected = read_yaml(&path.join("expected.yaml")).remove(0);
        assert_eq!(
            Value::Array(resp.children.clone()),
            expected["children"],
            "{name}: children"
        );
        let events: Vec<Value> = resp
            .events
            .iter()
            .map(|e| json!({"type": format!("{:?}", e.type_), "reason": e.reason, "message": e.message}))
            .collect();
        assert_eq!(Value::Array(events), expected["events"], "{name}: events");
        let mut st = resp.status.clone().unwrap();
        let mut want = expected["status"].clone();
        for s in [&mut st, &mut want] {
            for c in s["conditions"].as_array_mut().unwrap() {
                c["lastTransitionTime"] = json!("");
            }
        }
        assert_eq!(st, want, "{name}: status");
        checked += 1;
    }
    assert!(checked >= 15, "only {checked} golden scenarios");
}

#[test]
fn a_new_cluster_starts_with_its_primary_only() {
    let resp = scenario("bootstrap").reconcile();
    assert_eq!(names(&resp, "StatefulSet"), ["hippo-0"]);
    assert_eq!(
        names(&resp, "PersistentVolumeClaim"),
        ["hippo-0-data", "hippo-0-wal"]
    );
    assert_eq!(
        names(&resp, "Service"),
        ["hippo-rw", "hippo-ro", "hippo-pods", "hippo-pooler"]
    );
    assert!(
        names(&resp, "Job").is_empty(),
        "no SQL before the primary is ready"
    );
    let st = status(&resp);
    assert_eq!(st.phase, "Creating");
    assert_eq!(st.current_primary.as_deref(), Some("hippo-0"));
    assert!(!condition(&st, "Ready").is_true());
    assert!(condition(&st, "Progressing").is_true());
}

#[test]
fn a_running_cluster_has_everything() {
    let sim = scenario("running");
    let resp = sim.reconcile();
    let st = status(&resp);
    assert_eq!(
        (st.phase.as_str(), st.instances, st.ready_instances),
        ("Running", 3, 3)
    );
    assert_eq!(st.version, Some(16));
    assert!(condition(&st, "Ready").is_true());
    assert!(condition(&st, "UsersReconciled").is_true());
    assert!(!condition(&st, "Degraded").is_true());
    assert_eq!(
        names(&resp, "StatefulSet"),
        ["hippo-0", "hippo-1", "hippo-2"]
    );
    assert_eq!(names(&resp, "PodDisruptionBudget"), ["hippo"]);
    assert_eq!(names(&resp, "Deployment"), ["hippo-pooler"]);
    assert_eq!(names(&resp, "ConfigMap"), ["hippo-config", "hippo-pooler"]);
    assert_eq!(
        names(&resp, "Secret"),
        [
            "hippo-superuser",
            "hippo-replication",
            "hippo-pguser-app",
            "hippo-pooler"
        ],
        "no Secret for a user with passwordSecretRef or ensure: absent"
    );
    let jobs = names(&resp, "Job");
    assert_eq!(jobs.len(), 3, "{jobs:?}");
    assert_eq!(
        jobs.iter().filter(|j| j.starts_with("hippo-sql-")).count(),
        1
    );
    assert_eq!(
        jobs.iter().filter(|j| j.starts_with("hippo-load-")).count(),
        2
    );
    // Every child carries spec.metadata's labels and annotations.
    for c in &resp.children {
        let what = format!("{} {}", c["kind"], c["metadata"]["name"]);
        assert_eq!(c["metadata"]["labels"]["team"], "payments", "{what}");
        assert_eq!(
            c["metadata"]["labels"]["postgres.operon.dev/cluster"], "hippo",
            "{what}"
        );
        assert_eq!(
            c["metadata"]["annotations"]["owner"], "payments@example.com",
            "{what}"
        );
    }
    let sts = resp
        .find_child("apps/v1", "StatefulSet", "hippo-0")
        .unwrap();
    let pod = &sts["spec"]["template"];
    assert_eq!(pod["metadata"]["labels"][LABEL_ROLE], "primary");
    assert_eq!(pod["metadata"]["labels"]["team"], "payments");
    let containers: Vec<&str> = pod["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(containers, ["postgres", "exporter"]);
    let rw = resp.find_child("v1", "Service", "hippo-rw").unwrap();
    assert_eq!(rw["spec"]["selector"][LABEL_ROLE], "primary");
    assert_eq!(
        rw["metadata"]["annotations"]["service.example.com/tier"],
        "db"
    );
    let ro = resp.find_child("v1", "Service", "hippo-ro").unwrap();
    assert_eq!(ro["spec"]["selector"][LABEL_ROLE], "replica");
}

fn secret_field(obj: &Value, key: &str) -> String {
    String::from_utf8(unbase64(obj["data"][key].as_str().unwrap()).unwrap()).unwrap()
}

#[test]
fn passwords_are_generated_once_then_kept() {
    let sim = scenario("running");
    let resp = sim.reconcile();
    for secret in ["hippo-superuser", "hippo-replication", "hippo-pguser-app"] {
        let observed = sim.get("Secret", secret).unwrap();
        let desired = resp.find_child("v1", "Secret", secret).unwrap();
        assert_eq!(
            secret_field(desired, "password"),
            secret_field(observed, "password"),
            "{secret}"
        );
    }
    let app = resp.find_child("v1", "Secret", "hippo-pguser-app").unwrap();
    let pw = secret_field(app, "password");
    assert_eq!(secret_field(app, "user"), "app");
    assert_eq!(secret_field(app, "dbname"), "app");
    assert_eq!(secret_field(app, "host"), "hippo-rw.demo.svc");
    assert_eq!(
        secret_field(app, "uri"),
        format!("postgresql://app:{pw}@hippo-rw.demo.svc:5432/app")
    );
    assert_eq!(secret_field(app, "pgbouncer-host"), "hippo-pooler.demo.svc");

    // Without the Secrets, fresh passwords: 24 alphanumerics, each different.
    let mut fresh = sim.clone();
    fresh.objects.retain(|(k, _), _| k != "Secret");
    let resp = fresh.reconcile();
    let pws: BTreeSet<String> = ["hippo-superuser", "hippo-replication", "hippo-pguser-app"]
        .iter()
        .map(|s| secret_field(resp.find_child("v1", "Secret", s).unwrap(), "password"))
        .collect();
    assert_eq!(pws.len(), 3);
    for p in &pws {
        assert_eq!(p.len(), 24);
        assert!(p.bytes().all(|b| b.is_ascii_alphanumeric()));
    }
    // And the pooler's userlist follows the superuser password.
    let pooler = resp.find_child("v1", "Secret", "hippo-pooler").unwrap();
    let su = secret_field(
        resp.find_child("v1", "Secret", "hippo-superuser").unwrap(),
        "password",
    );
    assert_eq!(
        secret_field(pooler, "userlist.txt"),
        format!("\"postgres\" \"{su}\"\n")
    );
}

#[test]
fn a_minor_upgrade_rolls_one_instance_at_a_time_primary_last() {
    let mut sim = scenario("running");
    sim.edit(|s| s["image"] = json!("docker.io/library/postgres:16.6"));
    let mut order = Vec::new();
    for _ in 0..10 {
        let before: Vec<String> = ["hippo-0", "hippo-1", "hippo-2"]
            .iter()
            .map(|n| sts_image(&sim, n))
            .collect();
        sim.step();
        let changed: Vec<&str> = ["hippo-0", "hippo-1", "hippo-2"]
            .into_iter()
            .zip(&before)
            .filter(|(n, b)| sts_image(&sim, n) != **b)
            .map(|(n, _)| n)
            .collect();
        assert!(changed.len() <= 1, "one at a time: {changed:?}");
        order.extend(changed);
    }
    assert_eq!(order, ["hippo-1", "hippo-2", "hippo-0"]);
    assert_eq!(sim.parent["status"]["phase"], "Running");
}

#[test]
fn a_rollout_waits_for_the_restarted_instance_to_be_ready() {
    let mut sim = scenario("running");
    sim.auto_ready = false;
    sim.edit(|s| s["image"] = json!("docker.io/library/postgres:16.6"));
    sim.step(); // hippo-1 restarts and does not come back
    for _ in 0..3 {
        sim.step();
    }
    assert_eq!(
        sts_image(&sim, "hippo-1"),
        "docker.io/library/postgres:16.6"
    );
    assert_eq!(
        sts_image(&sim, "hippo-2"),
        "docker.io/library/postgres:16.4"
    );
    assert_eq!(
        sts_image(&sim, "hippo-0"),
        "docker.io/library/postgres:16.4"
    );
    let st: ClusterStatus = serde_json::from_value(sim.parent["status"].clone()).unwrap();
    assert_eq!(st.phase, "Updating");
    assert!(
        condition(&st, "Progressing")
            .message
            .contains("waiting for hippo-1"),
        "{:?}",
        st.conditions
    );
    sim.set_ready("hippo-1", true);
    sim.step();
    assert_eq!(
        sts_image(&sim, "hippo-2"),
        "docker.io/library/postgres:16.6"
    );
}

#[test]
fn scaling_up_and_down_never_removes_the_primary() {
    assert_eq!(instance_set(3, Some(0)), BTreeSet::from([0, 1, 2]));
    assert_eq!(instance_set(2, Some(4)), BTreeSet::from([0, 4]));
    assert_eq!(instance_set(1, Some(2)), BTreeSet::from([2]));
    assert_eq!(instance_set(0, Some(2)), BTreeSet::new());

    let mut sim = scenario("running");
    sim.edit(|s| s["instances"] = json!(5));
    for _ in 0..3 {
        sim.step();
    }
    assert_eq!(sim.parent["status"]["readyInstances"], 5);
    sim.edit(|s| s["instances"] = json!(2));
    let resp = sim.step();
    assert_eq!(names(&resp, "StatefulSet"), ["hippo-0", "hippo-1"]);
    assert!(resp.events.iter().any(|e| e.reason == "Scaled"));

    let resp = scenario("scale-down-keeps-primary").reconcile();
    assert_eq!(names(&resp, "StatefulSet"), ["hippo-1"]);
    assert_eq!(status(&resp).current_primary.as_deref(), Some("hippo-1"));
    assert!(
        names(&resp, "PodDisruptionBudget").is_empty(),
        "no PDB for one instance"
    );
}

#[test]
fn pvc_retention_follows_the_policy() {
    let sim = scenario("scale-down-keeps-primary"); // retentionPolicy: Retain
    let resp = sim.reconcile();
    let pvcs = names(&resp, "PersistentVolumeClaim");
    for kept in [
        "hippo-0-data",
        "hippo-0-wal",
        "hippo-2-data",
        "hippo-1-data",
    ] {
        assert!(
            pvcs.contains(&kept.to_string()),
            "{kept} retained: {pvcs:?}"
        );
    }
    let mut sim = sim.clone();
    sim.edit(|s| s["storage"]["retentionPolicy"] = json!("Delete"));
    let resp = sim.reconcile();
    assert_eq!(
        names(&resp, "PersistentVolumeClaim"),
        ["hippo-1-data", "hippo-1-wal"]
    );
}

#[test]
fn storage_grows_but_never_shrinks() {
    let resp = scenario("storage-grow").reconcile();
    let pvc = resp
        .find_child("v1", "PersistentVolumeClaim", "hippo-2-data")
        .unwrap();
    assert_eq!(pvc["spec"]["resources"]["requests"]["storage"], "2Gi");
    let mut sim = scenario("running");
    sim.edit(|s| s["storage"]["size"] = json!("500Mi"));
    let resp = sim.reconcile();
    let pvc = resp
        .find_child("v1", "PersistentVolumeClaim", "hippo-0-data")
        .unwrap();
    assert_eq!(pvc["spec"]["resources"]["requests"]["storage"], "1Gi");
    let st = status(&resp);
    assert!(
        condition(&st, "Degraded").message.contains("cannot shrink"),
        "{:?}",
        st.conditions
    );
}

#[test]
fn failover_waits_for_the_delay_then_promotes_the_first_ready_replica() {
    let mut sim = scenario("running");
    sim.set_ready("hippo-0", false);
    let resp = sim.step();
    assert_eq!(primary_of(&sim), "hippo-0", "not before the delay");
    assert_eq!(resp.requeue_after, Some(Duration::from_secs(30)));
    assert!(condition(&status(&resp), "Degraded").is_true());
    sim.now += 29;
    sim.set_ready("hippo-0", false);
    sim.step();
    assert_eq!(primary_of(&sim), "hippo-0");
    sim.now += 1;
    sim.set_ready("hippo-0", false);
    let resp = sim.step();
    assert_eq!(primary_of(&sim), "hippo-1");
    let e = &resp.events[0];
    assert_eq!(
        (e.type_, e.reason.as_str()),
        (EventType::Warning, "FailedOver")
    );
    let sts = sim.get("StatefulSet", "hippo-1").unwrap();
    assert_eq!(
        sts["spec"]["template"]["metadata"]["labels"][LABEL_ROLE],
        "primary"
    );
    let old = sim.get("StatefulSet", "hippo-0").unwrap();
    assert_eq!(
        old["spec"]["template"]["metadata"]["labels"][LABEL_ROLE],
        "replica"
    );

    let mut sim = scenario("running");
    sim.edit(|s| s["failover"] = json!({"enabled": false}));
    sim.set_ready("hippo-0", false);
    sim.step();
    sim.now += 3600;
    sim.set_ready("hippo-0", false);
    sim.step();
    assert_eq!(primary_of(&sim), "hippo-0", "failover disabled");
}

#[test]
fn a_major_upgrade_runs_its_steps_in_order() {
    let mut sim = scenario("running");
    sim.jobs_succeed = false;
    sim.edit(|s| {
        s["version"] = json!(17);
        s["image"] = json!("docker.io/library/postgres:17.2");
    });
    let step = |sim: &Sim| {
        sim.parent["status"]["upgrade"]["step"]
            .as_str()
            .map(str::to_string)
    };
    sim.step();
    assert_eq!(step(&sim).as_deref(), Some("ShuttingDown"));
    for n in ["hippo-0", "hippo-1", "hippo-2"] {
        assert_eq!(sim.get("StatefulSet", n).unwrap()["spec"]["replicas"], 0);
    }
    sim.step();
    assert_eq!(step(&sim).as_deref(), Some("Upgrading"));
    let job = sim
        .get("Job", "hippo-upgrade-16-to-17")
        .expect("the pg_upgrade Job");
    assert_eq!(
        job["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"],
        "hippo-0-data"
    );
    sim.step();
    assert_eq!(
        step(&sim).as_deref(),
        Some("Upgrading"),
        "waits for the Job"
    );
    sim.get_mut("Job", "hippo-upgrade-16-to-17").unwrap()["status"] = json!({"succeeded": 1});
    sim.step();
    assert_eq!(step(&sim).as_deref(), Some("Starting"));
    assert_eq!(
        sts_image(&sim, "hippo-0"),
        "docker.io/library/postgres:17.2"
    );
    assert_eq!(
        sim.get("StatefulSet", "hippo-0").unwrap()["spec"]["replicas"],
        1
    );
    assert_eq!(
        sim.get("StatefulSet", "hippo-1").unwrap()["spec"]["replicas"],
        0,
        "replicas after the primary"
    );
    for _ in 0..3 {
        sim.step();
    }
    assert_eq!(step(&sim), None);
    assert_eq!(sim.parent["status"]["version"], 17);
    assert_eq!(
        sim.get("StatefulSet", "hippo-2").unwrap()["spec"]["replicas"],
        1
    );
    assert!(
        sim.get("Job", "hippo-upgrade-16-to-17").is_none(),
        "pruned when done"
    );
}

#[test]
fn shutdown_stops_every_instance_and_keeps_the_volumes() {
    let resp = scenario("shutdown").reconcile();
    for n in ["hippo-0", "hippo-1", "hippo-2"] {
        let sts = resp.find_child("apps/v1", "StatefulSet", n).unwrap();
        assert_eq!(sts["spec"]["replicas"], 0, "{n}");
    }
    assert_eq!(names(&resp, "PersistentVolumeClaim").len(), 6);
    assert!(names(&resp, "PodDisruptionBudget").is_empty());
    let pooler = resp
        .find_child("apps/v1", "Deployment", "hippo-pooler")
        .unwrap();
    assert_eq!(pooler["spec"]["replicas"], 0);
    let st = status(&resp);
    assert_eq!(condition(&st, "Ready").reason, "ShutDown");
}

#[test]
fn adding_a_user_makes_its_secret_and_a_new_sql_job() {
    let mut sim = scenario("running");
    let before = names(&sim.reconcile(), "Job");
    sim.edit(|s| {
        s["users"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "audit", "databases": ["app"]}))
    });
    let resp = sim.reconcile();
    assert!(names(&resp, "Secret").contains(&"hippo-pguser-audit".to_string()));
    let sql: Vec<String> = names(&resp, "Job")
        .into_iter()
        .filter(|j| j.starts_with("hippo-sql-"))
        .collect();
    assert_eq!(sql.len(), 1);
    assert!(
        !before.contains(&sql[0]),
        "a new SQL Job name: {sql:?} vs {before:?}"
    );
    let job = resp.find_child("batch/v1", "Job", &sql[0]).unwrap();
    let script = job["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "SQL")
        .unwrap()["value"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(script.contains("CREATE ROLE \"audit\""), "{script}");
    assert!(
        condition(&status(&resp), "UsersReconciled").status == operon_sdk::ConditionStatus::False
    );
}

#[test]
fn data_loads_wait_for_the_sql_job_and_run_once() {
    let mut sim = scenario("bootstrap");
    sim.jobs_succeed = false;
    for _ in 0..4 {
        sim.step();
    }
    let jobs: Vec<String> = sim
        .objects
        .keys()
        .filter(|(k, _)| k == "Job")
        .map(|(_, n)| n.clone())
        .collect();
    assert_eq!(jobs.len(), 1, "only the SQL Job while it runs: {jobs:?}");
    let sql = jobs[0].clone();
    sim.get_mut("Job", &sql).unwrap()["status"] = json!({"succeeded": 1});
    sim.step();
    let loads = sim
        .objects
        .keys()
        .filter(|(k, n)| k == "Job" && n.starts_with("hippo-load-"))
        .count();
    assert_eq!(loads, 2);
    // Completed loads that disappear are not run again.
    for (_, o) in sim.objects.iter_mut().filter(|((k, _), _)| k == "Job") {
        o["status"] = json!({"succeeded": 1});
    }
    sim.step();
    sim.objects
        .retain(|(k, n), _| !(k == "Job" && n.starts_with("hippo-load-")));
    let resp = sim.step();
    assert_eq!(names(&resp, "Job"), [sql]);
    assert_eq!(status(&resp).completed_data_loads.len(), 2);
}

#[test]
fn paused_and_invalid_keep_the_cluster_as_applied() {
    let running = scenario("running").reconcile();
    let paused = scenario("paused").reconcile();
    assert_eq!(running.children, paused.children);
    assert_eq!(status(&paused).phase, "Paused");
    let invalid = scenario("invalid-running").reconcile();
    assert_eq!(running.children, invalid.children);
    let st = status(&invalid);
    let ready = condition(&st, "Ready");
    assert_eq!(
        (ready.is_true(), ready.reason.as_str()),
        (false, "InvalidSpec")
    );
    assert!(
        ready.message.contains("spec.users: duplicate names app"),
        "{}",
        ready.message
    );
}

#[test]
fn bad_specs_give_a_message_and_no_children() {
    for (name, needle) in [
        (
            "invalid-version",
            "spec.version 13 is not supported (supported: 15, 16, 17, 18)",
        ),
        (
            "invalid-zero-instances",
            "spec.instances is 0 but spec.users/spec.databases list app, reporting, legacy, app, old_app",
        ),
        ("invalid-duplicate-users", "spec.users: duplicate names app"),
        (
            "invalid-missing-database",
            "spec.dataLoads[cities].database \"nope\" is not in spec.databases",
        ),
        (
            "from-backup",
            "spec.bootstrap.fromBackup.pointInTime (\"2026-01-01T00:00:00Z\") is not supported yet",
        ),
    ] {
        let resp = scenario(name).reconcile();
        assert!(resp.children.is_empty(), "{name}");
        let st = status(&resp);
        let ready = condition(&st, "Ready");
        assert!(!ready.is_true());
        assert!(ready.message.contains(needle), "{name}: {}", ready.message);
    }
    let mut sim = scenario("invalid-version");
    for (edit, needle) in [
        (
            json!({"version": 16, "instances": 1, "storage": {"size": "1Gi"}, "image": "postgres:15.3"}),
            "is PostgreSQL 15 but spec.version is 16",
        ),
        (
            json!({"version": 16, "storage": {"size": "lots"}}),
            "spec.storage.size \"lots\" is not a positive quantity",
        ),
        (
            json!({"version": 16, "storage": {"size": "1Gi"}, "postgresql": {"parameters": {"port": 6543}}}),
            "spec.postgresql.parameters.port is managed",
        ),
        (
            json!({"version": 16, "storage": {"size": "1Gi"}, "postgresql": {"pgHBA": ["trust everyone"]}}),
            "spec.postgresql.pgHBA[0]",
        ),
        (
            json!({"version": 16, "storage": {"size": "1Gi"}, "users": [{"name": "postgres"}]}),
            "managed by the plugin",
        ),
        (
            json!({"version": 16, "storage": {"size": "1Gi"}, "users": [{"name": "a", "databases": ["b"]}]}),
            "spec.users[a].databases names \"b\"",
        ),
    ] {
        sim.parent["spec"] = edit;
        let resp = sim.reconcile();
        assert!(resp.children.is_empty());
        let msg = condition(&status(&resp), "Ready").message.clone();
        assert!(msg.contains(needle), "{msg}");
    }
    // A downgrade is refused against the running major.
    let mut sim = scenario("running");
    sim.edit(|s| {
        s["version"] = json!(15);
        s.as_object_mut().unwrap().remove("image");
    });
    let msg = condition(&status(&sim.reconcile()), "Ready")
        .message
        .clone();
    assert!(msg.contains("lower than the running major 16"), "{msg}");
}

#[test]
fn malformed_spec_is_a_permanent_error_naming_the_field() {
    let mut p = scenario("running").parent;
    p["spec"]["instances"] = json!("three");
    let err = reconcile_at(&Request::new(p), NOW).unwrap_err();
    assert!(!err.is_retryable());
    assert!(err.message().contains("spec.instances"), "{err}");
}

#[test]
fn registration_and_crd() {
    let reg = PostgresReconciler::describe();
    assert_eq!(reg.name, "postgres");
    assert_eq!(
        reg.parent.kind,
        Gvk::new("postgres.operon.dev", "v1alpha1", "PostgresCluster")
    );
    assert!(reg.parent.namespaced);
    assert_eq!(reg.owns.len(), 8);
    assert_eq!(
        reg.capabilities,
        Default::default(),
        "no extra grants needed"
    );
    let crd: Value = serde_json::from_str(CRD).unwrap();
    assert_eq!(
        crd["metadata"]["name"],
        "postgresclusters.postgres.operon.dev"
    );
    assert_eq!(crd["spec"]["names"]["shortNames"], json!(["pgc"]));
    let v = &crd["spec"]["versions"][0];
    assert_eq!(v["name"], "v1alpha1");
    assert_eq!(
        v["subresources"]["scale"]["specReplicasPath"],
        ".spec.instances"
    );
    assert_eq!(
        v["subresources"]["scale"]["statusReplicasPath"],
        ".status.instances"
    );
    assert_eq!(
        v["subresources"]["scale"]["labelSelectorPath"],
        ".status.selector"
    );
    let cols: Vec<&str> = v["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        cols,
        ["Instances", "Ready", "Version", "Primary", "Phase", "Age"]
    );
    let spec = &v["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"];
    assert_eq!(spec["version"]["enum"], json!([15, 16, 17, 18]));
    assert_eq!(spec["instances"]["minimum"], 0);
    assert_eq!(
        spec["pooler"]["properties"]["poolMode"]["enum"],
        json!(["session", "transaction", "statement"])
    );
    assert_eq!(
        spec["dataLoads"]["items"]["properties"]["format"]["enum"],
        json!(["csv", "json"])
    );
    // The status the plugin writes fits the CRD's status schema's fields.
    let props = v["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
        .as_object()
        .unwrap();
    let st = scenario("running").reconcile().status.unwrap();
    for key in st.as_object().unwrap().keys() {
        assert!(props.contains_key(key), "status.{key} is not in the CRD");
    }
}

#[test]
fn the_manifest_is_a_valid_parent() {
    let m = read_yaml(&dir().join("cluster.yaml")).remove(0);
    let resp = reconcile_at(&Request::new(m), NOW).unwrap();
    assert!(!resp.children.is_empty());
}

#[test]
fn an_existing_job_keeps_its_template_without_the_job_controllers_labels() {
    let mut sim = scenario("running");
    let name = sim
        .objects
        .keys()
        .find(|(k, n)| k == "Job" && n.starts_with("hippo-sql-"))
        .unwrap()
        .1
        .clone();
    let job = sim.get_mut("Job", &name).unwrap();
    let labels = &mut job["spec"]["template"]["metadata"]["labels"];
    labels["batch.kubernetes.io/controller-uid"] = json!("0bcb34d8");
    labels["controller-uid"] = json!("0bcb34d8");
    labels["job-name"] = json!(name);
    job["spec"]["template"]["spec"]["containers"][0]["image"] = json!("postgres:16.0");
    sim.edit(|s| s["metadata"]["labels"]["extra"] = json!("x"));
    let resp = sim.reconcile();
    let desired = resp.find_child("batch/v1", "Job", &name).unwrap();
    let template = &desired["spec"]["template"];
    assert_eq!(
        template["spec"]["containers"][0]["image"], "postgres:16.0",
        "immutable template kept"
    );
    let labels = template["metadata"]["labels"].as_object().unwrap();
    assert!(!labels.contains_key("controller-uid") && !labels.contains_key("job-name"));
    assert!(!labels.contains_key("batch.kubernetes.io/controller-uid"));
    assert!(
        !labels.contains_key("extra"),
        "a new label does not touch the template"
    );
    assert_eq!(
        desired["metadata"]["labels"]["extra"], "x",
        "but the Job's own labels follow"
    );
}

#[test]
fn without_a_record_of_the_applied_spec_nothing_is_pruned() {
    // Paused from the start: nothing is made.
    let mut sim = scenario("bootstrap");
    sim.objects.clear();
    sim.parent["spec"]["paused"] = json!(true);
    let resp = sim.reconcile();
    assert!(resp.children.is_empty());
    assert_eq!(status(&resp).phase, "Paused");
    // Children exist but their ConfigMap (the record) is gone: an invalid
    // or paused spec is an error, so that nothing is pruned.
    for edit in [json!({"paused": true}), json!({"version": 13})] {
        let mut sim = scenario("running");
        sim.objects
            .retain(|(k, n), _| !(k == "ConfigMap" && n == "hippo-config"));
        sim.edit(|s| {
            for (k, v) in edit.as_object().unwrap() {
                s[k] = v.clone();
            }
        });
        let err = reconcile_at(&sim.request(), NOW).unwrap_err();
        assert!(!err.is_retryable());
        assert!(
            err.message().contains("ConfigMap hippo-config is missing"),
            "{err}"
        );
    }
}

#[test]
fn deleting_a_user_secret_rotates_its_password_through_a_new_sql_job() {
    let mut sim = scenario("running");
    let sql_jobs = |resp: &Response| -> Vec<String> {
        names(resp, "Job")
            .into_iter()
            .filter(|j| j.starts_with("hippo-sql-"))
            .collect()
    };
    let before = sql_jobs(&sim.reconcile());
    assert_eq!(
        sql_jobs(&sim.reconcile()),
        before,
        "stable while nothing changes"
    );
    sim.objects
        .remove(&("Secret".to_string(), "hippo-pguser-app".to_string()));
    let after = sql_jobs(&sim.reconcile());
    assert_eq!(after.len(), 1);
    assert_ne!(after, before, "a new password is a new SQL Job");
}

/// `bootstrap.fromBackup` stepped through: no instance while the backup
/// is not published or not complete, the restore Job once it is, the
/// primary only after the Job succeeded, and the restore remembered once
/// the backup's annotation is gone.
#[test]
fn a_cluster_from_a_backup_restores_before_its_primary_starts() {
    let mut sim = scenario("from-backup-waiting");
    sim.jobs_succeed = false;
    let resp = sim.step();
    assert!(names(&resp, "StatefulSet").is_empty());
    assert!(names(&resp, "Job").is_empty());
    let st = status(&resp);
    assert_eq!(st.phase, "Restoring");
    assert_eq!(condition(&st, "Ready").reason, "WaitingForBackup");
    assert_eq!(resp.requeue_after, Some(Duration::from_secs(30)));

    let annotate = |sim: &mut Sim, phase: &str| {
        let source = json!({"backup": "nightly", "phase": phase, "method": "dumpall",
            "claimName": "backups", "path": "pgbackups/nightly", "postgresVersion": 16,
            "message": "Job nightly-backup is running"});
        sim.parent["metadata"]["annotations"] =
            json!({postgres::restore::SOURCE_ANNOTATION: source.to_string()});
    };
    annotate(&mut sim, "Running");
    let resp = sim.step();
    assert!(
        names(&resp, "Job").is_empty(),
        "a running backup is waited for"
    );
    assert!(
        condition(&status(&resp), "Ready")
            .message
            .contains("it is Running")
    );

    annotate(&mut sim, "Completed");
    let resp = sim.step();
    assert_eq!(names(&resp, "Job"), ["hippo-restore"]);
    assert_eq!(
        names(&resp, "PersistentVolumeClaim"),
        ["hippo-0-data", "hippo-0-wal"]
    );
    assert!(
        names(&resp, "StatefulSet").is_empty(),
        "not before the restore"
    );
    let job = resp.find_child("batch/v1", "Job", "hippo-restore").unwrap();
    let pod = &job["spec"]["template"]["spec"];
    assert!(
        pod["containers"][0]["env"]
            .to_string()
            .contains("/backup/pgbackups/nightly")
    );
    assert_eq!(
        pod["volumes"][1]["persistentVolumeClaim"]["claimName"],
        "backups"
    );
    assert_eq!(status(&resp).restore.unwrap().phase, "Restoring");

    // The Job fails: blocked, and it says how to retry.
    let job = sim.get_mut("Job", "hippo-restore").unwrap();
    job["status"] = json!({"failed": 3, "conditions": [{"type": "Failed", "status": "True"}]});
    let resp = sim.step();
    let st = status(&resp);
    assert_eq!(condition(&st, "Ready").reason, "RestoreFailed");
    assert!(condition(&st, "Degraded").is_true());
    assert!(names(&resp, "StatefulSet").is_empty());

    // Deleted to retry, then it succeeds: the primary starts.
    sim.objects
        .remove(&("Job".to_string(), "hippo-restore".to_string()));
    sim.jobs_succeed = true;
    sim.step();
    let resp = sim.step();
    assert_eq!(names(&resp, "StatefulSet"), ["hippo-0"]);
    assert!(names(&resp, "Job").is_empty(), "the restore Job is done");
    assert!(resp.events.iter().any(|e| e.reason == "Restored"));
    assert_eq!(status(&resp).restore.unwrap().phase, "Restored");

    // The backup pruned later: the running cluster does not care.
    sim.parent["metadata"]["annotations"] = json!({});
    converge(&mut sim);
}

fn converge(sim: &mut Sim) {
    for _ in 0..10 {
        sim.step();
    }
    let st: ClusterStatus = serde_json::from_value(sim.parent["status"].clone()).unwrap();
    assert_eq!(st.phase, "Running", "{:?}", st.conditions);
    assert_eq!(st.restore.map(|r| r.phase).as_deref(), Some("Restored"));
}
