//! Serving the routes over HTTP/1.1 with hyper (already in the build
//! through kube's client).
//!
//! A probe or a scrape is one small GET, so each connection answers one
//! request and closes (no keep-alive), as the hand-written server this
//! replaced did: clients that read to the end of the stream keep working.
//! Each connection gets its own task and at most [`CONNECTION_TIMEOUT`] in
//! total; a request head is capped at [`MAX_HEAD`] bytes (hyper answers 431
//! past it, and 400 to what does not parse).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use prometheus_client::encoding::prometheus_text;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use super::admin::{self, Admin, AdminRequest};
use super::{Health, Metrics, Readiness};

/// Largest request head (request line and headers) accepted.
pub const MAX_HEAD: usize = 8 * 1024;
/// Time a connection may take from accept to the end of the response.
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(5);

const TEXT: &str = "text/plain; charset=utf-8";
const JSON: &str = "application/json";

type Response = hyper::Response<Full<Bytes>>;

/// Which endpoints one listener serves: `/healthz` and `/readyz` when it has
/// a [`Health`], `/metrics` when it has [`Metrics`], `/plugins...` when it
/// has an [`Admin`]. Others answer 404.
#[derive(Clone, Debug, Default)]
pub struct Routes {
    pub metrics: Option<Arc<Metrics>>,
    pub health: Option<Arc<Health>>,
    pub admin: Option<Arc<dyn Admin>>,
}

impl Routes {
    /// Every endpoint but the admin ones.
    pub fn all(metrics: Arc<Metrics>, health: Arc<Health>) -> Self {
        Routes {
            metrics: Some(metrics),
            health: Some(health),
            admin: None,
        }
    }

    /// The admin endpoints only (`operon plugins`; see [`admin`]).
    pub fn admin(admin: impl Admin) -> Self {
        Routes {
            admin: Some(Arc::new(admin)),
            ..Routes::default()
        }
    }

    /// The answer to one request.
    async fn respond(&self, method: &Method, path: &str) -> Response {
        match &self.admin {
            Some(admin) if path.starts_with(admin::PREFIX) => {
                Self::respond_admin(admin.as_ref(), method, path).await
            }
            _ => self.respond_probe(method, path),
        }
    }

    async fn respond_admin(admin: &dyn Admin, method: &Method, path: &str) -> Response {
        let request = match AdminRequest::parse(method, path) {
            Ok(request) => request,
            Err(refusal) => return text(refusal.status, refusal.message),
        };
        match admin.ask(request).await {
            Ok(body) => json_response(StatusCode::OK, &body),
            Err(e) => json_response(e.status(), &json!({"error": e.to_string()})),
        }
    }

    fn respond_probe(&self, method: &Method, path: &str) -> Response {
        let served = match path {
            "/healthz" | "/readyz" => self.health.is_some(),
            "/metrics" => self.metrics.is_some(),
            _ => false,
        };
        if !served {
            return text(StatusCode::NOT_FOUND, "not found");
        }
        if method != Method::GET {
            return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
        }
        match (path, &self.health, &self.metrics) {
            ("/healthz", Some(h), _) if h.is_live() => text(StatusCode::OK, "ok"),
            ("/readyz", Some(h), _) => match h.readiness() {
                Readiness::Ready => text(StatusCode::OK, "ok"),
                Readiness::NotSynced => text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "not ready: caches not synced",
                ),
                Readiness::Stale(kinds) => response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    TEXT,
                    format!(
                        "not ready: watches failing, caches stale: {}",
                        kinds.join(", ")
                    ),
                ),
            },
            ("/readyz", ..) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                "not ready: caches not synced",
            ),
            ("/metrics", _, Some(m)) => {
                response(StatusCode::OK, prometheus_text::CONTENT_TYPE, m.render())
            }
            _ => text(StatusCode::SERVICE_UNAVAILABLE, "not live"),
        }
    }
}

fn response(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response {
    let mut response = hyper::Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    if status == StatusCode::METHOD_NOT_ALLOWED {
        headers.insert(ALLOW, HeaderValue::from_static("GET"));
    }
    response
}

fn text(status: StatusCode, body: &'static str) -> Response {
    response(status, TEXT, body)
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    response(status, JSON, body.to_string())
}

/// Serves `routes` on `listener` until `shutdown` completes, then stops
/// accepting, lets each open connection finish the request it is answering
/// (closing those that have not sent one) and waits for them, each bounded
/// by [`CONNECTION_TIMEOUT`]. Accept errors (such as running out of file
/// descriptors) are logged and retried, never fatal.
pub async fn serve(
    listener: TcpListener,
    routes: Arc<Routes>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    tokio::pin!(shutdown);
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    connections.spawn(connection(stream, peer, routes.clone(), &graceful));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "http accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    drop(listener);
    graceful.shutdown().await;
    while connections.join_next().await.is_some() {}
    Ok(())
}

/// One connection: one request answered, bounded in time, stopped early by
/// `graceful`.
fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    routes: Arc<Routes>,
    graceful: &GracefulShutdown,
) -> impl Future<Output = ()> + Send + 'static {
    let service = service_fn(move |request: Request<Incoming>| {
        let routes = routes.clone();
        async move {
            let response = routes.respond(request.method(), request.uri().path()).await;
            Ok::<_, std::convert::Infallible>(response)
        }
    });
    let served = http1::Builder::new()
        .keep_alive(false)
        .title_case_headers(true)
        .max_header_size(MAX_HEAD)
        .timer(TokioTimer::new())
        .header_read_timeout(CONNECTION_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service);
    let served = graceful.watch(served);
    async move {
        match tokio::time::timeout(CONNECTION_TIMEOUT, served).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::debug!(%peer, error = %e, "http connection failed"),
            Err(_) => tracing::debug!(%peer, "http connection timed out"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(response: &Response) -> u16 {
        response.status().as_u16()
    }

    #[tokio::test]
    async fn method_checked_only_on_known_paths() {
        let routes = Routes {
            health: Some(Arc::default()),
            ..Routes::default()
        };
        assert_eq!(
            status(&routes.respond(&Method::POST, "/healthz").await),
            405
        );
        assert_eq!(status(&routes.respond(&Method::POST, "/nope").await), 404);
        // /metrics is not served by a health-only listener, nor /plugins.
        assert_eq!(status(&routes.respond(&Method::GET, "/metrics").await), 404);
        assert_eq!(status(&routes.respond(&Method::GET, "/plugins").await), 404);
        let head = routes.respond(&Method::HEAD, "/readyz").await;
        assert_eq!(head.headers()[ALLOW], "GET");
        assert!(
            routes
                .respond(&Method::GET, "/healthz")
                .await
                .headers()
                .get(ALLOW)
                .is_none()
        );
    }
}
