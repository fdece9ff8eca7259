//! One reconcile offline, checked as `operon run` checks it: the parent
//! against the CRD the plugin ships ([`crd_schema`]), the call in the real
//! engine, then the answer against the plugin's limits and grant
//! ([`apply::check_answer`]). `operon reconcile`, `operon test` and
//! `operon diff` all call [`reconcile`], so they cannot disagree on what a
//! plugin answers or on what the cluster would refuse.
//!
//! The offline cluster that `cluster.get/list` read from holds the observed
//! children and the related objects, so a plugin behaves as it would
//! against the host's watch cache.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::Value;

use super::{ExitCode, Failure, scopes};
use crate::apply::{self, Checks};
use crate::contract::{Gvk, ObjectSet, Outcome, Request};
use crate::crd_schema;
use crate::engine::{Engine, Limits};
use crate::plugin::{CallContext, CallError, GrantsFile, Plugin, case_error};

/// The flags of a call that every offline command takes.
#[derive(clap::Args, Debug, Clone)]
pub struct CallArgs {
    /// Fix the plugin's wall clock (UTC, e.g. 2026-01-02T03:04:05Z) for
    /// reproducible output.
    #[arg(long, value_name = "TIME", value_parser = parse_now)]
    pub now: Option<SystemTime>,
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
}

impl CallArgs {
    /// Loads a component with these limits and grants.
    pub fn load(&self, engine: &Engine, path: &Path) -> Result<Plugin, Failure> {
        let limits = Limits {
            timeout: Duration::from_millis(self.timeout_ms),
            memory_bytes: self.memory_mib << 20,
            ..Limits::default()
        };
        let loaded = match &self.grants {
            Some(file) => Plugin::load_granted(engine, path, limits, &GrantsFile::read(file)?),
            None => Plugin::load_file(engine, path, limits),
        };
        loaded.map_err(|e| Failure::new(ExitCode::Failure, format!("{}: {e}", path.display())))
    }
}

/// A `--now` that is not an RFC 3339 time.
#[derive(Debug, thiserror::Error)]
#[error("{0} (expected RFC 3339, e.g. 2026-01-02T03:04:05Z)")]
pub struct NotATime(String);

/// Parses a plugin clock: `2026-01-02T03:04:05Z`.
pub fn parse_now(text: &str) -> Result<SystemTime, NotATime> {
    let at: k8s_openapi::jiff::Timestamp = text.parse().map_err(|e| NotATime(format!("{e}")))?;
    Ok(SystemTime::from(at))
}

/// What one reconcile is given.
#[derive(Debug)]
pub struct Input {
    pub parent: Value,
    /// The children the host would have observed.
    observed: Vec<Value>,
    /// What `cluster.get/list` read: the observed children and the related
    /// objects.
    cluster: Arc<ObjectSet>,
    pub config: Vec<(String, String)>,
    /// The call for a parent being deleted.
    pub finalizing: bool,
    /// The plugin's clock; `None` is the real one.
    pub now: Option<SystemTime>,
    /// Hand over a parent the CRD's schema refuses.
    pub skip_schema: bool,
}

impl Input {
    /// The input of a parent, the children observed and other objects the
    /// plugin may read; the other fields are their defaults (no config, not
    /// finalizing, the real clock, the schema checked).
    pub fn new(parent: Value, observed: Vec<Value>, related: Vec<Value>) -> anyhow::Result<Input> {
        let mut cluster = ObjectSet::new();
        for object in related.into_iter().chain(observed.iter().cloned()) {
            let name = format!("{} {}", kind(&object), subject(&object));
            cluster
                .insert(object)
                .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
        }
        Ok(Input {
            parent,
            observed,
            cluster: Arc::new(cluster),
            config: Vec::new(),
            finalizing: false,
            now: None,
            skip_schema: false,
        })
    }
}

/// Why a reconcile gave no answer the host would apply.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// The API server would refuse the parent: every violation, with its
    /// field path.
    #[error("{kind} {subject}: the API server would refuse it under the CRD plugin {plugin} ships: {}", violations.join("; "))]
    Schema {
        kind: String,
        subject: String,
        plugin: String,
        violations: Vec<String>,
    },
    /// The call failed: the plugin's error, a trap or a malformed answer.
    #[error("plugin {plugin} on {subject}: {error}")]
    Call {
        plugin: String,
        subject: String,
        error: CallError,
    },
    /// `operon run` would refuse to apply the answer.
    #[error("plugin {plugin} on {subject}: operon run would refuse this answer: {reason}")]
    Answer {
        plugin: String,
        subject: String,
        reason: String,
    },
}

impl Refusal {
    /// The exit code `operon reconcile` ends with.
    pub fn code(&self) -> ExitCode {
        match self {
            Refusal::Schema { .. } => ExitCode::Failure,
            Refusal::Call {
                error: CallError::Plugin(_),
                ..
            } => ExitCode::PluginError,
            Refusal::Call { .. } => ExitCode::Trap,
            Refusal::Answer { .. } => ExitCode::Refused,
        }
    }

    /// The refusal as a golden case records it:
    /// `{"error": {"<kind>": "<message>"}}`, where kind is `permanent` or
    /// `retryable` (the plugin's own message), `failed` (a trap or a
    /// malformed answer), `refused` (what `operon run` would not apply) or
    /// `schema` (the parent's violations).
    pub fn as_answer(&self) -> Value {
        let (kind, message) = match self {
            Refusal::Schema { violations, .. } => ("schema", violations.join("; ")),
            Refusal::Call { error, .. } => error.as_case(),
            Refusal::Answer { reason, .. } => ("refused", reason.clone()),
        };
        case_error(kind, &message)
    }
}

impl From<Refusal> for Failure {
    fn from(r: Refusal) -> Failure {
        Failure::new(r.code(), r.to_string())
    }
}

/// One reconcile of `input` by `plugin`, with the checks `operon run`
/// makes before and after the call.
pub fn reconcile(plugin: &Plugin, input: &Input) -> Result<Outcome, Refusal> {
    let parent = &input.parent;
    let subject = subject(parent);
    if !input.skip_schema {
        check_parent(plugin, parent, &subject)?;
    }
    let mut request = Request::new(
        parent.to_string(),
        input.observed.iter().map(Value::to_string).collect(),
        input.config.clone(),
    );
    request.finalizing = input.finalizing;
    let ctx = CallContext {
        cluster: input.cluster.clone(),
        namespace: parent
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .map(str::to_string),
        subject,
        fixed_time: input.now,
    };
    let (result, stats) = plugin.reconcile(&request, &ctx);
    tracing::debug!(duration = ?stats.duration, memory_peak = stats.memory_peak, "reconciled");
    let outcome = result.map_err(|error| Refusal::Call {
        plugin: plugin.name().to_string(),
        subject: ctx.subject.clone(),
        error,
    })?;
    let reg = plugin.registration();
    let scope = |gvk: &Gvk| scopes::offline(reg, gvk);
    apply::check_answer(&outcome, reg, parent, &Checks::of(plugin), &scope).map_err(|e| {
        Refusal::Answer {
            plugin: plugin.name().to_string(),
            subject: ctx.subject.clone(),
            reason: e.to_string(),
        }
    })?;
    Ok(outcome)
}

/// Refuses a parent the CRD the plugin ships would refuse.
fn check_parent(plugin: &Plugin, parent: &Value, subject: &str) -> Result<(), Refusal> {
    let api_version = parent
        .pointer("/apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    let kind = kind(parent);
    let crds = plugin.registration().crds.iter().map(String::as_str);
    let Some(schema) = crd_schema::find(crds, api_version, kind) else {
        return Ok(());
    };
    let violations = crd_schema::validate(parent, &schema);
    if violations.is_empty() {
        return Ok(());
    }
    Err(Refusal::Schema {
        kind: kind.to_string(),
        subject: subject.to_string(),
        plugin: plugin.name().to_string(),
        violations: violations.iter().map(ToString::to_string).collect(),
    })
}

fn kind(object: &Value) -> &str {
    object
        .pointer("/kind")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// `namespace/name` of an object, for messages.
pub fn subject(object: &Value) -> String {
    let get = |p| object.pointer(p).and_then(Value::as_str).unwrap_or("");
    match get("/metadata/namespace") {
        "" => get("/metadata/name").to_string(),
        ns => format!("{ns}/{}", get("/metadata/name")),
    }
}
