//! The per-test fixture: one shared control plane per test binary, one
//! namespace per test.

use std::collections::hash_map::RandomState;
use std::future::Future;
use std::hash::BuildHasher;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, anyhow, bail};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{DeleteParams, ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};

use crate::controlplane::{self, UpOptions};

/// A test's view of the cluster: an admin client and a namespace of its own.
///
/// The namespace is deleted when the `TestEnv` is dropped (also when the test
/// panics), or explicitly with [`TestEnv::cleanup`].
pub struct TestEnv {
    /// Client with cluster-admin rights (group `system:masters`), default
    /// namespace set to [`TestEnv::namespace`].
    pub client: Client,
    /// A fresh namespace, unique to this test.
    pub namespace: String,
    /// The admin kubeconfig of the cluster in use.
    pub kubeconfig_path: PathBuf,
    deleted: bool,
}

struct Shared {
    kubeconfig: PathBuf,
}

static SHARED: OnceLock<std::result::Result<Shared, String>> = OnceLock::new();
static STARTED_STATE_DIR: OnceLock<PathBuf> = OnceLock::new();

fn truthy(var: &str) -> bool {
    std::env::var(var).is_ok_and(|v| matches!(v.as_str(), "1" | "true" | "yes"))
}

unsafe extern "C" {
    fn atexit(cb: extern "C" fn()) -> std::ffi::c_int;
}

extern "C" fn stop_started_cluster() {
    if let Some(dir) = STARTED_STATE_DIR.get() {
        let _ = controlplane::down(dir);
    }
}

/// The kubeconfig of the cluster the tests use, starting a private control
/// plane on first call if no running cluster was given (see the crate docs).
/// Blocking; call it from `spawn_blocking` in async code.
pub fn shared_kubeconfig() -> Result<PathBuf> {
    let shared = SHARED.get_or_init(|| start_or_reuse().map_err(|e| format!("{e:#}")));
    match shared {
        Ok(s) => Ok(s.kubeconfig.clone()),
        Err(e) => Err(anyhow!("no control plane for tests: {e}")),
    }
}

fn start_or_reuse() -> Result<Shared> {
    if let Some(path) = std::env::var_os("OPERON_TEST_KUBECONFIG").filter(|p| !p.is_empty()) {
        return Ok(Shared {
            kubeconfig: PathBuf::from(path),
        });
    }
    if truthy("OPERON_TEST_USE_KUBECONFIG") {
        let path = std::env::var_os("KUBECONFIG")
            .filter(|p| !p.is_empty())
            .context("OPERON_TEST_USE_KUBECONFIG is set but KUBECONFIG is not")?;
        return Ok(Shared {
            kubeconfig: PathBuf::from(path),
        });
    }
    let pid = std::process::id();
    let state_dir = controlplane::target_dir().join(format!("operon-cluster-test-{pid}"));
    let mut opts = UpOptions::new(&state_dir);
    opts.owner_pid = Some(pid);
    let _ = STARTED_STATE_DIR.set(state_dir);
    // Registered before starting so a half-started cluster is cleaned up too.
    // SAFETY: registering a plain extern "C" fn with the C runtime.
    unsafe {
        atexit(stop_started_cluster);
    }
    let kubeconfig = controlplane::up(&opts)?;
    Ok(Shared { kubeconfig })
}

/// A `kube::Client` for a kubeconfig file.
pub async fn client_for(kubeconfig: &Path, namespace: Option<&str>) -> Result<Client> {
    let kc = Kubeconfig::read_from(kubeconfig)
        .with_context(|| format!("read {}", kubeconfig.display()))?;
    let mut config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .with_context(|| format!("load {}", kubeconfig.display()))?;
    if let Some(ns) = namespace {
        config.default_namespace = ns.to_string();
    }
    Ok(Client::try_from(config)?)
}

/// Polls `check` until it yields `Some`, or fails after `timeout` with a
/// message naming `what` and the last observation. For convergence waits;
/// never for timing assertions.
pub async fn wait_until<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let start = Instant::now();
    loop {
        let last = match check().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => "condition not met".to_string(),
            Err(e) => format!("{e:#}"),
        };
        if start.elapsed() > timeout {
            bail!("timed out after {timeout:?} waiting for {what} (last: {last})");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn namespace_name() -> String {
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("test");
    let test = test.rsplit("::").next().unwrap_or(test);
    let mut slug: String = test
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    slug.truncate(40);
    let slug = slug.trim_matches('-');
    let rand = RandomState::new().hash_one((SystemTime::now(), std::process::id()));
    format!("t-{slug}-{:06x}", rand & 0xff_ffff)
}

impl TestEnv {
    /// Like [`TestEnv::try_new`], panicking with the reason on failure.
    pub async fn new() -> TestEnv {
        match Self::try_new().await {
            Ok(env) => env,
            Err(e) => panic!("TestEnv: {e:#}"),
        }
    }

    /// Gets the shared cluster (starting it if needed), creates a fresh
    /// namespace and waits until its `default` ServiceAccount exists (so Pods
    /// can be created in it right away).
    pub async fn try_new() -> Result<TestEnv> {
        let kubeconfig_path = tokio::task::spawn_blocking(shared_kubeconfig).await??;
        Self::on(kubeconfig_path).await
    }

    /// As [`TestEnv::try_new`], on the cluster of `kubeconfig_path` (a
    /// test's private control plane, say).
    pub async fn on(kubeconfig_path: PathBuf) -> Result<TestEnv> {
        let namespace = namespace_name();
        let client = client_for(&kubeconfig_path, Some(&namespace)).await?;
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(namespace.clone()),
                labels: Some([("operon.dev/test".to_string(), "true".to_string())].into()),
                ..Default::default()
            },
            ..Default::default()
        };
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .with_context(|| format!("create namespace {namespace}"))?;
        let env = TestEnv {
            client,
            namespace,
            kubeconfig_path,
            deleted: false,
        };
        let sas: Api<ServiceAccount> = env.api();
        wait_until(
            &format!(
                "ServiceAccount {}/default (created by kube-controller-manager)",
                env.namespace
            ),
            Duration::from_secs(120),
            || async { Ok(sas.get_opt("default").await?.map(|_| ())) },
        )
        .await?;
        Ok(env)
    }

    /// An `Api` for a namespaced kind in this test's namespace.
    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// A client that impersonates `user` (e.g. `system:serviceaccount:ns:name`)
    /// with `groups`, for checking what RBAC allows. The admin identity may
    /// impersonate anyone.
    pub async fn client_as(&self, user: &str, groups: &[&str]) -> Result<Client> {
        let kc = Kubeconfig::read_from(&self.kubeconfig_path)?;
        let mut config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
        config.default_namespace = self.namespace.clone();
        config.auth_info.impersonate = Some(user.to_string());
        if !groups.is_empty() {
            config.auth_info.impersonate_groups =
                Some(groups.iter().map(|g| g.to_string()).collect());
        }
        Ok(Client::try_from(config)?)
    }

    /// Deletes the namespace now (background propagation), reporting errors.
    pub async fn cleanup(mut self) -> Result<()> {
        self.deleted = true;
        delete_namespace(&self.client, &self.namespace).await
    }
}

async fn delete_namespace(client: &Client, namespace: &str) -> Result<()> {
    if truthy("OPERON_TEST_KEEP_NAMESPACES") {
        return Ok(());
    }
    match Api::<Namespace>::all(client.clone())
        .delete(namespace, &DeleteParams::background())
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e).with_context(|| format!("delete namespace {namespace}")),
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        if self.deleted {
            return;
        }
        self.deleted = true;
        // Drop cannot await, and the test's runtime may be shutting down: use
        // a short-lived runtime and client on a separate thread.
        let kubeconfig = self.kubeconfig_path.clone();
        let namespace = self.namespace.clone();
        let worker = std::thread::spawn(move || -> Result<()> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let client = client_for(&kubeconfig, None).await?;
                delete_namespace(&client, &namespace).await
            })
        });
        match worker.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!(
                "TestEnv: could not delete namespace {}: {e:#}",
                self.namespace
            ),
            Err(_) => eprintln!("TestEnv: namespace cleanup panicked for {}", self.namespace),
        }
    }
}
