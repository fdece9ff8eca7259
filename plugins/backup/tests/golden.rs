//! The golden scenarios of `fixtures/`: for each kind (`backup`,
//! `schedule`) and scenario, `parent.yaml`, `observed.yaml` and the
//! optional `related.yaml` (what the plugin reads through the cluster)
//! reconciled at 2026-01-01T00:00:00Z, compared with `expected.json`
//! (`UPDATE_GOLDEN=1` rewrites them). The same directories are golden cases
//! of `operon test <wasm> fixtures/<kind> --now 2026-01-01T00:00:00Z`,
//! which runs them through the real engine.
//!
//! `schedule-dst` holds schedules whose point is another moment (a night
//! daylight saving time starts or ends): each scenario's `case.yaml` gives
//! the time to reconcile at (`now:`), as `operon test` reads it.
//!
//! Beside the whole-output comparison, the promises each scenario stands
//! for are asserted on their own, so a golden file rewritten by mistake
//! does not hide a broken rule.

use std::path::{Path, PathBuf};

use operon_backup::{backup, schedule};
use operon_sdk::testing::FakeCluster;
use operon_sdk::time::parse_rfc3339;
use operon_sdk::{Request, Response};
use serde_json::{Value, json};

const NOW: &str = "2026-01-01T00:00:00Z";

fn dir(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(kind)
}

fn read_yaml(path: &Path) -> Vec<Value> {
    if !path.exists() {
        return Vec::new();
    }
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

/// The response as the golden files hold it: the shape of
/// `operon reconcile -o json`, which host/tests/backup_e2e.rs compares
/// with the same files through the real engine.
fn output(resp: &Response) -> Value {
    let mut out = json!({
        "children": resp.children,
        "status": resp.status,
        "events": resp.events.iter().map(|e| json!({
            "type": format!("{:?}", e.type_), "reason": e.reason, "message": e.message,
        })).collect::<Vec<_>>(),
        "requeueAfterMs": resp.requeue_after.map(|d| d.as_millis() as u64),
        "finalized": resp.finalized,
        "patches": resp.patches.iter().map(|p| json!({
            "target": {"apiVersion": p.target.api_version, "kind": p.target.kind,
                       "namespace": p.target.namespace, "name": p.target.name},
            "patchType": format!("{:?}", p.patch_type), "body": p.body,
        })).collect::<Vec<_>>(),
    });
    // Left out when unset, as the CLI does.
    if let Some(o) = out.as_object_mut() {
        for key in ["requeueAfterMs", "status"] {
            if o[key].is_null() {
                o.remove(key);
            }
        }
    }
    out
}

fn run(kind: &str, scenario: &str) -> Value {
    let d = dir(kind).join(scenario);
    let parent = read_yaml(&d.join("parent.yaml")).remove(0);
    let finalizing = !parent["metadata"]["deletionTimestamp"].is_null();
    let mut req = Request::new(parent).with_finalizing(finalizing);
    for o in read_yaml(&d.join("observed.yaml")) {
        req = req.with_observed(o);
    }
    let mut cluster = FakeCluster::new();
    for o in read_yaml(&d.join("related.yaml")) {
        cluster.insert(o);
    }
    let ctx = cluster.into_context();
    let case = read_yaml(&d.join("case.yaml"));
    let now = match case.first().and_then(|c| c["now"].as_str()) {
        Some(text) => {
            parse_rfc3339(text).unwrap_or_else(|| panic!("{kind}/{scenario}: case.yaml now"))
        }
        None => parse_rfc3339(NOW).unwrap(),
    };
    let resp = match kind {
        "backup" => backup::reconcile_at(&ctx, &req, now),
        _ => schedule::reconcile_at(&req, now),
    }
    .unwrap_or_else(|e| panic!("{kind}/{scenario}: {e}"));
    resp.validate()
        .unwrap_or_else(|e| panic!("{kind}/{scenario}: {e}"));
    output(&resp)
}

fn scenarios(kind: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir(kind))
        .unwrap()
        .filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().to_string()))
        .collect();
    names.sort();
    names
}

#[test]
fn every_scenario_matches_its_golden_file() {
    let mut differ = Vec::new();
    let mut checked = 0;
    for kind in ["backup", "schedule", "schedule-dst"] {
        for scenario in scenarios(kind) {
            let out = run(kind, &scenario);
            let golden = dir(kind).join(&scenario).join("expected.json");
            let text = serde_json::to_string_pretty(&out).unwrap() + "\n";
            if std::env::var_os("UPDATE_GOLDEN").is_some() {
                std::fs::write(&golden, &text).unwrap();
            }
            let expected = std::fs::read_to_string(&golden).unwrap_or_else(|e| {
                panic!("{}: {e} (UPDATE_GOLDEN=1 writes it)", golden.display())
            });
            if text != expected {
                differ.push(format!("{kind}/{scenario}"));
            }
            checked += 1;
        }
    }
    assert!(checked >= 40, "only {checked} scenarios");
    assert!(
        differ.is_empty(),
        "output differs from expected.json in {differ:?}"
    );
}

fn ready(out: &Value) -> &Value {
    out["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
        .unwrap_or_else(|| panic!("no Ready condition in {out}"))
}

fn names(out: &Value, kind: &str) -> Vec<String> {
    out["children"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["kind"] == kind)
        .map(|c| c["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn every_refused_backup_makes_nothing_and_says_why() {
    for (scenario, needle) in [
        (
            "invalid-missing-cluster-ref",
            "spec.clusterRef.name is missing",
        ),
        (
            "invalid-unknown-method",
            "spec.method: unknown variant `snapshot`",
        ),
        (
            "invalid-databases-with-dumpall",
            "spec.databases is for method dump only",
        ),
        (
            "invalid-database-name",
            "spec.databases: \"app; drop\" is not a database name",
        ),
        ("invalid-no-target", "spec.target needs claimName"),
        ("invalid-two-targets", "both claimName and claimTemplate"),
        (
            "invalid-claim-size",
            "claimTemplate.size \"lots\" is not a quantity",
        ),
        (
            "invalid-path",
            "spec.target.path \"../etc\" must be a relative directory",
        ),
        ("invalid-ttl", "spec.ttl \"1 week\" is not a duration"),
        ("invalid-long-name", "characters long"),
    ] {
        let out = run("backup", scenario);
        let c = ready(&out);
        assert_eq!(c["status"], "False", "{scenario}");
        assert_eq!(c["reason"], "InvalidSpec", "{scenario}");
        let message = c["message"].as_str().unwrap();
        assert!(message.contains(needle), "{scenario}: {message}");
        assert_eq!(out["status"]["phase"], "Invalid", "{scenario}");
        assert_eq!(out["children"], json!([]), "{scenario}: nothing made");
        assert_eq!(out["events"][0]["reason"], "InvalidSpec", "{scenario}");
    }
}

#[test]
fn every_refused_schedule_makes_no_backup_and_prunes_none() {
    for (scenario, needle) in [
        (
            "invalid-cron",
            "spec.schedule \"0 25 * * *\": hour field \"25\": number out of bounds (allowed: 0-23)",
        ),
        ("invalid-cron-fields", "2 fields; a cron schedule has 5"),
        (
            "invalid-time-zone",
            "time zone \"Mars/Olympus\" is not in the time zone database",
        ),
        (
            "invalid-missing-cluster-ref",
            "spec.clusterRef.name is missing",
        ),
        (
            "invalid-retention",
            "spec.retention.keepLast must be at least 1",
        ),
        (
            "invalid-max-age",
            "spec.retention.maxAge \"a month\" is not a duration",
        ),
        (
            "invalid-template-method",
            "spec.backupTemplate: unknown variant `snapshot`",
        ),
        (
            "invalid-template-target",
            "spec.backupTemplate.databases is for method dump only",
        ),
        (
            "invalid-template-other-cluster",
            "differs from spec.clusterRef.name",
        ),
    ] {
        let out = run("schedule", scenario);
        let c = ready(&out);
        assert_eq!(
            (c["status"].as_str(), c["reason"].as_str()),
            (Some("False"), Some("InvalidSpec")),
            "{scenario}"
        );
        let message = c["message"].as_str().unwrap();
        assert!(message.contains(needle), "{scenario}: {message}");
        assert!(out["requeueAfterMs"].is_null(), "{scenario}: no wake-up");
    }
    // The backups made before the spec went bad stay.
    let out = run("schedule", "invalid-cron");
    assert_eq!(names(&out, "PostgresBackup"), ["nightly-202512312300"]);
}

#[test]
fn a_backup_waits_for_its_cluster_then_starts_one_job() {
    for (scenario, reason) in [
        ("waiting-for-cluster", "ClusterNotFound"),
        ("cluster-not-ready", "ClusterNotReady"),
        ("no-replica", "NoReplica"),
    ] {
        let out = run("backup", scenario);
        assert_eq!(out["status"]["phase"], "Pending", "{scenario}");
        assert_eq!(ready(&out)["reason"], reason, "{scenario}");
        assert!(names(&out, "Job").is_empty(), "{scenario}");
        assert_eq!(out["requeueAfterMs"], 10_000, "{scenario}");
    }
    let out = run("backup", "start-dump");
    assert_eq!(names(&out, "Job"), ["app-nightly-backup"]);
    assert_eq!(out["status"]["phase"], "Running");
    assert_eq!(out["status"]["artifact"]["path"], "pgbackups/app-nightly");
    let env = &out["children"][0]["spec"]["template"]["spec"]["containers"][0]["env"];
    assert!(env.to_string().contains("hippo-rw") && env.to_string().contains("hippo-superuser"));
    // A basebackup from a replica into its own volume, as the replicator.
    let out = run("backup", "start-basebackup-replica-template");
    assert_eq!(names(&out, "PersistentVolumeClaim"), ["app-nightly-backup"]);
    let env = out["children"][1]["spec"]["template"]["spec"]["containers"][0]["env"].to_string();
    assert!(
        env.contains("hippo-ro") && env.contains("hippo-replication") && env.contains("replicator"),
        "{env}"
    );
}

#[test]
fn a_job_outcome_decides_the_phase() {
    let out = run("backup", "running");
    assert_eq!(out["status"]["phase"], "Running");
    let out = run("backup", "completed");
    assert_eq!(out["status"]["phase"], "Completed");
    assert_eq!(out["status"]["artifact"]["sizeBytes"], 123_904);
    assert_eq!(out["status"]["expiresAt"], "2026-01-07T23:59:40Z");
    assert_eq!(ready(&out)["status"], "True");
    // The cluster bootstrapping from it learns where the files are.
    assert_eq!(out["patches"][0]["target"]["name"], "hippo-copy");
    let source: Value = serde_json::from_str(
        out["patches"][0]["body"]["metadata"]["annotations"]["postgres.operon.dev/restore-source"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(source["phase"], "Completed");
    assert_eq!(source["claimName"], "backups");
    let out = run("backup", "failed");
    assert_eq!(out["status"]["phase"], "Failed");
    assert_eq!(
        ready(&out)["message"],
        "Job app-nightly-backup failed: BackoffLimitExceeded: Job has reached the specified backoff limit"
    );
    assert_eq!(out["events"][0]["reason"], "BackupFailed");
    let out = run("backup", "expired");
    let expired = out["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Expired")
        .unwrap();
    assert_eq!(expired["status"], "True");
}

#[test]
fn deletion_removes_the_artifact_first_when_asked() {
    let out = run("backup", "delete-runs-cleanup");
    assert_eq!(names(&out, "Job"), ["app-nightly-cleanup"]);
    assert_eq!(out["finalized"], false);
    let env = out["children"][0]["spec"]["template"]["spec"]["containers"][0]["env"].to_string();
    assert!(env.contains("/backup/pgbackups/app-nightly"), "{env}");
    assert_eq!(run("backup", "delete-cleanup-done")["finalized"], true);
    let failed = run("backup", "delete-cleanup-failed");
    assert_eq!(failed["finalized"], false);
    assert_eq!(ready(&failed)["reason"], "CleanupFailed");
    let retain = run("backup", "delete-retain");
    assert_eq!(
        (retain["finalized"].clone(), retain["children"].clone()),
        (json!(true), json!([]))
    );
}

#[test]
fn schedules_make_one_backup_per_slot_and_prune_by_retention() {
    let out = run("schedule", "first-slot");
    assert_eq!(names(&out, "PostgresBackup"), ["nightly-202601010000"]);
    assert_eq!(out["status"]["lastScheduleTime"], NOW);
    assert_eq!(out["status"]["nextScheduleTime"], "2026-01-01T01:00:00Z");
    assert_eq!(out["requeueAfterMs"], 3_600_000);
    let b = &out["children"][0];
    assert_eq!(b["spec"]["clusterRef"]["name"], "hippo");
    assert_eq!(b["spec"]["deletionPolicy"], "Delete");

    let out = run("schedule", "waiting-for-the-slot");
    assert!(names(&out, "PostgresBackup").is_empty());
    assert_eq!(out["requeueAfterMs"], 9_000_000); // 02:30

    // 02:00 at +02:00 is midnight UTC.
    let out = run("schedule", "fixed-offset-zone");
    assert_eq!(names(&out, "PostgresBackup"), ["nightly-202601010000"]);

    // 01:00 in Paris in winter (CET, +01:00) is midnight UTC too.
    let out = run("schedule", "named-zone");
    assert_eq!(names(&out, "PostgresBackup"), ["nightly-202601010000"]);
    assert_eq!(out["status"]["nextScheduleTime"], "2026-01-02T00:00:00Z");

    // keepLast 2 of four hourly backups and the new one (still running).
    let out = run("schedule", "retention-keep-last");
    assert_eq!(
        names(&out, "PostgresBackup"),
        [
            "nightly-202512312200",
            "nightly-202512312300",
            "nightly-202601010000"
        ]
    );
    assert_eq!(out["status"]["lastSuccessfulTime"], "2025-12-31T23:01:00Z");
    assert_eq!(out["status"]["active"], json!(["nightly-202601010000"]));

    // keepLast 1, keepDaily 3, keepWeekly 2, maxAge 6d over a week of
    // twice-daily backups, two failures and one running.
    let out = run("schedule", "retention-daily-weekly-max-age");
    assert_eq!(
        names(&out, "PostgresBackup"),
        [
            "nightly-202512281300", // weekly: newest of the week of Dec 22 (younger than 6d)
            "nightly-202512291300",
            "nightly-202512301300",
            "nightly-202512311300", // last, daily, weekly
            "nightly-202512311400", // failed after the newest success
            "nightly-202512311800", // failed after the newest success
            "nightly-202512311900", // running
        ]
    );

    let out = run("schedule", "expired-ttl");
    assert_eq!(names(&out, "PostgresBackup"), ["nightly-202512312100"]);

    let out = run("schedule", "suspended");
    assert!(names(&out, "PostgresBackup").is_empty());
    assert_eq!(ready(&out)["reason"], "Suspended");

    let out = run("schedule", "missed-deadline");
    assert!(names(&out, "PostgresBackup").is_empty());
    assert_eq!(out["events"][0]["reason"], "MissedSchedule");

    let out = run("schedule", "forbid-skips-while-running");
    assert_eq!(names(&out, "PostgresBackup"), ["nightly-202512312300"]);
    assert_eq!(out["events"][0]["reason"], "Skipped");
}

/// The times of `fixtures/schedule-dst`, each checked by hand in its
/// `parent.yaml`: a daily 02:30 in Europe/Paris runs every night, once,
/// across both changes of the clock.
#[test]
fn a_nightly_schedule_in_paris_runs_once_every_night_across_daylight_saving() {
    // Spring: 02:30 does not exist on 2026-03-29; the run is at 03:00 CEST.
    let out = run("schedule-dst", "paris-spring-forward");
    assert_eq!(
        names(&out, "PostgresBackup"),
        ["nightly-202603280130", "nightly-202603290100"]
    );
    assert_eq!(out["status"]["lastScheduleTime"], "2026-03-29T01:00:00Z");
    assert_eq!(out["status"]["nextScheduleTime"], "2026-03-30T00:30:00Z");
    assert_eq!(out["requeueAfterMs"], 84_300_000);

    // Autumn: the first 02:30 of 2026-10-25 (CEST) runs ...
    let out = run("schedule-dst", "paris-fall-back");
    assert_eq!(
        names(&out, "PostgresBackup"),
        ["nightly-202610240030", "nightly-202610250030"]
    );
    assert_eq!(out["status"]["nextScheduleTime"], "2026-10-26T01:30:00Z");
    assert_eq!(out["requeueAfterMs"], 89_100_000);

    // ... and the second (CET, an hour later) does not.
    let out = run("schedule-dst", "paris-fall-back-second-pass");
    assert_eq!(
        names(&out, "PostgresBackup"),
        ["nightly-202610240030", "nightly-202610250030"]
    );
    assert!(
        out["events"].as_array().unwrap().is_empty(),
        "{}",
        out["events"]
    );
    assert_eq!(out["status"]["lastScheduleTime"], "2026-10-25T00:30:00Z");
    assert_eq!(out["status"]["nextScheduleTime"], "2026-10-26T01:30:00Z");
    assert_eq!(out["requeueAfterMs"], 86_100_000);
}

#[test]
fn a_reconcile_run_twice_makes_the_same_backup() {
    // The status write of the first run lost: the slot names the backup,
    // so the second run asks for the same object, not another.
    let first = run("schedule", "first-slot");
    let d = dir("schedule").join("first-slot");
    let parent = read_yaml(&d.join("parent.yaml")).remove(0);
    let mut made = first["children"][0].clone();
    made["status"] = json!({"phase": "Running"});
    let req = Request::new(parent).with_observed(made);
    let again = schedule::reconcile_at(&req, parse_rfc3339(NOW).unwrap() + 30).unwrap();
    let again = output(&again);
    assert_eq!(names(&again, "PostgresBackup"), ["nightly-202601010000"]);
    assert!(
        again["events"].as_array().unwrap().is_empty(),
        "{}",
        again["events"]
    );
}

#[test]
fn a_cluster_restoring_from_a_backup_wakes_that_backup() {
    use operon_sdk::{Reconciler, RelatedMapping};
    let reg = operon_backup::BackupReconciler::describe();
    assert_eq!(reg.related.len(), 1);
    assert_eq!(reg.related[0].kind.kind, "PostgresCluster");
    assert_eq!(
        reg.related[0].mapping,
        RelatedMapping::Field("spec.bootstrap.fromBackup.backupName".into())
    );
    assert!(reg.finalizer, "deletion waits for the cleanup");
}
