//! What the host does with bytes no one vetted, one call each, for the
//! fuzz targets (`fuzz/`, nightly) and the bounded property smoke that CI
//! runs on stable (`host/tests/untrusted_input.rs`). Each function runs the
//! same code the host runs on that input, so a panic here is a panic a
//! plugin or a user could cause in the host.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::apply::{children, status, validate};
use crate::contract::bindings::operon::reconciler::types as wit;
use crate::contract::{Gvk, Outcome, ParentKind, Registration};

/// The registration answers are checked against: the memcached example's
/// kinds, one patchable kind.
fn registration() -> Registration {
    Registration {
        name: "fuzzed".into(),
        version: "0.1.0".into(),
        parent: ParentKind {
            kind: Gvk::from_api_version("cache.operon.dev/v1alpha1", "Memcached"),
            namespaced: true,
        },
        owns: vec![
            Gvk::from_api_version("apps/v1", "Deployment"),
            Gvk::from_api_version("v1", "Service"),
        ],
        related: vec![],
        finalizer: false,
        crds: vec![],
        capabilities: wit::Capabilities {
            reads: vec![],
            patches: vec![Gvk::from_api_version("v1", "ConfigMap")],
            secrets: false,
        },
    }
}

/// A plugin's answer (children, status and patch bodies as the guest wrote
/// them): decoded, size-checked, validated (as a cluster plugin and as a
/// tenant's), its children prepared for applying and its status merged, as
/// a reconcile does before anything is sent. The error, if any, is the
/// message the parent's condition would carry.
pub fn check_response(
    children: Vec<String>,
    status: Option<String>,
    patches: Vec<String>,
) -> Result<(), String> {
    let patches = patches
        .into_iter()
        .map(|body| wit::Patch {
            target: wit::ObjectRef {
                api_version: "v1".into(),
                kind: "ConfigMap".into(),
                namespace: Some("demo".into()),
                name: "settings".into(),
            },
            subresource: None,
            patch_type: wit::PatchType::Merge,
            body,
        })
        .collect();
    let response = wit::Response {
        children,
        status,
        events: vec![],
        requeue_after_ms: None,
        finalized: false,
        patches,
    };
    let outcome = Outcome::decode(response).map_err(|e| e.to_string())?;
    let limits = validate::SizeLimits {
        child: 256 << 10,
        status: 64 << 10,
        response: 1 << 20,
    };
    validate::check_sizes(&outcome, &limits).map_err(|e| e.to_string())?;
    let parent = json!({"apiVersion": "cache.operon.dev/v1alpha1", "kind": "Memcached",
        "metadata": {"name": "m", "namespace": "demo", "uid": "u-1", "generation": 2}});
    let reg = registration();
    let scope = |g: &Gvk| Some(g.kind != "Namespace");
    for confined in [false, true] {
        let grant = validate::WriteGrant {
            max_children: 50,
            service_account_tokens: false,
            confined,
        };
        validate::check(&outcome, &reg, &parent, &grant, &scope).map_err(|e| e.to_string())?;
    }
    for child in &outcome.children {
        let prepared = children::prepare(child.clone(), &parent, "fuzzed");
        let _ = children::describe_obj(&prepared);
    }
    let current = json!({"conditions": [{"type": "Synced", "status": "True"}]});
    let _ = status::compute(
        outcome.status.as_ref(),
        Some(&current),
        Some(2),
        status::Synced::ok(),
        "2026-01-01T00:00:00Z",
    );
    Ok(())
}

/// A label selector a plugin passes to `cluster.list`, parsed and matched
/// against a few label sets. Whether it parsed.
pub fn check_selector(text: &str) -> bool {
    let Ok(selector) = crate::contract::selector::Selector::parse(text) else {
        return false;
    };
    let labels = [
        BTreeMap::new(),
        BTreeMap::from([("app".to_string(), "db".to_string())]),
        BTreeMap::from([("app".to_string(), text.to_string())]),
    ];
    for l in &labels {
        let _ = selector.matches(l);
    }
    let _ = selector.matches_object(&Value::Null);
    true
}
