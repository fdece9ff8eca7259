//! A small Prometheus registry for a fixed set of families, rendered in the
//! text exposition format 0.0.4.
//!
//! Written here rather than taken from the `prometheus` crate: operon needs
//! about a dozen known families, which take a couple of hundred lines, and the
//! host keeps its dependency tree small (it is the trusted part of the system).
//!
//! Updates come from the reconcile hot path. Each family is one
//! `Mutex<BTreeMap>` held for a lookup and an add; an existing series is found
//! through a borrowed `&[&str]` key, so an update allocates only the first time
//! a series appears.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Mutex, MutexGuard, PoisonError};

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

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// Label values of one series, in the order of its family's label names.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Key(Box<[Box<str>]>);

/// A view of label values shared by [`Key`] and `&[&str]`, so that a map keyed
/// by `Key` can be searched with borrowed strings.
trait LabelValues {
    fn arity(&self) -> usize;
    fn at(&self, i: usize) -> &str;
}

impl LabelValues for Key {
    fn arity(&self) -> usize {
        self.0.len()
    }
    fn at(&self, i: usize) -> &str {
        &self.0[i]
    }
}

impl LabelValues for &[&str] {
    fn arity(&self) -> usize {
        self.len()
    }
    fn at(&self, i: usize) -> &str {
        self[i]
    }
}

impl<'a> Borrow<dyn LabelValues + 'a> for Key {
    fn borrow(&self) -> &(dyn LabelValues + 'a) {
        self
    }
}

// Lexicographic, like the derived order of `Key`, as `Borrow` requires.
impl Ord for dyn LabelValues + '_ {
    fn cmp(&self, other: &Self) -> Ordering {
        let n = self.arity().min(other.arity());
        (0..n)
            .map(|i| self.at(i).cmp(other.at(i)))
            .find(|o| o.is_ne())
            .unwrap_or_else(|| self.arity().cmp(&other.arity()))
    }
}
impl PartialOrd for dyn LabelValues + '_ {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl PartialEq for dyn LabelValues + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}
impl Eq for dyn LabelValues + '_ {}

enum Value {
    Scalar(f64),
    /// Per-bucket (not cumulative) counts; the `+Inf` bucket is `count`.
    Histogram {
        buckets: Box<[u64]>,
        sum: f64,
        count: u64,
    },
}

struct Family {
    name: &'static str,
    help: &'static str,
    kind: Kind,
    labels: &'static [&'static str],
    buckets: &'static [f64],
    series: Mutex<BTreeMap<Key, Value>>,
}

impl Family {
    fn new(
        name: &'static str,
        help: &'static str,
        kind: Kind,
        labels: &'static [&'static str],
    ) -> Self {
        Family {
            name,
            help,
            kind,
            labels,
            buckets: &[],
            series: Mutex::default(),
        }
    }

    fn histogram(
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
        buckets: &'static [f64],
    ) -> Self {
        Family {
            buckets,
            ..Family::new(name, help, Kind::Histogram, labels)
        }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<Key, Value>> {
        // A panic elsewhere must not take the metrics down with it.
        self.series.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies `f` to the series `values`, creating it (zeroed) if missing.
    fn update(&self, values: &[&str], f: impl FnOnce(&mut Value)) {
        debug_assert_eq!(values.len(), self.labels.len(), "{}", self.name);
        let mut map = self.lock();
        if let Some(v) = map.get_mut(&values as &dyn LabelValues) {
            return f(v);
        }
        let mut v = match self.kind {
            Kind::Counter | Kind::Gauge => Value::Scalar(0.0),
            Kind::Histogram => Value::Histogram {
                buckets: vec![0; self.buckets.len()].into(),
                sum: 0.0,
                count: 0,
            },
        };
        f(&mut v);
        map.insert(Key(values.iter().map(|s| Box::from(*s)).collect()), v);
    }

    fn add(&self, values: &[&str], by: f64) {
        self.update(values, |v| {
            if let Value::Scalar(x) = v {
                *x += by;
            }
        });
    }

    fn set(&self, values: &[&str], to: f64) {
        self.update(values, |v| {
            if let Value::Scalar(x) = v {
                *x = to;
            }
        });
    }

    fn observe(&self, values: &[&str], sample: f64) {
        let i = self.buckets.iter().position(|b| sample <= *b);
        self.update(values, |v| {
            if let Value::Histogram {
                buckets,
                sum,
                count,
            } = v
            {
                if let Some(i) = i {
                    buckets[i] += 1;
                }
                *sum += sample;
                *count += 1;
            }
        });
    }

    fn render(&self, out: &mut String) {
        let map = self.lock();
        if map.is_empty() {
            return; // like client_golang: a family without series is not shown
        }
        let kind = match self.kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        };
        out.push_str("# HELP ");
        out.push_str(self.name);
        out.push(' ');
        escape(out, self.help, false);
        let _ = writeln!(out, "\n# TYPE {} {kind}", self.name);
        for (key, value) in map.iter() {
            match value {
                Value::Scalar(x) => sample(out, self.name, "", self.labels, &key.0, None, *x),
                Value::Histogram {
                    buckets,
                    sum,
                    count,
                } => {
                    let mut cumulative = 0;
                    for (le, n) in self.buckets.iter().zip(buckets.iter()) {
                        cumulative += n;
                        let le = number(*le);
                        let (labels, values) = (self.labels, &key.0);
                        sample(
                            out,
                            self.name,
                            "_bucket",
                            labels,
                            values,
                            Some(&le),
                            cumulative as f64,
                        );
                    }
                    let (labels, values) = (self.labels, &key.0);
                    sample(
                        out,
                        self.name,
                        "_bucket",
                        labels,
                        values,
                        Some("+Inf"),
                        *count as f64,
                    );
                    sample(out, self.name, "_sum", labels, values, None, *sum);
                    sample(
                        out,
                        self.name,
                        "_count",
                        labels,
                        values,
                        None,
                        *count as f64,
                    );
                }
            }
        }
    }
}

/// Writes one sample line: `name{labels,le="..."} value`.
fn sample(
    out: &mut String,
    name: &str,
    suffix: &str,
    names: &[&str],
    values: &[Box<str>],
    le: Option<&str>,
    value: f64,
) {
    out.push_str(name);
    out.push_str(suffix);
    let pairs = names.iter().copied().zip(values.iter().map(|v| &**v));
    let pairs: Vec<(&str, &str)> = pairs.chain(le.map(|le| ("le", le))).collect();
    for (i, (n, v)) in pairs.iter().enumerate() {
        out.push(if i == 0 { '{' } else { ',' });
        out.push_str(n);
        out.push_str("=\"");
        escape(out, v, true);
        out.push('"');
    }
    if !pairs.is_empty() {
        out.push('}');
    }
    out.push(' ');
    out.push_str(&number(value));
    out.push('\n');
}

/// Escapes `\` and newline (HELP text), and `"` too in a label value.
fn escape(out: &mut String, s: &str, label: bool) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if label => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}

fn number(v: f64) -> String {
    match v {
        v if v.is_nan() => "NaN".into(),
        f64::INFINITY => "+Inf".into(),
        f64::NEG_INFINITY => "-Inf".into(),
        v => v.to_string(),
    }
}

/// The host's metrics. Cheap to update from any thread; see the module docs.
pub struct Metrics {
    reconcile_total: Family,
    reconcile_time: Family,
    reconcile_errors: Family,
    queue_depth: Family,
    queue_adds: Family,
    queue_retries: Family,
    queue_duration: Family,
    plugin_duration: Family,
    plugin_traps: Family,
    plugin_memory: Family,
    plugin_revision: Family,
    plugin_inflight: Family,
    plugin_inflight_peak: Family,
    plugin_admission_waits: Family,
    watches: Family,
    watch_events: Family,
    swaps: Family,
    rejected: Family,
    rollbacks: Family,
    revision_reconciles: Family,
    shadow_reconciles: Family,
    shadow_diffs: Family,
    shadow_errors: Family,
    status_failures: Family,
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
        use Kind::{Counter, Gauge};
        Metrics {
            reconcile_total: Family::new(
                "controller_runtime_reconcile_total",
                "Total number of reconciliations per controller and result.",
                Counter,
                &["controller", "result"],
            ),
            reconcile_time: Family::histogram(
                "controller_runtime_reconcile_time_seconds",
                "Length of time per reconciliation per controller.",
                &["controller"],
                RECONCILE_BUCKETS,
            ),
            reconcile_errors: Family::new(
                "controller_runtime_reconcile_errors_total",
                "Total number of reconciliation errors per controller.",
                Counter,
                &["controller"],
            ),
            queue_depth: Family::new(
                "workqueue_depth",
                "Current depth of the work queue.",
                Gauge,
                &["name"],
            ),
            queue_adds: Family::new(
                "workqueue_adds_total",
                "Total number of adds handled by the work queue.",
                Counter,
                &["name"],
            ),
            queue_retries: Family::new(
                "workqueue_retries_total",
                "Total number of retries handled by the work queue.",
                Counter,
                &["name"],
            ),
            queue_duration: Family::histogram(
                "workqueue_queue_duration_seconds",
                "How long in seconds an item stays in the work queue before being requested.",
                &["name"],
                QUEUE_BUCKETS,
            ),
            plugin_duration: Family::histogram(
                "operon_plugin_reconcile_duration_seconds",
                "Time spent inside the plugin's Wasm reconcile call.",
                &["plugin"],
                PLUGIN_BUCKETS,
            ),
            plugin_traps: Family::new(
                "operon_plugin_traps_total",
                "Total number of plugin calls that trapped, by reason.",
                Counter,
                &["plugin", "reason"],
            ),
            plugin_memory: Family::new(
                "operon_plugin_memory_peak_bytes",
                "Largest linear memory seen in one plugin call.",
                Gauge,
                &["plugin"],
            ),
            plugin_revision: Family::new(
                "operon_plugin_active_revision",
                "The active revision of each plugin (value is always 1).",
                Gauge,
                &["plugin", "revision"],
            ),
            plugin_inflight: Family::new(
                "operon_plugin_inflight",
                "Plugin calls (instances) in flight now.",
                Gauge,
                &["plugin"],
            ),
            plugin_inflight_peak: Family::new(
                "operon_plugin_inflight_peak",
                "Most plugin calls (instances) in flight at once since the start: never above the plugin's admission limit.",
                Gauge,
                &["plugin"],
            ),
            plugin_admission_waits: Family::new(
                "operon_plugin_admission_waits_total",
                "Plugin calls that waited because the plugin had its admission limit of calls in flight.",
                Counter,
                &["plugin"],
            ),
            watches: Family::new(
                "operon_watches",
                "Number of open watches per kind (plugins share one watch per kind).",
                Gauge,
                &["kind"],
            ),
            watch_events: Family::new(
                "operon_watch_events_total",
                "Total number of watch events received per kind.",
                Counter,
                &["kind"],
            ),
            swaps: Family::new(
                "operon_plugin_swaps_total",
                "Revisions made active while the host ran (new builds, rollbacks), per plugin.",
                Counter,
                &["plugin"],
            ),
            rejected: Family::new(
                "operon_plugin_rejected_builds_total",
                "Builds found in the plugin directory and refused (the running revision stayed), by reason.",
                Counter,
                &["plugin", "reason"],
            ),
            rollbacks: Family::new(
                "operon_plugin_rollbacks_total",
                "Returns to an earlier revision: trigger is auto (its failures) or manual (operon plugins rollback).",
                Counter,
                &["plugin", "trigger"],
            ),
            revision_reconciles: Family::new(
                "operon_plugin_revision_reconciles_total",
                "Reconciles per plugin revision and result (success or failure of the plugin's call).",
                Counter,
                &["plugin", "revision", "result"],
            ),
            shadow_reconciles: Family::new(
                "operon_plugin_shadow_reconciles_total",
                "Dry-run reconciles of a shadow candidate beside the active revision.",
                Counter,
                &["plugin", "candidate"],
            ),
            shadow_diffs: Family::new(
                "operon_plugin_shadow_diffs_total",
                "Shadow reconciles whose desired output differed from the active revision's.",
                Counter,
                &["plugin", "candidate"],
            ),
            shadow_errors: Family::new(
                "operon_plugin_shadow_errors_total",
                "Shadow reconciles where the candidate failed (trap, error, invalid output) and the active revision did not.",
                Counter,
                &["plugin", "candidate"],
            ),
            status_failures: Family::new(
                "operon_status_write_failures_total",
                "Status patches of a parent the API server refused, by HTTP code (none: no answer).",
                Counter,
                &["plugin", "code"],
            ),
        }
    }

    fn families(&self) -> [&Family; 24] {
        [
            &self.reconcile_total,
            &self.reconcile_time,
            &self.reconcile_errors,
            &self.queue_depth,
            &self.queue_adds,
            &self.queue_retries,
            &self.queue_duration,
            &self.plugin_duration,
            &self.plugin_traps,
            &self.plugin_memory,
            &self.plugin_revision,
            &self.plugin_inflight,
            &self.plugin_inflight_peak,
            &self.plugin_admission_waits,
            &self.watches,
            &self.watch_events,
            &self.swaps,
            &self.rejected,
            &self.rollbacks,
            &self.revision_reconciles,
            &self.shadow_reconciles,
            &self.shadow_diffs,
            &self.shadow_errors,
            &self.status_failures,
        ]
    }

    /// Counts one reconcile; `result` is `success`, `error`, `requeue` or `requeue_after`.
    pub fn reconcile_total(&self, controller: &str, result: &str) {
        self.reconcile_total.add(&[controller, result], 1.0);
    }

    pub fn reconcile_time(&self, controller: &str, seconds: f64) {
        self.reconcile_time.observe(&[controller], seconds);
    }

    pub fn reconcile_errors_total(&self, controller: &str) {
        self.reconcile_errors.add(&[controller], 1.0);
    }

    pub fn workqueue_depth(&self, name: &str, value: i64) {
        self.queue_depth.set(&[name], value as f64);
    }

    pub fn workqueue_adds_total(&self, name: &str) {
        self.queue_adds.add(&[name], 1.0);
    }

    pub fn workqueue_retries_total(&self, name: &str) {
        self.queue_retries.add(&[name], 1.0);
    }

    pub fn workqueue_queue_duration(&self, name: &str, seconds: f64) {
        self.queue_duration.observe(&[name], seconds);
    }

    /// Time spent inside the Wasm call only.
    pub fn plugin_reconcile_duration(&self, plugin: &str, seconds: f64) {
        self.plugin_duration.observe(&[plugin], seconds);
    }

    pub fn plugin_trap(&self, plugin: &str, reason: &str) {
        self.plugin_traps.add(&[plugin, reason], 1.0);
    }

    /// Records a call's peak memory; the gauge keeps the largest seen.
    pub fn plugin_memory_peak(&self, plugin: &str, bytes: u64) {
        self.plugin_memory.update(&[plugin], |v| {
            if let Value::Scalar(x) = v {
                *x = x.max(bytes as f64);
            }
        });
    }

    /// Marks `revision` as the plugin's active one, removing its previous series.
    pub fn plugin_active_revision(&self, plugin: &str, revision: &str) {
        let mut map = self.plugin_revision.lock();
        let key: &[&str] = &[plugin, revision];
        if map.contains_key(&key as &dyn LabelValues) {
            return;
        }
        map.retain(|k, _| &*k.0[0] != plugin);
        map.insert(
            Key(Box::new([plugin.into(), revision.into()])),
            Value::Scalar(1.0),
        );
    }

    /// One more (`+1`) or one fewer (`-1`) call of the plugin in flight; the
    /// peak gauge keeps the largest count seen.
    pub fn plugin_inflight(&self, plugin: &str, delta: i64) {
        let mut now = 0.0;
        self.plugin_inflight.update(&[plugin], |v| {
            if let Value::Scalar(x) = v {
                *x += delta as f64;
                now = *x;
            }
        });
        self.plugin_inflight_peak.update(&[plugin], |v| {
            if let Value::Scalar(x) = v {
                *x = x.max(now);
            }
        });
    }

    pub fn plugin_admission_wait(&self, plugin: &str) {
        self.plugin_admission_waits.add(&[plugin], 1.0);
    }

    /// The plugin no longer runs (its component was removed): its active
    /// revision series goes.
    pub fn plugin_unloaded(&self, plugin: &str) {
        self.plugin_revision
            .lock()
            .retain(|k, _| &*k.0[0] != plugin);
    }

    pub fn plugin_swap(&self, plugin: &str) {
        self.swaps.add(&[plugin], 1.0);
    }

    pub fn plugin_rejected(&self, plugin: &str, reason: &str) {
        self.rejected.add(&[plugin, reason], 1.0);
    }

    pub fn plugin_rollback(&self, plugin: &str, trigger: &str) {
        self.rollbacks.add(&[plugin, trigger], 1.0);
    }

    pub fn revision_reconcile(&self, plugin: &str, revision: &str, ok: bool) {
        let result = if ok { "success" } else { "failure" };
        self.revision_reconciles
            .add(&[plugin, revision, result], 1.0);
    }

    /// One shadow reconcile; `differed` when its output was not the active
    /// revision's, `failed` when the candidate's call failed.
    pub fn shadow_reconcile(&self, plugin: &str, candidate: &str, differed: bool, failed: bool) {
        self.shadow_reconciles.add(&[plugin, candidate], 1.0);
        if differed {
            self.shadow_diffs.add(&[plugin, candidate], 1.0);
        }
        if failed {
            self.shadow_errors.add(&[plugin, candidate], 1.0);
        }
    }

    /// A status patch of a parent failed; `code` is the HTTP code or `none`.
    pub fn status_write_failure(&self, plugin: &str, code: &str) {
        self.status_failures.add(&[plugin, code], 1.0);
    }

    pub fn watches(&self, kind: &str, value: i64) {
        self.watches.set(&[kind], value as f64);
    }

    pub fn watch_events_total(&self, kind: &str) {
        self.watch_events.add(&[kind], 1.0);
    }

    /// The whole registry in the Prometheus text format 0.0.4.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        for family in self.families() {
            family.render(&mut out);
        }
        out
    }

    /// Reads one series without parsing text: a counter's or gauge's value, or
    /// a histogram's `<name>_count` / `<name>_sum` (its bare name gives the
    /// count). `labels` must name every label of the family, in any order.
    pub fn counter_value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let (family, suffix) = self.families().into_iter().find_map(|f| {
            let suffix = name.strip_prefix(f.name)?;
            let ok = suffix.is_empty()
                || (f.kind == Kind::Histogram && matches!(suffix, "_count" | "_sum"));
            ok.then_some((f, suffix))
        })?;
        if labels.len() != family.labels.len() {
            return None;
        }
        let values = family
            .labels
            .iter()
            .map(|n| labels.iter().find(|(k, _)| k == n).map(|(_, v)| *v))
            .collect::<Option<Vec<&str>>>()?;
        let map = family.lock();
        match map.get(&values.as_slice() as &dyn LabelValues)? {
            Value::Scalar(x) => Some(*x),
            Value::Histogram { sum, .. } if suffix == "_sum" => Some(*sum),
            Value::Histogram { count, .. } => Some(*count as f64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counter_gauge_and_histogram_exactly() {
        let m = Metrics::new();
        m.reconcile_total("pg", "success");
        m.reconcile_total("pg", "success");
        m.reconcile_total("pg", "error");
        m.workqueue_depth("pg", 3);
        m.workqueue_queue_duration("pg", 0.5);
        m.workqueue_queue_duration("pg", 20.0);
        let expected = "\
# HELP controller_runtime_reconcile_total Total number of reconciliations per controller and result.
# TYPE controller_runtime_reconcile_total counter
controller_runtime_reconcile_total{controller=\"pg\",result=\"error\"} 1
controller_runtime_reconcile_total{controller=\"pg\",result=\"success\"} 2
# HELP workqueue_depth Current depth of the work queue.
# TYPE workqueue_depth gauge
workqueue_depth{name=\"pg\"} 3
# HELP workqueue_queue_duration_seconds How long in seconds an item stays in the work queue before being requested.
# TYPE workqueue_queue_duration_seconds histogram
workqueue_queue_duration_seconds_bucket{name=\"pg\",le=\"0.000001\"} 0
workqueue_queue_duration_seconds_bucket{name=\"pg\",le=\"0.00001\"} 0
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
        assert!(
            text.contains(
                "operon_plugin_traps_total{plugin=\"a\\\\b\",reason=\"say \\\"hi\\\"\\nthere\"} 1\n"
            ),
            "{text}"
        );
        let labels = [("reason", "say \"hi\"\nthere"), ("plugin", "a\\b")];
        assert_eq!(
            m.counter_value("operon_plugin_traps_total", &labels),
            Some(1.0)
        );
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        let m = Metrics::new();
        for s in [0.001, 0.007, 0.007, 0.3, 2.0, 100.0] {
            m.reconcile_time("c", s);
        }
        let text = m.render();
        let bucket = |le: &str| {
            let line = format!(
                "controller_runtime_reconcile_time_seconds_bucket{{controller=\"c\",le=\"{le}\"}} "
            );
            let rest = &text[text.find(&line).unwrap_or_else(|| panic!("{line}")) + line.len()..];
            rest.lines().next().unwrap().parse::<u64>().unwrap()
        };
        assert_eq!(bucket("0.005"), 1);
        assert_eq!(bucket("0.01"), 3);
        assert_eq!(bucket("0.25"), 3);
        assert_eq!(bucket("0.5"), 4);
        assert_eq!(bucket("2.5"), 5);
        assert_eq!(bucket("60"), 5);
        assert_eq!(bucket("+Inf"), 6);
        let c = [("controller", "c")];
        let name = "controller_runtime_reconcile_time_seconds";
        assert_eq!(m.counter_value(&format!("{name}_count"), &c), Some(6.0));
        assert_eq!(m.counter_value(name, &c), Some(6.0));
        let sum = m.counter_value(&format!("{name}_sum"), &c).unwrap();
        assert!((sum - 102.315).abs() < 1e-9, "{sum}");
    }

    #[test]
    fn gauges_memory_peak_and_revisions() {
        let m = Metrics::new();
        m.plugin_memory_peak("p", 100);
        m.plugin_memory_peak("p", 50);
        let p = [("plugin", "p")];
        assert_eq!(
            m.counter_value("operon_plugin_memory_peak_bytes", &p),
            Some(100.0)
        );

        m.plugin_active_revision("p", "r1");
        m.plugin_active_revision("q", "r1");
        m.plugin_active_revision("p", "r2");
        let rev = |plugin, revision| {
            let labels = [("plugin", plugin), ("revision", revision)];
            m.counter_value("operon_plugin_active_revision", &labels)
        };
        assert_eq!(rev("p", "r1"), None);
        assert_eq!(rev("p", "r2"), Some(1.0));
        assert_eq!(rev("q", "r1"), Some(1.0));

        m.watches("v1/ConfigMap", 2);
        m.watches("v1/ConfigMap", 1);
        m.watch_events_total("v1/ConfigMap");
        m.workqueue_depth("w", -1);
        let k = [("kind", "v1/ConfigMap")];
        assert_eq!(m.counter_value("operon_watches", &k), Some(1.0));
        assert_eq!(m.counter_value("operon_watch_events_total", &k), Some(1.0));
        assert_eq!(
            m.counter_value("workqueue_depth", &[("name", "w")]),
            Some(-1.0)
        );
        // Unknown series, wrong labels, unknown names.
        assert_eq!(m.counter_value("operon_watches", &[("kind", "x")]), None);
        assert_eq!(m.counter_value("operon_watches", &[]), None);
        assert_eq!(m.counter_value("operon_watches_sum", &k), None);
        assert_eq!(m.counter_value("nope", &k), None);
    }

    #[test]
    fn empty_registry_renders_nothing_and_every_family_has_help() {
        let m = Metrics::new();
        assert_eq!(m.render(), "");
        assert!(m.families().iter().all(|f| !f.help.is_empty()));
    }
}
