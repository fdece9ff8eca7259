//! Test plugin for hot swap: one build, many revisions.
//!
//! The behaviour comes from a marker in the component's data segment,
//! `operon-test-revision:` followed by a 12-byte label. Tests copy the built
//! component and overwrite the label (same length, so the component stays
//! valid) to make builds that differ the way a new release would:
//! - any label (`v1`, `v2`, ...): a `Gadget`'s ConfigMap and status carry the
//!   label and the `spec.value` they were made from (and the ConfigMap the
//!   config key `note`, when the host passes one);
//! - `fail...`: every reconcile traps (a broken release);
//! - `greedy...`: `describe()` also asks to own Secrets (refused by a grants
//!   file that does not give them);
//! - `wide...`: also owns ServiceAccounts and makes one per gadget (a
//!   registration change: a watch is added, and removed on the way back).

use k8s_openapi::api::core::v1::{ConfigMap, Secret, ServiceAccount};
use operon_sdk::{Context, Error, Gvk, Reconciler, Registration, Request, Response};
use serde_json::{Value, json};

/// The marker and its label; see the module docs. Read with a volatile load
/// so the compiler cannot fold the label into the code.
#[used]
static REVISION: [u8; 33] = *b"operon-test-revision:v1__________";

fn revision() -> String {
    let bytes: [u8; 33] = unsafe { core::ptr::read_volatile(&REVISION) };
    String::from_utf8_lossy(&bytes[21..])
        .trim_end_matches('_')
        .to_string()
}

struct Revisions;

impl Reconciler for Revisions {
    fn describe() -> Registration {
        let rev = revision();
        let mut reg = Registration::new(
            "revisions",
            env!("CARGO_PKG_VERSION"),
            Gvk::new("test.operon.dev", "v1", "Gadget"),
        )
        .owns::<ConfigMap>()
        .crd(include_str!("../crd.json"));
        if rev.starts_with("greedy") {
            reg = reg.owns::<Secret>();
        }
        if rev.starts_with("wide") {
            reg = reg.owns::<ServiceAccount>();
        }
        reg
    }

    fn reconcile(_ctx: &Context, req: Request) -> Result<Response, Error> {
        let rev = revision();
        let name = req.name().to_string();
        if rev.starts_with("fail") {
            panic!("revision {rev} cannot reconcile gadget {name}");
        }
        let ns = req.namespace();
        let value = req.spec().unwrap_or(Value::Null)["value"].clone();
        let mut data = json!({"revision": rev, "value": value.to_string()});
        // The host's per-plugin config, when it gives `note`.
        if let Some(note) = req.config("note") {
            data["note"] = json!(note);
        }
        let mut resp = Response::new().child(json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": ns},
            "data": data,
        }));
        if rev.starts_with("wide") {
            resp = resp.child(json!({"apiVersion": "v1", "kind": "ServiceAccount",
                                     "metadata": {"name": name, "namespace": ns}}));
        }
        Ok(resp.status(json!({"revision": rev, "value": value})))
    }
}

operon_sdk::export!(Revisions);
