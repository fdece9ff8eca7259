//! A minimal HTTP/1.1 server for probes and scrapes.
//!
//! No framework (hyper, axum): a probe or a scrape is one tiny GET answered
//! with one small body, so reading a request head and writing a response with
//! `Connection: close` is all that is needed, and it keeps the host's
//! dependencies few. Each connection gets its own task and at most
//! [`CONNECTION_TIMEOUT`] in total; a request head is capped at
//! [`MAX_HEAD`] bytes.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use super::{Health, Metrics};
use crate::runtime::{AdminHandle, AdminRequest};

/// Largest request head (request line and headers) accepted.
pub const MAX_HEAD: usize = 8 * 1024;
/// Time a connection may take from accept to the end of the response.
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(5);

/// Content type of `/metrics`: the Prometheus text format 0.0.4.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";
const JSON: &str = "application/json";

/// Which endpoints one listener serves: `/healthz` and `/readyz` when it has
/// a [`Health`], `/metrics` when it has [`Metrics`], `/plugins...` when it
/// has the admin handle. Others answer 404.
#[derive(Clone, Debug, Default)]
pub struct Routes {
    pub metrics: Option<Arc<Metrics>>,
    pub health: Option<Arc<Health>>,
    pub admin: Option<AdminHandle>,
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

    /// The admin endpoints only (`operon plugins`):
    /// - `GET /plugins`: every plugin, its revisions, candidate, rejections;
    /// - `GET /plugins/<name>`: one plugin;
    /// - `POST /plugins/<name>/rollback[/<revision>]`: back to the previous
    ///   (or the given) kept revision.
    pub fn admin(handle: AdminHandle) -> Self {
        Routes {
            admin: Some(handle),
            ..Routes::default()
        }
    }

    async fn respond_admin(admin: &AdminHandle, method: &str, path: &str) -> Response {
        let parts: Vec<&str> = path
            .trim_start_matches("/plugins")
            .split('/')
            .filter(|p| !p.is_empty())
            .collect();
        let request = match (method, parts.as_slice()) {
            ("GET", []) => AdminRequest::List,
            ("GET", [name]) => AdminRequest::Get(name.to_string()),
            ("POST", [name, "rollback"]) => AdminRequest::Rollback {
                name: name.to_string(),
                to: None,
            },
            ("POST", [name, "rollback", rev]) => match rev.parse() {
                Ok(n) => AdminRequest::Rollback {
                    name: name.to_string(),
                    to: Some(n),
                },
                Err(_) => return Response::text(400, "a revision is a number"),
            },
            (_, [] | [_]) => return Response::text(405, "method not allowed"),
            _ => return Response::text(404, "not found"),
        };
        let reply = admin.ask(request).await;
        Response {
            status: reply.status,
            content_type: JSON,
            body: reply.body.to_string(),
        }
    }

    fn respond(&self, method: &str, path: &str) -> Response {
        let served = match path {
            "/healthz" | "/readyz" => self.health.is_some(),
            "/metrics" => self.metrics.is_some(),
            _ => false,
        };
        if !served {
            return Response::text(404, "not found");
        }
        if method != "GET" {
            return Response::text(405, "method not allowed");
        }
        match (path, &self.health, &self.metrics) {
            ("/healthz", Some(h), _) if h.is_live() => Response::text(200, "ok"),
            ("/readyz", Some(h), _) if h.is_ready() => Response::text(200, "ok"),
            ("/readyz", ..) => Response::text(503, "not ready: caches not synced"),
            ("/metrics", _, Some(m)) => Response {
                status: 200,
                content_type: METRICS_CONTENT_TYPE,
                body: m.render(),
            },
            _ => Response::text(503, "not live"),
        }
    }
}

struct Response {
    status: u16,
    content_type: &'static str,
    body: String,
}

impl Response {
    fn text(status: u16, body: &str) -> Self {
        Response {
            status,
            content_type: TEXT,
            body: body.into(),
        }
    }

    fn head(&self) -> String {
        let reason = match self.status {
            200 => "OK",
            400 => "Bad Request",
            404 => "Not Found",
            405 => "Method Not Allowed",
            409 => "Conflict",
            500 => "Internal Server Error",
            431 => "Request Header Fields Too Large",
            503 => "Service Unavailable",
            _ => "",
        };
        let allow = if self.status == 405 {
            "Allow: GET\r\n"
        } else {
            ""
        };
        format!(
            "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{allow}Connection: close\r\n\r\n",
            self.status,
            self.content_type,
            self.body.len()
        )
    }
}

/// Serves `routes` on `listener` until `shutdown` completes, then stops
/// accepting and waits for connections in flight (each bounded by
/// [`CONNECTION_TIMEOUT`]). Accept errors (such as running out of file
/// descriptors) are logged and retried, never fatal.
pub async fn serve(
    listener: TcpListener,
    routes: Arc<Routes>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    tokio::pin!(shutdown);
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let routes = routes.clone();
                    connections.spawn(async move {
                        let served = tokio::time::timeout(CONNECTION_TIMEOUT, connection(stream, &routes));
                        match served.await {
                            Ok(Ok(())) => {}
                            Ok(Err(e)) => tracing::debug!(%peer, error = %e, "http connection failed"),
                            Err(_) => tracing::debug!(%peer, "http connection timed out"),
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "http accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
    Ok(())
}

/// Reads one request head, answers it, and closes.
async fn connection(mut stream: TcpStream, routes: &Routes) -> std::io::Result<()> {
    let response = match read_head(&mut stream).await? {
        None => Response::text(431, "request head too large"),
        Some(head) => match parse_request_line(&head) {
            Some((method, path)) => match &routes.admin {
                Some(admin) if path == "/plugins" || path.starts_with("/plugins/") => {
                    Routes::respond_admin(admin, method, path).await
                }
                _ => routes.respond(method, path),
            },
            None => Response::text(400, "bad request"),
        },
    };
    stream.write_all(response.head().as_bytes()).await?;
    stream.write_all(response.body.as_bytes()).await?;
    stream.shutdown().await?;
    if matches!(response.status, 400 | 405 | 431) {
        // The client may have sent more than was read (a body, the rest of a
        // huge head); closing on unread bytes resets the connection and can
        // destroy the response before the client reads it. Drain a little.
        let mut sink = [0u8; 1024];
        let drain = async {
            for _ in 0..64 {
                if stream.read(&mut sink).await? == 0 {
                    break;
                }
            }
            std::io::Result::Ok(())
        };
        let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
    }
    Ok(())
}

/// The bytes before the blank line ending the head, or `None` past [`MAX_HEAD`].
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Option<Vec<u8>>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let from = buf.len().saturating_sub(3);
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf[from..].windows(4).position(|w| w == b"\r\n\r\n") {
            let end = from + end;
            if end + 4 > MAX_HEAD {
                return Ok(None);
            }
            buf.truncate(end);
            return Ok(Some(buf));
        }
        if buf.len() >= MAX_HEAD {
            return Ok(None);
        }
    }
}

/// `(method, path)` of `METHOD SP target SP HTTP/1.x`; the query is dropped.
fn parse_request_line(head: &[u8]) -> Option<(&str, &str)> {
    let line = head.split(|b| *b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?.trim_end_matches('\r');
    let mut parts = line.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || !version.starts_with("HTTP/1.") || !target.starts_with('/') {
        return None;
    }
    Some((method, target.split('?').next()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_request_lines() {
        assert_eq!(
            parse_request_line(b"GET /metrics HTTP/1.1\r\nHost: x"),
            Some(("GET", "/metrics"))
        );
        assert_eq!(
            parse_request_line(b"GET /readyz?verbose HTTP/1.0"),
            Some(("GET", "/readyz"))
        );
        assert_eq!(parse_request_line(b"GET /metrics"), None);
        assert_eq!(parse_request_line(b"GET metrics HTTP/1.1"), None);
        assert_eq!(parse_request_line(b"GET / HTTP/2 x"), None);
        assert_eq!(parse_request_line(b"\xff / HTTP/1.1"), None);
    }

    #[test]
    fn method_checked_only_on_known_paths() {
        let routes = Routes {
            health: Some(Arc::default()),
            ..Routes::default()
        };
        assert_eq!(routes.respond("POST", "/healthz").status, 405);
        assert_eq!(routes.respond("POST", "/nope").status, 404);
        // /metrics is not served by a health-only listener.
        assert_eq!(routes.respond("GET", "/metrics").status, 404);
        assert!(
            routes
                .respond("HEAD", "/readyz")
                .head()
                .contains("Allow: GET\r\n")
        );
    }
}
