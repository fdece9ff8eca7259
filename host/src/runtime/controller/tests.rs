//! The controller in-process: `Controller::start` with the widgets test
//! component over the fake API server (`runtime::testing::fake_api`), its
//! decisions read from the fake's write log and the statuses it wrote.
//!
//! No test waits for a duration: each waits for a condition, and where it
//! asserts that something did *not* happen, it first waits for a reconcile
//! that is bound to have run (counted by `controller_runtime_reconcile_total`)
//! — for one parent, reconciles never overlap, so the count says which
//! ones are over.

use std::sync::{Arc, OnceLock};

use hyper::Method;
use serde_json::{Value, json};

use super::{Controller, RevisionHooks, Shared, lock};
use crate::apply::status::reason;
use crate::engine::Limits;
use crate::plugin::revisions::{RollbackPolicy, Tracker};
use crate::plugin::{GrantsFile, Plugin};
use crate::runtime::leader::Gate;
use crate::runtime::testing::fake_api::{self, FakeApi, Write};
use crate::runtime::testing::{self, NS, eventually, synced, synced_as};
use crate::server::Metrics;

const WIDGET: (&str, &str) = ("test.operon.dev/v1", "Widget");
const KEY: &str = "demo/w";
const FINALIZER: &str = "operon.dev/widgets";

/// The widgets test component, loaded once for every test.
fn widgets() -> Arc<Plugin> {
    static PLUGIN: OnceLock<Arc<Plugin>> = OnceLock::new();
    let load = || {
        let path = testing::component("test-plugin-widgets");
        let grants = GrantsFile::default();
        let plugin = Plugin::load_granted(&testing::engine(), &path, Limits::default(), &grants);
        Arc::new(plugin.expect("the widgets component loads"))
    };
    PLUGIN.get_or_init(load).clone()
}

fn widget(name: &str, spec: Value) -> Value {
    json!({"apiVersion": WIDGET.0, "kind": WIDGET.1,
           "metadata": {"name": name, "namespace": NS}, "spec": spec})
}

fn widget_path(name: &str) -> String {
    fake_api::kind(WIDGET.0, WIDGET.1).path(NS, name, None)
}

fn status_path(name: &str) -> String {
    fake_api::kind(WIDGET.0, WIDGET.1).path(NS, name, Some("status"))
}

fn config_map_path(name: &str) -> String {
    fake_api::kind("v1", "ConfigMap").path(NS, name, None)
}

/// The widgets controller running over a fake API server.
struct Host {
    fake: FakeApi,
    metrics: Arc<Metrics>,
    controller: Arc<Controller>,
}

/// Starts the controller over `fake` (fast backoff) and waits for its
/// caches.
async fn host(fake: &FakeApi) -> Host {
    host_with(fake, testing::shared(fake)).await
}

/// As [`host`], with what the controllers share given (a leader
/// election gate, say).
async fn host_with(fake: &FakeApi, shared: Shared) -> Host {
    let options = testing::options();
    let writer = shared.caches.kinds().clone();
    let hooks = RevisionHooks {
        tracker: Arc::new(Tracker::new(RollbackPolicy::default(), None)),
        shadow: Arc::default(),
        recorder: Arc::default(),
        on_failing: Arc::new(|_| {}),
    };
    let controller = Controller::start(widgets(), &shared, writer, options, Vec::new(), hooks)
        .await
        .expect("the controller starts");
    controller.wait_synced().await;
    controller.run();
    Host {
        fake: fake.clone(),
        metrics: shared.metrics,
        controller,
    }
}

impl Host {
    fn widget(&self, name: &str) -> Option<Value> {
        self.fake.get(WIDGET.0, WIDGET.1, NS, name)
    }

    /// Waits until the widget shows `Synced` with this status and reason.
    async fn until_synced(&self, name: &str, status: &str, why: &str) -> Value {
        let what = format!("widget {name} to be Synced={status} ({why})");
        let wanted = (status.to_string(), why.to_string());
        eventually(&what, || {
            let w = self.widget(name)?;
            (synced_as(&w)? == wanted).then_some(w)
        })
        .await
    }

    /// Waits until the controller's own watch cache holds the ConfigMap
    /// child: the finalizing call prunes what the cache shows, so a
    /// deletion before then would leave nothing to prune.
    async fn until_child_cached(&self, name: &str) {
        let what = format!("the ConfigMap {name} in the controller's cache");
        let watch = self
            .controller
            .owned
            .iter()
            .find(|w| w.kind.gvk.kind == "ConfigMap");
        let watch = watch.expect("the widgets plugin owns ConfigMaps");
        eventually(&what, || watch.get(Some(NS), name).map(|_| ())).await;
    }

    /// Reconciles finished, of any result or of one.
    fn reconciles(&self, result: Option<&str>) -> u64 {
        testing::reconciles(&self.metrics, "widgets", result)
    }

    async fn until_reconciles(&self, n: u64) {
        let what = format!("{n} reconciles to finish");
        eventually(&what, || (self.reconciles(None) >= n).then_some(())).await;
    }

    async fn until_failures(&self, at_least: u32) {
        let what = format!("{at_least} failures of {KEY} in a row");
        let enough = || (self.controller.queue.failures(KEY) >= at_least).then_some(());
        eventually(&what, enough).await;
    }

    /// The events recorded with this reason.
    fn events(&self, why: &str) -> Vec<Value> {
        let all = self.fake.list("events.k8s.io/v1", "Event");
        all.into_iter().filter(|e| e["reason"] == why).collect()
    }

    /// The writes of one method to one path.
    fn writes(&self, method: Method, path: &str) -> Vec<Write> {
        let all = self.fake.writes();
        all.into_iter().filter(|w| w.is(&method, path)).collect()
    }
}

/// The index of the first write matching `f` (the test fails without one).
fn index(writes: &[Write], what: &str, f: impl Fn(&Write) -> bool) -> usize {
    writes
        .iter()
        .position(f)
        .unwrap_or_else(|| panic!("no write {what} in {writes:#?}"))
}

/// Finalizer step 1: added (a guarded JSON patch) before the plugin's
/// answer is applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_finalizer_is_added_before_the_first_call() {
    let fake = FakeApi::new();
    fake.put(widget("w", json!({"mode": "ok"})));
    let host = host(&fake).await;
    let w = host.until_synced("w", "True", reason::SUCCEEDED).await;
    assert_eq!(w["metadata"]["finalizers"], json!([FINALIZER]));
    assert_eq!(w["status"]["phase"], "Ready");
    assert_eq!(w["status"]["observedGeneration"], 1);

    let writes = fake.writes();
    let first = &writes[0];
    assert!(first.is(&Method::PATCH, &widget_path("w")), "{first:#?}");
    assert_eq!(first.content_type, "application/json-patch+json");
    assert_eq!(
        first.body,
        json!([{"op": "test", "path": "/metadata/resourceVersion", "value": "1"},
               {"op": "add", "path": "/metadata/finalizers", "value": [FINALIZER]}])
    );
    let applied = index(&writes, "applying the ConfigMap", |x| {
        x.is(&Method::PATCH, &config_map_path("w"))
    });
    assert!(applied > 0);
    let child = fake.get("v1", "ConfigMap", NS, "w").expect("the child");
    assert_eq!(
        child["metadata"]["ownerReferences"][0]["uid"],
        w["metadata"]["uid"]
    );
}

/// Finalizer step 2: a parent being deleted that does not carry the
/// plugin's finalizer is not called, and nothing is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parent_deleted_without_the_finalizer_is_not_called() {
    let fake = FakeApi::new();
    let mut w = widget("w", json!({"mode": "ok"}));
    w["metadata"]["finalizers"] = json!(["example.com/someone-else"]);
    w["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:00:00Z");
    fake.put(w);
    let host = host(&fake).await;
    host.until_reconciles(1).await;
    assert_eq!(host.reconciles(Some("error")), 0);
    assert!(fake.writes().is_empty(), "{:#?}", fake.writes());
}

/// Finalizer step 4: the finalizing call's answer is applied (the child
/// pruned, its event recorded) before the finalizer is removed, and then
/// the API server lets the parent go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finalizing_call_is_applied_before_the_finalizer_is_removed() {
    let fake = FakeApi::new();
    fake.put(widget("w", json!({})));
    let host = host(&fake).await;
    host.until_synced("w", "True", reason::SUCCEEDED).await;
    host.until_child_cached("w").await;

    fake.delete(WIDGET.0, WIDGET.1, NS, "w");
    eventually("the parent to go", || {
        host.widget("w").is_none().then_some(())
    })
    .await;
    let writes = fake.writes();
    let pruned = index(&writes, "pruning the child", |x| {
        x.is(&Method::DELETE, &config_map_path("w"))
    });
    let recorded = index(&writes, "recording Finalized", |x| {
        x.method == Method::POST && x.body["reason"] == "Finalized"
    });
    let released = index(&writes, "removing the finalizer", |x| {
        x.is(&Method::PATCH, &widget_path("w")) && x.body[1]["op"] == "remove"
    });
    assert!(pruned < released && recorded < released, "{writes:#?}");
    assert_eq!(
        writes[released].body,
        json!([{"op": "test", "path": "/metadata/finalizers/0", "value": FINALIZER},
               {"op": "remove", "path": "/metadata/finalizers/0"}])
    );
    assert_eq!(host.events("Finalized")[0]["note"], "cleanup done");
    assert!(fake.get("v1", "ConfigMap", NS, "w").is_none());
}

/// Finalizer step 3: once released, a parent the watch cache still shows
/// with the finalizer is not finalized a second time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_released_parent_still_cached_is_not_finalized_again() {
    let fake = FakeApi::new();
    fake.put(widget("w", json!({})));
    let host = host(&fake).await;
    host.until_synced("w", "True", reason::SUCCEEDED).await;
    host.until_child_cached("w").await;

    // The release is held so that the watches stop right then: the cache
    // keeps showing the parent with its finalizer.
    let release = fake.hold_next(Method::PATCH, &widget_path("w"));
    fake.delete(WIDGET.0, WIDGET.1, NS, "w");
    release.reached().await;
    // Only the finalizing reconcile is in flight; every earlier one is done.
    let before = host.reconciles(None);
    fake.pause_watches();
    release.release();
    // The finalizing reconcile ends; the pruned child's event (delivered
    // before the pause) brings one more reconcile over the stale cache.
    host.until_reconciles(before + 2).await;
    assert!(host.widget("w").is_none(), "the API server let it go");
    assert_eq!(host.events("Finalized").len(), 1);
    let releases = host.writes(Method::PATCH, &widget_path("w"));
    let removals = releases.iter().filter(|x| x.body[1]["op"] == "remove");
    assert_eq!(removals.count(), 1);

    fake.resume_watches();
    let gone = || (host.controller.parent_count() == 0).then_some(());
    eventually("the cache to drop the parent", gone).await;
}

/// A permanent error is not retried for the same generation (not even when
/// the failure's own status write brings the parent back), and is for a
/// new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_failure_waits_for_a_new_generation() {
    let fake = FakeApi::new();
    fake.put(widget("w", json!({"mode": "permanent"})));
    let host = host(&fake).await;
    let w = host.until_synced("w", "False", reason::ERROR).await;
    let message = synced(&w).unwrap()["message"].as_str().unwrap().to_string();
    assert!(
        message.contains("spec.mode permanent is not supported"),
        "{message}"
    );
    // The status write above changed the parent: it is reconciled again,
    // and the plugin is not called.
    host.until_reconciles(2).await;
    assert_eq!(host.reconciles(Some("error")), 1);
    assert_eq!(host.controller.queue.failures(KEY), 0, "no backoff retry");
    let errors = host.events("ReconcileError");
    assert_eq!(errors.len(), 1);
    let note = errors[0]["note"].as_str().unwrap();
    assert!(
        note.ends_with("(not retried until the parent changes)"),
        "{note}"
    );

    fake.edit(WIDGET.0, WIDGET.1, NS, "w", json!({"spec": {"note": "2"}}));
    // The plugin fails again, so a call shows as a second failed reconcile
    // (counted once its failure is reported).
    let called_again = || (host.reconciles(Some("error")) == 2).then_some(());
    eventually("a call for generation 2", called_again).await;
    assert_eq!(host.events("ReconcileError").len(), 2);

    fake.edit(WIDGET.0, WIDGET.1, NS, "w", json!({"spec": {"mode": "ok"}}));
    let w = host.until_synced("w", "True", reason::SUCCEEDED).await;
    assert_eq!(w["status"]["observedGeneration"], 3);
}

/// A retryable error backs off (the failures count grows, each attempt
/// says which it is) and a success resets it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retryable_error_backs_off_until_a_success_resets_it() {
    let fake = FakeApi::new();
    fake.put(widget("w", json!({"mode": "retryable"})));
    let host = host(&fake).await;
    let w = host.until_synced("w", "False", reason::ERROR).await;
    let message = synced(&w).unwrap()["message"].as_str().unwrap().to_string();
    assert!(message.contains("database not reachable"), "{message}");
    host.until_failures(3).await;
    let notes: Vec<String> = host
        .events("ReconcileError")
        .iter()
        .filter_map(|e| e["note"].as_str().map(str::to_string))
        .collect();
    assert!(
        notes.iter().any(|n| n.contains("(attempt 2; next try in")),
        "{notes:?}"
    );

    fake.edit(WIDGET.0, WIDGET.1, NS, "w", json!({"spec": {"mode": "ok"}}));
    host.until_synced("w", "True", reason::SUCCEEDED).await;
    let reset = || (host.controller.queue.failures(KEY) == 0).then_some(());
    eventually("the failures to be forgotten", reset).await;
}

/// A status the API server refuses as too large (413) leaves the minimal
/// `Synced=False` patch — none of the plugin's status — and is not retried
/// until the parent changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_too_large_leaves_a_minimal_failure_and_is_not_retried() {
    let fake = FakeApi::new();
    fake.put(widget("w", json!({})));
    fake.fail_next(Method::PATCH, &status_path("w"), 413);
    let host = host(&fake).await;
    let w = host
        .until_synced("w", "False", reason::STATUS_WRITE_FAILED)
        .await;
    let message = synced(&w).unwrap()["message"].as_str().unwrap().to_string();
    assert!(message.contains("413"), "{message}");
    assert!(w["status"].get("phase").is_none(), "{w:#}");
    // The failure's status write changed the parent: reconciled again.
    host.until_reconciles(2).await;

    let statuses = host.writes(Method::PATCH, &status_path("w"));
    let codes: Vec<u16> = statuses.iter().map(|x| x.code).collect();
    assert_eq!(codes, [413, 200]);
    assert_eq!(statuses[0].body["status"]["phase"], "Ready");
    let minimal = statuses[1].body["status"].as_object().unwrap();
    assert_eq!(minimal.keys().collect::<Vec<_>>(), ["conditions"]);
    assert_eq!(host.writes(Method::PATCH, &config_map_path("w")).len(), 1);
    assert_eq!(host.controller.queue.failures(KEY), 0, "no backoff retry");
}

/// A status refused with a conflict (409) is shown, then retried until it
/// is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_conflict_is_retried() {
    let fake = FakeApi::new();
    fake.put(widget("w", json!({})));
    fake.fail_next(Method::PATCH, &status_path("w"), 409);
    let host = host(&fake).await;
    let w = host.until_synced("w", "True", reason::SUCCEEDED).await;
    assert_eq!(w["status"]["phase"], "Ready");

    let statuses = host.writes(Method::PATCH, &status_path("w"));
    let codes: Vec<u16> = statuses.iter().map(|x| x.code).collect();
    // Then the failure shown, then the retry's status (and perhaps more,
    // from reconciles over a cache that has not caught up: all accepted).
    assert_eq!(codes[0], 409, "{codes:?}");
    assert!(
        codes.len() >= 3 && codes[1..].iter().all(|c| *c == 200),
        "{codes:?}"
    );
    let shown = &statuses[1].body;
    let condition = synced(shown).expect("the failure shown");
    assert_eq!(condition["reason"], reason::STATUS_WRITE_FAILED);
    // The retry reconciles again; its ConfigMap is applied again only if
    // the cache had not yet seen the first apply (else it is unchanged).
    assert!(!host.writes(Method::PATCH, &config_map_path("w")).is_empty());
    let reset = || (host.controller.queue.failures(KEY) == 0).then_some(());
    eventually("the failures to be forgotten", reset).await;
}

/// An existing object that no one controls is not taken as a child (the
/// grant does not say `adopt`): refused before anything is applied, and
/// retried with backoff.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_no_one_controls_is_not_adopted() {
    let fake = FakeApi::new();
    fake.put(json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "taken", "namespace": NS}, "data": {"owner": "someone"}}));
    fake.put(widget("w", json!({"mode": "take", "target": "taken"})));
    let host = host(&fake).await;
    let w = host
        .until_synced("w", "False", reason::ADOPTION_REFUSED)
        .await;
    let message = synced(&w).unwrap()["message"].as_str().unwrap().to_string();
    assert!(
        message.contains("ConfigMap demo/taken exists and no one controls it"),
        "{message}"
    );
    host.until_failures(2).await;

    let applies = fake
        .writes()
        .into_iter()
        .filter(|x| x.path.contains("/configmaps"));
    assert_eq!(applies.count(), 0, "nothing applied");
    let taken = fake.get("v1", "ConfigMap", NS, "taken").unwrap();
    assert_eq!(taken["data"], json!({"owner": "someone"}));
    assert!(taken["metadata"].get("ownerReferences").is_none());
}

/// The `Synced` reasons of every status write to the widget, in order.
fn shown(writes: &[Write], name: &str) -> Vec<(usize, String)> {
    let path = status_path(name);
    let of_widget = writes.iter().enumerate().filter(|(_, x)| x.path == path);
    of_widget
        .filter_map(|(i, x)| Some((i, synced(&x.body)?["reason"].as_str()?.to_string())))
        .collect()
}

/// Finalizer step 1, failing: when the finalizer cannot be added the plugin
/// is not called (nothing is applied), `FinalizerFailed` shows on the
/// parent, and the next attempt adds it and goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finalizer_that_cannot_be_added_stops_the_reconcile_and_is_retried() {
    let fake = FakeApi::new();
    fake.put(widget("w", json!({"mode": "ok"})));
    fake.fail_next(Method::PATCH, &widget_path("w"), 500);
    let host = host(&fake).await;
    let w = host.until_synced("w", "True", reason::SUCCEEDED).await;
    assert_eq!(w["metadata"]["finalizers"], json!([FINALIZER]));

    let writes = fake.writes();
    let adds = host.writes(Method::PATCH, &widget_path("w"));
    let codes: Vec<u16> = adds.iter().map(|x| x.code).collect();
    // A retry over a cache that has not seen the failure's status write
    // yet is refused by the guard (422): only one add passes.
    assert_eq!(codes.first(), Some(&500), "{codes:?}");
    assert_eq!(codes.iter().filter(|c| **c == 200).count(), 1, "{codes:?}");
    let added = index(&writes, "adding the finalizer", |x| {
        x.is(&Method::PATCH, &widget_path("w")) && x.code == 200
    });
    let applied = index(&writes, "applying the ConfigMap", |x| {
        x.is(&Method::PATCH, &config_map_path("w"))
    });
    let reasons = shown(&writes, "w");
    let failed = reasons
        .iter()
        .find(|(_, r)| r == reason::FINALIZER_FAILED)
        .unwrap_or_else(|| panic!("FinalizerFailed shown: {reasons:?}"));
    assert!(failed.0 < added && added < applied, "{writes:#?}");
    let notes: Vec<String> = host
        .events("ReconcileError")
        .iter()
        .filter_map(|e| e["note"].as_str().map(str::to_string))
        .collect();
    let first = notes.iter().any(|n| n.contains("(attempt 1; next try in"));
    assert!(first, "{notes:?}");
}

/// Finalizer step 4, failing: while the finalizing call's answer cannot be
/// applied (its child cannot be pruned) the parent keeps its finalizer and
/// shows why; the retry cleans up and only then lets it go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cleanup_that_fails_keeps_the_finalizer_until_a_retry_succeeds() {
    let fake = FakeApi::new();
    fake.put(widget("w", json!({})));
    let host = host(&fake).await;
    host.until_synced("w", "True", reason::SUCCEEDED).await;
    host.until_child_cached("w").await;

    fake.fail_next(Method::DELETE, &config_map_path("w"), 500);
    fake.delete(WIDGET.0, WIDGET.1, NS, "w");
    eventually("the parent to go", || {
        host.widget("w").is_none().then_some(())
    })
    .await;

    let writes = fake.writes();
    let prunes = host.writes(Method::DELETE, &config_map_path("w"));
    let codes: Vec<u16> = prunes.iter().map(|x| x.code).collect();
    assert_eq!(codes, [500, 200], "{writes:#?}");
    let pruned = index(&writes, "pruning the child", |x| {
        x.is(&Method::DELETE, &config_map_path("w")) && x.code == 200
    });
    let released = index(&writes, "removing the finalizer", |x| {
        x.is(&Method::PATCH, &widget_path("w")) && x.body[1]["op"] == "remove"
    });
    let reasons = shown(&writes, "w");
    let failed = reasons
        .iter()
        .find(|(_, r)| r == reason::APPLY_FAILED)
        .unwrap_or_else(|| panic!("ApplyFailed shown on the parent: {reasons:?}"));
    assert!(failed.0 < pruned && pruned < released, "{writes:#?}");
    let removals = host.writes(Method::PATCH, &widget_path("w"));
    let removals = removals.iter().filter(|x| x.body[1]["op"] == "remove");
    assert_eq!(removals.count(), 1, "released once, after the cleanup");
    // The failed attempt's answer was not applied, so not its event either.
    assert_eq!(host.events("Finalized").len(), 1);
}

/// Finalizer release, failing: when removing the finalizer fails the parent
/// shows `FinalizerFailed`, and the retry calls the plugin again (it may
/// not have finished for the host) and removes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finalizer_that_cannot_be_removed_is_retried() {
    let fake = FakeApi::new();
    fake.put(widget("w", json!({})));
    let host = host(&fake).await;
    host.until_synced("w", "True", reason::SUCCEEDED).await;

    // The finalizer is on: the next write to the widget is its release.
    fake.fail_next(Method::PATCH, &widget_path("w"), 500);
    fake.delete(WIDGET.0, WIDGET.1, NS, "w");
    eventually("the parent to go", || {
        host.widget("w").is_none().then_some(())
    })
    .await;

    let writes = fake.writes();
    let releases = host.writes(Method::PATCH, &widget_path("w"));
    let removals: Vec<&Write> = releases
        .iter()
        .filter(|x| x.body[1]["op"] == "remove")
        .collect();
    let codes: Vec<u16> = removals.iter().map(|x| x.code).collect();
    assert_eq!(codes, [500, 200], "{writes:#?}");
    let reasons = shown(&writes, "w");
    assert!(
        reasons.iter().any(|(_, r)| r == reason::FINALIZER_FAILED),
        "FinalizerFailed shown: {reasons:?}"
    );
    assert_eq!(host.events("Finalized").len(), 2, "called again");
}

/// A parent that failed for good is still finalized when it is deleted:
/// a broken spec does not hold its deletion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanently_failed_parent_is_still_finalized() {
    let fake = FakeApi::new();
    fake.put(widget("w", json!({"mode": "permanent"})));
    let host = host(&fake).await;
    host.until_synced("w", "False", reason::ERROR).await;
    host.until_reconciles(2).await;
    assert!(lock(&host.controller.permanent).contains_key(KEY));

    fake.delete(WIDGET.0, WIDGET.1, NS, "w");
    eventually("the parent to go", || {
        host.widget("w").is_none().then_some(())
    })
    .await;
    assert_eq!(host.events("Finalized").len(), 1);
}

/// Leader election: a standby (its gate closed) has synced caches and the
/// parent queued, yet takes nothing; elected, it reconciles at once,
/// without listing again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_reconciles_once_its_gate_opens() {
    let fake = FakeApi::new();
    fake.put(widget("w", json!({"mode": "ok"})));
    let (elected, gate) = Gate::closed();
    let mut shared = testing::shared(&fake);
    shared.may_write = gate;
    let host = host_with(&fake, shared).await;
    let lists = fake.lists(&fake_api::kind(WIDGET.0, WIDGET.1).collection());
    eventually("w queued", || {
        (host.controller.queue.depth() == 1).then_some(())
    })
    .await;
    elected.send_replace(true);
    host.until_synced("w", "True", reason::SUCCEEDED).await;
    assert_eq!(
        fake.lists(&fake_api::kind(WIDGET.0, WIDGET.1).collection()),
        lists,
        "the standby's cache serves the first reconciles"
    );
}

/// A standby never elected (told to stop: the gate's sender dropped)
/// writes nothing, and its workers return without taking the queued key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_never_elected_writes_nothing_and_its_workers_return() {
    let fake = FakeApi::new();
    fake.put(widget("w", json!({"mode": "ok"})));
    let (never, gate) = Gate::closed();
    let mut shared = testing::shared(&fake);
    shared.may_write = gate;
    let host = host_with(&fake, shared).await;
    eventually("w queued", || {
        (host.controller.queue.depth() == 1).then_some(())
    })
    .await;
    drop(never);
    eventually("the workers to return", || {
        let workers = lock(&host.controller.workers);
        (!workers.is_empty() && workers.iter().all(|w| w.is_finished())).then_some(())
    })
    .await;
    assert_eq!(host.reconciles(None), 0);
    assert!(fake.writes().is_empty(), "{:#?}", fake.writes());
    assert_eq!(host.controller.queue.depth(), 1, "the key is still queued");
}

/// `operon plugins record`: nothing is taped until asked; then each
/// reconcile is kept with what the plugin was handed and its answer in the
/// words `operon test` compares; stopped, nothing more is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciles_are_recorded_only_while_asked() {
    let fake = FakeApi::new();
    fake.put(widget("w", json!({"mode": "ok"})));
    let host = host(&fake).await;
    host.until_synced("w", "True", reason::SUCCEEDED).await;
    host.until_child_cached("w").await;
    let recorder = host.controller.hooks.recorder.clone();
    assert!(recorder.records().is_empty(), "off: nothing recorded");

    recorder.start(50);
    fake.put(widget("bad", json!({"mode": "permanent"})));
    fake.edit(
        WIDGET.0,
        WIDGET.1,
        NS,
        "w",
        json!({"spec": {"extra": true}}),
    );
    let named = |records: &[crate::plugin::recorder::Record], name: &str| {
        records
            .iter()
            .find(|r| {
                r.parent["metadata"]["name"] == name && r.parent["spec"] != json!({"mode": "ok"})
            })
            .cloned()
    };
    let (bad, w) = eventually("records of both widgets", || {
        let records = recorder.records();
        Some((named(&records, "bad")?, named(&records, "w")?))
    })
    .await;
    let progress = recorder.stop();
    assert!(
        progress.recorded >= 2 && progress.wanted == 50,
        "{progress:?}"
    );

    assert_eq!(
        bad.answer,
        json!({"error": {"permanent": "spec.mode permanent is not supported"}})
    );
    assert_eq!(w.parent["spec"], json!({"mode": "ok", "extra": true}));
    let observed: Vec<_> = w.observed.iter().map(|o| &o["metadata"]["name"]).collect();
    assert!(observed.contains(&&json!("w")), "{observed:?}");
    let children: Vec<_> = w.answer["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["metadata"]["name"].clone())
        .collect();
    assert_eq!(children, [json!("w"), json!("w-extra")]);
    assert_eq!(w.answer["status"], json!({"phase": "Ready"}));
    assert!(!w.finalizing && w.redacted.is_empty());
    assert_eq!(w.revision, widgets().info().short_digest());
    let now: Result<k8s_openapi::jiff::Timestamp, _> = w.now.parse();
    assert!(now.is_ok(), "{}", w.now);

    // Stopped: a reconcile now is not kept.
    let before = host.reconciles(None);
    fake.edit(WIDGET.0, WIDGET.1, NS, "w", json!({"spec": {"note": "x"}}));
    host.until_reconciles(before + 1).await;
    assert!(recorder.records().is_empty());
}
