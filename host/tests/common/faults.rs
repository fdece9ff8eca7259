//! What every fault test does around its fault: a host with short
//! timeouts (behind a proxy when the test cuts its connection), parents
//! under churn, `/readyz` and the host's process watched while the fault
//! lasts, and afterwards: every parent converged with nothing lost,
//! duplicated or orphaned, `/readyz` 200 again, watch errors retried with
//! backoff (no hot loop), and one `FAULT <name> key=value...` line for
//! `cargo xtask bench --only faults`. Timings are printed, never asserted.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use operon_test_support::{TestEnv, toxiproxy, wait_until};

use super::churn::{Churn, converged};
use super::host::{Host, WAIT, create_memcached, get, metric};

/// Short enough that a test need not wait kube's five minutes.
pub const SHORT_TIMEOUTS: [&str; 4] = ["--request-timeout-s", "5", "--watch-timeout-s", "5"];

/// A host of the memcached plugin that reaches the API server only
/// through `listen` (a proxy), with [`SHORT_TIMEOUTS`].
pub async fn host_through(env: &TestEnv, listen: &str) -> Host {
    let dir = super::temp_dir(&format!("faults-{}", env.namespace));
    let kubeconfig = toxiproxy::kubeconfig_through(&env.kubeconfig_path, listen, &dir).unwrap();
    host_with(env, &kubeconfig).await
}

/// A host of the memcached plugin on `kubeconfig`, with [`SHORT_TIMEOUTS`].
pub async fn host_with(env: &TestEnv, kubeconfig: &Path) -> Host {
    let host = Host::start_with(env, &["rust-memcached"], kubeconfig, &SHORT_TIMEOUTS);
    host.ready().await;
    host
}

pub async fn readyz(host: &Host) -> (u16, String) {
    get(&host.health, "/readyz")
        .await
        .unwrap_or((0, String::new()))
}

/// `operon_watch_errors_total`, of every kind, with these labels.
pub async fn watch_errors(host: &Host, labels: &[&str]) -> f64 {
    let (_, text) = get(&host.metrics, "/metrics").await.unwrap();
    // + 0.0: an empty sum is -0.0, which prints as "-0".
    metric(&text, "operon_watch_errors_total", labels) + 0.0
}

/// Watch errors retried with backoff are a handful per kind (the host
/// watches three) and per couple of seconds of fault; a loop is more.
pub fn assert_no_loop(errors: f64, lasted: Duration) {
    let kinds = 3.0;
    let bound = kinds * (lasted.as_secs_f64() / 2.0 + 5.0);
    assert!(
        errors <= bound,
        "{errors} watch errors in {lasted:?} (bound {bound}): a loop"
    );
}

/// What a test expects of `/readyz` while its fault lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// It must say the caches are stale (the watches fail).
    SaysStale,
    /// Either: the watches may or may not notice the fault.
    Either,
}

/// One fault, under churn, from its start to the host's recovery.
pub struct Trial {
    name: String,
    churn: Churn,
    errors_before: f64,
    said_stale: Option<Duration>,
    began: Option<Instant>,
    ended: Option<Instant>,
    for_good: bool,
}

impl Trial {
    /// Four converged parents, then churn named `name` under way.
    pub async fn start(env: &TestEnv, host: &Host, name: &str) -> Trial {
        let names: Vec<String> = (0..4).map(|i| format!("m{i}")).collect();
        for parent in &names {
            create_memcached(env, parent, 1).await;
        }
        converged(env, "before the fault").await;
        let churn = Churn::start(env, Arc::new(Mutex::new(names)), name);
        churn.rounds(5).await;
        Trial {
            name: name.to_string(),
            churn,
            errors_before: watch_errors(host, &[]).await,
            said_stale: None,
            began: None,
            ended: None,
            for_good: false,
        }
    }

    /// A fault that never ends (connections that died for good): the
    /// time to converge counts from its start.
    pub fn for_good(mut self) -> Trial {
        self.for_good = true;
        self
    }

    /// Runs `fault` (given the churn, to wait on its rounds) to its end
    /// while checking, four times a second, that the host is up and
    /// whether `/readyz` says its caches are stale.
    pub async fn during<T>(&mut self, host: &mut Host, fault: impl AsyncFnOnce(&Churn) -> T) -> T {
        let began = Instant::now();
        self.began = Some(began);
        let mut fault = std::pin::pin!(fault(&self.churn));
        loop {
            tokio::select! {
                out = &mut fault => {
                    self.ended = Some(Instant::now());
                    return out;
                }
                _ = tokio::time::sleep(Duration::from_millis(250)) => {
                    assert!(host.child.try_wait().unwrap().is_none(), "the host stays up");
                    let (code, body) = readyz(host).await;
                    if code == 503 && body.contains("watches failing") && self.said_stale.is_none() {
                        self.said_stale = Some(began.elapsed());
                    }
                }
            }
        }
    }

    /// After the fault: the churn stops, every parent converges, `/readyz`
    /// answers 200 and the watch errors stayed a handful per kind.
    pub async fn finish(self, env: &TestEnv, host: &mut Host, readiness: Readiness) {
        let (Some(began), Some(ended)) = (self.began, self.ended) else {
            panic!("Trial::finish before Trial::during");
        };
        let lasted = ended - began;
        self.churn.stop().await;
        converged(env, &format!("after {}", self.name)).await;
        let converge = if self.for_good { began } else { ended }.elapsed();
        wait_until("/readyz 200 again", WAIT, || async {
            Ok((readyz(host).await.0 == 200).then_some(()))
        })
        .await
        .unwrap();
        let errors = watch_errors(host, &[]).await - self.errors_before;
        let expired = watch_errors(host, &["cause=\"expired\""]).await;
        let stale_after = self
            .said_stale
            .map_or("-".into(), |d| format!("{:.1}", d.as_secs_f64()));
        let lasted_s = match self.for_good {
            true => "inf".to_string(),
            false => format!("{:.0}", lasted.as_secs_f64()),
        };
        eprintln!(
            "FAULT {} lasted_s={lasted_s} stale_after_s={stale_after} watch_errors={errors:.0} expired={expired:.0} converged_s={:.1}",
            self.name,
            converge.as_secs_f64()
        );
        if readiness == Readiness::SaysStale {
            assert!(
                self.said_stale.is_some(),
                "/readyz told that the caches were stale"
            );
        }
        assert_no_loop(errors, lasted);
        assert!(
            host.child.try_wait().unwrap().is_none(),
            "the host stays up"
        );
    }
}

/// A copy of the admin kubeconfig `base` that impersonates `user` (with
/// only `system:authenticated`), written into `dir`: the API server
/// classifies, authorizes and audits its requests as `user`'s.
pub fn kubeconfig_as(base: &Path, user: &str, dir: &Path) -> std::path::PathBuf {
    let mut config = kube::config::Kubeconfig::read_from(base).unwrap();
    for named in &mut config.auth_infos {
        if let Some(auth) = named.auth_info.as_mut() {
            auth.impersonate = Some(user.to_string());
        }
    }
    let path = dir.join(format!("{user}.kubeconfig"));
    // JSON is YAML: any kubeconfig reader takes it.
    std::fs::write(&path, serde_json::to_vec(&config).unwrap()).unwrap();
    path
}
