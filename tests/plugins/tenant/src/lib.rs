//! Test plugin: a tenant's reconciler (it ships no CRD; an admin installs
//! the `Widget` kind) that writes one ConfigMap beside each Widget and, when
//! its spec asks, tries to reach past its namespace:
//! - `childIn: NS` — a second ConfigMap child in NS;
//! - `patchIn: NS` — a merge patch of the ConfigMap `elsewhere` in NS;
//! - `patchNamespace: NAME` — a merge patch of the (cluster-scoped)
//!   Namespace NAME.
//!
//! Run as a `ReconcilerPlugin`, each reach must be refused: by the host,
//! and under `--impersonate` by the API server too.

use operon_sdk::{
    Context, Error, Gvk, ObjectRef, Patch, Reconciler, Registration, Request, Response,
};
use serde_json::{Value, json};

struct Tenant;

impl Reconciler for Tenant {
    fn describe() -> Registration {
        Registration::new(
            "tenant",
            env!("CARGO_PKG_VERSION"),
            Gvk::new("test.operon.dev", "v1", "Widget"),
        )
        .owns_kind(Gvk::new("", "v1", "ConfigMap"))
        .patches(Gvk::new("", "v1", "ConfigMap"))
        .patches(Gvk::new("", "v1", "Namespace"))
    }

    fn reconcile(_ctx: &Context, req: Request) -> Result<Response, Error> {
        let spec: Value = req.spec().unwrap_or(Value::Null);
        let name = req.name().to_string();
        let config_map = |ns: Option<&str>| {
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": name, "namespace": ns}, "data": {"owner": "tenant"}})
        };
        let mut response = Response::new().child(config_map(req.namespace()));
        if let Some(ns) = spec["childIn"].as_str() {
            response = response.child(config_map(Some(ns)));
        }
        let touched = json!({"metadata": {"labels": {"touched-by": "tenant"}}});
        if let Some(ns) = spec["patchIn"].as_str() {
            let target = ObjectRef::new("v1", "ConfigMap", Some(ns), "elsewhere");
            response = response.patch(Patch::merge(target, &touched));
        }
        if let Some(namespace) = spec["patchNamespace"].as_str() {
            let target = ObjectRef::new("v1", "Namespace", None, namespace);
            response = response.patch(Patch::merge(target, &touched));
        }
        Ok(response)
    }
}

operon_sdk::export!(Tenant);
