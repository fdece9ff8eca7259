//! Test plugin: misbehaves on purpose, the way config key `mode` says, so
//! the hostile suite can show each misbehaviour is contained.
//! - `recurse`: unbounded recursion (stack overflow);
//! - `flood`: 100 MB to stdout;
//! - `many-children`: 100 000 children;
//! - `huge-child`: one child of 100 MB;
//! - `foreign-kind`: a child of a kind it does not own (an Ingress);
//! - `probe`: tries a file, a socket and an environment variable, and
//!   reports what it got in its status.

use operon_sdk::{Context, Error, Gvk, Reconciler, Registration, Request, Response};
use serde_json::{Value, json};

struct Hostile;

/// Recursion whose frames live on the Wasm stack (no locals in linear
/// memory), so the engine's stack limit is what stops it.
#[inline(never)]
fn recurse(depth: u64) -> u64 {
    if std::hint::black_box(depth) == u64::MAX {
        return 0;
    }
    recurse(depth + 1) + 1
}

fn probe() -> Value {
    let file = match std::fs::read_to_string("/etc/hostname") {
        Ok(_) => "read".to_string(),
        Err(e) => format!("error: {e}"),
    };
    let socket = match std::net::TcpStream::connect("127.0.0.1:9") {
        Ok(_) => "connected".to_string(),
        Err(e) => format!("error: {e}"),
    };
    let env = std::env::vars().count();
    let args = std::env::args().count();
    json!({"file": file, "socket": socket, "envVars": env, "args": args})
}

impl Reconciler for Hostile {
    fn describe() -> Registration {
        Registration::new(
            "hostile",
            env!("CARGO_PKG_VERSION"),
            Gvk::new("test.operon.dev", "v1", "Widget"),
        )
        .owns_kind(Gvk::new("", "v1", "ConfigMap"))
    }

    fn reconcile(_ctx: &Context, req: Request) -> Result<Response, Error> {
        let ns = req.namespace().unwrap_or("default").to_string();
        let cm = |name: String, data: &str| {
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": name, "namespace": ns}, "data": {"d": data}})
        };
        match req.config("mode").unwrap_or("") {
            "recurse" => Ok(Response::new().status(json!({"depth": recurse(0)}))),
            "flood" => {
                use std::io::Write;
                let chunk = "x".repeat(1 << 20);
                let mut out = std::io::stdout().lock();
                for _ in 0..100 {
                    // A refused write would be the host failing the plugin
                    // for printing; the host accepts and drops instead.
                    out.write_all(chunk.as_bytes())
                        .map_err(|e| Error::retryable(e.to_string()))?;
                }
                Ok(Response::new())
            }
            "many-children" => {
                Ok(Response::new().children((0..100_000).map(|i| cm(format!("c{i}"), ""))))
            }
            "huge-child" => Ok(Response::new().child(cm("big".into(), &"x".repeat(100 << 20)))),
            "foreign-kind" => {
                Ok(Response::new().child(json!({
                "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                "metadata": {"name": req.name(), "namespace": ns},
                "spec": {"defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}}})))
            }
            "probe" => Ok(Response::new().status(probe())),
            other => Err(Error::permanent(format!("unknown mode {other:?}"))),
        }
    }
}

operon_sdk::export!(Hostile);
