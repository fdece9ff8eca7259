//! `PostgresBackup` and `BackupSchedule` as the plugins read and write them.
//!
//! Defaults mirror the CRDs' (`crd/*.json`), so an object given to
//! `operon reconcile` by hand reconciles the same as one that went
//! through admission.

use operon_sdk::conditions::Condition;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The phases of a PostgresBackup.
pub mod phase {
    /// Waiting for its cluster.
    pub const PENDING: &str = "Pending";
    pub const RUNNING: &str = "Running";
    pub const COMPLETED: &str = "Completed";
    pub const FAILED: &str = "Failed";
    /// The spec is refused; fixing it starts the backup.
    pub const INVALID: &str = "Invalid";
}

/// `spec.clusterRef`: the `PostgresCluster` in the same namespace.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterRef {
    #[serde(default)]
    pub name: String,
}

/// How the data is copied out of the cluster.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// `pg_dump -Fc` per database, plus the roles (`pg_dumpall -g`).
    #[default]
    Dump,
    /// `pg_dumpall`: every database and role as one SQL script.
    Dumpall,
    /// `pg_basebackup -Ft -z -X stream`: the data directory, same major only.
    Basebackup,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Dump => "dump",
            Method::Dumpall => "dumpall",
            Method::Basebackup => "basebackup",
        }
    }
}

/// Which instance the backup reads from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    #[default]
    Primary,
    /// Through the cluster's `-ro` Service: takes load off the primary.
    Replica,
}

/// What happens to the artifact when the backup object is deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeletionPolicy {
    /// The files stay on the volume.
    #[default]
    Retain,
    /// A cleanup Job removes them before the object goes.
    Delete,
}

/// A volume made for one backup (owned by it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClaimTemplate {
    pub size: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
    #[serde(default = "rwo")]
    pub access_modes: Vec<String>,
}

fn rwo() -> Vec<String> {
    vec!["ReadWriteOnce".into()]
}

/// Where the artifact goes: an existing claim or one made from a template,
/// and a directory in it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim_template: Option<ClaimTemplate>,
    /// Directory in the volume; the artifact is `<path>/<backup name>`.
    #[serde(default = "default_path")]
    pub path: String,
}

fn default_path() -> String {
    "pgbackups".into()
}

/// `spec` of a PostgresBackup, and the `backupTemplate` of a schedule
/// (whose `clusterRef` defaults to the schedule's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupSpec {
    #[serde(default)]
    pub cluster_ref: ClusterRef,
    #[serde(default)]
    pub method: Method,
    /// `dump` only: the databases; empty means every database but the
    /// templates, as found when the Job runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub databases: Vec<String>,
    pub target: Target,
    #[serde(default)]
    pub source: Source,
    /// How long the artifact is worth keeping after completion (`7d`,
    /// `12h`, `1h30m`); a schedule prunes its backups past it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
    /// The image with the client tools; default `postgres:<cluster major>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The Job fails after this long (`activeDeadlineSeconds`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_deadline_seconds: Option<i64>,
    /// Retries of the Job's Pod before it fails.
    #[serde(default = "two")]
    pub backoff_limit: i32,
}

fn two() -> i32 {
    2
}

/// `status` of a PostgresBackup. Besides reporting, it is the plugin's
/// memory: once Completed or Failed, a backup never runs again.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupStatus {
    /// Pending, Running, Completed, Failed or Invalid.
    #[serde(default)]
    pub phase: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<Method>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<String>,
    /// Past it the backup is Expired (and a schedule prunes it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact: Option<Artifact>,
    /// The cluster's major when the backup ran: a basebackup restores
    /// into the same major only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres_version: Option<i64>,
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

/// Where the files are, for restores and for the cleanup Job.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Artifact {
    pub claim_name: String,
    /// Directory in the volume.
    pub path: String,
    /// Bytes, as the Job reported them (its termination message).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<i64>,
}

/// `spec.retention` of a schedule: a completed backup is kept if any
/// `keep*` rule selects it and it is younger than `maxAge`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Retention {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_last: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_daily: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_weekly: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<String>,
}

/// What a schedule does when a slot comes while its previous backup runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConcurrencyPolicy {
    /// Start the new backup anyway.
    #[default]
    Allow,
    /// Skip the slot.
    Forbid,
}

/// `spec` of a BackupSchedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleSpec {
    #[serde(default)]
    pub cluster_ref: ClusterRef,
    /// Five-field cron (`min hour day-of-month month day-of-week`) or a
    /// macro (`@daily`, ...).
    pub schedule: String,
    /// `UTC`, a fixed offset (`+02:00`, `UTC-05:30`) or an IANA name
    /// (`Europe/Paris`), whose daylight saving rules apply.
    #[serde(default = "utc")]
    pub time_zone: String,
    #[serde(default)]
    pub suspend: bool,
    #[serde(default)]
    pub concurrency_policy: ConcurrencyPolicy,
    /// A slot missed by more than this (the host was down) is skipped.
    #[serde(default = "hour")]
    pub starting_deadline_seconds: i64,
    /// The PostgresBackup spec of every backup made.
    pub backup_template: Value,
    #[serde(default)]
    pub retention: Retention,
}

fn utc() -> String {
    "UTC".into()
}

fn hour() -> i64 {
    3600
}

/// `status` of a BackupSchedule.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleStatus {
    /// The slot of the newest backup made (its scheduled time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_schedule_time: Option<String>,
    /// Completion of the newest Completed backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_successful_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_schedule_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_backup: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub active: Vec<String>,
    /// Backups kept by retention (oldest first) and how many exist.
    #[serde(default)]
    pub backups: i64,
    #[serde(default)]
    pub conditions: Vec<Condition>,
}
