//! Test plugin for `operon run`: a `Widget` (test.operon.dev/v1, CRD
//! shipped) whose `spec.mode` picks the behaviour under test:
//! - `ok` (default): a ConfigMap named after the widget, plus
//!   `<name>-extra` while `spec.extra` is true (pruning);
//! - `retryable` / `permanent`: the plugin's errors;
//! - `forbidden`: a ConfigMap and a Secret, a kind it does not own (the
//!   host must refuse the whole answer and apply nothing);
//! - `panic`: a trap on every call;
//! - `spin`: a loop that never ends (stopped by the time limit), to hold an
//!   instance as long as the limit allows;
//! - `elsewhere`: a child in another namespace (refused);
//! - `take`: a ConfigMap named `spec.target`, to try to take over an
//!   object that exists already (refused unless no one controls it and
//!   the grant says `adopt: true`);
//! - `bigstatus`: a status of `spec.bytes` bytes (default 10 MB);
//! - `biglabel`: a ConfigMap with a label value of `spec.bytes` bytes
//!   (default 1 MB), which the API server refuses and echoes back.
//!
//! It asks for a finalizer and answers the finalizing call with an event.
//! It also owns Deployments, to share that watch with the memcached plugin.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use operon_sdk::{Context, Error, Event, Gvk, Reconciler, Registration, Request, Response};
use serde_json::{Value, json};

struct Widgets;

fn config_map(name: &str, ns: Option<&str>) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": name, "namespace": ns}, "data": {"owner": "widgets"}})
}

impl Reconciler for Widgets {
    fn describe() -> Registration {
        Registration::new(
            "widgets",
            env!("CARGO_PKG_VERSION"),
            Gvk::new("test.operon.dev", "v1", "Widget"),
        )
        .owns::<ConfigMap>()
        .owns::<Deployment>()
        .finalizer(true)
        .crd(include_str!("../crd.json"))
    }

    fn reconcile(_ctx: &Context, req: Request) -> Result<Response, Error> {
        if req.is_finalizing() {
            return Ok(Response::new()
                .event(Event::normal("Finalized", "cleanup done"))
                .finalized());
        }
        let spec: Value = req.spec().unwrap_or(Value::Null);
        let name = req.name().to_string();
        let ns = req.namespace();
        match spec["mode"].as_str().unwrap_or("ok") {
            "retryable" => Err(Error::retryable("database not reachable")),
            "permanent" => Err(Error::permanent("spec.mode permanent is not supported")),
            "panic" => panic!("widget {name} cannot be reconciled"),
            "spin" => {
                // Opaque to the optimizer, so the loop stays real work.
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "elsewhere" => Ok(Response::new().child(config_map(&name, Some("kube-system")))),
            "take" => {
                let target = spec["target"].as_str().unwrap_or("taken");
                let mut cm = config_map(target, ns);
                cm["data"] = json!({"owner": "widgets", "taken": name});
                Ok(Response::new().child(cm))
            }
            "bigstatus" => {
                let bytes = spec["bytes"].as_u64().unwrap_or(10_000_000) as usize;
                Ok(Response::new().status(json!({"blob": "s".repeat(bytes)})))
            }
            "biglabel" => {
                let bytes = spec["bytes"].as_u64().unwrap_or(1_000_000) as usize;
                let mut cm = config_map(&name, ns);
                cm["metadata"]["labels"] = json!({"big": "l".repeat(bytes)});
                Ok(Response::new().child(cm))
            }
            "forbidden" => Ok(Response::new()
                .child(config_map(&name, ns))
                .child(json!({"apiVersion": "v1", "kind": "Secret",
                              "metadata": {"name": name, "namespace": ns}}))),
            _ => {
                let mut resp = Response::new().child(config_map(&name, ns));
                if spec["extra"].as_bool() == Some(true) {
                    resp = resp.child(config_map(&format!("{name}-extra"), ns));
                }
                Ok(resp.status(json!({"phase": "Ready"})))
            }
        }
    }
}

operon_sdk::export!(Widgets);
