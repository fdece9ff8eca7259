//! The Helm chart (`charts/operon`) with the real `helm` (compiled into
//! the control-plane binary): lint, what it renders, an install into the
//! control plane (kwok runs its Pods as fakes), the plain manifests kept
//! equal to what it renders — and its RBAC put to work: the real host run
//! as the chart's ServiceAccount, with a token from the TokenRequest API,
//! through the memcached demo, and a kind outside the grants refused.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServiceAccount};
use kube::api::{Api, PostParams};
use operon_test_support::{TestEnv, controlplane, wait_until};
use serde_json::{Value, json};

use common::host::{Host, WAIT, condition, create_memcached, memcached_api};

fn chart() -> PathBuf {
    common::root().join("charts/operon")
}

/// `helm <args>` against the test cluster; its stdout, or a failure with
/// its stderr.
fn helm(env: &TestEnv, args: &[&str]) -> Result<String, String> {
    let out = Command::new(controlplane::ensure_binary().unwrap())
        .arg("helm")
        .args(args)
        .arg("--kubeconfig")
        .arg(&env.kubeconfig_path)
        .output()
        .expect("running helm");
    match out.status.success() {
        true => Ok(String::from_utf8(out.stdout).unwrap()),
        false => Err(String::from_utf8_lossy(&out.stderr).to_string()),
    }
}

fn documents(yaml: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(yaml)
        .unwrap()
        .into_iter()
        .filter(|d| !d.is_null())
        .collect()
}

fn find<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

/// The values the tests install with: the release's namespace watched,
/// the image from the test registry.
fn values(env: &TestEnv) -> Vec<String> {
    vec![
        format!("watchNamespace={}", env.namespace),
        "image.repository=registry.invalid/operon".to_string(),
    ]
}

fn set_args(values: &[String]) -> Vec<&str> {
    values.iter().flat_map(|v| ["--set", v.as_str()]).collect()
}

/// The Deployment as rendered with the defaults: two replicas electing a
/// leader, the probes, the restricted securityContext, the caches on an
/// emptyDir, the downward-API identity.
fn check_deployment(docs: &[Value]) {
    let deployment = find(docs, "Deployment")[0];
    let spec = &deployment["spec"];
    assert_eq!(spec["replicas"], 2);
    let pod = &spec["template"]["spec"];
    let container = &pod["containers"][0];
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(args.contains(&"--leader-elect"), "{args:?}");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    let sc = &container["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["runAsUser"], 65532);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let volumes = pod["volumes"].as_array().unwrap();
    let cache = volumes.iter().find(|v| v["name"] == "cache").unwrap();
    assert!(cache["emptyDir"].is_object(), "the caches are an emptyDir");
    let env_names: Vec<&Value> = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["name"])
        .collect();
    assert_eq!(
        env_names,
        [&json!("OPERON_POD_NAME"), &json!("OPERON_POD_NAMESPACE")]
    );
}

#[tokio::test]
async fn the_chart_lints_renders_hardened_and_installs() {
    let env = TestEnv::new().await;
    let chart = chart();
    let chart = chart.to_str().unwrap();
    helm(&env, &["lint", "--strict", chart]).unwrap();

    let rendered = helm(&env, &["template", "operon", chart, "-n", "operon-system"]).unwrap();
    let docs = documents(&rendered);
    check_deployment(&docs);
    assert_eq!(find(&docs, "PodDisruptionBudget").len(), 1);
    assert_eq!(find(&docs, "Service").len(), 1);
    assert_eq!(find(&docs, "ServiceAccount").len(), 1);
    assert!(find(&docs, "ServiceMonitor").is_empty(), "off by default");
    let monitored = helm(
        &env,
        &[
            "template",
            "operon",
            chart,
            "--set",
            "metrics.serviceMonitor.enabled=true",
        ],
    )
    .unwrap();
    assert_eq!(find(&documents(&monitored), "ServiceMonitor").len(), 1);
    let two_writers = helm(
        &env,
        &[
            "template",
            "operon",
            chart,
            "--set",
            "leaderElection.enabled=false",
        ],
    )
    .unwrap_err();
    assert!(
        two_writers.contains("replicaCount > 1 needs leaderElection.enabled"),
        "{two_writers}"
    );

    // The plain manifests are what the chart renders with its defaults.
    let plain = std::fs::read_to_string(common::root().join("deploy/operon.yaml")).unwrap();
    assert_eq!(
        plain.split_once("---\n").map(|(_, rest)| rest),
        Some(rendered.trim_start_matches("---\n")),
        "deploy/operon.yaml is stale: regenerate it as its first line says"
    );

    // Installed: every object accepted by the API server, the Pods run
    // (as kwok fakes them).
    let values = values(&env);
    let mut install = vec![
        "install",
        "operon",
        chart,
        "-n",
        &env.namespace,
        "--wait",
        "--timeout",
        "120s",
    ];
    install.extend(set_args(&values));
    helm(&env, &install).unwrap();
    let deployments: Api<Deployment> = env.api();
    let d = deployments.get("operon").await.unwrap();
    assert_eq!(d.status.and_then(|s| s.ready_replicas), Some(2));
    helm(
        &env,
        &["uninstall", "operon", "-n", &env.namespace, "--wait"],
    )
    .unwrap();
    env.cleanup().await.unwrap();
}

/// Outside the chart's grants, the API server itself refuses the
/// account: Secrets, ConfigMaps, the plugins' kinds in another namespace.
async fn refused_outside_the_grants(kubeconfig: &Path, namespace: &str) {
    let sa = operon_test_support::client_for(kubeconfig, Some(namespace))
        .await
        .unwrap();
    let secrets: Api<Secret> = Api::namespaced(sa.clone(), namespace);
    let secret: Secret = serde_json::from_value(json!({"metadata": {"name": "x"}})).unwrap();
    let refused = secrets.create(&PostParams::default(), &secret).await;
    assert!(
        matches!(&refused, Err(kube::Error::Api(s)) if s.code == 403),
        "{refused:?}"
    );
    let maps: Api<ConfigMap> = Api::namespaced(sa.clone(), namespace);
    let listed = maps.list(&Default::default()).await;
    assert!(
        matches!(&listed, Err(kube::Error::Api(s)) if s.code == 403),
        "{listed:?}"
    );
    let elsewhere: Api<Deployment> = Api::namespaced(sa, "default");
    let other = elsewhere.list(&Default::default()).await;
    assert!(
        matches!(&other, Err(kube::Error::Api(s)) if s.code == 403),
        "the plugins' kinds only in the watched namespace: {other:?}"
    );
}

/// A token for a ServiceAccount from the TokenRequest API, as the kubelet
/// would mount it.
async fn token(env: &TestEnv, account: &str) -> String {
    let accounts: Api<ServiceAccount> = env.api();
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            expiration_seconds: Some(3600),
            ..Default::default()
        }),
        ..Default::default()
    };
    accounts
        .create_token_request(account, &PostParams::default(), &request)
        .await
        .unwrap()
        .status
        .and_then(|s| s.token)
        .expect("a token in the TokenRequest's status")
}

/// A kubeconfig for the cluster of `env` that authenticates with `token`.
fn token_kubeconfig(env: &TestEnv, token: &str, dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(&env.kubeconfig_path).unwrap();
    let mut config: Value = serde_saphyr::from_str(&text).unwrap();
    config["users"] = json!([{"name": "sa", "user": {"token": token}}]);
    let context = json!([{"name": "sa", "context": {
        "cluster": config["clusters"][0]["name"], "user": "sa", "namespace": env.namespace}}]);
    config["contexts"] = context;
    config["current-context"] = json!("sa");
    let path = dir.join("sa.kubeconfig");
    std::fs::write(&path, serde_json::to_string(&config).unwrap()).unwrap();
    path
}

#[tokio::test]
async fn the_chart_rbac_suffices_for_the_demo_and_refuses_what_it_does_not_grant() {
    let env = TestEnv::new().await;
    let chart = chart();
    let values = values(&env);
    // Only the RBAC and the ServiceAccount are needed here: no replicas
    // (kwok's fake Pods would not run the host anyway).
    let mut install = vec![
        "install",
        "rbac",
        chart.to_str().unwrap(),
        "-n",
        &env.namespace,
    ];
    install.extend(set_args(&values));
    install.extend([
        "--set",
        "replicaCount=0",
        "--set",
        "podDisruptionBudget.enabled=false",
    ]);
    helm(&env, &install).unwrap();

    let token = token(&env, "rbac-operon").await;
    let dir = common::temp_dir(&format!("rbac-{}", env.namespace));
    let kubeconfig = token_kubeconfig(&env, &token, &dir);

    // The real host as that account: leader election (the chart's Lease
    // Role), the CRD it ships (the host ClusterRole), the demo's writes.
    let pod_env = [("OPERON_POD_NAMESPACE", env.namespace.as_str())];
    let mut host = Host::start_env(
        &env,
        &["rust-memcached"],
        &kubeconfig,
        &["--leader-elect", "--leader-elect-lease", "operon"],
        &pod_env,
    );
    host.ready().await;
    create_memcached(&env, "demo", 2).await;
    let parents = memcached_api(&env);
    wait_until(
        "the demo converged as the chart's account",
        WAIT,
        || async {
            let v = serde_json::to_value(parents.get("demo").await?)?;
            Ok(condition(&v, "Synced")
                .is_some_and(|c| c["status"] == "True")
                .then_some(()))
        },
    )
    .await
    .unwrap();
    let deployments: Api<Deployment> = env.api();
    let services: Api<Service> = env.api();
    assert_eq!(
        deployments
            .get("demo")
            .await
            .unwrap()
            .spec
            .unwrap()
            .replicas,
        Some(2)
    );
    services.get("demo").await.unwrap();

    refused_outside_the_grants(&kubeconfig, &env.namespace).await;

    let status = host.terminate();
    assert!(status.success(), "{status}");
    helm(&env, &["uninstall", "rbac", "-n", &env.namespace]).unwrap();
    env.cleanup().await.unwrap();
}
