//! `bootstrap.fromBackup`: a new cluster that starts from a
//! `PostgresBackup` instead of an empty `initdb`.
//!
//! The backup plugin publishes the backup's phase and artifact on the
//! cluster itself, in the annotation [`SOURCE_ANNOTATION`]; this plugin
//! reads only its own parent, so it needs no grant to read backups and
//! keeps loading without a grants file. Until the backup is Completed the
//! cluster waits (or is blocked, if the backup failed) with no instance;
//! then the restore Job runs `restore.sh` (the backup plugin's script,
//! which reads the layout its `backup.sh` writes) on the primary's
//! volumes, and only after it succeeded does the primary's StatefulSet
//! exist: the entrypoint finds a data directory and starts it. The
//! outcome is recorded in `status.restore`, so a later change of the
//! backup (pruned, deleted) never touches a running cluster.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::children::{Cluster, DATA_MOUNT, PGDATA, WAL_MOUNT};

/// Set by the backup plugin on clusters with `bootstrap.fromBackup`.
pub const SOURCE_ANNOTATION: &str = "postgres.operon.dev/restore-source";

/// The backup plugin's script, next to the script writing the artifacts.
pub const RESTORE_SH: &str = include_str!("../../backup/scripts/restore.sh");

/// Where the backup's volume is mounted in the restore Job.
const BACKUP_MOUNT: &str = "/backup";

/// What the annotation says of the backup.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Source {
    #[serde(default)]
    pub backup: String,
    #[serde(default)]
    pub phase: String,
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub claim_name: Option<String>,
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub postgres_version: Option<i64>,
    #[serde(default)]
    pub message: String,
}

/// `status.restore`: the restore's step, kept once it is `Restored`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreStatus {
    pub backup: String,
    /// Waiting, Blocked, Restoring or Restored.
    pub phase: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(default)]
    pub message: String,
}

/// What the cluster does about its bootstrap backup now.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// The backup is not usable yet (reason, message).
    Wait(&'static str, String),
    /// The backup cannot be used (reason, message).
    Blocked(&'static str, String),
    /// The restore Job runs on the primary's volumes.
    Restore {
        claim: String,
        path: String,
        method: String,
    },
}

/// The annotation on `parent` for backup `backup`, if it names that one.
pub fn source(parent: &Value, backup: &str) -> Option<Source> {
    let text = parent["metadata"]["annotations"][SOURCE_ANNOTATION].as_str()?;
    serde_json::from_str::<Source>(text)
        .ok()
        .filter(|s| s.backup == backup)
}

/// The step for backup `backup` given what its annotation says and the
/// cluster's major.
pub fn step(backup: &str, source: Option<&Source>, version: i64) -> Step {
    let Some(s) = source else {
        return Step::Wait(
            "WaitingForBackup",
            format!(
                "waiting for PostgresBackup {backup}: the backup plugin has not published it yet \
                 (it does not exist, or the backup plugin is not running)"
            ),
        );
    };
    match s.phase.as_str() {
        "Completed" => {}
        "Failed" | "Invalid" => {
            return Step::Blocked(
                "BackupFailed",
                format!(
                    "PostgresBackup {backup} is {}: {}; name another backup in spec.bootstrap.fromBackup",
                    s.phase, s.message
                ),
            );
        }
        phase => {
            let phase = if phase.is_empty() { "Pending" } else { phase };
            return Step::Wait(
                "WaitingForBackup",
                format!("waiting for PostgresBackup {backup} to complete (it is {phase})"),
            );
        }
    }
    let method = s.method.clone().unwrap_or_default();
    if method == "basebackup" && s.postgres_version.is_some_and(|v| v != version) {
        return Step::Blocked(
            "BackupVersionMismatch",
            format!(
                "PostgresBackup {backup} is a basebackup of PostgreSQL {}, and spec.version is {version}: \
                 a base backup restores into the same major only (use a dump to change majors)",
                s.postgres_version.unwrap_or_default()
            ),
        );
    }
    match (&s.claim_name, &s.path) {
        (Some(claim), Some(path)) if !claim.is_empty() && !path.is_empty() => Step::Restore {
            claim: claim.clone(),
            path: path.clone(),
            method,
        },
        _ => Step::Blocked(
            "BackupFailed",
            format!("PostgresBackup {backup} is Completed but names no artifact"),
        ),
    }
}

impl Cluster<'_> {
    pub fn restore_job_name(&self) -> String {
        format!("{}-restore", self.name)
    }

    /// The Job that fills the primary's empty volumes from the artifact at
    /// `claim`:`path`, with the cluster's passwords.
    pub fn restore_job(
        &self,
        image: &str,
        primary: &str,
        claim: &str,
        path: &str,
        wal: bool,
    ) -> Value {
        let initdb = &self.spec.bootstrap.initdb;
        let mut initdb_args = format!("--encoding={} --locale={}", initdb.encoding, initdb.locale);
        if initdb.data_checksums {
            initdb_args.push_str(" --data-checksums");
        }
        let secret = |env: &str, secret: String| json!({"name": env, "valueFrom": {"secretKeyRef": {"name": secret, "key": "password"}}});
        let mut env = vec![
            json!({"name": "PGDATA", "value": PGDATA}),
            json!({"name": "ARTIFACT_DIR", "value": format!("{BACKUP_MOUNT}/{path}")}),
            json!({"name": "PG_INITDB_ARGS", "value": initdb_args}),
            secret("POSTGRES_PASSWORD", self.superuser_secret()),
            secret("PG_REPLICATION_PASSWORD", self.replication_secret()),
        ];
        let mut mounts = vec![
            json!({"name": "data", "mountPath": DATA_MOUNT}),
            json!({"name": "backup", "mountPath": BACKUP_MOUNT, "readOnly": true}),
        ];
        let mut volumes = vec![
            json!({"name": "data", "persistentVolumeClaim": {"claimName": format!("{primary}-data")}}),
            json!({"name": "backup", "persistentVolumeClaim": {"claimName": claim, "readOnly": true}}),
        ];
        if wal {
            env.push(json!({"name": "PG_WALDIR", "value": format!("{WAL_MOUNT}/pg_wal")}));
            mounts.push(json!({"name": "wal", "mountPath": WAL_MOUNT}));
            volumes.push(json!({"name": "wal", "persistentVolumeClaim": {"claimName": format!("{primary}-wal")}}));
        }
        let pod = json!({
            "containers": [{"name": "restore", "command": ["sh", "-c", RESTORE_SH],
                            "env": env, "volumeMounts": mounts}],
            "volumes": volumes,
        });
        let mut job = self.job(&self.restore_job_name(), "restore", image, pod);
        // The volumes' files must end up the postgres user's.
        job["spec"]["template"]["spec"]["securityContext"]["fsGroup"] = json!(999);
        job["spec"]["backoffLimit"] = json!(2);
        job
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(phase: &str, method: &str, version: i64) -> Source {
        Source {
            backup: "nightly".into(),
            phase: phase.into(),
            method: Some(method.into()),
            claim_name: Some("backups".into()),
            path: Some("pgbackups/nightly".into()),
            postgres_version: Some(version),
            message: "Job nightly-backup failed: DeadlineExceeded".into(),
        }
    }

    #[test]
    fn steps() {
        assert!(matches!(
            step("nightly", None, 16),
            Step::Wait("WaitingForBackup", _)
        ));
        assert!(matches!(
            step("nightly", Some(&src("Running", "dump", 16)), 16),
            Step::Wait(..)
        ));
        match step("nightly", Some(&src("Failed", "dump", 16)), 16) {
            Step::Blocked("BackupFailed", m) => assert!(m.contains("DeadlineExceeded"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            step("nightly", Some(&src("Completed", "basebackup", 15)), 16),
            Step::Blocked("BackupVersionMismatch", _)
        ));
        // A dump restores into a newer major.
        assert_eq!(
            step("nightly", Some(&src("Completed", "dump", 15)), 16),
            Step::Restore {
                claim: "backups".into(),
                path: "pgbackups/nightly".into(),
                method: "dump".into()
            }
        );
    }

    #[test]
    fn the_annotation_must_name_the_backup() {
        let parent = json!({"metadata": {"annotations": {SOURCE_ANNOTATION:
            r#"{"backup":"other","phase":"Completed"}"#}}});
        assert_eq!(source(&parent, "nightly"), None);
        assert_eq!(
            source(&parent, "other").map(|s| s.phase),
            Some("Completed".into())
        );
    }
}
