//! The `PostgresCluster` resource as the plugin reads and writes it.
//!
//! Defaults here mirror the CRD's (`crd.json`), so a parent stored before a
//! default existed, or one given to `operon reconcile` by hand, reconciles
//! the same as one that went through admission.

use std::collections::BTreeMap;

use operon_sdk::conditions::Condition;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `spec` of a PostgresCluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSpec {
    pub version: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrade_image: Option<String>,
    #[serde(default = "one")]
    pub instances: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Value>,
    pub storage: Storage,
    #[serde(default)]
    pub postgresql: Postgresql,
    #[serde(default)]
    pub users: Vec<User>,
    #[serde(default)]
    pub databases: Vec<Database>,
    #[serde(default)]
    pub services: Services,
    #[serde(default)]
    pub metadata: Tags,
    #[serde(default)]
    pub monitoring: Monitoring,
    #[serde(default)]
    pub pooler: Pooler,
    #[serde(default)]
    pub bootstrap: Bootstrap,
    #[serde(default)]
    pub data_loads: Vec<DataLoad>,
    #[serde(default)]
    pub failover: Failover,
    #[serde(default)]
    pub shutdown: bool,
    #[serde(default)]
    pub paused: bool,
}

fn one() -> i32 {
    1
}
fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Storage {
    pub size: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wal_size: Option<String>,
    #[serde(default)]
    pub retention_policy: RetentionPolicy,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub enum RetentionPolicy {
    #[default]
    Delete,
    Retain,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Postgresql {
    /// Values are strings or numbers (`x-kubernetes-int-or-string`).
    #[serde(default)]
    pub parameters: BTreeMap<String, Value>,
    #[serde(default, rename = "pgHBA")]
    pub pg_hba: Vec<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ensure {
    #[default]
    Present,
    Absent,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub name: String,
    #[serde(default)]
    pub databases: Vec<String>,
    #[serde(default)]
    pub options: Vec<String>,
    #[serde(default)]
    pub ensure: Ensure,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret_ref: Option<SecretKeyRef>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecretKeyRef {
    pub name: String,
    #[serde(default = "password_key")]
    pub key: String,
}

fn password_key() -> String {
    "password".into()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Database {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default)]
    pub extensions: Vec<String>,
    #[serde(default)]
    pub ensure: Ensure,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Services {
    #[serde(default)]
    pub primary: ServiceSpec,
    #[serde(default)]
    pub replicas: ReplicaService,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    #[serde(default = "cluster_ip", rename = "type")]
    pub type_: String,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

impl Default for ServiceSpec {
    fn default() -> Self {
        ServiceSpec {
            type_: cluster_ip(),
            annotations: BTreeMap::new(),
        }
    }
}

fn cluster_ip() -> String {
    "ClusterIP".into()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaService {
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default = "cluster_ip", rename = "type")]
    pub type_: String,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

impl Default for ReplicaService {
    fn default() -> Self {
        ReplicaService {
            enabled: true,
            type_: cluster_ip(),
            annotations: BTreeMap::new(),
        }
    }
}

/// `spec.metadata`: put on every object the plugin makes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Tags {
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Monitoring {
    #[serde(default)]
    pub exporter: Exporter,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exporter {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default = "exporter_port")]
    pub port: i32,
}

impl Default for Exporter {
    fn default() -> Self {
        Exporter {
            enabled: false,
            image: None,
            port: exporter_port(),
        }
    }
}

fn exporter_port() -> i32 {
    9187
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pooler {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default = "two")]
    pub replicas: i32,
    #[serde(default = "transaction")]
    pub pool_mode: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default = "thousand")]
    pub max_client_conn: i64,
    #[serde(default = "twenty")]
    pub default_pool_size: i64,
}

impl Default for Pooler {
    fn default() -> Self {
        Pooler {
            enabled: false,
            replicas: two(),
            pool_mode: transaction(),
            image: None,
            max_client_conn: thousand(),
            default_pool_size: twenty(),
        }
    }
}

fn two() -> i32 {
    2
}
fn transaction() -> String {
    "transaction".into()
}
fn thousand() -> i64 {
    1000
}
fn twenty() -> i64 {
    20
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bootstrap {
    #[serde(default)]
    pub initdb: Initdb,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_backup: Option<FromBackup>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Initdb {
    #[serde(default = "yes")]
    pub data_checksums: bool,
    #[serde(default = "utf8")]
    pub encoding: String,
    #[serde(default = "c_utf8")]
    pub locale: String,
}

impl Default for Initdb {
    fn default() -> Self {
        Initdb {
            data_checksums: true,
            encoding: utf8(),
            locale: c_utf8(),
        }
    }
}

fn utf8() -> String {
    "UTF8".into()
}
fn c_utf8() -> String {
    "C.UTF-8".into()
}

/// A `PostgresBackup` to start from (see [`crate::restore`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FromBackup {
    pub backup_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub point_in_time: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DataLoad {
    pub name: String,
    pub database: String,
    pub table: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_definition: Option<String>,
    pub source: LoadSource,
    pub format: LoadFormat,
    #[serde(default)]
    pub mode: LoadMode,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadSource {
    pub config_map: String,
    pub key: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LoadFormat {
    Csv,
    Json,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LoadMode {
    #[default]
    Append,
    Replace,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Failover {
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default = "thirty")]
    pub delay_seconds: i64,
}

impl Default for Failover {
    fn default() -> Self {
        Failover {
            enabled: true,
            delay_seconds: thirty(),
        }
    }
}

fn thirty() -> i64 {
    30
}

/// `status` of a PostgresCluster. Besides reporting, it is the plugin's
/// memory between reconciles: the running major version, the major upgrade
/// step, when the primary became unavailable, which SQL and data loads have
/// completed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterStatus {
    #[serde(default)]
    pub phase: String,
    #[serde(default)]
    pub instances: i32,
    #[serde(default)]
    pub ready_instances: i32,
    #[serde(default)]
    pub selector: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_primary: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default)]
    pub instance_statuses: Vec<InstanceStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrade: Option<UpgradeStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_unavailable_since: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users_reconciled_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub completed_data_loads: Vec<String>,
    /// With `bootstrap.fromBackup`: the restore's step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<crate::restore::RestoreStatus>,
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceStatus {
    pub name: String,
    pub role: String,
    pub ready: bool,
    pub image: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<String>,
}

/// A major upgrade in progress: `step` is one of [`UpgradeStep`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpgradeStatus {
    pub from: i64,
    pub to: i64,
    pub step: UpgradeStep,
    #[serde(default)]
    pub message: String,
}

/// The steps of a major upgrade, in order. Each is entered only when the
/// previous one is observed complete, so a host restart resumes where the
/// status says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum UpgradeStep {
    /// Every instance scaled to 0.
    ShuttingDown,
    /// The pg_upgrade Job runs on the primary's volumes.
    Upgrading,
    /// The primary starts on the new major; replicas follow, re-cloned.
    Starting,
}
