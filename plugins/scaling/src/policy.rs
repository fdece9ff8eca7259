//! The `PostgresScalingPolicy` resource: its spec as stored ([`PolicySpec`],
//! lenient, so that every mistake reaches [`crate::validate`] and is
//! reported with the field's name) and as checked ([`Policy`]).
//!
//! Defaults here mirror the CRD's (`crd.json`), so a policy given to
//! `operon reconcile` by hand reconciles like one that went through
//! admission.

use serde::{Deserialize, Serialize};

/// `spec` as stored: every field optional, names and numbers checked by
/// [`crate::validate::policy`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicySpec {
    #[serde(default)]
    pub target_ref: Option<TargetRef>,
    #[serde(default)]
    pub mode: Option<String>,
    #[serde(default)]
    pub replicas: Option<ReplicasSpec>,
    #[serde(default)]
    pub storage: Option<StorageSpec>,
    #[serde(default)]
    pub sync_period_seconds: Option<i64>,
}

/// The cluster a policy scales: a `PostgresCluster` in the policy's
/// namespace (apiVersion and kind may be left out).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetRef {
    #[serde(default)]
    pub api_version: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicasSpec {
    #[serde(default)]
    pub min: Option<i64>,
    #[serde(default)]
    pub max: Option<i64>,
    #[serde(default)]
    pub metric: Option<String>,
    #[serde(default)]
    pub target: Option<f64>,
    #[serde(default)]
    pub scale_up_cooldown_seconds: Option<i64>,
    #[serde(default)]
    pub scale_down_stabilization_seconds: Option<i64>,
    #[serde(default)]
    pub max_replication_lag_bytes: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StorageSpec {
    #[serde(default)]
    pub trigger_percent: Option<f64>,
    #[serde(default)]
    pub step: Option<String>,
    #[serde(default)]
    pub max_size: Option<String>,
    #[serde(default)]
    pub cooldown_seconds: Option<i64>,
}

/// Defaults, the CRD's too.
pub const DEFAULT_MIN: i64 = 1;
pub const DEFAULT_SCALE_UP_COOLDOWN: i64 = 60;
pub const DEFAULT_STABILIZATION: i64 = 300;
pub const DEFAULT_TRIGGER_PERCENT: f64 = 80.0;
pub const DEFAULT_STORAGE_COOLDOWN: i64 = 300;
pub const DEFAULT_SYNC_PERIOD: i64 = 30;

/// A checked policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// The target cluster's name (same namespace).
    pub target: String,
    pub mode: Mode,
    pub replicas: Option<Replicas>,
    pub storage: Option<Storage>,
    /// Seconds between two looks at the figures when nothing else wakes
    /// the policy (see [`crate::plan`]).
    pub sync_period: i64,
}

/// Whether the policy acts or only advises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Patch the cluster.
    Enforce,
    /// Write the recommendation to status; change nothing.
    Recommend,
}

impl Mode {
    pub const NAMES: &str = "Enforce, Recommend";

    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "Enforce" => Some(Mode::Enforce),
            "Recommend" => Some(Mode::Recommend),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Mode::Enforce => "Enforce",
            Mode::Recommend => "Recommend",
        }
    }
}

/// The figure instances are scaled on: an average per instance Pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Client connections (annotation `postgres.operon.dev/connections`).
    Connections,
    /// CPU in millicores (annotation `postgres.operon.dev/cpu-millis`).
    Cpu,
}

impl Metric {
    pub const NAMES: &str = "connections, cpu";

    pub fn parse(s: &str) -> Option<Metric> {
        match s {
            "connections" => Some(Metric::Connections),
            "cpu" => Some(Metric::Cpu),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Metric::Connections => "connections",
            Metric::Cpu => "cpu",
        }
    }

    /// The Pod annotation that carries the figure.
    pub fn annotation(self) -> &'static str {
        match self {
            Metric::Connections => crate::figures::CONNECTIONS,
            Metric::Cpu => crate::figures::CPU_MILLIS,
        }
    }

    /// The figure's unit in messages.
    pub fn unit(self) -> &'static str {
        match self {
            Metric::Connections => "connections",
            Metric::Cpu => "millicores",
        }
    }
}

/// `spec.replicas`, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Replicas {
    pub min: i32,
    pub max: i32,
    pub metric: Metric,
    /// The average per instance to keep.
    pub target: f64,
    pub scale_up_cooldown: i64,
    pub stabilization: i64,
    /// Scale-in waits while a replica lags more than this many bytes.
    pub max_lag_bytes: Option<u64>,
}

/// `spec.storage`, checked; sizes in bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Storage {
    pub trigger_percent: f64,
    pub step: u128,
    pub max: u128,
    /// `maxSize` as written, used verbatim when growth reaches it.
    pub max_text: String,
    pub cooldown: i64,
}
