//! The sandbox's boundaries on the real control plane: the API server
//! enforcing a plugin's grant a second time (`--impersonate`), one plugin's
//! admission limit, and backoff for a plugin that traps on every call.

mod common;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, Patch, PatchParams};
use operon_test_support::{TestEnv, wait_until};
use serde_json::json;

use common::cluster_scoped::ClusterScoped;
use common::host::{
    Host, WAIT, condition, create_memcached, create_widget, get, memcached_api, metric,
    rbac_objects, synced, widget_api,
};

#[tokio::test]
async fn with_impersonation_the_api_server_refuses_what_the_grant_forbids() {
    let env = TestEnv::new().await;
    let dir = common::temp_dir(&format!("rbac-{}", env.namespace));
    let src = common::component("test-plugin-widgets");
    std::fs::copy(&src, dir.join(src.file_name().unwrap())).unwrap();
    let objects = rbac_objects(&env, &dir, None);
    let kinds: Vec<&str> = objects
        .iter()
        .map(|o| o["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "ServiceAccount",
            "ClusterRole",
            "RoleBinding",
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding"
        ],
        "per plugin: account, role, binding in the watched namespace; then the host's"
    );
    let role = &objects[1];
    let resources: Vec<&str> = role["rules"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["resources"].as_array().unwrap())
        .map(|r| r.as_str().unwrap())
        .collect();
    assert!(
        resources.contains(&"configmaps") && resources.contains(&"widgets/status"),
        "{resources:?}"
    );
    assert!(!resources.contains(&"secrets"), "{resources:?}");
    let mut rbac = ClusterScoped::new(&env);
    for o in &objects {
        rbac.apply(o).await;
    }

    // The host is told to skip its own check of answers against the grant
    // (a test hook); every write goes as the plugin's ServiceAccount.
    let host = Host::start_with(
        &env,
        &["test-plugin-widgets"],
        &env.kubeconfig_path,
        &[
            "--impersonate",
            &env.namespace,
            "--unsafe-skip-grant-checks",
        ],
    );
    host.ready().await;

    // What the grant allows still works as the ServiceAccount: the child,
    // the finalizer, the status.
    create_widget(&env, "allowed", json!({"mode": "ok"})).await;
    let c = synced(&env, "allowed", "True").await;
    assert_eq!(c["reason"], "ReconcileSucceeded", "{c}");
    let maps: Api<ConfigMap> = env.api();
    let cm = maps.get("allowed").await.unwrap();
    let managers: Vec<_> = cm
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter_map(|m| m.manager.as_deref())
        .collect();
    assert!(managers.contains(&"operon/widgets"), "{managers:?}");

    // A Secret the plugin does not own: the host's check was skipped, so
    // the write reaches the API server, which refuses it.
    create_widget(&env, "forbid", json!({"mode": "forbidden"})).await;
    let c = synced(&env, "forbid", "False").await;
    let message = c["message"].as_str().unwrap();
    let user = format!(
        "system:serviceaccount:{}:operon-plugin-widgets",
        env.namespace
    );
    assert_eq!(c["reason"], "ApplyFailed", "{c}");
    assert!(
        message.contains("forbidden") && message.contains("secrets") && message.contains(&user),
        "the API server names the account and the refused resource: {message}"
    );
    assert!(
        !message.contains("Status {"),
        "the server's message, not kube's debug dump: {message}"
    );
    let secrets: Api<Secret> = env.api();
    assert!(secrets.get_opt("forbid").await.unwrap().is_none());

    drop(host);
    drop(rbac);
    env.cleanup().await.unwrap();
}

#[tokio::test]
async fn one_plugins_burst_is_held_to_its_admission_limit() {
    let env = TestEnv::new().await;
    let grants = common::temp_dir(&format!("grants-{}", env.namespace)).join("grants.yaml");
    std::fs::write(
        &grants,
        "plugins:\n  widgets:\n    limits: {concurrency: 1, timeoutMs: 300}\n",
    )
    .unwrap();
    let host = Host::start_with(
        &env,
        &["rust-memcached", "test-plugin-widgets"],
        &env.kubeconfig_path,
        &["--grants", grants.to_str().unwrap()],
    );
    host.ready().await;
    // Eight widgets that each hold an instance until the time limit stops
    // them, again and again (timeouts are retried).
    for i in 0..8 {
        create_widget(&env, &format!("spin-{i}"), json!({"mode": "spin"})).await;
    }
    wait_until("the spinning widgets to time out", WAIT, || async {
        let (_, text) = get(&host.metrics, "/metrics").await?;
        Ok((metric(
            &text,
            "operon_plugin_traps_total",
            &["plugin=\"widgets\"", "reason=\"timeout\""],
        ) >= 4.0)
            .then_some(()))
    })
    .await
    .unwrap();

    // Meanwhile the other plugin reconciles as usual.
    create_memcached(&env, "neighbour", 2).await;
    let api = memcached_api(&env);
    wait_until("the memcached plugin to reconcile", WAIT, || async {
        let v = serde_json::to_value(api.get("neighbour").await?)?;
        Ok(condition(&v, "Synced")
            .is_some_and(|c| c["status"] == "True")
            .then_some(()))
    })
    .await
    .unwrap();

    let (_, text) = get(&host.metrics, "/metrics").await.unwrap();
    assert_eq!(
        metric(
            &text,
            "operon_plugin_inflight_peak",
            &["plugin=\"widgets\""]
        ),
        1.0,
        "never more than the limit of widget calls at once: {text}"
    );
    assert!(
        metric(&text, "workqueue_depth", &["name=\"widgets\""]) >= 1.0
            || metric(&text, "workqueue_retries_total", &["name=\"widgets\""]) >= 4.0,
        "the widgets were still being worked through: {text}"
    );
    drop(host);
    env.cleanup().await.unwrap();
}

#[tokio::test]
async fn a_plugin_that_traps_on_every_call_backs_off_instead_of_looping() {
    let env = TestEnv::new().await;
    let host = Host::start(&env, &["test-plugin-widgets"]);
    host.ready().await;
    create_widget(&env, "trap", json!({"mode": "panic"})).await;
    synced(&env, "trap", "False").await;

    // The clock of this test is a fixed number of events, not time: ten
    // changes to a healthy widget, each waited for until applied.
    create_widget(&env, "steady", json!({"mode": "ok"})).await;
    synced(&env, "steady", "True").await;
    let maps: Api<ConfigMap> = env.api();
    for round in 0..10 {
        let extra = round % 2 == 0;
        widget_api(&env)
            .patch(
                "steady",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"extra": extra}})),
            )
            .await
            .unwrap();
        wait_until(
            &format!("round {round}: steady-extra = {extra}"),
            WAIT,
            || async { Ok((maps.get_opt("steady-extra").await?.is_some() == extra).then_some(())) },
        )
        .await
        .unwrap();
    }

    let (_, text) = get(&host.metrics, "/metrics").await.unwrap();
    let traps = metric(
        &text,
        "operon_plugin_traps_total",
        &["plugin=\"widgets\"", "reason=\"unreachable\""],
    );
    // Retries double from 100 ms: over any stretch these ten rounds take,
    // that is a handful of attempts (a hot loop would be thousands).
    assert!(
        (2.0..=20.0).contains(&traps),
        "the trapping widget was retried, with backoff: {traps} attempts"
    );
    let c = condition(
        &serde_json::to_value(widget_api(&env).get("trap").await.unwrap()).unwrap(),
        "Synced",
    )
    .cloned()
    .unwrap();
    assert_eq!(c["reason"], "PluginTrap", "{c}");
    drop(host);
    env.cleanup().await.unwrap();
}
