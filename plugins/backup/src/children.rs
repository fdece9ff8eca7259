//! The objects a backup is made of: its Job, the cleanup Job run before
//! deletion, and the volume of a claim template. Built as JSON (mostly
//! literals); the e2e test's dry-run checks them against the real schemas.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::spec::{BackupSpec, Method, Source};

/// The Job's command: copies the data out with the method's tool and
/// writes the artifact's size to the termination message.
pub const BACKUP_SH: &str = include_str!("../scripts/backup.sh");
/// The cleanup Job's command: removes one artifact directory.
pub const CLEANUP_SH: &str = include_str!("../scripts/cleanup.sh");

pub const LABEL_CLUSTER: &str = "postgres.operon.dev/cluster";
pub const LABEL_BACKUP: &str = "postgres.operon.dev/backup";
/// Where the target volume is mounted in the Jobs.
pub const MOUNT: &str = "/backup";
/// uid/gid of the postgres user in the official images.
const POSTGRES_UID: i64 = 999;
const PORT: i64 = 5432;
pub const CLEANUP_IMAGE: &str = "docker.io/library/busybox:1.37";

/// What the children of one backup share.
pub struct Backup<'a> {
    pub name: &'a str,
    pub namespace: Option<&'a str>,
    pub spec: &'a BackupSpec,
}

impl Backup<'_> {
    pub fn job_name(&self) -> String {
        format!("{}-backup", self.name)
    }

    pub fn cleanup_job_name(&self) -> String {
        format!("{}-cleanup", self.name)
    }

    /// The claim the artifact goes to: the given one, or the backup's own.
    pub fn claim_name(&self) -> String {
        match &self.spec.target.claim_name {
            Some(c) => c.clone(),
            None => format!("{}-backup", self.name),
        }
    }

    /// The artifact's directory inside the volume.
    pub fn artifact_path(&self) -> String {
        format!(
            "{}/{}",
            self.spec.target.path.trim_end_matches('/'),
            self.name
        )
    }

    fn meta(&self, name: &str, component: &str) -> Value {
        let labels = BTreeMap::from([
            ("app.kubernetes.io/name", "postgres-backup"),
            ("app.kubernetes.io/instance", self.name),
            ("app.kubernetes.io/managed-by", "operon"),
            ("app.kubernetes.io/component", component),
            (LABEL_CLUSTER, self.spec.cluster_ref.name.as_str()),
            (LABEL_BACKUP, self.name),
        ]);
        let mut m = json!({"name": name, "labels": labels});
        if let Some(ns) = self.namespace {
            m["namespace"] = json!(ns);
        }
        m
    }

    fn secret_env(env: &str, secret: &str, key: &str) -> Value {
        json!({"name": env, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}})
    }

    fn job(&self, name: &str, component: &str, container: Value, spec: Value) -> Value {
        let mut job_spec = spec;
        job_spec["template"] = json!({
            "metadata": {"labels": {LABEL_CLUSTER: self.spec.cluster_ref.name, LABEL_BACKUP: self.name,
                                    "app.kubernetes.io/component": component}},
            "spec": {
                // Never: a failed Pod stays for its logs and its message.
                "restartPolicy": "Never",
                "securityContext": {"runAsUser": POSTGRES_UID, "runAsGroup": POSTGRES_UID,
                                    "fsGroup": POSTGRES_UID, "runAsNonRoot": true},
                "containers": [container],
                "volumes": [{"name": "target", "persistentVolumeClaim": {"claimName": self.claim_name()}}],
            }
        });
        json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": self.meta(name, component),
            "spec": job_spec,
        })
    }

    /// The backup Job, with the tools of `image` (the cluster's major).
    pub fn backup_job(&self, image: &str) -> Value {
        let cluster = &self.spec.cluster_ref.name;
        let host = match self.spec.source {
            Source::Primary => format!("{cluster}-rw"),
            Source::Replica => format!("{cluster}-ro"),
        };
        // pg_basebackup needs a replication connection, which the
        // cluster's pg_hba allows the replicator role only.
        let (user, secret) = match self.spec.method {
            Method::Basebackup => ("replicator", format!("{cluster}-replication")),
            _ => ("postgres", format!("{cluster}-superuser")),
        };
        let env = vec![
            json!({"name": "METHOD", "value": self.spec.method.as_str()}),
            json!({"name": "DATABASES", "value": self.spec.databases.join(" ")}),
            json!({"name": "ARTIFACT_DIR", "value": format!("{MOUNT}/{}", self.artifact_path())}),
            json!({"name": "PGHOST", "value": host}),
            json!({"name": "PGPORT", "value": PORT.to_string()}),
            json!({"name": "PGUSER", "value": user}),
            Self::secret_env("PGPASSWORD", &secret, "password"),
        ];
        let container = json!({
            "name": "backup",
            "image": image,
            "command": ["sh", "-c", BACKUP_SH],
            "env": env,
            "volumeMounts": [{"name": "target", "mountPath": MOUNT}],
            "terminationMessagePolicy": "File",
        });
        let mut spec = json!({"backoffLimit": self.spec.backoff_limit});
        if let Some(d) = self.spec.active_deadline_seconds {
            spec["activeDeadlineSeconds"] = json!(d);
        }
        self.job(&self.job_name(), "backup", container, spec)
    }

    /// The Job that removes the artifact before the backup object goes.
    pub fn cleanup_job(&self, artifact_path: &str) -> Value {
        let container = json!({
            "name": "cleanup",
            "image": CLEANUP_IMAGE,
            "command": ["sh", "-c", CLEANUP_SH],
            "env": [{"name": "ARTIFACT_DIR", "value": format!("{MOUNT}/{artifact_path}")}],
            "volumeMounts": [{"name": "target", "mountPath": MOUNT}],
        });
        self.job(
            &self.cleanup_job_name(),
            "cleanup",
            container,
            json!({"backoffLimit": 3}),
        )
    }

    /// The backup's own volume, with a claim template.
    pub fn claim(&self) -> Option<Value> {
        let tpl = self.spec.target.claim_template.as_ref()?;
        let mut spec = json!({
            "accessModes": tpl.access_modes,
            "resources": {"requests": {"storage": tpl.size}},
        });
        if let Some(class) = &tpl.storage_class_name {
            spec["storageClassName"] = json!(class);
        }
        Some(json!({
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": self.meta(&self.claim_name(), "storage"),
            "spec": spec,
        }))
    }
}
