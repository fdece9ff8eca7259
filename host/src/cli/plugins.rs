//! `operon plugins`: what a running host runs, and rolling a plugin back.
//!
//! Talks to the host's admin endpoint (`operon run --admin-addr`, loopback
//! only): one HTTP/1.1 request on hyper's client connection (hyper is in the
//! build for kube already), one JSON answer. The routes come from
//! [`AdminRequest::route`], the same table the host parses them with.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper::header::HOST;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;

use super::{ExitCode, Failure, Output};
use crate::server::AdminRequest;

/// How long reaching the host may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the answer may take: a rollback waits for the in-flight
/// reconciles of the old revision.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The host's admin address (`operon run --admin-addr`).
    #[arg(
        long,
        value_name = "ADDR",
        default_value = "127.0.0.1:9092",
        global = true
    )]
    pub admin_addr: SocketAddr,
    /// Print the host's answer as JSON or YAML instead of a table.
    #[arg(short, long, value_enum, global = true)]
    pub output: Option<Output>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Every plugin: active revision, shadow candidate, rejected builds.
    List,
    /// The kept revisions of one plugin, newest last.
    History { name: String },
    /// Return a plugin to its previous revision (or `--to` a kept one). The
    /// revision is already compiled: this is instant. It holds until the
    /// plugin's file changes again.
    Rollback {
        name: String,
        #[arg(long, value_name = "REVISION")]
        to: Option<u32>,
    },
    /// Save the next reconciles of a plugin as golden cases in DIR, for
    /// `operon test` to replay offline.
    ///
    /// The host records the next --count reconciles of the plugin: the
    /// parent and observed children as handed over, the objects it read,
    /// config, clock and answer of each. Secrets are redacted: every value
    /// of data and stringData of a v1 Secret reads "redacted" (keys kept),
    /// and the expected answer is then the revision's answer to the
    /// redacted input. Progress on stderr ("recorded 3/20"); the case
    /// directories on stdout; the recording stops once they are written.
    Record(super::record::Args),
}

pub fn run(args: &Args) -> Result<(), Failure> {
    let request = match &args.command {
        Command::Record(record) => return super::record::run(args.admin_addr, record),
        Command::List => AdminRequest::List,
        Command::History { name } => AdminRequest::Get(name.clone()),
        Command::Rollback { name, to } => AdminRequest::Rollback {
            name: name.clone(),
            to: *to,
        },
    };
    let (status, body) = ask(args.admin_addr, &request)
        .map_err(|e| Failure::new(ExitCode::Failure, e.to_string()))?;
    if status != 200 {
        let why = body["error"].as_str().unwrap_or("unexpected answer");
        return Err(Failure::new(ExitCode::Failure, why));
    }
    if let Some(output) = args.output {
        return super::print(&body, output);
    }
    match &args.command {
        Command::List => print_list(&body),
        Command::History { .. } => print_history(&body),
        Command::Rollback { .. } => {
            println!("{}", text(&body["message"]));
            print_history(&body["plugin"]);
        }
        // Returned above, with its own output.
        Command::Record(_) => {}
    }
    Ok(())
}

/// The table of `operon plugins list`, then the rejected builds and the
/// candidates' differences.
fn print_list(body: &Value) {
    let plugins = body["plugins"].as_array().cloned().unwrap_or_default();
    println!(
        "{:<16} {:<28} {:>8} {:<14} {:>10} {:>9} CANDIDATE",
        "PLUGIN", "FILE", "REVISION", "DIGEST", "RECONCILES", "FAILURES"
    );
    for p in &plugins {
        let active = p["revisions"]
            .as_array()
            .and_then(|rs| rs.iter().find(|r| r["state"] == "active"))
            .cloned()
            .unwrap_or(Value::Null);
        let candidate = match &p["candidate"] {
            Value::Null => "-".to_string(),
            c => format!(
                "{} ({} diffs in {} runs)",
                short(&c["digest"]),
                c["diffs"],
                c["reconciles"]
            ),
        };
        println!(
            "{:<16} {:<28} {:>8} {:<14} {:>10} {:>9} {candidate}",
            text(&p["name"]),
            text(&p["file"]),
            num(&active["number"]),
            short(&active["digest"]),
            num(&active["tracker"]["reconciles"]),
            num(&active["tracker"]["failures"]),
        );
    }
    for p in &plugins {
        for r in p["rejected"].as_array().into_iter().flatten() {
            println!("rejected {}: {}", text(&r["file"]), text(&r["reason"]));
        }
        for s in p["candidate"]["samples"].as_array().into_iter().flatten() {
            println!("{} candidate differs: {}", text(&p["name"]), text(s));
        }
    }
    for r in body["rejected"].as_array().into_iter().flatten() {
        println!("rejected {}: {}", text(&r["file"]), text(&r["reason"]));
    }
}

fn print_history(plugin: &Value) {
    println!(
        "{:>8} {:<14} {:<10} {:>10} {:>9} {:>10}  STATE",
        "REVISION", "DIGEST", "VERSION", "RECONCILES", "FAILURES", "COMPILE"
    );
    for r in plugin["revisions"].as_array().into_iter().flatten() {
        let state = match r["reason"].as_str() {
            Some(why) => format!("{}: {why}", text(&r["state"])),
            None => text(&r["state"]).to_string(),
        };
        println!(
            "{:>8} {:<14} {:<10} {:>10} {:>9} {:>8.1}ms  {state}",
            num(&r["number"]),
            short(&r["digest"]),
            text(&r["version"]),
            num(&r["tracker"]["reconciles"]),
            num(&r["tracker"]["failures"]),
            r["compileMs"].as_f64().unwrap_or_default(),
        );
    }
}

/// A number as text, so that width and alignment apply.
fn num(v: &Value) -> String {
    v.as_u64().map_or("-".into(), |n| n.to_string())
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or("-")
}

fn short(digest: &Value) -> &str {
    let d = text(digest);
    d.get(..12).unwrap_or(d)
}

/// Why no answer came back from the admin endpoint.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing listens there, or it refused the connection.
    #[error(
        "cannot reach the host's admin endpoint at {addr} ({source}); is `operon run` running with --admin-addr {addr}?"
    )]
    Unreachable {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// The connection broke, or what came back was not HTTP.
    #[error("talking to the host's admin endpoint at {addr}: {source}")]
    Http {
        addr: SocketAddr,
        source: hyper::Error,
    },
    /// The host took longer than a rollback may.
    #[error("the host's admin endpoint at {addr} did not answer within {after:?}")]
    TimedOut { addr: SocketAddr, after: Duration },
    /// A plugin name that cannot be part of a URL path.
    #[error("cannot ask for {path}: {source}")]
    InvalidPath {
        path: String,
        source: hyper::http::Error,
    },
    /// No runtime to run the request on.
    #[error("starting the I/O runtime: {0}")]
    Runtime(std::io::Error),
}

/// One request to the admin endpoint: (HTTP status, JSON body). A body
/// that is not JSON becomes `{"error": "..."}` quoting it.
pub fn ask(addr: SocketAddr, request: &AdminRequest) -> Result<(u16, Value), ClientError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ClientError::Runtime)?;
    rt.block_on(ask_async(addr, request))
}

async fn ask_async(addr: SocketAddr, request: &AdminRequest) -> Result<(u16, Value), ClientError> {
    let (method, path) = request.route();
    let request = hyper::Request::builder()
        .method(method)
        .uri(&path)
        .header(HOST, addr.to_string())
        .body(Empty::<Bytes>::new())
        .map_err(|source| ClientError::InvalidPath {
            path: path.clone(),
            source,
        })?;
    let unreachable = |source| ClientError::Unreachable { addr, source };
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| unreachable(std::io::ErrorKind::TimedOut.into()))?
        .map_err(unreachable)?;
    let http = |source| ClientError::Http { addr, source };
    let exchange = async {
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(http)?;
        // Drives the connection; it ends once the answer is read.
        tokio::spawn(connection);
        let response = sender.send_request(request).await.map_err(http)?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.map_err(http)?;
        Ok::<_, ClientError>((status, body.to_bytes()))
    };
    let (status, body) = tokio::time::timeout(ANSWER_TIMEOUT, exchange)
        .await
        .map_err(|_| ClientError::TimedOut {
            addr,
            after: ANSWER_TIMEOUT,
        })??;
    let body = serde_json::from_slice(&body).unwrap_or_else(|_| {
        let text = String::from_utf8_lossy(&body);
        serde_json::json!({"error": format!("{addr}{path} answered {status}: {}", text.trim())})
    });
    Ok((status, body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::{self, Admin, AdminError};
    use futures::future::BoxFuture;
    use serde_json::json;

    /// Echoes what it was asked, and fails a rollback to revision 7.
    #[derive(Debug)]
    struct Echo;

    impl Admin for Echo {
        fn ask(&self, request: AdminRequest) -> BoxFuture<'_, Result<Value, AdminError>> {
            Box::pin(async move {
                match request {
                    AdminRequest::Rollback { name, to: Some(7) } => {
                        Err(AdminError::RollbackFailed {
                            name,
                            cause: anyhow::anyhow!("the controller did not start"),
                        })
                    }
                    request => Ok(json!({ "asked": format!("{request:?}") })),
                }
            })
        }
    }

    #[test]
    fn asks_a_running_host_over_http() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let any = "127.0.0.1:0".parse().unwrap();
        let started =
            server::start_routes(any, server::Routes::admin(Echo), std::future::pending());
        let (addr, task) = rt.block_on(started).unwrap();
        let rollback = AdminRequest::Rollback {
            name: "pg".into(),
            to: Some(2),
        };
        for request in [AdminRequest::List, AdminRequest::Get("pg".into()), rollback] {
            let (status, body) = ask(addr, &request).unwrap();
            assert_eq!(
                (status, body),
                (200, json!({ "asked": format!("{request:?}") }))
            );
        }
        let failed = AdminRequest::Rollback {
            name: "pg".into(),
            to: Some(7),
        };
        let error = "rollback of pg failed: the controller did not start";
        assert_eq!(
            ask(addr, &failed).unwrap(),
            (500, json!({ "error": error }))
        );
        // Names that are not one path segment arrive whole: a plugin
        // object's slot, and anything else percent-encoded.
        for name in ["crp/memcached", "rp/team-a/reads", "a b"] {
            let request = AdminRequest::Get(name.into());
            assert_eq!(
                ask(addr, &request).unwrap(),
                (200, json!({ "asked": format!("{request:?}") }))
            );
        }
        task.abort();
    }

    #[test]
    fn says_when_nothing_listens() {
        // Bound, then closed: nothing listens on that port now.
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let err = ask(addr, &AdminRequest::List).unwrap_err();
        assert!(matches!(err, ClientError::Unreachable { .. }), "{err}");
        let message = err.to_string();
        let want = format!("cannot reach the host's admin endpoint at {addr} (");
        assert!(message.starts_with(&want), "{message}");
    }
}
