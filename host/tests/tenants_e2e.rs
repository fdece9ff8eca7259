//! Tenants' plugins (`ReconcilerPlugin`), against the real control plane
//! and the real registry: a team with only namespaced RBAC installs its own
//! reconciler, which stays inside its namespace — its reads, its children,
//! its patches — cannot ship a CRD, and has its limits clamped by the
//! admin's `ReconcilerPluginPolicy`. What it may not write is refused twice:
//! by the host, and under `--impersonate` by the API server's RBAC, shown
//! from the API server's own audit log.

mod common;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, PostParams,
};
use operon_test_support::{TestEnv, wait_until};
use serde_json::{Value, json};

use common::cluster_scoped::ClusterScoped;
use common::host::{WAIT, condition, create_widget, widget_api};
use common::packages::{LABEL, host, is, push, reason, registries, revision_in_until};

/// A tenant's world: the test's namespace is team A's, a second namespace
/// (team B's) holds a ConfigMap `elsewhere`; the admin installed the Widget
/// kind and a policy for team A; the tenant user holds only namespaced
/// RBAC on `reconcilerplugins`.
struct Tenancy {
    team_b: String,
    /// `<open registry>/<namespace>/tenant`.
    repo: String,
    /// A client acting as the tenant user.
    as_tenant: kube::Client,
    /// The tenant user's ReconcilerPlugins (as that user).
    plugins: Api<DynamicObject>,
    /// Team A's ReconcilerPluginRevisions (as the admin).
    revisions: Api<DynamicObject>,
    /// Team B's namespace and the policy, deleted on drop.
    admin: ClusterScoped,
}

impl Tenancy {
    /// Sets it up; the host must be running (it installs the policy kind).
    async fn new(env: &TestEnv) -> Tenancy {
        let team_b = format!("{}-b", env.namespace);
        let mut admin = ClusterScoped::new(env);
        admin
            .apply(&json!({"apiVersion": "v1", "kind": "Namespace",
                           "metadata": {"name": team_b}}))
            .await;
        admin
            .apply(&json!({"apiVersion": "v1", "kind": "ConfigMap",
                           "metadata": {"name": "elsewhere", "namespace": team_b},
                           "data": {"k": "v"}}))
            .await;
        install_widget_kind(env).await;
        admin
            .apply(
                &json!({"apiVersion": "operon.dev/v1alpha1", "kind": "ReconcilerPluginPolicy",
                           "metadata": {"name": env.namespace},
                           "spec": {"namespaces": [env.namespace],
                                    "maxLimits": {"memoryMib": 32}}}),
            )
            .await;
        let user = format!("tenant-{}", env.namespace);
        admin
            .apply(&json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                "metadata": {"name": "plugins", "namespace": env.namespace},
                "rules": [{"apiGroups": ["operon.dev"], "resources": ["reconcilerplugins"],
                           "verbs": ["get", "list", "watch", "create", "patch", "update", "delete"]}]}))
            .await;
        admin
            .apply(&binding(
                env,
                "plugins",
                json!({"apiGroup": "rbac.authorization.k8s.io",
                                                   "kind": "User", "name": user}),
            ))
            .await;
        let as_tenant = client_as(env, &user).await;
        let ar =
            |kind| ApiResource::from_gvk(&GroupVersionKind::gvk("operon.dev", "v1alpha1", kind));
        Tenancy {
            repo: format!("{}/{}/tenant", registries(env).open, env.namespace),
            plugins: Api::namespaced_with(
                as_tenant.clone(),
                &env.namespace,
                &ar("ReconcilerPlugin"),
            ),
            as_tenant,
            revisions: Api::namespaced_with(
                env.client.clone(),
                &env.namespace,
                &ar("ReconcilerPluginRevision"),
            ),
            team_b,
            admin,
        }
    }

    /// Pushes `component` as `<repo>:<tag>`; its digest.
    fn push(&self, component: &str, tag: &str) -> String {
        push(
            &common::component(component),
            &format!("{}:{tag}", self.repo),
            &[],
        )
    }

    /// The tenant installs plugin `name` from `<repo>:<tag>`.
    async fn install(&self, env: &TestEnv, name: &str, tag: &str, grants: Value) {
        let plugin = json!({
            "apiVersion": "operon.dev/v1alpha1", "kind": "ReconcilerPlugin",
            "metadata": {"name": name, "namespace": env.namespace,
                         "labels": {LABEL: env.namespace}},
            "spec": {"source": {"image": format!("{}:{tag}", self.repo)}, "grants": grants}
        });
        self.plugins
            .create(
                &PostParams::default(),
                &serde_json::from_value(plugin).unwrap(),
            )
            .await
            .expect("a tenant with namespaced RBAC installs its plugin");
    }

    /// Waits until plugin `name`'s revision of `digest` satisfies `ok`.
    async fn revision(&self, name: &str, digest: &str, ok: impl Fn(&Value) -> bool) -> Value {
        let labels = format!("operon.dev/plugin-object={name}");
        let what = format!("plugin {name}'s revision {digest}");
        revision_in_until(&self.revisions, &labels, digest, &what, ok).await
    }
}

/// The admin installed the Widget kind; the tenant only uses it. Kept
/// after the test: the tests beside it use it too.
async fn install_widget_kind(env: &TestEnv) {
    let crd = std::fs::read_to_string(common::root().join("tests/plugins/widgets/crd.json"));
    let crd: CustomResourceDefinition = serde_json::from_str(&crd.unwrap()).unwrap();
    let api: Api<CustomResourceDefinition> = Api::all(env.client.clone());
    let name = crd.metadata.name.clone().unwrap();
    api.patch(
        &name,
        &PatchParams::apply("operon-test").force(),
        &Patch::Apply(&crd),
    )
    .await
    .unwrap();
    wait_until("the Widget kind served", WAIT, || async {
        let crd = api.get(&name).await?;
        let established = crd.status.and_then(|s| s.conditions).unwrap_or_default();
        Ok(established
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True")
            .then_some(()))
    })
    .await
    .unwrap();
}

/// A RoleBinding of Role `role` in the test's namespace to `subject`.
fn binding(env: &TestEnv, role: &str, subject: Value) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
           "metadata": {"name": role, "namespace": env.namespace},
           "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
           "subjects": [subject]})
}

/// A client of the test's cluster acting as `user`.
async fn client_as(env: &TestEnv, user: &str) -> kube::Client {
    let kubeconfig = kube::config::Kubeconfig::read_from(&env.kubeconfig_path).unwrap();
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    config.auth_info.impersonate = Some(user.to_string());
    kube::Client::try_from(config).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_plugin_reads_only_in_its_namespace_ships_no_crd_and_is_clamped() {
    let env = TestEnv::new().await;
    let host = host(&env, &registries(&env).open, &[]);
    host.ready().await;
    let t = Tenancy::new(&env).await;
    let reads = t.push("test-plugin-reads", "reads");
    let ships_crd = t.push("test-plugin-escalate", "crd");
    // It asks for more than a tenant gets: every namespace, 256 MiB.
    let greedy = json!({"reads": ["v1/ConfigMap"], "readNamespaces": ["*"],
                        "limits": {"memoryMib": 256}});
    t.install(&env, "reads", "reads", greedy).await;

    // Nothing beyond its namespace: no cluster-wide plugin.
    let cluster_wide: Api<DynamicObject> = Api::all_with(
        t.as_tenant.clone(),
        &ApiResource::from_gvk(&GroupVersionKind::gvk(
            "operon.dev",
            "v1alpha1",
            "ClusterReconcilerPlugin",
        )),
    );
    let cluster_plugin = json!({"apiVersion": "operon.dev/v1alpha1",
        "kind": "ClusterReconcilerPlugin", "metadata": {"name": env.namespace},
        "spec": {"source": {"image": "x"}}});
    let refused = cluster_wide
        .create(
            &PostParams::default(),
            &serde_json::from_value(cluster_plugin).unwrap(),
        )
        .await;
    assert!(
        matches!(refused, Err(kube::Error::Api(ref e)) if e.code == 403),
        "{refused:?}"
    );

    let compiled = t
        .revision("reads", &reads, |r| is(r, "Compiled", "True"))
        .await;
    let note = reason(&compiled, "Compiled");
    assert!(
        note.contains("memory 32 MiB"),
        "limits clamped by the policy: {note}"
    );

    // It reconciles in its namespace; reads in team B's are refused.
    let cms: Api<ConfigMap> = env.api();
    let settings = json!({"metadata": {"name": "settings", "labels": {"app": "demo"}}});
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(settings).unwrap(),
    )
    .await
    .unwrap();
    create_widget(&env, "w", json!({"otherNamespace": t.team_b})).await;
    let widget = wait_until("the tenant plugin's status on the widget", WAIT, || async {
        let w = serde_json::to_value(widget_api(&env).get("w").await?)?;
        Ok(w["status"]["settingsFound"]
            .as_bool()
            .filter(|f| *f)
            .map(|_| w))
    })
    .await
    .unwrap();
    let status = |field: &str| widget["status"][field].as_str().unwrap_or_default();
    assert!(
        !status("otherNamespace").starts_with("read:"),
        "a read in {} must be refused: {}",
        t.team_b,
        status("otherNamespace")
    );
    // Its Secrets: not without the policy's allowSecrets.
    assert!(
        !status("secret").starts_with("read:"),
        "Secrets refused: {}",
        status("secret")
    );

    // Shipping a CRD: refused for tenants, named on the revision.
    let grants = json!({"owns": ["v1/ConfigMap", "rbac.authorization.k8s.io/v1/RoleBinding"]});
    t.install(&env, "crd", "crd", grants).await;
    let refused = t
        .revision("crd", &ships_crd, |r| is(r, "Compiled", "False"))
        .await;
    let why = reason(&refused, "Compiled");
    assert!(
        why.starts_with("NotAllowedForTenants") && why.contains("CRD"),
        "{why}"
    );
    let secrets: Api<Secret> = Api::namespaced(env.client.clone(), &t.team_b);
    let in_b = secrets.list(&ListParams::default()).await.unwrap().items;
    assert!(in_b.iter().all(|s| s.metadata.name.as_deref() != Some("w")));
    drop(host);
}

/// The Role the tenant plugin's ServiceAccount gets in its namespace (an
/// admin's part, as `operon rbac` prints for a directory's plugins): its
/// ConfigMaps, its Widgets' status and finalizers, Events. Nothing in team
/// B's namespace, nothing cluster-scoped.
fn plugin_role(env: &TestEnv) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "operon-plugin-tenant", "namespace": env.namespace},
        "rules": [
            {"apiGroups": [""], "resources": ["configmaps"],
             "verbs": ["get", "list", "watch", "create", "patch", "update", "delete"]},
            {"apiGroups": ["test.operon.dev"], "resources": ["widgets", "widgets/status"],
             "verbs": ["get", "patch", "update"]},
            {"apiGroups": ["events.k8s.io"], "resources": ["events"],
             "verbs": ["create", "patch"]}]})
}

/// Waits until widget `name`'s Synced condition is False with a message
/// that satisfies `ok`; returns the message.
async fn refused(env: &TestEnv, name: &str, ok: impl Fn(&str) -> bool) -> String {
    let api = widget_api(env);
    let found = wait_until(&format!("widget {name} refused"), WAIT, || async {
        let w = serde_json::to_value(api.get(name).await?)?;
        Ok(condition(&w, "Synced")
            .filter(|c| c["status"] == "False")
            .and_then(|c| c["message"].as_str())
            .filter(|m| ok(m))
            .map(str::to_string))
    })
    .await;
    found.unwrap()
}

/// What the API server audited of `user`'s writes in `namespace` or to
/// Namespaces: `(verb resource/name, response code)`.
fn writes_of(env: &TestEnv, user: &str, namespace: &str) -> Vec<(String, i64)> {
    let log = common::audit_log(env);
    let text = std::fs::read_to_string(&log).unwrap();
    text.lines()
        .filter(|l| l.contains(user))
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e.pointer("/impersonatedUser/username") == Some(&json!(user)))
        .filter(|e| {
            e.pointer("/objectRef/namespace") == Some(&json!(namespace))
                || e.pointer("/objectRef/resource") == Some(&json!("namespaces"))
        })
        .map(|e| {
            let at = |p: &str| e.pointer(p).and_then(Value::as_str).unwrap_or("");
            let what = format!(
                "{} {}/{}",
                at("/verb"),
                at("/objectRef/resource"),
                at("/objectRef/name")
            );
            let code = e.pointer("/responseStatus/code").and_then(Value::as_i64);
            (what, code.unwrap_or(0))
        })
        .collect()
}

/// Team B's ConfigMap `elsewhere` and Namespace as an admin sees them:
/// neither carries the tenant plugin's label.
async fn untouched(env: &TestEnv, t: &Tenancy) {
    let touched = |labels: &Option<std::collections::BTreeMap<String, String>>| {
        labels
            .as_ref()
            .is_some_and(|l| l.contains_key("touched-by"))
    };
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), &t.team_b);
    let elsewhere = cms.get("elsewhere").await.unwrap();
    assert!(!touched(&elsewhere.metadata.labels), "{elsewhere:?}");
    assert!(
        cms.get_opt("child").await.unwrap().is_none(),
        "no child in {}",
        t.team_b
    );
    let namespaces: Api<Namespace> = Api::all(env.client.clone());
    let b = namespaces.get(&t.team_b).await.unwrap();
    assert!(!touched(&b.metadata.labels), "{b:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_plugins_writes_beyond_its_namespace_are_refused_by_the_host_and_by_rbac() {
    let env = TestEnv::new().await;
    let reg = registries(&env);
    let impersonate = ["--impersonate", env.namespace.as_str()];
    let checked = host(&env, &reg.open, &impersonate);
    checked.ready().await;
    let mut t = Tenancy::new(&env).await;
    let account = "operon-plugin-tenant";
    t.admin.apply(&plugin_role(&env)).await;
    let subject = json!({"kind": "ServiceAccount", "name": account, "namespace": env.namespace});
    t.admin.apply(&binding(&env, account, subject)).await;
    let user = format!("system:serviceaccount:{}:{account}", env.namespace);
    t.push("test-plugin-tenant", "v1");
    let grants = json!({"patches": ["v1/ConfigMap", "v1/Namespace"]});
    t.install(&env, "tenant", "v1", grants).await;

    // In its own namespace it writes, as its ServiceAccount.
    create_widget(&env, "own", json!({})).await;
    let cms: Api<ConfigMap> = env.api();
    wait_until("the tenant's ConfigMap", WAIT, || async {
        Ok(cms.get_opt("own").await?)
    })
    .await
    .unwrap();
    // Beyond it, the host refuses before anything is sent.
    create_widget(&env, "child", json!({"childIn": t.team_b})).await;
    create_widget(&env, "patch", json!({"patchIn": t.team_b})).await;
    create_widget(&env, "cluster", json!({"patchNamespace": t.team_b})).await;
    let other = format!("is not the parent's namespace {}", env.namespace);
    refused(&env, "child", |m| m.contains(&other)).await;
    let outside = format!(
        "patches only objects in its own namespace {}",
        env.namespace
    );
    let m = refused(&env, "patch", |m| m.contains(&outside)).await;
    assert!(m.contains(&format!("in namespace {}", t.team_b)), "{m}");
    let m = refused(&env, "cluster", |m| m.contains(&outside)).await;
    assert!(m.contains("cluster-scoped"), "{m}");
    untouched(&env, &t).await;
    let sent = writes_of(&env, &user, &t.team_b);
    assert!(sent.is_empty(), "nothing reached the API server: {sent:?}");
    drop(checked);

    // With the host's checks lifted (the test hook), the API server's RBAC
    // refuses the same writes: the plugin's account holds nothing there.
    let mut args = impersonate.to_vec();
    args.push("--unsafe-skip-grant-checks");
    let unchecked = host(&env, &reg.open, &args);
    unchecked.ready().await;
    for name in ["patch", "cluster"] {
        let m = refused(&env, name, |m| m.contains("forbidden")).await;
        assert!(m.contains(&user), "the API server names the account: {m}");
    }
    // A child's namespace is a structural check, kept even then.
    refused(&env, "child", |m| m.contains(&other)).await;
    untouched(&env, &t).await;
    let sent = writes_of(&env, &user, &t.team_b);
    let patched = |what: &str| sent.iter().any(|(w, _)| w == what);
    assert!(
        patched("patch configmaps/elsewhere") && patched(&format!("patch namespaces/{}", t.team_b)),
        "both patches were sent as {user}: {sent:?}"
    );
    assert!(
        sent.iter().all(|(_, code)| *code == 403),
        "each refused by RBAC: {sent:?}"
    );
    drop(unchecked);
}
