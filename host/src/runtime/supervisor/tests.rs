//! The supervisor in-process, through its entry points only
//! (`Supervisor::start`, `controllers()`, `admin()` and the
//! `server::Admin` it answers, `Supervisor::run`), over a temporary plugin
//! directory and the fake API server (`runtime::testing::fake_api`).
//!
//! New builds are made without compiling, as host/tests/hotswap_e2e.rs
//! does: the revisions test component carries a 12-byte label after a
//! marker, rewritten in a copy of the file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper::Method;
use serde_json::{Value, json};
use tokio::sync::oneshot;

use super::{Supervisor, SwapOptions};
use crate::plugin::GrantsFile;
use crate::plugin::revisions::RollbackPolicy;
use crate::runtime::RunOptions;
use crate::runtime::controller::Shared;
use crate::runtime::testing::fake_api::{self, FakeApi, Write};
use crate::runtime::testing::{self, NS, eventually};
use crate::server::{Admin, AdminError, AdminRequest};

const GADGET: (&str, &str) = ("test.operon.dev/v1", "Gadget");
const MARKER: &[u8] = b"operon-test-revision:";

/// The revisions component with its label replaced (at most 12 bytes).
fn build(label: &str) -> Vec<u8> {
    assert!(label.len() <= 12);
    let mut bytes = std::fs::read(testing::component("test-plugin-revisions")).unwrap();
    let at = bytes
        .windows(MARKER.len())
        .position(|w| w == MARKER)
        .expect("the revision marker is in the component")
        + MARKER.len();
    bytes[at..at + 12].copy_from_slice(format!("{label:_<12}").as_bytes());
    bytes
}

/// A plugin directory of its own, removed at the end of the test.
struct PluginDir(PathBuf);

impl PluginDir {
    fn new(test: &str) -> PluginDir {
        let dir = std::env::temp_dir().join(format!("operon-unit-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        PluginDir(dir)
    }

    /// Publishes the safe way: written aside under a hidden name, renamed.
    fn publish(&self, name: &str, bytes: &[u8]) {
        let aside = self.0.join(format!(".{name}.tmp"));
        std::fs::write(&aside, bytes).unwrap();
        std::fs::rename(&aside, self.0.join(name)).unwrap();
    }
}

impl Drop for PluginDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The host operator's grants: ServiceAccounts confer power, so the
/// `wide` builds may own them only when the grant names them.
fn grants() -> GrantsFile {
    let yaml = "plugins:\n  revisions:\n    owns: [v1/ConfigMap, v1/ServiceAccount]\n";
    serde_saphyr::from_str(yaml).expect("a grants file")
}

fn options(dir: &Path) -> RunOptions {
    let any = "127.0.0.1:0".parse().unwrap();
    RunOptions {
        plugin_config: Default::default(),
        plugins_dir: Some(dir.to_path_buf()),
        kubeconfig: None,
        namespace: None,
        metrics_addr: any,
        health_addr: any,
        admin_addr: any,
        concurrency: 8,
        install_crds: false,
        grants: grants(),
        controller: testing::options(),
        // Long: the old revision's reconciles must be let finish.
        grace: Duration::from_secs(120),
        impersonate: None,
        api: Default::default(),
        swap: SwapOptions {
            watch_interval: Duration::from_millis(20),
            settle: Duration::from_millis(200),
            keep: 5,
            rollback: RollbackPolicy::default(),
        },
        packages: None,
        identity: "test".into(),
        leader_election: None,
    }
}

/// A supervisor running over a plugin directory and a fake API server.
struct Host {
    fake: FakeApi,
    shared: Shared,
    admin: Box<dyn Admin>,
    /// The controllers `Supervisor::start` began with.
    started: Vec<String>,
    stop: Option<oneshot::Sender<()>>,
    run: tokio::task::JoinHandle<()>,
}

async fn start(fake: &FakeApi, dir: &PluginDir) -> Host {
    let shared = testing::shared(fake);
    let config = kube::Config::new("http://fake.invalid".parse().unwrap());
    let options = options(&dir.0);
    let supervisor = Supervisor::start(
        testing::engine(),
        options,
        shared.clone(),
        config,
        fake.client(),
    )
    .await
    .expect("the supervisor starts");
    let controllers = supervisor.controllers();
    for c in &controllers {
        c.wait_synced().await;
    }
    let admin = Box::new(supervisor.admin());
    let (stop, stopped) = oneshot::channel::<()>();
    let run = tokio::spawn(supervisor.run(async {
        let _ = stopped.await;
    }));
    Host {
        fake: fake.clone(),
        shared,
        admin,
        started: controllers.iter().map(|c| c.name().to_string()).collect(),
        stop: Some(stop),
        run,
    }
}

impl Host {
    async fn ask(&self, request: AdminRequest) -> Result<Value, AdminError> {
        self.admin.ask(request).await
    }

    async fn rollback(&self, name: &str, to: Option<u32>) -> Result<Value, AdminError> {
        let name = name.to_string();
        self.ask(AdminRequest::Rollback { name, to }).await
    }

    /// Waits until the gadget's status was written by `revision` from
    /// `value`.
    async fn until_gadget(&self, name: &str, revision: &str, value: u64) {
        let what = format!("gadget {name} reconciled by {revision} from value {value}");
        eventually(&what, || {
            let g = self.fake.get(GADGET.0, GADGET.1, NS, name)?;
            let s = &g["status"];
            (s["revision"] == revision && s["value"] == value).then_some(())
        })
        .await;
    }

    /// Stops the supervisor (every controller drains) and waits for it.
    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.run).await.expect("the supervisor's task");
    }
}

fn gadget(name: &str, value: u64) -> Value {
    json!({"apiVersion": GADGET.0, "kind": GADGET.1,
           "metadata": {"name": name, "namespace": NS}, "spec": {"value": value}})
}

fn collection(api_version: &str, kind: &str) -> String {
    fake_api::kind(api_version, kind).collection()
}

/// The revision label a write carries: a ConfigMap's data or a status.
fn revision_of(write: &Write) -> Option<&str> {
    let data = write.body.pointer("/data/revision");
    data.or(write.body.pointer("/status/revision"))?.as_str()
}

/// A swap starts the new revision's controller (its watches acquired, the
/// kind's shared ones kept open) while the old one finishes its
/// reconcile, and lets the new one work only then: no parent is
/// reconciled by two revisions at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swap_drains_the_old_revision_before_the_new_one_works() {
    let fake = FakeApi::new();
    fake.put(gadget("g", 1));
    let dir = PluginDir::new("swap-drain");
    dir.publish("revisions.wasm", &build("v1"));
    let host = start(&fake, &dir).await;
    host.until_gadget("g", "v1", 1).await;

    // v1 reconciles value 2 and is held in the middle of its apply.
    let cm = fake_api::kind("v1", "ConfigMap").path(NS, "g", None);
    let apply = fake.hold_next_if(Method::PATCH, &cm, |b| b["data"]["value"] == "2");
    fake.edit(GADGET.0, GADGET.1, NS, "g", json!({"spec": {"value": 2}}));
    apply.reached().await;
    dir.publish("revisions.wasm", &build("wide2"));
    // The new revision's controller starts: it watches ServiceAccounts too.
    let service_accounts = collection("v1", "ServiceAccount");
    let opened = || (fake.watching(&service_accounts) == 1).then_some(());
    eventually("the new revision's extra watch", opened).await;
    // Not an assertion on time: a host that let both revisions work would
    // have this long to show it.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let early: Vec<Write> = fake
        .writes()
        .into_iter()
        .filter(|w| revision_of(w) == Some("wide2"))
        .collect();
    assert!(
        early.is_empty(),
        "the new revision worked before the old one drained: {early:#?}"
    );

    apply.release();
    host.until_gadget("g", "wide2", 2).await;
    let writes = fake.writes();
    let status = fake_api::kind(GADGET.0, GADGET.1).path(NS, "g", Some("status"));
    let old_done = writes
        .iter()
        .position(|w| {
            // A status patch carries what changed: value 2, not a revision.
            let s = &w.body["status"];
            w.path == status && s["value"] == 2 && revision_of(w) != Some("wide2")
        })
        .unwrap_or_else(|| panic!("the old revision finished its reconcile: {writes:#?}"));
    let new_first = writes
        .iter()
        .position(|w| revision_of(w) == Some("wide2"))
        .unwrap();
    assert!(old_done < new_first, "{writes:#?}");
    let late = writes[new_first..]
        .iter()
        .filter(|w| revision_of(w) == Some("v1"));
    assert_eq!(late.count(), 0, "{writes:#?}");
    host.stop().await;
}

/// Across swaps and a rollback, the kinds both revisions use keep one
/// watch (listed once: never closed in between), and a kind only the
/// replaced revision used is released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swaps_keep_the_shared_watches_and_release_the_rest() {
    let fake = FakeApi::new();
    fake.put(gadget("g", 1));
    let dir = PluginDir::new("swap-watches");
    dir.publish("revisions.wasm", &build("v1"));
    let host = start(&fake, &dir).await;
    host.until_gadget("g", "v1", 1).await;
    assert_eq!(host.shared.caches.open_watches(), 2);

    dir.publish("revisions.wasm", &build("wide2"));
    host.until_gadget("g", "wide2", 1).await;
    eventually("the new child kind", || {
        fake.get("v1", "ServiceAccount", NS, "g")
    })
    .await;
    assert_eq!(host.shared.caches.open_watches(), 3);

    let back = host.rollback("revisions", None).await.expect("a rollback");
    assert_eq!(
        back["message"],
        "plugin revisions rolled back to revision 1"
    );
    assert_eq!(back["plugin"]["active"], 1);
    let service_accounts = collection("v1", "ServiceAccount");
    let closed = || (fake.watching(&service_accounts) == 0).then_some(());
    eventually("the ServiceAccount watch to close", closed).await;
    assert_eq!(host.shared.caches.open_watches(), 2);
    for shared in [
        collection(GADGET.0, GADGET.1),
        collection("v1", "ConfigMap"),
    ] {
        assert_eq!(fake.lists(&shared), 1, "{shared} listed once");
        assert_eq!(fake.watching(&shared), 1, "{shared} watched once");
    }
    host.stop().await;
}

/// Each way a rollback cannot be done is its own error, worded for the
/// person who asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_errors_say_what_is_missing() {
    let fake = FakeApi::new();
    fake.put(gadget("g", 1));
    let dir = PluginDir::new("rollback-errors");
    dir.publish("revisions.wasm", &build("v1"));
    let host = start(&fake, &dir).await;
    let refused = async |name: &str, to: Option<u32>| {
        let answer = host.rollback(name, to).await;
        answer.expect_err("a refusal").to_string()
    };
    assert_eq!(
        refused("nope", None).await,
        "no plugin named nope is loaded"
    );
    assert_eq!(
        refused("revisions", None).await,
        "plugin revisions has no earlier revision to roll back to"
    );
    assert_eq!(
        refused("revisions", Some(1)).await,
        "revision 1 of revisions is already active"
    );
    assert_eq!(
        refused("revisions", Some(4)).await,
        "plugin revisions has no revision 4 kept (kept: 1)"
    );

    dir.publish("revisions.wasm", &build("v2"));
    host.until_gadget("g", "v2", 1).await;
    assert_eq!(
        refused("revisions", Some(4)).await,
        "plugin revisions has no revision 4 kept (kept: 1, 2)"
    );
    assert_eq!(
        refused("revisions", Some(2)).await,
        "revision 2 of revisions is already active"
    );
    host.rollback("revisions", Some(1))
        .await
        .expect("a rollback to 1");
    let plugin = host
        .ask(AdminRequest::Get("revisions".into()))
        .await
        .unwrap();
    assert_eq!(plugin["active"], 1);
    assert_eq!(
        refused("revisions", Some(1)).await,
        "revision 1 of revisions is already active"
    );
    host.until_gadget("g", "v1", 1).await;
    host.stop().await;
}

/// A plugin that does not load at start is rejected — listed, with why —
/// and the others run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_that_fails_to_load_at_start_is_rejected_and_the_others_run() {
    let fake = FakeApi::new();
    fake.put(gadget("g", 1));
    let dir = PluginDir::new("rejected");
    dir.publish("broken.wasm", b"not a component");
    dir.publish("revisions.wasm", &build("v1"));
    let host = start(&fake, &dir).await;
    assert_eq!(host.started, ["revisions"]);
    host.until_gadget("g", "v1", 1).await;

    let list = host.ask(AdminRequest::List).await.unwrap();
    let plugins: Vec<&Value> = list["plugins"].as_array().unwrap().iter().collect();
    assert_eq!(plugins.len(), 1);
    assert_eq!(plugins[0]["name"], "revisions");
    assert_eq!(plugins[0]["active"], 1);
    let rejected = list["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 1, "{list:#}");
    assert_eq!(rejected[0]["file"], "broken.wasm");
    assert_eq!(rejected[0]["kind"], "not-a-component");
    host.stop().await;
}
