//! A running `operon run` against the test control plane, and helpers the
//! end-to-end tests share (metrics, conditions, the test Widget kind).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use operon_test_support::{TestEnv, wait_until};
use serde_json::{Value, json};

pub const WAIT: Duration = Duration::from_secs(120);

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `operon run`, stopped with SIGTERM when dropped.
pub struct Host {
    pub child: Child,
    pub metrics: String,
    pub health: String,
    /// The admin endpoint (`operon plugins --admin-addr`).
    pub admin: String,
    /// The plugin directory the host follows.
    pub dir: PathBuf,
}

impl Host {
    pub fn start(env: &TestEnv, packages: &[&str]) -> Host {
        Host::start_with(env, packages, &env.kubeconfig_path, &[])
    }

    pub fn start_with(
        env: &TestEnv,
        packages: &[&str],
        kubeconfig: &std::path::Path,
        extra: &[&str],
    ) -> Host {
        Host::start_env(env, packages, kubeconfig, extra, &[])
    }

    /// As [`Host::start_with`], with environment variables for the host.
    pub fn start_env(
        env: &TestEnv,
        packages: &[&str],
        kubeconfig: &std::path::Path,
        extra: &[&str],
        vars: &[(&str, &str)],
    ) -> Host {
        Host::spawn(env, packages, kubeconfig, extra, vars, Stdio::inherit())
    }

    /// As [`Host::start_env`], with the host's log written to `log`.
    pub fn start_logged(
        env: &TestEnv,
        packages: &[&str],
        extra: &[&str],
        vars: &[(&str, &str)],
        log: &std::path::Path,
    ) -> Host {
        let file = std::fs::File::create(log).expect("creating the host's log file");
        Host::spawn(
            env,
            packages,
            &env.kubeconfig_path,
            extra,
            vars,
            file.into(),
        )
    }

    fn spawn(
        env: &TestEnv,
        packages: &[&str],
        kubeconfig: &std::path::Path,
        extra: &[&str],
        vars: &[(&str, &str)],
        stderr: Stdio,
    ) -> Host {
        // One directory per host: two hosts of a test (leader election)
        // must not share, let alone recreate, each other's.
        static HOSTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = HOSTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = super::temp_dir(&format!("plugins-{}-{n}", env.namespace));
        for p in packages {
            let src = super::component(p);
            std::fs::copy(&src, dir.join(src.file_name().unwrap())).unwrap();
        }
        let (m, h, a) = (free_port(), free_port(), free_port());
        let child = Command::new(env!("CARGO_BIN_EXE_operon"))
            .args(["run", "--plugins"])
            .arg(&dir)
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(["--namespace", &env.namespace])
            .args(extra)
            .args(["--metrics-addr", &format!("127.0.0.1:{m}")])
            .args(["--health-addr", &format!("127.0.0.1:{h}")])
            .args(["--admin-addr", &format!("127.0.0.1:{a}")])
            .args(["--backoff-base-ms", "100"])
            .envs(vars.iter().copied())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("starting operon run");
        Host {
            child,
            metrics: format!("127.0.0.1:{m}"),
            health: format!("127.0.0.1:{h}"),
            admin: format!("127.0.0.1:{a}"),
            dir,
        }
    }

    /// Waits until `/readyz` answers 200 (CRDs installed, caches synced).
    pub async fn ready(&self) {
        wait_until("operon /readyz to answer 200", WAIT, || async {
            Ok(get(&self.health, "/readyz")
                .await
                .ok()
                .filter(|(c, _)| *c == 200))
        })
        .await
        .unwrap();
    }

    pub fn terminate(&mut self) -> std::process::ExitStatus {
        // SAFETY-free: kill(2) through the `kill` command keeps the test
        // free of libc bindings.
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        self.child.wait().unwrap()
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain HTTP GET on loopback: (status code, body).
pub async fn get(addr: &str, path: &str) -> anyhow::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).await?;
    let code = buf.split_whitespace().nth(1).unwrap_or("0").parse()?;
    let body = buf
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((code, body))
}

pub fn condition<'a>(obj: &'a Value, ty: &str) -> Option<&'a Value> {
    obj.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == ty)
}

/// The metric's value from Prometheus text, summed over series whose label
/// set contains `labels`.
pub fn metric(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter(|l| labels.iter().all(|want| l.contains(want)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

pub fn widget_api(env: &TestEnv) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk("test.operon.dev", "v1", "Widget"));
    Api::namespaced_with(env.client.clone(), &env.namespace, &ar)
}

pub async fn create_widget(env: &TestEnv, name: &str, spec: Value) {
    let w: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "test.operon.dev/v1", "kind": "Widget",
        "metadata": {"name": name, "namespace": env.namespace}, "spec": spec
    }))
    .unwrap();
    widget_api(env)
        .create(&PostParams::default(), &w)
        .await
        .unwrap();
}

/// The widget's Synced condition once it has the wanted status.
pub async fn synced(env: &TestEnv, name: &str, want: &str) -> Value {
    let api = widget_api(env);
    wait_until(&format!("widget {name} Synced={want}"), WAIT, || async {
        let v = serde_json::to_value(api.get(name).await?)?;
        Ok(condition(&v, "Synced")
            .filter(|c| c["status"] == want)
            .cloned())
    })
    .await
    .unwrap()
}

/// The notes of the events recorded about an object, by reason.
pub async fn event_notes(env: &TestEnv, name: &str, reason: &str) -> Vec<String> {
    use k8s_openapi::api::events::v1::Event;
    let events: Api<Event> = env.api();
    events
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .filter(|e| e.reason.as_deref() == Some(reason))
        .map(|e| e.note.unwrap_or_default())
        .collect()
}

/// Waits (up to [`WAIT`]) until a note of `reason` about `name` satisfies
/// `ok`; returns the notes then, or as they were at the deadline. Events
/// are recorded after the status that announces them, so a test that saw
/// the status must still wait for the Event.
pub async fn event_notes_until(
    env: &TestEnv,
    name: &str,
    reason: &str,
    ok: impl Fn(&str) -> bool,
) -> Vec<String> {
    let found = wait_until(&format!("an event {reason} about {name}"), WAIT, || async {
        let notes = event_notes(env, name, reason).await;
        Ok(notes.iter().any(|n| ok(n)).then_some(notes))
    })
    .await;
    match found {
        Ok(notes) => notes,
        Err(_) => event_notes(env, name, reason).await,
    }
}

pub async fn events_about(env: &TestEnv, name: &str, reason: &str) -> usize {
    event_notes(env, name, reason).await.len()
}

/// (attempt, planned delay in ms) from a retry note
/// "... (attempt 3; next try in 412ms)".
pub fn attempt_and_delay(note: &str) -> Option<(u32, u64)> {
    let rest = note.rsplit_once("(attempt ")?.1;
    let (attempt, rest) = rest.split_once("; next try in ")?;
    Some((
        attempt.parse().ok()?,
        rest.strip_suffix("ms)")?.parse().ok()?,
    ))
}

pub fn memcached_api(env: &TestEnv) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "cache.operon.dev",
        "v1alpha1",
        "Memcached",
    ));
    Api::namespaced_with(env.client.clone(), &env.namespace, &ar)
}

/// Creates a Memcached in the test's namespace; returns it as stored.
pub async fn create_memcached(env: &TestEnv, name: &str, size: i32) -> DynamicObject {
    let parent: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "cache.operon.dev/v1alpha1", "kind": "Memcached",
        "metadata": {"name": name, "namespace": env.namespace},
        "spec": {"size": size}
    }))
    .unwrap();
    memcached_api(env)
        .create(&PostParams::default(), &parent)
        .await
        .unwrap()
}

/// `operon rbac --impersonate <ns> --namespace <ns>` for a plugin
/// directory (and grants file), parsed.
pub fn rbac_objects(
    env: &TestEnv,
    plugins_dir: &std::path::Path,
    grants: Option<&std::path::Path>,
) -> Vec<Value> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_operon"));
    cmd.args(["rbac", "--plugins"]).arg(plugins_dir);
    if let Some(g) = grants {
        cmd.arg("--grants").arg(g);
    }
    let out = cmd
        .args([
            "--impersonate",
            &env.namespace,
            "--namespace",
            &env.namespace,
        ])
        .arg("--kubeconfig")
        .arg(&env.kubeconfig_path)
        .output()
        .expect("running operon rbac");
    assert!(
        out.status.success(),
        "operon rbac failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_saphyr::from_multiple(&String::from_utf8(out.stdout).unwrap()).unwrap()
}

/// A grants file for the test's namespace, with `yaml` in it.
pub fn grants_file(env: &TestEnv, yaml: &str) -> PathBuf {
    let path = super::temp_dir(&format!("grants-{}", env.namespace)).join("grants.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

/// The host's own Pod (the downward API names it in a real deployment),
/// so events about builds have an object to be about; returns the
/// environment that tells the host which it is.
pub async fn host_pod(env: &TestEnv) -> [(&'static str, String); 2] {
    use k8s_openapi::api::core::v1::Pod;
    let pods: Api<Pod> = env.api();
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "operon-host"},
        "spec": {"containers": [{"name": "operon", "image": "operon:test"}]}
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    [
        ("OPERON_POD_NAME", "operon-host".to_string()),
        ("OPERON_POD_NAMESPACE", env.namespace.clone()),
    ]
}
