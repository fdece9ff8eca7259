//! The host's metrics, kept in a `prometheus-client` registry and exposed in
//! the Prometheus text format 0.0.4.
//!
//! The names are controller-runtime's where one exists
//! (`controller_runtime_reconcile_total`, `workqueue_depth`, ...), so the
//! dashboards and alerts written for Go operators work unchanged, plus
//! `operon_*` figures per plugin. Each family's label set is a struct
//! (`#[derive(EncodeLabelSet)]`): a series with a label too many or too few
//! does not compile.
//!
//! Two conventions of `prometheus-client` shape the registrations below: the
//! encoder appends `_total` to a counter's name (so counters are registered
//! without it) and a `.` to every help text (so ours have none). Families are
//! registered in the order they are rendered; one without series is not
//! shown, as in client_golang.
//!
//! Updates come from the reconcile hot path: a family is a read-locked map,
//! and an update allocates only the label set it looks the series up with.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use prometheus_client::encoding::{EncodeLabelSet, prometheus_text};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Metric, Registry};

use super::cache_metrics::CacheCollector;
use super::process_metrics::ProcessCollector;
use crate::engine::CacheCounters;

/// Buckets of `controller_runtime_reconcile_time_seconds` (controller-runtime's).
const RECONCILE_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
/// Buckets of the plugin call duration: a Wasm call is bounded by its time limit.
const PLUGIN_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Exponential buckets of the time an item waits in a work queue.
const QUEUE_BUCKETS: &[f64] = &[1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 0.1, 1.0, 10.0];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ControllerLabels {
    controller: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    controller: String,
    result: String,
}

/// A work queue, named after its controller.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabels {
    name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginLabels {
    plugin: String,
}

/// A trap's or a rejected build's reason.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    plugin: String,
    reason: String,
}

/// What happened to one desired child: `unchanged` (no request sent) or
/// why it was applied (`absent`, `changed`, `drifted`, `deleting`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChildApplyLabels {
    plugin: String,
    result: String,
}

/// A refused write's HTTP code (`none` when the API server did not answer).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabels {
    plugin: String,
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RevisionLabels {
    plugin: String,
    revision: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RevisionResultLabels {
    plugin: String,
    revision: String,
    result: String,
}

/// What started a rollback: `auto` or `manual`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TriggerLabels {
    plugin: String,
    trigger: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CandidateLabels {
    plugin: String,
    candidate: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

/// A failed list or watch: its kind and why (the runtime's `WatchFailure`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WatchErrorLabels {
    kind: String,
    cause: String,
}

/// A leader election Lease, by name (client-go's label).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LeaseLabels {
    name: String,
}

/// A change of this replica's role: `to` is `leader` or `standby`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TransitionLabels {
    name: String,
    to: String,
}

type Histograms<S> = Family<S, Histogram, fn() -> Histogram>;

/// Registers `metric` under `name` and hands back the caller's copy (a
/// family is a shared handle: both see the same series).
fn register<M: Metric + Clone>(registry: &mut Registry, name: &str, help: &str, metric: M) -> M {
    registry.register(name, help, metric.clone());
    metric
}

fn plugin(name: &str) -> PluginLabels {
    PluginLabels {
        plugin: name.into(),
    }
}

fn queue(name: &str) -> QueueLabels {
    QueueLabels { name: name.into() }
}

/// controller-runtime's reconcile and work queue families.
struct Reconciles {
    total: Family<ResultLabels, Counter>,
    time: Histograms<ControllerLabels>,
    errors: Family<ControllerLabels, Counter>,
    queue_depth: Family<QueueLabels, Gauge>,
    queue_adds: Family<QueueLabels, Counter>,
    queue_retries: Family<QueueLabels, Counter>,
    queue_duration: Histograms<QueueLabels>,
}

impl Reconciles {
    fn register(r: &mut Registry) -> Self {
        Reconciles {
            total: register(
                r,
                "controller_runtime_reconcile",
                "Total number of reconciliations per controller and result",
                Family::default(),
            ),
            time: register(
                r,
                "controller_runtime_reconcile_time_seconds",
                "Length of time per reconciliation per controller",
                Family::new_with_constructor(|| Histogram::new(RECONCILE_BUCKETS.iter().copied())),
            ),
            errors: register(
                r,
                "controller_runtime_reconcile_errors",
                "Total number of reconciliation errors per controller",
                Family::default(),
            ),
            queue_depth: register(
                r,
                "workqueue_depth",
                "Current depth of the work queue",
                Family::default(),
            ),
            queue_adds: register(
                r,
                "workqueue_adds",
                "Total number of adds handled by the work queue",
                Family::default(),
            ),
            queue_retries: register(
                r,
                "workqueue_retries",
                "Total number of retries handled by the work queue",
                Family::default(),
            ),
            queue_duration: register(
                r,
                "workqueue_queue_duration_seconds",
                "How long in seconds an item stays in the work queue before being requested",
                Family::new_with_constructor(|| Histogram::new(QUEUE_BUCKETS.iter().copied())),
            ),
        }
    }
}

/// Per plugin: its calls, their cost and the admission limit.
struct Calls {
    duration: Histograms<PluginLabels>,
    traps: Family<ReasonLabels, Counter>,
    memory_peak: Family<PluginLabels, Gauge<u64, AtomicU64>>,
    active_revision: Family<RevisionLabels, Gauge>,
    inflight: Family<PluginLabels, Gauge>,
    inflight_peak: Family<PluginLabels, Gauge>,
    admission_waits: Family<PluginLabels, Counter>,
    status_write_failures: Family<CodeLabels, Counter>,
    child_applies: Family<ChildApplyLabels, Counter>,
}

impl Calls {
    fn register(r: &mut Registry) -> Self {
        Calls {
            duration: register(
                r,
                "operon_plugin_reconcile_duration_seconds",
                "Time spent inside the plugin's Wasm reconcile call",
                Family::new_with_constructor(|| Histogram::new(PLUGIN_BUCKETS.iter().copied())),
            ),
            traps: register(
                r,
                "operon_plugin_traps",
                "Total number of plugin calls that trapped, by reason",
                Family::default(),
            ),
            memory_peak: register(
                r,
                "operon_plugin_memory_peak_bytes",
                "Largest linear memory seen in one plugin call",
                Family::default(),
            ),
            active_revision: register(
                r,
                "operon_plugin_active_revision",
                "The active revision of each plugin (value is always 1)",
                Family::default(),
            ),
            inflight: register(
                r,
                "operon_plugin_inflight",
                "Plugin calls (instances) in flight now",
                Family::default(),
            ),
            inflight_peak: register(
                r,
                "operon_plugin_inflight_peak",
                "Most plugin calls (instances) in flight at once since the start: never above the plugin's admission limit",
                Family::default(),
            ),
            admission_waits: register(
                r,
                "operon_plugin_admission_waits",
                "Plugin calls that waited because the plugin had its admission limit of calls in flight",
                Family::default(),
            ),
            status_write_failures: register(
                r,
                "operon_status_write_failures",
                "Status patches of a parent the API server refused, by HTTP code (none: no answer)",
                Family::default(),
            ),
            child_applies: register(
                r,
                "operon_child_applies",
                "Desired children by what the host did: unchanged (the cached child already was what the plugin wants: no request) or applied because it was absent, changed, drifted or deleting",
                Family::default(),
            ),
        }
    }
}

/// Shared watches, one per kind.
struct Watches {
    open: Family<KindLabels, Gauge>,
    events: Family<KindLabels, Counter>,
    errors: Family<WatchErrorLabels, Counter>,
}

impl Watches {
    fn register(r: &mut Registry) -> Self {
        Watches {
            open: register(
                r,
                "operon_watches",
                "Number of open watches per kind (plugins share one watch per kind)",
                Family::default(),
            ),
            events: register(
                r,
                "operon_watch_events",
                "Total number of watch events received per kind",
                Family::default(),
            ),
            errors: register(
                r,
                "operon_watch_errors",
                "Failed list or watch requests per kind and cause: expired (410, the history is gone: relisted), throttled (429), refused (another answer), connection (no answer) -- each retried with backoff; the cache is stale until one succeeds",
                Family::default(),
            ),
        }
    }
}

/// Hot swap: revisions made active, refused, rolled back, shadowed.
struct Swaps {
    swaps: Family<PluginLabels, Counter>,
    rejected: Family<ReasonLabels, Counter>,
    rollbacks: Family<TriggerLabels, Counter>,
    revision_reconciles: Family<RevisionResultLabels, Counter>,
    shadow_reconciles: Family<CandidateLabels, Counter>,
    shadow_diffs: Family<CandidateLabels, Counter>,
    shadow_errors: Family<CandidateLabels, Counter>,
}

impl Swaps {
    fn register(r: &mut Registry) -> Self {
        Swaps {
            swaps: register(
                r,
                "operon_plugin_swaps",
                "Revisions made active while the host ran (new builds, rollbacks), per plugin",
                Family::default(),
            ),
            rejected: register(
                r,
                "operon_plugin_rejected_builds",
                "Builds found in the plugin directory and refused (the running revision stayed), by reason",
                Family::default(),
            ),
            rollbacks: register(
                r,
                "operon_plugin_rollbacks",
                "Returns to an earlier revision: trigger is auto (its failures) or manual (operon plugins rollback)",
                Family::default(),
            ),
            revision_reconciles: register(
                r,
                "operon_plugin_revision_reconciles",
                "Reconciles per plugin revision and result (success or failure of the plugin's call)",
                Family::default(),
            ),
            shadow_reconciles: register(
                r,
                "operon_plugin_shadow_reconciles",
                "Dry-run reconciles of a shadow candidate beside the active revision",
                Family::default(),
            ),
            shadow_diffs: register(
                r,
                "operon_plugin_shadow_diffs",
                "Shadow reconciles whose desired output differed from the active revision's",
                Family::default(),
            ),
            shadow_errors: register(
                r,
                "operon_plugin_shadow_errors",
                "Shadow reconciles where the candidate failed (trap, error, invalid output) and the active revision did not",
                Family::default(),
            ),
        }
    }
}

/// Leader election (`--leader-elect`): client-go's status gauge, so the
/// alerts written for Go controllers work, and operon's transitions.
struct Leadership {
    status: Family<LeaseLabels, Gauge>,
    transitions: Family<TransitionLabels, Counter>,
}

impl Leadership {
    fn register(r: &mut Registry) -> Self {
        Leadership {
            status: register(
                r,
                "leader_election_master_status",
                "Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, 1 indicates master. 'name' is the string used to identify the lease",
                Family::default(),
            ),
            transitions: register(
                r,
                "operon_leader_transitions",
                "Changes of this replica's role for the lease: to leader (acquired) or to standby (released or lost)",
                Family::default(),
            ),
        }
    }
}

/// The host's metrics. Cheap to update from any thread; see the module docs.
pub struct Metrics {
    registry: Registry,
    reconciles: Reconciles,
    calls: Calls,
    watches: Watches,
    swaps: Swaps,
    leadership: Leadership,
    /// Each plugin's active revision label, so that the series of the one
    /// it replaces can be removed (a family cannot be searched by plugin).
    active: Mutex<HashMap<String, String>>,
    /// The engine's compile cache counters, rendered last.
    cache: CacheCollector,
    process: ProcessCollector,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let cache = CacheCollector::default();
        registry.register_collector(Box::new(cache.clone()));
        let process = ProcessCollector::default();
        registry.register_collector(Box::new(process.clone()));
        Metrics {
            cache,
            process,
            reconciles: Reconciles::register(&mut registry),
            calls: Calls::register(&mut registry),
            watches: Watches::register(&mut registry),
            swaps: Swaps::register(&mut registry),
            leadership: Leadership::register(&mut registry),
            registry,
            active: Mutex::default(),
        }
    }

    /// Counts `n` desired children by what the host did: `unchanged`,
    /// or why it applied them (`absent`, `changed`, `drifted`,
    /// `deleting`).
    pub fn child_applies(&self, plugin: &str, result: &str, n: u64) {
        if n == 0 {
            return;
        }
        let labels = ChildApplyLabels {
            plugin: plugin.into(),
            result: result.into(),
        };
        self.calls.child_applies.get_or_create(&labels).inc_by(n);
    }

    /// Counts one reconcile; `result` is `success`, `error`, `requeue` or `requeue_after`.
    pub fn reconcile_total(&self, controller: &str, result: &str) {
        let labels = ResultLabels {
            controller: controller.into(),
            result: result.into(),
        };
        self.reconciles.total.get_or_create(&labels).inc();
    }

    pub fn reconcile_time(&self, controller: &str, seconds: f64) {
        let labels = ControllerLabels {
            controller: controller.into(),
        };
        self.reconciles.time.get_or_create(&labels).observe(seconds);
    }

    pub fn reconcile_errors_total(&self, controller: &str) {
        let labels = ControllerLabels {
            controller: controller.into(),
        };
        self.reconciles.errors.get_or_create(&labels).inc();
    }

    pub fn workqueue_depth(&self, name: &str, value: i64) {
        self.reconciles
            .queue_depth
            .get_or_create(&queue(name))
            .set(value);
    }

    pub fn workqueue_adds_total(&self, name: &str) {
        self.reconciles.queue_adds.get_or_create(&queue(name)).inc();
    }

    pub fn workqueue_retries_total(&self, name: &str) {
        self.reconciles
            .queue_retries
            .get_or_create(&queue(name))
            .inc();
    }

    pub fn workqueue_queue_duration(&self, name: &str, seconds: f64) {
        let family = &self.reconciles.queue_duration;
        family.get_or_create(&queue(name)).observe(seconds);
    }

    /// Time spent inside the Wasm call only.
    pub fn plugin_reconcile_duration(&self, plugin_name: &str, seconds: f64) {
        let family = &self.calls.duration;
        family.get_or_create(&plugin(plugin_name)).observe(seconds);
    }

    pub fn plugin_trap(&self, plugin: &str, reason: &str) {
        let labels = ReasonLabels {
            plugin: plugin.into(),
            reason: reason.into(),
        };
        self.calls.traps.get_or_create(&labels).inc();
    }

    /// Records a call's peak memory; the gauge keeps the largest seen.
    pub fn plugin_memory_peak(&self, plugin_name: &str, bytes: u64) {
        let family = &self.calls.memory_peak;
        let gauge = family.get_or_create(&plugin(plugin_name));
        gauge.inner().fetch_max(bytes, Ordering::Relaxed);
    }

    /// Marks `revision` as the plugin's active one, removing its previous series.
    pub fn plugin_active_revision(&self, plugin: &str, revision: &str) {
        let mut active = self.active.lock().unwrap_or_else(PoisonError::into_inner);
        let previous = active.insert(plugin.to_string(), revision.to_string());
        if previous.as_deref() == Some(revision) {
            return;
        }
        let family = &self.calls.active_revision;
        if let Some(previous) = previous {
            family.remove(&RevisionLabels {
                plugin: plugin.into(),
                revision: previous,
            });
        }
        let labels = RevisionLabels {
            plugin: plugin.into(),
            revision: revision.into(),
        };
        family.get_or_create(&labels).set(1);
    }

    /// One more (`+1`) or one fewer (`-1`) call of the plugin in flight; the
    /// peak gauge keeps the largest count seen.
    pub fn plugin_inflight(&self, plugin_name: &str, delta: i64) {
        let labels = plugin(plugin_name);
        let now = self.calls.inflight.get_or_create(&labels).inc_by(delta) + delta;
        let peak = self.calls.inflight_peak.get_or_create(&labels);
        let peak: &AtomicI64 = peak.inner();
        peak.fetch_max(now, Ordering::Relaxed);
    }

    pub fn plugin_admission_wait(&self, plugin_name: &str) {
        let family = &self.calls.admission_waits;
        family.get_or_create(&plugin(plugin_name)).inc();
    }

    /// The plugin no longer runs (its component was removed): its active
    /// revision series goes.
    pub fn plugin_unloaded(&self, plugin: &str) {
        let mut active = self.active.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(revision) = active.remove(plugin) {
            self.calls.active_revision.remove(&RevisionLabels {
                plugin: plugin.into(),
                revision,
            });
        }
    }

    pub fn plugin_swap(&self, plugin_name: &str) {
        self.swaps.swaps.get_or_create(&plugin(plugin_name)).inc();
    }

    pub fn plugin_rejected(&self, plugin: &str, reason: &str) {
        let labels = ReasonLabels {
            plugin: plugin.into(),
            reason: reason.into(),
        };
        self.swaps.rejected.get_or_create(&labels).inc();
    }

    pub fn plugin_rollback(&self, plugin: &str, trigger: &str) {
        let labels = TriggerLabels {
            plugin: plugin.into(),
            trigger: trigger.into(),
        };
        self.swaps.rollbacks.get_or_create(&labels).inc();
    }

    pub fn revision_reconcile(&self, plugin: &str, revision: &str, ok: bool) {
        let labels = RevisionResultLabels {
            plugin: plugin.into(),
            revision: revision.into(),
            result: if ok { "success" } else { "failure" }.into(),
        };
        self.swaps.revision_reconciles.get_or_create(&labels).inc();
    }

    /// One shadow reconcile; `differed` when its output was not the active
    /// revision's, `failed` when the candidate's call failed.
    pub fn shadow_reconcile(&self, plugin: &str, candidate: &str, differed: bool, failed: bool) {
        let labels = CandidateLabels {
            plugin: plugin.into(),
            candidate: candidate.into(),
        };
        self.swaps.shadow_reconciles.get_or_create(&labels).inc();
        if differed {
            self.swaps.shadow_diffs.get_or_create(&labels).inc();
        }
        if failed {
            self.swaps.shadow_errors.get_or_create(&labels).inc();
        }
    }

    /// A status patch of a parent failed; `code` is the HTTP code or `none`.
    pub fn status_write_failure(&self, plugin: &str, code: &str) {
        let labels = CodeLabels {
            plugin: plugin.into(),
            code: code.into(),
        };
        self.calls
            .status_write_failures
            .get_or_create(&labels)
            .inc();
    }

    pub fn watches(&self, kind: &str, value: i64) {
        let labels = KindLabels { kind: kind.into() };
        self.watches.open.get_or_create(&labels).set(value);
    }

    pub fn watch_events_total(&self, kind: &str) {
        let labels = KindLabels { kind: kind.into() };
        self.watches.events.get_or_create(&labels).inc();
    }

    pub fn watch_errors_total(&self, kind: &str, cause: &str) {
        let labels = WatchErrorLabels {
            kind: kind.into(),
            cause: cause.into(),
        };
        self.watches.errors.get_or_create(&labels).inc();
    }

    /// Whether this replica holds the lease `name` (1) or stands by (0).
    pub fn leader_status(&self, name: &str, leading: bool) {
        let labels = LeaseLabels { name: name.into() };
        let gauge = self.leadership.status.get_or_create(&labels);
        gauge.set(i64::from(leading));
    }

    /// This replica became the leader (`leading`) or stopped being it.
    pub fn leader_transition(&self, name: &str, leading: bool) {
        let labels = TransitionLabels {
            name: name.into(),
            to: if leading { "leader" } else { "standby" }.into(),
        };
        self.leadership.transitions.get_or_create(&labels).inc();
    }

    /// The whole registry in the Prometheus text format 0.0.4 (what
    /// [`prometheus_text::CONTENT_TYPE`] names).
    /// Renders the engine's compile cache counters from now on.
    pub fn watch_compile_cache(&self, counters: Arc<CacheCounters>) {
        let _ = self.cache.0.set(counters);
    }

    /// Renders this process's memory, file descriptors and tasks too.
    pub fn watch_process(&self) {
        self.process
            .0
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        // Writing to a String does not fail, nor do the encoders of these
        // families; should one ever, a scrape gets what was written so far.
        if let Err(e) = prometheus_text::encode(&mut out, &self.registry) {
            tracing::warn!(error = %e, "encoding the metrics failed");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;

    /// `/metrics` of the hand-written registry this module replaced, with
    /// every family touched by [`touch_every_family`]: the reference the
    /// output must stay compatible with.
    const BEFORE: &str = include_str!("testdata/metrics-before.txt");

    /// One update of every family, as the capture of [`BEFORE`] made them.
    fn touch_every_family(m: &Metrics) {
        m.reconcile_total("pg", "success");
        m.reconcile_time("pg", 0.2);
        m.reconcile_errors_total("pg");
        m.workqueue_depth("pg", 3);
        m.workqueue_adds_total("pg");
        m.workqueue_retries_total("pg");
        m.workqueue_queue_duration("pg", 0.5);
        m.plugin_reconcile_duration("pg", 0.01);
        m.plugin_trap("pg", "fuel");
        m.plugin_memory_peak("pg", 1 << 20);
        m.plugin_active_revision("pg", "0123456789ab");
        m.plugin_inflight("pg", 1);
        m.plugin_admission_wait("pg");
        m.plugin_swap("pg");
        m.plugin_rejected("pg", "contract");
        m.plugin_rollback("pg", "manual");
        m.revision_reconcile("pg", "0123456789ab", true);
        m.shadow_reconcile("pg", "ba9876543210", true, true);
        m.watches("v1/ConfigMap", 1);
        m.watch_events_total("v1/ConfigMap");
    }

    /// What a scraper learns from an exposition, values aside.
    #[derive(Debug, Default, PartialEq)]
    struct Shape {
        /// (sample name, family type, label names) of every sample line.
        series: BTreeSet<(String, String, Vec<String>)>,
        /// Help text per family.
        help: BTreeMap<String, String>,
        /// Bucket bounds per histogram sample name, as numbers.
        buckets: BTreeMap<String, Vec<f64>>,
    }

    /// One sample line: (name, labels in order, value).
    fn parse_sample(line: &str) -> (String, Vec<(String, String)>, f64) {
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let (name, mut rest) = line.split_at(name_end);
        let mut labels = Vec::new();
        if let Some(inner) = rest.strip_prefix('{') {
            let mut chars = inner.char_indices();
            let mut key = String::new();
            while let Some((i, c)) = chars.next() {
                match c {
                    '}' => {
                        rest = &inner[i + 1..];
                        break;
                    }
                    ',' => {}
                    '=' => {
                        assert_eq!(chars.next().map(|(_, c)| c), Some('"'), "{line}");
                        let mut value = String::new();
                        while let Some((_, c)) = chars.next() {
                            match c {
                                '"' => break,
                                '\\' => match chars.next().map(|(_, c)| c) {
                                    Some('n') => value.push('\n'),
                                    Some(c) => value.push(c),
                                    None => panic!("{line}"),
                                },
                                c => value.push(c),
                            }
                        }
                        labels.push((std::mem::take(&mut key), value));
                    }
                    c => key.push(c),
                }
            }
        }
        let value = rest
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("{line}: {e}"));
        (name.to_string(), labels, value)
    }

    fn shape(text: &str) -> Shape {
        let mut shape = Shape::default();
        let mut types: BTreeMap<&str, &str> = BTreeMap::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (family, help) = rest.split_once(' ').unwrap();
                shape.help.insert(family.into(), help.into());
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (family, ty) = rest.split_once(' ').unwrap();
                types.insert(family, ty);
            } else if !line.is_empty() && !line.starts_with('#') {
                let (name, labels, _) = parse_sample(line);
                let family = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| {
                        name.strip_suffix(s)
                            .filter(|f| types.get(f) == Some(&"histogram"))
                    })
                    .unwrap_or(&name);
                let ty = types
                    .get(family)
                    .unwrap_or_else(|| panic!("no TYPE for {name}"));
                if let Some((_, le)) = labels.iter().find(|(k, _)| k == "le") {
                    let bound = if le == "+Inf" {
                        f64::INFINITY
                    } else {
                        le.parse().unwrap()
                    };
                    shape.buckets.entry(name.clone()).or_default().push(bound);
                }
                let names = labels.into_iter().map(|(k, _)| k).collect();
                shape.series.insert((name, ty.to_string(), names));
            }
        }
        shape
    }

    /// The value of the sample `series` (its name and labels exactly as
    /// rendered, such as `operon_watches{kind="x"}`), if rendered.
    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn output_is_compatible_with_the_hand_written_registry() {
        let m = Metrics::new();
        touch_every_family(&m);
        let (before, now) = (shape(BEFORE), shape(&m.render()));
        assert!(before.series.len() > 20, "{before:?}");
        let missing: Vec<_> = before.series.difference(&now.series).collect();
        let extra: Vec<_> = now.series.difference(&before.series).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "missing {missing:?}, extra {extra:?}"
        );
        assert_eq!(now.help, before.help);
        assert_eq!(now.buckets, before.buckets);
        // The same values too: the capture and this test made the same updates.
        let values = |text: &str| -> BTreeSet<String> {
            let samples = text.lines().filter(|l| !l.starts_with('#'));
            samples
                .map(|l| {
                    let (name, mut labels, v) = parse_sample(l);
                    // `le` as a number: 1e-06 and 0.000001 are one bound.
                    for (k, le) in &mut labels {
                        if k == "le" && le != "+Inf" {
                            *le = format!("{:?}", le.parse::<f64>().unwrap());
                        }
                    }
                    format!("{name}{labels:?} {v}")
                })
                .collect()
        };
        assert_eq!(values(&m.render()), values(BEFORE));
    }

    #[test]
    fn renders_counter_gauge_and_histogram_exactly() {
        let m = Metrics::new();
        m.reconcile_total("pg", "success");
        m.reconcile_total("pg", "success");
        m.workqueue_depth("pg", 3);
        m.workqueue_queue_duration("pg", 0.5);
        m.workqueue_queue_duration("pg", 20.0);
        let expected = "\
# HELP controller_runtime_reconcile_total Total number of reconciliations per controller and result.
# TYPE controller_runtime_reconcile_total counter
controller_runtime_reconcile_total{controller=\"pg\",result=\"success\"} 2
# HELP workqueue_depth Current depth of the work queue.
# TYPE workqueue_depth gauge
workqueue_depth{name=\"pg\"} 3
# HELP workqueue_queue_duration_seconds How long in seconds an item stays in the work queue before being requested.
# TYPE workqueue_queue_duration_seconds histogram
workqueue_queue_duration_seconds_bucket{name=\"pg\",le=\"1e-06\"} 0
workqueue_queue_duration_seconds_bucket{name=\"pg\",le=\"1e-05\"} 0
workqueue_queue_duration_seconds_bucket{name=\"pg\",le=\"0.0001\"} 0
workqueue_queue_duration_seconds_bucket{name=\"pg\",le=\"0.001\"} 0
workqueue_queue_duration_seconds_bucket{name=\"pg\",le=\"0.01\"} 0
workqueue_queue_duration_seconds_bucket{name=\"pg\",le=\"0.1\"} 0
workqueue_queue_duration_seconds_bucket{name=\"pg\",le=\"1\"} 1
workqueue_queue_duration_seconds_bucket{name=\"pg\",le=\"10\"} 1
workqueue_queue_duration_seconds_bucket{name=\"pg\",le=\"+Inf\"} 2
workqueue_queue_duration_seconds_sum{name=\"pg\"} 20.5
workqueue_queue_duration_seconds_count{name=\"pg\"} 2
";
        assert_eq!(m.render(), expected);
    }

    #[test]
    fn escapes_label_values() {
        let m = Metrics::new();
        m.plugin_trap("a\\b", "say \"hi\"\nthere");
        let text = m.render();
        let series =
            "operon_plugin_traps_total{plugin=\"a\\\\b\",reason=\"say \\\"hi\\\"\\nthere\"}";
        assert_eq!(value(&text, series), Some(1.0), "{text}");
        let (_, labels, _) = parse_sample(text.lines().last().unwrap());
        let want = [("plugin", "a\\b"), ("reason", "say \"hi\"\nthere")];
        let want: Vec<(String, String)> = want.map(|(k, v)| (k.into(), v.into())).into();
        assert_eq!(labels, want);
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        let m = Metrics::new();
        for s in [0.001, 0.007, 0.007, 0.3, 2.0, 100.0] {
            m.reconcile_time("c", s);
        }
        let text = m.render();
        let name = "controller_runtime_reconcile_time_seconds";
        let bucket = |le: &str| {
            value(
                &text,
                &format!("{name}_bucket{{controller=\"c\",le=\"{le}\"}}"),
            )
        };
        assert_eq!(bucket("0.005"), Some(1.0));
        assert_eq!(bucket("0.01"), Some(3.0));
        assert_eq!(bucket("0.25"), Some(3.0));
        assert_eq!(bucket("0.5"), Some(4.0));
        assert_eq!(bucket("2.5"), Some(5.0));
        assert_eq!(bucket("60"), Some(5.0));
        assert_eq!(bucket("+Inf"), Some(6.0));
        let c = "{controller=\"c\"}";
        assert_eq!(value(&text, &format!("{name}_count{c}")), Some(6.0));
        let sum = value(&text, &format!("{name}_sum{c}")).unwrap();
        assert!((sum - 102.315).abs() < 1e-9, "{sum}");
    }

    #[test]
    fn gauges_memory_peak_inflight_and_revisions() {
        let m = Metrics::new();
        m.plugin_memory_peak("p", 100);
        m.plugin_memory_peak("p", 50);
        m.plugin_inflight("p", 1);
        m.plugin_inflight("p", 1);
        m.plugin_inflight("p", -1);
        m.plugin_active_revision("p", "r1");
        m.plugin_active_revision("q", "r1");
        m.plugin_active_revision("p", "r2");
        m.plugin_active_revision("p", "r2");
        m.watches("v1/ConfigMap", 2);
        m.watches("v1/ConfigMap", 1);
        m.workqueue_depth("w", -1);
        let text = m.render();
        let v = |series: &str| value(&text, series);
        assert_eq!(
            v("operon_plugin_memory_peak_bytes{plugin=\"p\"}"),
            Some(100.0)
        );
        assert_eq!(v("operon_plugin_inflight{plugin=\"p\"}"), Some(1.0));
        assert_eq!(v("operon_plugin_inflight_peak{plugin=\"p\"}"), Some(2.0));
        let rev = "operon_plugin_active_revision";
        assert_eq!(v(&format!("{rev}{{plugin=\"p\",revision=\"r1\"}}")), None);
        assert_eq!(
            v(&format!("{rev}{{plugin=\"p\",revision=\"r2\"}}")),
            Some(1.0)
        );
        assert_eq!(
            v(&format!("{rev}{{plugin=\"q\",revision=\"r1\"}}")),
            Some(1.0)
        );
        assert_eq!(v("operon_watches{kind=\"v1/ConfigMap\"}"), Some(1.0));
        assert_eq!(v("workqueue_depth{name=\"w\"}"), Some(-1.0));

        m.plugin_unloaded("q");
        m.plugin_unloaded("never-loaded");
        let text = m.render();
        assert_eq!(
            value(&text, &format!("{rev}{{plugin=\"q\",revision=\"r1\"}}")),
            None
        );
        assert_eq!(
            value(&text, &format!("{rev}{{plugin=\"p\",revision=\"r2\"}}")),
            Some(1.0)
        );
        m.plugin_unloaded("p");
        assert!(!m.render().contains(rev), "{}", m.render());
    }

    #[test]
    fn shadow_counts_diffs_and_errors_apart() {
        let m = Metrics::new();
        m.shadow_reconcile("p", "c", false, false);
        m.shadow_reconcile("p", "c", true, false);
        m.shadow_reconcile("p", "c", true, true);
        m.revision_reconcile("p", "r", false);
        let text = m.render();
        let labels = "{plugin=\"p\",candidate=\"c\"}";
        assert_eq!(
            value(
                &text,
                &format!("operon_plugin_shadow_reconciles_total{labels}")
            ),
            Some(3.0)
        );
        assert_eq!(
            value(&text, &format!("operon_plugin_shadow_diffs_total{labels}")),
            Some(2.0)
        );
        assert_eq!(
            value(&text, &format!("operon_plugin_shadow_errors_total{labels}")),
            Some(1.0)
        );
        let failed = "operon_plugin_revision_reconciles_total{plugin=\"p\",revision=\"r\",result=\"failure\"}";
        assert_eq!(value(&text, failed), Some(1.0));
    }

    #[test]
    fn leader_status_and_transitions() {
        let m = Metrics::new();
        m.leader_status("operon", false);
        assert_eq!(
            value(
                &m.render(),
                "leader_election_master_status{name=\"operon\"}"
            ),
            Some(0.0)
        );
        m.leader_status("operon", true);
        m.leader_transition("operon", true);
        m.leader_transition("operon", false);
        m.leader_transition("operon", true);
        let text = m.render();
        let v = |series: &str| value(&text, series);
        assert_eq!(
            v("leader_election_master_status{name=\"operon\"}"),
            Some(1.0)
        );
        let to = |role: &str| {
            v(&format!(
                "operon_leader_transitions_total{{name=\"operon\",to=\"{role}\"}}"
            ))
        };
        assert_eq!((to("leader"), to("standby")), (Some(2.0), Some(1.0)));
        assert!(
            text.contains("# TYPE leader_election_master_status gauge\n"),
            "{text}"
        );
    }

    #[test]
    fn empty_registry_renders_nothing() {
        assert_eq!(Metrics::new().render(), "");
    }
}
