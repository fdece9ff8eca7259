//! The Wasm engine: one `wasmtime::Engine` for the whole host, compiled
//! components cached on disk, a fresh sandbox per call.
//!
//! Why this shape:
//! - **One engine** so that compiled code, the instance pool and the epoch
//!   clock are shared by every plugin.
//! - **Pooling allocator** with copy-on-write memory images: a new instance
//!   reuses a pre-reserved slot instead of mapping memory, which keeps the
//!   per-reconcile cost in microseconds. `linear_memory_keep_resident` keeps
//!   the first pages of a slot resident, so a small reconcile does not fault
//!   its memory in again on every call, and `pagemap_scan` resets only the
//!   pages a call dirtied.
//! - **A fresh `Store` per call**: nothing a plugin leaves in memory survives
//!   to the next reconcile, so no state leaks between parents or tenants.
//! - **Epoch interruption** for time limits: a background thread ticks the
//!   epoch, and a store's deadline is a number of ticks. Cheaper than fuel
//!   (no per-instruction accounting), and enough to stop a runaway loop.

mod cache;
mod clock;
mod limits;
mod output;
mod progress;
pub mod state;
mod trap;
mod trim;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Enabled, InstanceAllocationStrategy, PoolingAllocationConfig, Store};

pub use cache::{CacheCounters, CompileCache, Compiled, Rejection};
pub use limits::Limits;
pub use output::CapturedOutput;
pub use progress::Report;
pub use state::StoreState;
pub use trap::TrapReason;

/// How many idle memory slots the pool keeps warm (resident, mapped for
/// the module that last used them) before reusing them for others.
const WARM_SLOTS: u32 = 16;

/// How often the epoch advances; a time limit is rounded up to this.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Settings of the shared engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Use the pooling instance allocator (fast instantiation). Off, every
    /// instance maps and unmaps its own memory (slower; useful to compare).
    pub pooling: bool,
    /// How many instances may be alive at once in the pool: an upper bound
    /// on concurrent reconciles across all plugins.
    pub pool_instances: u32,
    /// Largest linear memory any plugin may be given (a plugin's own limit
    /// is at most this).
    pub max_memory_bytes: usize,
    /// Where compiled components are cached; `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
    /// Count fuel (instructions) as well as time, for deterministic budgets.
    pub fuel: bool,
    /// Enforce time limits with epoch interruption. Off only to measure
    /// what the limit costs (`cargo xtask bench`): a plugin could then run
    /// forever.
    pub epoch: bool,
    /// Where a long compile's progress is said ([`progress`]).
    pub progress: Report,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            pooling: true,
            pool_instances: 64,
            max_memory_bytes: 1 << 30,
            cache_dir: CompileCache::default_dir(),
            fuel: false,
            epoch: true,
            progress: Report::Log,
        }
    }
}

/// The shared engine, cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    wasmtime: wasmtime::Engine,
    /// Advances the epoch while calls are in flight (`None`: no time limit).
    clock: Option<Arc<clock::Clock>>,
    /// What the clock thread ticks, through a weak reference.
    _ticked: Arc<wasmtime::Engine>,
    linker: Linker<StoreState>,
    cache: Option<CompileCache>,
    config: EngineConfig,
}

impl Engine {
    /// Builds the engine and starts its epoch clock.
    pub fn new(config: EngineConfig) -> anyhow::Result<Engine> {
        trim::bound_arena_tops();
        let mut wasm = Config::new();
        wasm.wasm_component_model(true)
            .epoch_interruption(config.epoch)
            .consume_fuel(config.fuel)
            .memory_init_cow(true)
            // Bounded stack: deep recursion traps instead of hurting the host.
            .max_wasm_stack(1 << 20);
        if config.pooling {
            let mut pool = PoolingAllocationConfig::new();
            let n = config.pool_instances;
            pool.total_component_instances(n)
                // A component holds several core instances (the program, a
                // libc, the WASI adapter...), each with at most one memory.
                .total_core_instances(n * 16)
                .total_memories(n * 4)
                .total_tables(n * 8)
                .max_memory_size(config.max_memory_bytes)
                .max_core_instance_size(4 << 20)
                .max_component_instance_size(4 << 20)
                .linear_memory_keep_resident(4 << 20)
                // Unused slots keep what they kept resident. Left at
                // wasmtime's default (100), every new build's instances
                // went to never-used slots while fewer than 100 sat idle,
                // so each hot swap added about 1 MiB of resident memory
                // until 100 slots held some (measured: +34 MiB over 40
                // swaps). A few idle slots are enough for several
                // plugins' affinity; past that, idle ones are reused.
                .max_unused_warm_slots(WARM_SLOTS)
                .table_keep_resident(64 << 10)
                // With PAGEMAP_SCAN (Linux 6.7+) only the pages a call
                // dirtied are reset, instead of memset over the whole
                // resident prefix: most of a reconcile's cost otherwise.
                .pagemap_scan(Enabled::Auto);
            wasm.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        }
        let wasmtime = wasmtime::Engine::new(&wasm)?;
        let mut linker = Linker::new(&wasmtime);
        state::add_to_linker(&mut linker)?;
        let cache = match &config.cache_dir {
            Some(dir) => Some(CompileCache::new(dir.clone(), &wasmtime)?),
            None => None,
        };
        let ticked = Arc::new(wasmtime.clone());
        let clock = config.epoch.then(|| start_epoch_clock(&ticked));
        let inner = Arc::new(Inner {
            wasmtime,
            clock,
            _ticked: ticked,
            linker,
            cache,
            config,
        });
        Ok(Engine { inner })
    }

    pub fn wasmtime(&self) -> &wasmtime::Engine {
        &self.inner.wasmtime
    }

    pub fn linker(&self) -> &Linker<StoreState> {
        &self.inner.linker
    }

    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// Compiles a component, or loads it from the disk cache when this exact
    /// component was compiled before by a compatible engine. What the
    /// compile freed is handed back to the OS ([`trim`]).
    pub fn compile(&self, bytes: &[u8]) -> anyhow::Result<Compiled> {
        let mib = bytes.len() as f64 / f64::from(1 << 20);
        let note = match self.inner.cache {
            Some(_) => " (the first time for this build: the compile cache keeps it)",
            None => " (no compile cache: every start compiles)",
        };
        let what = format!("a {mib:.1} MiB component");
        let watch = progress::watch(what, note, self.inner.config.progress);
        let compiled = match &self.inner.cache {
            Some(cache) => cache.load_or_compile(&self.inner.wasmtime, bytes),
            None => Ok(Compiled::fresh(&self.inner.wasmtime, bytes)?),
        };
        drop(watch);
        trim::release_freed_memory();
        compiled
    }

    /// What the compile cache did so far (`None`: no cache).
    pub fn cache_counters(&self) -> Option<Arc<CacheCounters>> {
        self.inner.cache.as_ref().map(CompileCache::counters)
    }

    /// A fresh store for one call, with the limits applied.
    pub fn store(&self, state: StoreState, limits: &Limits) -> wasmtime::Result<Store<StoreState>> {
        let mut state = state;
        state.ticking = self.inner.clock.as_ref().map(|c| c.ticking());
        let mut store = Store::new(&self.inner.wasmtime, state);
        store.limiter(|s| &mut s.limiter);
        let ticks = limits
            .timeout
            .as_nanos()
            .div_ceil(EPOCH_TICK.as_nanos())
            .max(1);
        store.set_epoch_deadline(u64::try_from(ticks).unwrap_or(u64::MAX));
        if self.inner.config.fuel {
            store.set_fuel(limits.fuel.unwrap_or(u64::MAX))?;
        }
        Ok(store)
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(clock) = &self.clock {
            clock.stop();
        }
    }
}

/// Starts the clock that advances the epoch while calls run. The thread
/// holds only a weak reference, so it never keeps the engine alive.
fn start_epoch_clock(ticked: &Arc<wasmtime::Engine>) -> Arc<clock::Clock> {
    match clock::Clock::start(
        Arc::downgrade(ticked),
        wasmtime::Engine::increment_epoch,
        EPOCH_TICK,
    ) {
        Ok(clock) => clock,
        Err(e) => {
            // Without the clock no time limit fires; say so loudly rather
            // than run plugins unbounded without notice.
            tracing::error!(error = %e, "could not start the epoch clock: time limits are off");
            Arc::new(clock::Clock::default())
        }
    }
}

/// A component without one of the world's exports.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "component does not implement {}: missing export `{want}` (it exports: {found})",
    crate::contract::PACKAGE
)]
pub struct MissingExport {
    pub want: &'static str,
    /// What it exports instead (`none`).
    pub found: String,
}

/// Checks that a component exports the reconciler world's functions, naming
/// the first one that is missing; wasmtime's own error for this is less
/// direct.
pub fn check_exports(
    engine: &wasmtime::Engine,
    component: &Component,
) -> Result<(), MissingExport> {
    let ty = component.component_type();
    let exports: Vec<String> = ty
        .exports(engine)
        .map(|(name, _)| name.to_string())
        .collect();
    for want in crate::contract::REQUIRED_EXPORTS {
        if !exports.iter().any(|e| e == want) {
            let found = if exports.is_empty() {
                "none".to_string()
            } else {
                exports.join(", ")
            };
            return Err(MissingExport { want, found });
        }
    }
    Ok(())
}
