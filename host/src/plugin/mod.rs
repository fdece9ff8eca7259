//! A loaded plugin: a compiled, validated component with its registration,
//! ready to run calls in fresh sandboxes.
//!
//! Loading does everything that can fail before the first reconcile, so a
//! bad build is refused up front with one clear reason: not a component, a
//! component of another world (naming the export or import), a trapping or
//! invalid `describe()`.

pub mod dir;
mod error;
mod grants;
pub mod privileged;
pub mod recorder;
pub mod redact;
mod registration;
pub mod revisions;
pub mod shadow;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use wasmtime::Store;

pub use error::{CallError, GrantPlace, LoadError, case_error};
pub use grants::{Grant, GrantsFile, LimitsSpec, Missing, NamespaceWord, Namespaces};

use crate::contract::bindings::{Reconciler, ReconcilerPre};
use crate::contract::cluster::ClusterReader;
use crate::contract::{ObjectRef, ObjectSet, Outcome, ReadGrant, Registration, Request};
use crate::engine::{self, Engine, Limits, StoreState, TrapReason, state::CallEnv};

/// Facts about the component, for `operon inspect` and metrics.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ComponentInfo {
    /// sha256 of the component bytes.
    pub digest: String,
    pub size_bytes: usize,
    /// What the component imports and exports (instance or function names).
    pub imports: Vec<String>,
    pub exports: Vec<String>,
    /// Time to compile, or to load from the compile cache.
    #[serde(rename = "compileTimeMs", with = "duration_ms")]
    pub compile_time: Duration,
    pub from_cache: bool,
}

impl ComponentInfo {
    /// The digest's first 12 hex digits: how revisions are named in logs,
    /// metrics and `operon plugins` (as short Git and image digests are).
    pub fn short_digest(&self) -> &str {
        self.digest.get(..12).unwrap_or(&self.digest)
    }
}

mod duration_ms {
    pub fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64() * 1000.0)
    }
}

/// Where a loading plugin's grant comes from.
enum GrantFrom<'a> {
    /// The host operator's grants file (its entry, or the default).
    File(&'a GrantsFile),
    /// A plugin object's.
    Given(Box<Grant>),
    /// Exactly what it asks (offline runs: the developer is the operator).
    AsRequested,
}

/// Figures of one call.
#[derive(Debug, Clone, Copy, Default)]
pub struct CallStats {
    /// Instantiation plus the call.
    pub duration: Duration,
    /// Highest total linear memory of the instance.
    pub memory_peak: usize,
}

/// What a call needs besides the request.
#[derive(Clone)]
pub struct CallContext {
    /// Where `cluster.get/list` read from.
    pub cluster: Arc<dyn ClusterReader>,
    /// `namespace/name` of the object concerned, for logs.
    pub subject: String,
    /// The parent's namespace: reads are confined by namespace grants.
    pub namespace: Option<String>,
    /// A fixed wall clock for reproducible offline output.
    pub fixed_time: Option<SystemTime>,
}

impl CallContext {
    /// A context with an empty cluster.
    pub fn offline(subject: impl Into<String>) -> CallContext {
        CallContext {
            cluster: Arc::new(ObjectSet::new()),
            subject: subject.into(),
            namespace: None,
            fixed_time: None,
        }
    }
}

/// A loaded plugin. Cheap to share behind an `Arc`; every call gets its own
/// store, so calls may run concurrently.
pub struct Plugin {
    sandbox: Sandbox,
    registration: Registration,
    info: ComponentInfo,
    /// The grant it loaded under (what it may write, adopt, read).
    grant: Grant,
}

/// What every call of one plugin shares: the pre-linked component, its
/// limits and grant.
struct Sandbox {
    engine: Engine,
    pre: ReconcilerPre<StoreState>,
    limits: Limits,
    grant: Arc<ReadGrant>,
    name: Arc<str>,
}

impl Plugin {
    /// Reads, compiles (or loads from cache), links and describes a
    /// component file.
    pub fn load_file(engine: &Engine, path: &Path, limits: Limits) -> Result<Plugin, LoadError> {
        let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Plugin::load(engine, &bytes, limits)
    }

    /// As [`Plugin::load_file`], with the host operator's grants: a plugin
    /// asking for more than its grant does not load, and its reads and
    /// limits are those of the grant.
    pub fn load_granted(
        engine: &Engine,
        path: &Path,
        limits: Limits,
        grants: &GrantsFile,
    ) -> Result<Plugin, LoadError> {
        let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Plugin::load_with(engine, &bytes, limits, GrantFrom::File(grants))
    }

    /// As [`Plugin::load_file`], from bytes.
    pub fn load(engine: &Engine, bytes: &[u8], limits: Limits) -> Result<Plugin, LoadError> {
        Plugin::load_with(engine, bytes, limits, GrantFrom::AsRequested)
    }

    /// As [`Plugin::load`], under a grant given whole (a plugin object's).
    pub fn load_granted_by(
        engine: &Engine,
        bytes: &[u8],
        limits: Limits,
        grant: Grant,
    ) -> Result<Plugin, LoadError> {
        Plugin::load_with(engine, bytes, limits, GrantFrom::Given(Box::new(grant)))
    }

    /// Loads under the grant `from` says.
    fn load_with(
        engine: &Engine,
        bytes: &[u8],
        limits: Limits,
        from: GrantFrom<'_>,
    ) -> Result<Plugin, LoadError> {
        error::check_header(bytes)?;
        let compiled = engine
            .compile(bytes)
            .map_err(|e| LoadError::NotComponent(format!("{e:#}")))?;
        let wasmtime = engine.wasmtime();
        let ty = compiled.component.component_type();
        let imports = ty.imports(wasmtime).map(|(n, _)| n.to_string()).collect();
        let exports = ty.exports(wasmtime).map(|(n, _)| n.to_string()).collect();
        engine::check_exports(wasmtime, &compiled.component)
            .map_err(|e| LoadError::Contract(e.to_string()))?;
        let instance_pre = engine
            .linker()
            .instantiate_pre(&compiled.component)
            .map_err(|e| LoadError::contract(&e))?;
        let pre = ReconcilerPre::new(instance_pre).map_err(|e| LoadError::contract(&e))?;
        let info = ComponentInfo {
            digest: compiled.digest,
            size_bytes: bytes.len(),
            imports,
            exports,
            compile_time: compiled.elapsed,
            from_cache: compiled.from_cache,
        };
        let mut sandbox = Sandbox {
            engine: engine.clone(),
            pre,
            limits,
            grant: Arc::new(ReadGrant::none()),
            name: Arc::from("(describe)"),
        };
        let (described, _) =
            sandbox.call(&CallContext::offline("describe"), |r, s| r.call_describe(s));
        let registration = described.map_err(LoadError::Describe)?;
        registration::validate(&registration)?;
        let (grant, place) = match from {
            GrantFrom::File(file) => (file.grant_for(&registration), GrantPlace::File),
            GrantFrom::Given(grant) => (*grant, GrantPlace::Object),
            GrantFrom::AsRequested => (Grant::as_requested(&registration), GrantPlace::File),
        };
        let missing = grant.missing(&registration);
        if !missing.is_empty() {
            return Err(LoadError::NotGranted {
                plugin: registration.name.clone(),
                missing,
                place,
            });
        }
        sandbox.limits = grant.limits(&sandbox.limits);
        sandbox.grant = Arc::new(grant.read_grant(&registration));
        sandbox.name = Arc::from(registration.name.as_str());
        Ok(Plugin {
            sandbox,
            registration,
            info,
            grant,
        })
    }

    pub fn name(&self) -> &str {
        &self.sandbox.name
    }

    pub fn registration(&self) -> &Registration {
        &self.registration
    }

    pub fn info(&self) -> &ComponentInfo {
        &self.info
    }

    pub fn limits(&self) -> &Limits {
        &self.sandbox.limits
    }

    pub fn grant(&self) -> &Grant {
        &self.grant
    }

    /// Runs one reconcile in a fresh sandbox.
    pub fn reconcile(
        &self,
        request: &Request,
        ctx: &CallContext,
    ) -> (Result<Outcome, CallError>, CallStats) {
        let (result, stats) = self.sandbox.call(ctx, |r, s| r.call_reconcile(s, request));
        let outcome = result.and_then(|answer| match answer {
            Ok(response) => Outcome::decode(response).map_err(CallError::InvalidOutput),
            Err(e) => Err(CallError::Plugin(e.into())),
        });
        (outcome, stats)
    }

    /// Asks which parents a related object concerns.
    pub fn map(&self, related: &str, ctx: &CallContext) -> Result<Vec<ObjectRef>, CallError> {
        self.sandbox
            .call(ctx, |r, s| r.call_map_related(s, related))
            .0
    }
}

impl Sandbox {
    /// Instantiates the pre-linked component in a new store and runs `f`.
    fn call<R>(
        &self,
        ctx: &CallContext,
        f: impl FnOnce(&Reconciler, &mut Store<StoreState>) -> wasmtime::Result<R>,
    ) -> (Result<R, CallError>, CallStats) {
        let start = Instant::now();
        let env = CallEnv {
            plugin: self.name.clone(),
            subject: ctx.subject.clone(),
            namespace: ctx.namespace.clone(),
            cluster: ctx.cluster.clone(),
            grant: self.grant.clone(),
            memory_bytes: self.limits.memory_bytes,
            output_bytes: self.limits.output_bytes,
            fixed_time: ctx.fixed_time,
        };
        let mut store = match self.engine.store(StoreState::new(env), &self.limits) {
            Ok(store) => store,
            Err(e) => {
                return (
                    Err(self.trap(TrapReason::Instantiate, &e, None)),
                    CallStats::default(),
                );
            }
        };
        let result = match self.pre.instantiate(&mut store) {
            Ok(instance) => f(&instance, &mut store).map_err(|e| {
                let reason = TrapReason::of(&e);
                self.trap(reason, &e, store.data().last_stderr_line())
            }),
            Err(e) => {
                let reason = match TrapReason::of(&e) {
                    TrapReason::Other => TrapReason::Instantiate,
                    r => r,
                };
                Err(self.trap(reason, &e, store.data().last_stderr_line()))
            }
        };
        store.data().flush_output();
        let stats = CallStats {
            duration: start.elapsed(),
            memory_peak: store.data().limiter.memory_peak,
        };
        (result, stats)
    }

    fn trap(&self, reason: TrapReason, error: &wasmtime::Error, said: Option<String>) -> CallError {
        let mut detail = match reason {
            TrapReason::Timeout => format!(
                "ran past its {:?} limit (raised by `limits.timeoutMs` in the grants file or \
                 the Plugin object; offline, by `--timeout-ms`)",
                self.limits.timeout
            ),
            TrapReason::MemoryLimit => format!(
                "{} (raised by `limits.memoryMib` in the grants file or the Plugin object; \
                 offline, by `--memory-mib`)",
                error.root_cause()
            ),
            _ => format!("{}", error.root_cause()),
        };
        if let Some(line) = said {
            detail.push_str(&format!(
                "; plugin stderr: {}",
                crate::bounded::message(&line)
            ));
        }
        CallError::Trap { reason, detail }
    }
}
