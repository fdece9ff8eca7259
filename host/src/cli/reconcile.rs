//! `operon reconcile`: one reconcile, offline, on objects from files.
//!
//! The offline cluster that `cluster.get/list` read from holds the observed
//! children and any `--related` objects, so a plugin behaves as it would
//! against the host's watch cache. The answer then passes the checks
//! `operon run` makes before it applies anything (kinds owned, namespaces,
//! duplicates, child count and sizes, against the grant given with
//! `--grants`): what the cluster would refuse is refused here. So is a
//! parent the CRD the plugin ships would refuse ([`crd_schema`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::{ExitCode, Failure, Output, input, print, scopes};
use crate::apply::{self, Checks};
use crate::contract::{Gvk, ObjectSet, Request};
use crate::crd_schema;
use crate::engine::{Engine, Limits};
use crate::plugin::{CallContext, CallError, GrantsFile, Plugin};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The plugin component (.wasm).
    pub plugin: PathBuf,
    /// The parent object (YAML or JSON).
    #[arg(long, value_name = "FILE")]
    pub parent: PathBuf,
    /// Observed children (YAML documents, JSON, or a List); repeatable.
    #[arg(long, value_name = "FILE")]
    pub observed: Vec<PathBuf>,
    /// Other objects the plugin may read through `cluster`; repeatable.
    #[arg(long, value_name = "FILE")]
    pub related: Vec<PathBuf>,
    /// Plugin configuration, `key=value`; repeatable.
    #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub config: Vec<(String, String)>,
    /// Reconcile as if the parent were being deleted (finalizer call).
    #[arg(long)]
    pub finalizing: bool,
    /// Fix the plugin's wall clock (UTC, e.g. 2026-01-02T03:04:05Z) for
    /// reproducible output.
    #[arg(long, value_name = "TIME")]
    pub now: Option<String>,
    /// Time limit of the call, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 2000)]
    pub timeout_ms: u64,
    /// Memory limit of the call, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 256)]
    pub memory_mib: usize,
    /// The host operator's grants file; without it the plugin is granted
    /// what it asks for (you are the operator here).
    #[arg(long, value_name = "FILE")]
    pub grants: Option<PathBuf>,
    /// Hand the plugin a parent its CRD's schema refuses (to test the
    /// plugin's own checks); by default such a parent is refused as the
    /// API server would refuse it.
    #[arg(long)]
    pub skip_schema: bool,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Output::Yaml)]
    pub output: Output,
}

/// Refuses a parent the CRD the plugin ships would refuse, listing every
/// violation with its field path, as `kubectl apply` would.
fn check_parent(plugin: &Plugin, parent: &Value) -> Result<(), Failure> {
    let text = |p: &str| parent.pointer(p).and_then(Value::as_str).unwrap_or("");
    let (api_version, kind) = (text("/apiVersion"), text("/kind"));
    let crds = plugin.registration().crds.iter().map(String::as_str);
    let Some(schema) = crd_schema::find(crds, api_version, kind) else {
        return Ok(());
    };
    let violations = crd_schema::validate(parent, &schema);
    if violations.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = violations.iter().map(ToString::to_string).collect();
    Err(Failure::new(
        ExitCode::Failure,
        format!(
            "{kind} {}: the API server would refuse it under the CRD plugin {} ships: {} (--skip-schema hands it to the plugin anyway)",
            subject(parent),
            plugin.name(),
            list.join("; ")
        ),
    ))
}

/// A `--config` value that is not `KEY=VALUE`.
#[derive(Debug, thiserror::Error)]
#[error("expected KEY=VALUE, got {0:?}")]
pub struct NotKeyValue(String);

fn parse_key_value(s: &str) -> Result<(String, String), NotKeyValue> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(NotKeyValue(s.to_string())),
    }
}

/// `namespace/name` of an object, for messages.
fn subject(object: &Value) -> String {
    let get = |p| object.pointer(p).and_then(Value::as_str).unwrap_or("");
    match get("/metadata/namespace") {
        "" => get("/metadata/name").to_string(),
        ns => format!("{ns}/{}", get("/metadata/name")),
    }
}

pub fn run(engine: &Engine, args: &Args) -> Result<(), Failure> {
    let parent = input::read_one(&args.parent)?;
    let mut observed = Vec::new();
    for path in &args.observed {
        observed.extend(input::read_objects(path)?);
    }
    let mut cluster = ObjectSet::new();
    for path in &args.related {
        for object in input::read_objects(path)? {
            cluster
                .insert(object)
                .map_err(|e| Failure::new(ExitCode::Failure, format!("{}: {e}", path.display())))?;
        }
    }
    for object in &observed {
        cluster
            .insert(object.clone())
            .map_err(|e| Failure::new(ExitCode::Failure, format!("observed object: {e}")))?;
    }
    let fixed_time = match &args.now {
        Some(t) => {
            let at: k8s_openapi::jiff::Timestamp = t.parse().map_err(|e| {
                Failure::new(
                    ExitCode::Failure,
                    format!(
                        "invalid --now {t:?}: {e} (expected RFC 3339, e.g. 2026-01-02T03:04:05Z)"
                    ),
                )
            })?;
            Some(std::time::SystemTime::from(at))
        }
        None => None,
    };
    let limits = Limits {
        timeout: Duration::from_millis(args.timeout_ms),
        memory_bytes: args.memory_mib << 20,
        ..Limits::default()
    };
    let loaded = match &args.grants {
        Some(file) => Plugin::load_granted(engine, &args.plugin, limits, &GrantsFile::read(file)?),
        None => Plugin::load_file(engine, &args.plugin, limits),
    };
    let plugin = loaded
        .map_err(|e| Failure::new(ExitCode::Failure, format!("{}: {e}", args.plugin.display())))?;
    if !args.skip_schema {
        check_parent(&plugin, &parent)?;
    }
    let mut request = Request::new(
        parent.to_string(),
        observed.iter().map(Value::to_string).collect(),
        args.config.clone(),
    );
    request.finalizing = args.finalizing;
    let ctx = CallContext {
        cluster: Arc::new(cluster),
        namespace: parent
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .map(str::to_string),
        subject: subject(&parent),
        fixed_time,
    };
    let (result, stats) = plugin.reconcile(&request, &ctx);
    tracing::debug!(duration = ?stats.duration, memory_peak = stats.memory_peak, "reconciled");
    let outcome = result.map_err(|e| {
        let code = match e {
            CallError::Plugin(_) => ExitCode::PluginError,
            CallError::Trap { .. } | CallError::InvalidOutput(_) => ExitCode::Trap,
        };
        Failure::new(
            code,
            format!("plugin {} on {}: {e}", plugin.name(), ctx.subject),
        )
    })?;
    let reg = plugin.registration();
    let scope = |gvk: &Gvk| scopes::offline(reg, gvk);
    apply::check_answer(&outcome, reg, &parent, &Checks::of(&plugin), &scope).map_err(|e| {
        Failure::new(
            ExitCode::Refused,
            format!(
                "plugin {} on {}: operon run would refuse this answer: {e}",
                plugin.name(),
                ctx.subject
            ),
        )
    })?;
    print(&outcome, args.output)
}
