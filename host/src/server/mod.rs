//! The host's own HTTP endpoints: `/healthz` (liveness), `/readyz`
//! (readiness: caches synced), `/metrics` (Prometheus text format) and the
//! admin endpoint of `operon plugins` (`/plugins...`).
//!
//! Built from the parts the ecosystem already uses rather than our own:
//! hyper serves HTTP (it is compiled in for kube's client anyway, see
//! [`http`]), `prometheus-client` keeps the metrics ([`metrics`]). The admin
//! protocol is defined here ([`admin`]) and answered by whoever implements
//! [`Admin`] — the runtime's supervisor — so `server` depends on nothing of
//! the runtime.
//!
//! [`start`] serves every endpoint but the admin ones on the address it is
//! given. When metrics and probes should listen apart (say `--metrics-addr`
//! and `--health-addr`), call [`start_routes`] twice with [`Routes`] that
//! each hold only their part; calling [`start`] twice also works, with
//! every endpoint on both addresses.

pub mod admin;
pub mod cache_metrics;
pub mod http;
pub mod metrics;
mod process_metrics;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use admin::{Admin, AdminError, AdminRequest};
pub use http::Routes;
pub use metrics::Metrics;

/// Liveness and readiness, as the probes see them.
#[derive(Default)]
pub struct Health {
    ready: AtomicBool,
    /// What is stale right now (failing watches), asked at each probe.
    stale: std::sync::OnceLock<Box<dyn Fn() -> Vec<String> + Send + Sync>>,
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Health")
            .field("ready", &self.is_ready())
            .finish_non_exhaustive()
    }
}

/// What `/readyz` answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    /// Caches not synced yet, or the host is shutting down.
    NotSynced,
    /// Synced once, but these kinds' watches are failing: reads and
    /// reconciles see a stale cache until they recover.
    Stale(Vec<String>),
}

impl Health {
    /// Live while the process serves at all: a host that cannot answer is
    /// restarted by the kubelet's failed probe, not by this flag.
    pub fn is_live(&self) -> bool {
        true
    }

    /// Set by the runtime once its caches are synced (and cleared if they
    /// are lost).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }

    /// Tells readiness what is stale (the runtime's failing watches).
    pub fn watch_staleness(&self, stale: impl Fn() -> Vec<String> + Send + Sync + 'static) {
        let _ = self.stale.set(Box::new(stale));
    }

    pub fn is_ready(&self) -> bool {
        self.readiness() == Readiness::Ready
    }

    pub fn readiness(&self) -> Readiness {
        if !self.ready.load(Ordering::Acquire) {
            return Readiness::NotSynced;
        }
        match self.stale.get().map(|f| f()).unwrap_or_default() {
            stale if stale.is_empty() => Readiness::Ready,
            stale => Readiness::Stale(stale),
        }
    }
}

/// Binds `addr` (port 0 picks one) and serves every endpoint but the admin
/// ones until `shutdown` completes. Returns the bound address and the
/// server task.
pub async fn start(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<(SocketAddr, JoinHandle<anyhow::Result<()>>)> {
    start_routes(addr, Routes::all(metrics, health), shutdown).await
}

/// Like [`start`], serving only the endpoints `routes` holds.
pub async fn start_routes(
    addr: SocketAddr,
    routes: Routes,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<(SocketAddr, JoinHandle<anyhow::Result<()>>)> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let bound = listener.local_addr().context("reading the bound address")?;
    tracing::info!(
        addr = %bound,
        metrics = routes.metrics.is_some(),
        health = routes.health.is_some(),
        admin = routes.admin.is_some(),
        "serving http"
    );
    let task = tokio::spawn(http::serve(listener, Arc::new(routes), shutdown));
    Ok((bound, task))
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::future::BoxFuture;
    use serde_json::{Value, json};
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use tokio::sync::oneshot;

    /// Sends `request` raw and returns (status, head, body): the bytes on
    /// the wire are what these tests check, so no HTTP client here.
    async fn send(addr: SocketAddr, request: &[u8]) -> (u16, String, String) {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(request).await.unwrap();
        let mut raw = String::new();
        s.read_to_string(&mut raw).await.unwrap();
        let (head, body) = raw.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        assert!(head.contains("\r\nConnection: close"), "{head}");
        assert!(
            head.contains(&format!("\r\nContent-Length: {}", body.len())),
            "{head}"
        );
        (status, head.to_string(), body.to_string())
    }

    async fn get(addr: SocketAddr, path: &str) -> (u16, String, String) {
        send(
            addr,
            format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
        )
        .await
    }

    async fn server() -> (
        SocketAddr,
        Arc<Metrics>,
        Arc<Health>,
        oneshot::Sender<()>,
        JoinHandle<anyhow::Result<()>>,
    ) {
        let (metrics, health) = (Arc::new(Metrics::new()), Arc::new(Health::default()));
        let (stop, stopped) = oneshot::channel::<()>();
        let addr = "127.0.0.1:0".parse().unwrap();
        let shutdown = async move {
            let _ = stopped.await;
        };
        let (bound, task) = start(addr, metrics.clone(), health.clone(), shutdown)
            .await
            .unwrap();
        assert_ne!(bound.port(), 0);
        (bound, metrics, health, stop, task)
    }

    #[tokio::test]
    async fn serves_every_route() {
        let (addr, metrics, health, stop, task) = server().await;

        assert_eq!(get(addr, "/healthz").await.0, 200);
        assert_eq!(get(addr, "/healthz").await.2, "ok");

        let (status, _, body) = get(addr, "/readyz").await;
        assert_eq!(
            (status, body.as_str()),
            (503, "not ready: caches not synced")
        );
        health.set_ready(true);
        assert_eq!(get(addr, "/readyz").await.0, 200);
        assert_eq!(get(addr, "/readyz?verbose=1").await.2, "ok");
        health.set_ready(false);
        assert_eq!(get(addr, "/readyz").await.0, 503);
        // Synced once, then a watch fails: not ready, and it says which.
        let failing = Arc::new(std::sync::Mutex::new(vec![
            "apps/v1/Deployment".to_string(),
        ]));
        let seen = failing.clone();
        health.watch_staleness(move || seen.lock().unwrap().clone());
        health.set_ready(true);
        let (status, _, body) = get(addr, "/readyz").await;
        assert_eq!(
            (status, body.as_str()),
            (
                503,
                "not ready: watches failing, caches stale: apps/v1/Deployment"
            )
        );
        failing.lock().unwrap().clear();
        assert_eq!(get(addr, "/readyz").await.0, 200);
        health.set_ready(false);

        metrics.reconcile_total("pg", "success");
        let (status, head, body) = get(addr, "/metrics").await;
        assert_eq!(status, 200);
        assert!(
            head.contains("\r\nContent-Type: text/plain; version=0.0.4"),
            "{head}"
        );
        assert!(
            body.contains(
                "controller_runtime_reconcile_total{controller=\"pg\",result=\"success\"} 1\n"
            ),
            "{body}"
        );

        assert_eq!(get(addr, "/").await.0, 404);
        assert_eq!(get(addr, "/metricsx").await.0, 404);
        // No admin on this listener.
        assert_eq!(get(addr, "/plugins").await.0, 404);
        let (status, head, _) =
            send(addr, b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n").await;
        assert_eq!(status, 405);
        assert!(head.contains("Allow: GET"), "{head}");
        assert_eq!(send(addr, b"nonsense\r\n\r\n").await.0, 400);
        let huge = format!("GET /healthz HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(9000));
        assert_eq!(send(addr, huge.as_bytes()).await.0, 431);
        // A head split across writes still parses.
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /heal").await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        s.write_all(b"thz HTTP/1.1\r\n\r").await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        s.write_all(b"\n").await.unwrap();
        let mut raw = String::new();
        s.read_to_string(&mut raw).await.unwrap();
        assert!(
            raw.starts_with("HTTP/1.1 200 OK\r\n") && raw.ends_with("\r\n\r\nok"),
            "{raw}"
        );

        stop.send(()).unwrap();
        task.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn shutdown_stops_accepting() {
        let (addr, _, _, stop, task) = server().await;
        assert_eq!(get(addr, "/healthz").await.0, 200);
        // A client connected but silent does not hold the stop up.
        let idle = TcpStream::connect(addr).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(2), task)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(TcpStream::connect(addr).await.is_err());
        drop(idle);
    }

    #[tokio::test]
    async fn health_only_routes_and_two_listeners() {
        let metrics = Arc::new(Metrics::new());
        let health = Arc::new(Health::default());
        let any = "127.0.0.1:0".parse().unwrap();
        let health_routes = Routes {
            metrics: None,
            health: Some(health.clone()),
            ..Routes::default()
        };
        let metrics_routes = Routes {
            metrics: Some(metrics),
            ..Routes::default()
        };
        let (h, h_task) = start_routes(any, health_routes, std::future::pending())
            .await
            .unwrap();
        let (m, m_task) = start_routes(any, metrics_routes, std::future::pending())
            .await
            .unwrap();
        assert_ne!(h, m);
        assert_eq!(get(h, "/healthz").await.0, 200);
        assert_eq!(get(h, "/metrics").await.0, 404);
        assert_eq!(get(m, "/metrics").await.0, 200);
        assert_eq!(get(m, "/readyz").await.0, 404);
        // Binding a taken address fails with the address in the message.
        let err = start_routes(m, Routes::default(), std::future::pending())
            .await
            .unwrap_err();
        assert!(format!("{err:#}").contains(&m.to_string()), "{err:#}");
        h_task.abort();
        m_task.abort();
    }

    /// Answers as a supervisor with one plugin `pg` whose only revision is 1.
    #[derive(Debug)]
    struct OnePlugin;

    impl Admin for OnePlugin {
        fn ask(&self, request: AdminRequest) -> BoxFuture<'_, Result<Value, AdminError>> {
            Box::pin(async move {
                match request {
                    AdminRequest::List => Ok(json!({"plugins": [{"name": "pg"}]})),
                    AdminRequest::Get(name) if name == "pg" => Ok(json!({"name": "pg"})),
                    AdminRequest::Get(name) => Err(AdminError::NoSuchPlugin { name }),
                    AdminRequest::Rollback { name, to: None } => {
                        Err(AdminError::NoEarlierRevision { name })
                    }
                    AdminRequest::Rollback { name, to: Some(1) } => {
                        Err(AdminError::AlreadyActive { name, revision: 1 })
                    }
                    AdminRequest::Rollback { .. } => Err(AdminError::ShuttingDown),
                    AdminRequest::Record { .. }
                    | AdminRequest::Recorded(_)
                    | AdminRequest::StopRecording(_) => Err(AdminError::ShuttingDown),
                }
            })
        }
    }

    #[tokio::test]
    async fn admin_routes_answer_json_and_map_errors_to_statuses() {
        let any = "127.0.0.1:0".parse().unwrap();
        let (addr, task) = start_routes(any, Routes::admin(OnePlugin), std::future::pending())
            .await
            .unwrap();
        let post = |path: &str| format!("POST {path} HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
        let (status, head, body) = get(addr, "/plugins").await;
        assert_eq!(
            (status, body.as_str()),
            (200, r#"{"plugins":[{"name":"pg"}]}"#)
        );
        assert!(
            head.contains("\r\nContent-Type: application/json\r\n"),
            "{head}"
        );
        assert_eq!(get(addr, "/plugins/pg").await.2, r#"{"name":"pg"}"#);
        let (status, _, body) = get(addr, "/plugins/nope").await;
        assert_eq!(
            (status, body.as_str()),
            (404, r#"{"error":"no plugin named nope is loaded"}"#)
        );
        let (status, _, body) = send(addr, post("/plugins/pg/rollback").as_bytes()).await;
        let want = r#"{"error":"plugin pg has no earlier revision to roll back to"}"#;
        assert_eq!((status, body.as_str()), (409, want));
        assert_eq!(
            send(addr, post("/plugins/pg/rollback/1").as_bytes())
                .await
                .0,
            409
        );
        assert_eq!(
            send(addr, post("/plugins/pg/rollback/2").as_bytes())
                .await
                .0,
            503
        );
        let (status, head, body) = send(addr, post("/plugins/pg/rollback/x").as_bytes()).await;
        assert_eq!((status, body.as_str()), (400, "a revision is a number"));
        assert!(head.contains("\r\nContent-Type: text/plain"), "{head}");
        let (status, head, _) = send(addr, post("/plugins").as_bytes()).await;
        assert_eq!(status, 405);
        assert!(head.contains("Allow: GET"), "{head}");
        // The admin listener serves nothing else.
        assert_eq!(get(addr, "/healthz").await.0, 404);
        task.abort();
    }
}
