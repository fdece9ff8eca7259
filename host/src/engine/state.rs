//! What a store holds for one call, and the host functions a plugin may
//! import: WASI (denied everything but clocks, random and captured stdio),
//! `cluster` reads (through the plugin's read grant) and `log`.

use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::limits::Limiter;
use super::output::CapturedOutput;
use crate::contract::bindings::Reconciler;
use crate::contract::bindings::operon::reconciler::{cluster, log};
use crate::contract::cluster::{ClusterReader, ReadError};
use crate::contract::selector::Selector;
use crate::contract::{ClusterError, LogLevel, ReadGrant};

/// Store data of one call.
pub struct StoreState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: Limiter,
    pub(crate) stdout: CapturedOutput,
    pub(crate) stderr: CapturedOutput,
    cluster: Arc<dyn ClusterReader>,
    grant: Arc<ReadGrant>,
    /// Plugin name, for log fields.
    plugin: Arc<str>,
    /// `namespace/name` of the parent being reconciled, for log fields.
    subject: String,
    /// The parent's namespace, for namespace grants.
    namespace: Option<String>,
    /// Keeps the epoch clock ticking while this store lives.
    pub(crate) ticking: Option<super::clock::Ticking>,
}

/// The parts of a call's environment that the caller chooses.
pub struct CallEnv {
    pub plugin: Arc<str>,
    pub subject: String,
    pub namespace: Option<String>,
    pub cluster: Arc<dyn ClusterReader>,
    pub grant: Arc<ReadGrant>,
    pub memory_bytes: usize,
    pub output_bytes: usize,
    /// A fixed wall clock (offline runs with reproducible output).
    pub fixed_time: Option<std::time::SystemTime>,
}

impl StoreState {
    /// A sandbox with nothing granted: no preopened directories, no
    /// environment, no arguments, no network (TCP, UDP and name lookups are
    /// all refused), stdin closed, stdout and stderr captured.
    pub fn new(env: CallEnv) -> StoreState {
        let stdout = CapturedOutput::new(env.output_bytes);
        let stderr = CapturedOutput::new(env.output_bytes);
        let mut wasi = WasiCtxBuilder::new();
        wasi.stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        if let Some(at) = env.fixed_time {
            wasi.wall_clock(FixedClock(at));
        }
        StoreState {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            limiter: Limiter::new(env.memory_bytes),
            stdout,
            stderr,
            cluster: env.cluster,
            grant: env.grant,
            plugin: env.plugin,
            subject: env.subject,
            namespace: env.namespace,
            ticking: None,
        }
    }

    /// Routes what the plugin printed to tracing, one event per line.
    pub fn flush_output(&self) {
        for (stream, out) in [("stdout", &self.stdout), ("stderr", &self.stderr)] {
            let (text, dropped) = out.take();
            for line in text.lines().filter(|l| !l.is_empty()) {
                let line = crate::bounded::message(line);
                tracing::info!(plugin = %self.plugin, parent = %self.subject, stream, "{line}");
            }
            if dropped > 0 {
                tracing::warn!(plugin = %self.plugin, parent = %self.subject, stream, dropped,
                    "plugin output past the limit was dropped");
            }
        }
    }

    /// The last non-empty line of stderr, e.g. a Rust panic message, so a
    /// trap's report says what the plugin said before it died.
    pub fn last_stderr_line(&self) -> Option<String> {
        self.stderr.last_line()
    }

    fn read_allowed(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
    ) -> Result<(), ClusterError> {
        self.grant
            .check(api_version, kind, namespace, self.namespace.as_deref())
            .map_err(|e| ClusterError::Forbidden(e.to_string()))
    }
}

struct FixedClock(std::time::SystemTime);

impl wasmtime_wasi::HostWallClock for FixedClock {
    fn resolution(&self) -> std::time::Duration {
        std::time::Duration::from_secs(1)
    }
    fn now(&self) -> std::time::Duration {
        self.0
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
    }
}

impl WasiView for StoreState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

fn to_wit(e: ReadError) -> ClusterError {
    match e {
        ReadError::Forbidden(m) => ClusterError::Forbidden(m),
        ReadError::UnknownKind(m) => ClusterError::UnknownKind(m),
        ReadError::Invalid(m) => ClusterError::Invalid(m),
    }
}

impl cluster::Host for StoreState {
    fn get(
        &mut self,
        api_version: String,
        kind: String,
        namespace: Option<String>,
        name: String,
    ) -> Result<Option<String>, ClusterError> {
        self.read_allowed(&api_version, &kind, namespace.as_deref())?;
        let found = self
            .cluster
            .get(&api_version, &kind, namespace.as_deref(), &name)
            .map_err(to_wit)?;
        Ok(found.map(|v| v.to_string()))
    }

    fn list(
        &mut self,
        api_version: String,
        kind: String,
        namespace: Option<String>,
        label_selector: Option<String>,
    ) -> Result<Vec<String>, ClusterError> {
        self.read_allowed(&api_version, &kind, namespace.as_deref())?;
        let selector = match label_selector.as_deref() {
            Some(s) => Selector::parse(s).map_err(|e| ClusterError::Invalid(e.to_string()))?,
            None => Selector::everything(),
        };
        let found = self
            .cluster
            .list(&api_version, &kind, namespace.as_deref(), &selector)
            .map_err(to_wit)?;
        Ok(found.iter().map(|v| v.to_string()).collect())
    }
}

impl log::Host for StoreState {
    fn log(&mut self, level: LogLevel, message: String) {
        let (plugin, parent) = (&*self.plugin, &self.subject);
        let message = crate::bounded::message(&message);
        match level {
            LogLevel::Trace => tracing::trace!(plugin, parent, "{message}"),
            LogLevel::Debug => tracing::debug!(plugin, parent, "{message}"),
            LogLevel::Info => tracing::info!(plugin, parent, "{message}"),
            LogLevel::Warn => tracing::warn!(plugin, parent, "{message}"),
            LogLevel::Error => tracing::error!(plugin, parent, "{message}"),
        }
    }
}

impl crate::contract::bindings::operon::reconciler::types::Host for StoreState {}

/// Everything a reconciler may import: WASI (sandboxed as above) and the
/// operon interfaces.
pub fn add_to_linker(linker: &mut Linker<StoreState>) -> anyhow::Result<()> {
    wasmtime_wasi::p2::add_to_linker_sync(linker)?;
    Reconciler::add_to_linker::<StoreState, HasSelf<StoreState>>(linker, |s| s)?;
    Ok(())
}
