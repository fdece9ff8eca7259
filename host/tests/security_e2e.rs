//! A hostile tenant's plugin against the real control plane, with no grants
//! file unless a test says otherwise: it must not escalate, take over what
//! is not its parent's, or fail silently, and its bad answers must not
//! flood conditions, events or logs.

mod common;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{Api, PostParams};
use operon_test_support::{TestEnv, wait_until};
use serde_json::{Value, json};

use common::cluster_scoped::ClusterScoped;
use common::host::{
    Host, WAIT, condition, create_widget, event_notes, get, grants_file, host_pod, metric,
    rbac_objects, synced, widget_api,
};

/// The bound on plugin- and server-supplied text in messages (bytes).
const BOUND: usize = 1024;

async fn admin_json(host: &Host, path: &str) -> Value {
    let (code, body) = get(&host.admin, path).await.unwrap();
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

#[tokio::test]
async fn a_plugin_that_fails_to_load_is_skipped_and_the_others_serve() {
    let env = TestEnv::new().await;
    let pod = host_pod(&env).await;
    let vars = pod.each_ref().map(|(k, v)| (*k, v.as_str()));
    // escalate declares RoleBindings and has no grant naming them.
    let host = Host::start_env(
        &env,
        &["test-plugin-widgets", "test-plugin-escalate"],
        &env.kubeconfig_path,
        &[],
        &vars,
    );
    std::fs::write(
        host.dir.join("broken.wasm"),
        b"\0asm\x01\0\0\0 not a component",
    )
    .unwrap();
    host.ready().await;

    create_widget(&env, "good", json!({"mode": "ok"})).await;
    let c = synced(&env, "good", "True").await;
    assert_eq!(c["reason"], "ReconcileSucceeded", "{c}");
    let listed = admin_json(&host, "/plugins").await;
    let names: Vec<&str> = listed["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["widgets"], "{listed}");
    let rejected = listed["rejected"].as_array().unwrap();
    let escalate = rejected
        .iter()
        .find(|r| r["file"] == "test_plugin_escalate.wasm")
        .unwrap_or_else(|| panic!("{listed}"));
    assert_eq!(escalate["kind"], "not-granted");
    let reason = escalate["reason"].as_str().unwrap();
    assert!(
        reason.contains("owns rbac.authorization.k8s.io/v1/RoleBinding")
            && reason.contains("list it by name under owns")
            && reason.contains("plugins.escalate"),
        "names the kind and the grant to add: {reason}"
    );
    let (_, text) = get(&host.metrics, "/metrics").await.unwrap();
    assert_eq!(
        metric(
            &text,
            "operon_plugin_rejected_builds_total",
            &["plugin=\"test_plugin_escalate\"", "reason=\"not-granted\""]
        ),
        1.0,
        "{text}"
    );
    wait_until("the broken file to be rejected too", WAIT, || async {
        let listed = admin_json(&host, "/plugins").await;
        Ok(listed["rejected"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["file"] == "broken.wasm" && r["kind"] == "not-a-component")
            .then_some(()))
    })
    .await
    .unwrap();
    let notes = wait_until("an event about each rejection", WAIT, || async {
        let notes = event_notes(&env, "operon-host", "PluginRejected").await;
        Ok((notes.len() >= 2).then_some(notes))
    })
    .await
    .unwrap();
    assert!(notes.iter().any(|n| n.contains("RoleBinding")), "{notes:?}");
    // Nothing of the escalating plugin ran.
    let bindings: Api<RoleBinding> = env.api();
    assert!(
        bindings
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    drop(host);
    env.cleanup().await.unwrap();
}

#[tokio::test]
async fn granted_rolebindings_still_cannot_bind_what_the_plugin_does_not_hold() {
    let env = TestEnv::new().await;
    let grants = grants_file(
        &env,
        "plugins:\n  escalate:\n    owns: [v1/ConfigMap, rbac.authorization.k8s.io/v1/RoleBinding]\n",
    );
    let dir = common::temp_dir(&format!("rbac-{}", env.namespace));
    let src = common::component("test-plugin-escalate");
    std::fs::copy(&src, dir.join(src.file_name().unwrap())).unwrap();
    let mut rbac = ClusterScoped::new(&env);
    for o in &rbac_objects(&env, &dir, Some(&grants)) {
        rbac.apply(o).await;
    }
    let host = Host::start_with(
        &env,
        &["test-plugin-escalate"],
        &env.kubeconfig_path,
        &[
            "--grants",
            grants.to_str().unwrap(),
            "--impersonate",
            &env.namespace,
        ],
    );
    host.ready().await;
    create_widget(&env, "admin-please", json!({"user": "mallory"})).await;
    let c = synced(&env, "admin-please", "False").await;
    assert_eq!(c["reason"], "ApplyFailed", "{c}");
    let message = c["message"].as_str().unwrap();
    let user = format!(
        "system:serviceaccount:{}:operon-plugin-escalate",
        env.namespace
    );
    assert!(
        message.contains("RoleBinding") && message.contains(&user) && message.contains("forbidden"),
        "the API server refuses the escalation, naming the account: {message}"
    );
    let bindings: Api<RoleBinding> = env.api();
    assert!(
        bindings
            .get_opt("admin-please-admin")
            .await
            .unwrap()
            .is_none(),
        "no binding was made"
    );
    drop(host);
    drop(rbac);
    env.cleanup().await.unwrap();
}

async fn config_map(env: &TestEnv, name: &str) -> ConfigMap {
    let maps: Api<ConfigMap> = env.api();
    maps.get(name).await.unwrap()
}

#[tokio::test]
async fn objects_that_are_not_the_parents_are_never_taken_by_surprise() {
    let env = TestEnv::new().await;
    let maps: Api<ConfigMap> = env.api();
    let victim: ConfigMap = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "victim", "namespace": env.namespace},
        "data": {"owner": "someone else"}
    }))
    .unwrap();
    maps.create(&PostParams::default(), &victim).await.unwrap();

    let host = Host::start(&env, &["test-plugin-widgets"]);
    host.ready().await;
    // Another parent's child.
    create_widget(&env, "first", json!({"mode": "ok"})).await;
    synced(&env, "first", "True").await;

    create_widget(&env, "thief", json!({"mode": "take", "target": "victim"})).await;
    let c = synced(&env, "thief", "False").await;
    assert_eq!(c["reason"], "AdoptionRefused", "{c}");
    let message = c["message"].as_str().unwrap();
    assert!(
        message.contains(&format!(
            "ConfigMap {}/victim exists and no one controls it",
            env.namespace
        )) && message.contains("adopt: true"),
        "{message}"
    );
    create_widget(&env, "robber", json!({"mode": "take", "target": "first"})).await;
    let c = synced(&env, "robber", "False").await;
    assert_eq!(c["reason"], "AdoptionRefused", "{c}");
    let message = c["message"].as_str().unwrap();
    assert!(
        message.contains("is controlled by Widget first")
            && message.contains("never takes over another owner's object"),
        "names the owner: {message}"
    );
    let untouched = config_map(&env, "victim").await;
    assert_eq!(
        untouched.data.unwrap()["owner"],
        "someone else",
        "the unowned object's data is untouched"
    );
    assert!(untouched.metadata.owner_references.is_none());
    drop(host);

    // With the grant's consent an object no one controls is adopted; one
    // another parent controls is still refused.
    let grants = grants_file(&env, "plugins:\n  widgets:\n    adopt: true\n");
    let host = Host::start_with(
        &env,
        &["test-plugin-widgets"],
        &env.kubeconfig_path,
        &["--grants", grants.to_str().unwrap()],
    );
    host.ready().await;
    let thief_uid = widget_api(&env).get("thief").await.unwrap().metadata.uid;
    let adopted = wait_until("the victim to be adopted", WAIT, || async {
        let cm = maps.get("victim").await?;
        let controlled = cm
            .metadata
            .owner_references
            .iter()
            .flatten()
            .any(|r| r.controller == Some(true) && Some(&r.uid) == thief_uid.as_ref());
        Ok(controlled.then_some(cm))
    })
    .await
    .unwrap();
    assert_eq!(adopted.data.unwrap()["taken"], "thief");
    synced(&env, "thief", "True").await;
    let c = synced(&env, "robber", "False").await;
    assert_eq!(c["reason"], "AdoptionRefused", "{c}");
    let first = config_map(&env, "first").await;
    let owners: Vec<String> = first
        .metadata
        .owner_references
        .iter()
        .flatten()
        .map(|r| r.name.clone())
        .collect();
    assert_eq!(owners, ["first"], "never taken");
    assert_eq!(first.data.unwrap()["owner"], "widgets");
    drop(host);
    env.cleanup().await.unwrap();
}

/// The Warning events about a widget, each note checked against the bound.
async fn bounded_warnings(env: &TestEnv, name: &str) -> Vec<String> {
    let notes = event_notes(env, name, "ReconcileError").await;
    for n in &notes {
        assert!(n.len() <= BOUND, "an event note of {} bytes", n.len());
    }
    notes
}

fn assert_bounded(c: &Value) -> &str {
    let message = c["message"].as_str().unwrap();
    assert!(
        message.len() <= BOUND,
        "a condition message of {} bytes",
        message.len()
    );
    message
}

#[tokio::test]
async fn oversized_answers_fail_visibly_with_bounded_messages() {
    let env = TestEnv::new().await;
    let log = common::temp_dir(&format!("log-{}", env.namespace)).join("host.log");
    let host = Host::start_logged(&env, &["test-plugin-widgets"], &[], &[], &log);
    host.ready().await;

    // 10 MB of status: refused by the host before anything is sent.
    create_widget(&env, "bigstatus", json!({"mode": "bigstatus"})).await;
    let c = synced(&env, "bigstatus", "False").await;
    assert_eq!(c["reason"], "OutputTooLarge", "{c}");
    let message = assert_bounded(&c);
    assert!(
        message.starts_with("the status is 9.5 MiB of JSON, over the limit of 256.0 KiB")
            && message.contains("limits.statusKib"),
        "says the size and the limit to raise: {message}"
    );
    let notes = wait_until("a Warning event", WAIT, || async {
        let notes = bounded_warnings(&env, "bigstatus").await;
        Ok((!notes.is_empty()).then_some(notes))
    })
    .await
    .unwrap();
    assert!(
        notes[0].contains("not retried until the parent changes"),
        "{notes:?}"
    );

    // A 1 MB label: under the child limit, refused by the API server, which
    // echoes it; retried, one bounded Warning event per attempt.
    create_widget(&env, "biglabel", json!({"mode": "biglabel"})).await;
    let c = synced(&env, "biglabel", "False").await;
    assert_eq!(c["reason"], "ApplyFailed", "{c}");
    let message = assert_bounded(&c);
    assert!(
        message.contains("more bytes cut]") && message.contains("labels"),
        "the server's refusal, cut visibly: {message}"
    );
    let notes = wait_until("three attempts", WAIT, || async {
        let notes = bounded_warnings(&env, "biglabel").await;
        Ok((notes.len() >= 3).then_some(notes))
    })
    .await
    .unwrap();
    let mut attempts: Vec<u32> = notes
        .iter()
        .filter_map(|n| common::host::attempt_and_delay(n).map(|(a, _)| a))
        .collect();
    attempts.sort();
    assert_eq!(
        attempts,
        (1..=attempts.len() as u32).collect::<Vec<_>>(),
        "one event per attempt: {notes:?}"
    );
    drop(host);
    let text = std::fs::read_to_string(&log).unwrap();
    let longest = text.lines().map(str::len).max().unwrap_or(0);
    assert!(
        longest <= 2 * BOUND,
        "host log lines stay bounded; the longest has {longest} bytes"
    );
    assert!(text.contains("biglabel"), "the log names the parent");
    env.cleanup().await.unwrap();
}

#[tokio::test]
async fn a_status_the_api_server_refuses_is_still_reported_on_the_parent() {
    let env = TestEnv::new().await;
    // Limits raised past the API server's own (3 MiB per request), so the
    // 10 MB status reaches it and is refused there.
    let grants = grants_file(
        &env,
        "plugins:\n  widgets:\n    limits: {statusKib: 16384, responseKib: 32768}\n",
    );
    let host = Host::start_with(
        &env,
        &["test-plugin-widgets"],
        &env.kubeconfig_path,
        &["--grants", grants.to_str().unwrap()],
    );
    host.ready().await;
    create_widget(&env, "refused", json!({"mode": "bigstatus"})).await;
    let c = synced(&env, "refused", "False").await;
    assert_eq!(c["reason"], "StatusWriteFailed", "{c}");
    let message = assert_bounded(&c);
    assert!(
        message.contains("patching the status of Widget") && message.contains("413"),
        "{message}"
    );
    let w = serde_json::to_value(widget_api(&env).get("refused").await.unwrap()).unwrap();
    assert!(
        w["status"].get("blob").is_none(),
        "only the minimal status was written"
    );
    assert!(condition(&w, "Synced").is_some());
    wait_until("a Warning event", WAIT, || async {
        Ok((!bounded_warnings(&env, "refused").await.is_empty()).then_some(()))
    })
    .await
    .unwrap();
    let (_, text) = get(&host.metrics, "/metrics").await.unwrap();
    assert!(
        metric(
            &text,
            "operon_status_write_failures_total",
            &["plugin=\"widgets\"", "code=\"413\""]
        ) >= 1.0,
        "{text}"
    );
    drop(host);
    env.cleanup().await.unwrap();
}
