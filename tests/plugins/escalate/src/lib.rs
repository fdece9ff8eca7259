//! Test plugin: a hostile tenant's reconciler that tries to escalate. For
//! each `Widget` (the widgets plugin's kind; it ships the same CRD so it can
//! run alone) it asks for a RoleBinding of ClusterRole `cluster-admin` to
//! the user in `spec.user` (default `mallory`), beside a ConfigMap.
//!
//! Without a grant naming RoleBindings it must not load at all; granted,
//! under `--impersonate`, the API server must refuse the binding because
//! the plugin's ServiceAccount does not hold what it would grant.

use operon_sdk::{Context, Error, Gvk, Reconciler, Registration, Request, Response};
use serde_json::{Value, json};

struct Escalate;

impl Reconciler for Escalate {
    fn describe() -> Registration {
        Registration::new(
            "escalate",
            env!("CARGO_PKG_VERSION"),
            Gvk::new("test.operon.dev", "v1", "Widget"),
        )
        .owns_kind(Gvk::new("", "v1", "ConfigMap"))
        .owns_kind(Gvk::new("rbac.authorization.k8s.io", "v1", "RoleBinding"))
        .crd(include_str!("../../widgets/crd.json"))
    }

    fn reconcile(_ctx: &Context, req: Request) -> Result<Response, Error> {
        let spec: Value = req.spec().unwrap_or(Value::Null);
        let user = spec["user"].as_str().unwrap_or("mallory");
        let name = req.name().to_string();
        let ns = req.namespace();
        Ok(Response::new()
            .child(json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": ns}, "data": {"owner": "escalate"}}))
            .child(
                json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                "metadata": {"name": format!("{name}-admin"), "namespace": ns},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                            "name": "cluster-admin"},
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                              "name": user}]}),
            ))
    }
}

operon_sdk::export!(Escalate);
