//! Checking a whole answer before anything of it is applied.
//!
//! Each refusal is a [`Refusal`] naming the offending part (`child #i (Kind
//! namespace/name)`, `patch #i (...)`) and why, in words a plugin author
//! can act on; the whole answer is refused on the first one.

use std::collections::HashMap;

use kube::api::Patch;
use serde_json::Value;

use crate::contract::outcome::{DecodeError, DecodedPatch, describe_child};
use crate::contract::{GroupKind, Gvk, Outcome, PatchType, Registration};
use crate::plugin::privileged;

/// Size limits of an answer, in bytes of JSON (the plugin's limits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizeLimits {
    pub child: usize,
    pub status: usize,
    pub response: usize,
}

/// A part of an answer over its size limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} is {} of JSON, over the limit of {} (raise limits.{setting} in the plugin's grant)", human(*size), human(*limit))]
pub struct TooLarge {
    /// `the status`, `child #i (...)` or `the answer`.
    pub what: String,
    pub size: usize,
    pub limit: usize,
    /// The grant's setting that raises the limit.
    pub setting: &'static str,
}

/// Refuses an answer over its size limits, saying the size, the limit and
/// the grant setting that raises it. Checked first: nothing else of a huge
/// answer is worth looking at.
pub fn check_sizes(outcome: &Outcome, limits: &SizeLimits) -> Result<(), TooLarge> {
    let sizes = outcome.sizes();
    let over = |what: String, size, limit, setting| {
        Err(TooLarge {
            what,
            size,
            limit,
            setting,
        })
    };
    if sizes.status > limits.status {
        return over(
            "the status".into(),
            sizes.status,
            limits.status,
            "statusKib",
        );
    }
    for (i, &size) in sizes.children.iter().enumerate() {
        if size > limits.child {
            let desc = outcome
                .children
                .get(i)
                .and_then(|c| describe_child(c).ok())
                .unwrap_or_default();
            return over(
                format!("child #{i} ({desc})"),
                size,
                limits.child,
                "childKib",
            );
        }
    }
    if sizes.total > limits.response {
        return over(
            "the answer".into(),
            sizes.total,
            limits.response,
            "responseKib",
        );
    }
    Ok(())
}

/// Bytes as people read them: `512 B`, `3.0 KiB`, `10.0 MiB`.
fn human(bytes: usize) -> String {
    match bytes {
        b if b < 1 << 10 => format!("{b} B"),
        b if b < 1 << 20 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0)),
    }
}

/// What the plugin's grant allows an answer beyond its registration.
#[derive(Debug, Clone, Copy)]
pub struct WriteGrant {
    /// Most children one parent may have.
    pub max_children: usize,
    /// May create Secrets of type `kubernetes.io/service-account-token`.
    pub service_account_tokens: bool,
    /// A tenant's plugin (`ReconcilerPlugin`): its patches, like its
    /// children, stay in its parent's namespace and never reach a
    /// cluster-scoped object. A cluster plugin's `patches` grant is the
    /// admin's consent to patch wherever the kind lives.
    pub confined: bool,
}

/// Why an answer is refused whole.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "plugin {plugin} returned {count} children; at most {max} are allowed per parent (raise limits.maxChildren in the plugin's grant)"
    )]
    TooManyChildren {
        plugin: String,
        count: usize,
        max: usize,
    },
    /// A child that is not an object, or lacks apiVersion, kind or name.
    #[error("child #{index}: {error}")]
    Malformed { index: usize, error: DecodeError },
    #[error("child #{index} ({child}): {why}")]
    Child {
        index: usize,
        /// `Kind namespace/name`.
        child: String,
        why: Box<ChildRefusal>,
    },
    #[error("patch #{index} ({target}): {why}")]
    Patch {
        index: usize,
        target: String,
        why: Box<PatchRefusal>,
    },
    #[error("status must be a JSON object")]
    StatusNotObject,
}

/// Why one child is refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ChildRefusal {
    #[error("kind {kind} is not owned by plugin {plugin}; it owns {owns}")]
    NotOwned {
        kind: Gvk,
        plugin: String,
        owns: String,
    },
    #[error(
        "a Secret of type {} makes the API server mint a token for a ServiceAccount; \
         plugin {plugin} may create one only with serviceAccountTokens: true in its grant",
        privileged::SERVICE_ACCOUNT_TOKEN
    )]
    TokenSecret { plugin: String },
    #[error("kind {0} is cluster-scoped and cannot be owned by a namespaced parent")]
    ClusterScoped(Gvk),
    #[error("kind {0} is namespaced: a child of a cluster-scoped parent needs metadata.namespace")]
    NeedsNamespace(Gvk),
    #[error(
        "namespace {own} is not the parent's namespace {parent}; children live in their parent's namespace"
    )]
    OtherNamespace { own: String, parent: String },
    #[error("duplicate of child #{0}")]
    Duplicate(usize),
}

/// Why one patch is refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PatchRefusal {
    #[error("the target has no name")]
    NoName,
    #[error("plugin {plugin} has no patches grant on kind {kind}; it may patch {grants}")]
    NotGranted {
        plugin: String,
        kind: Gvk,
        grants: String,
    },
    #[error("the body is not a JSON patch: {0}")]
    NotJsonPatch(String),
    #[error("the body must be a JSON object")]
    NotObject,
    #[error(
        "a ReconcilerPlugin patches only objects in its own namespace {parent}; this one is {}",
        target.as_deref().map(|ns| format!("in namespace {ns}")).unwrap_or_else(|| "cluster-scoped".into())
    )]
    OutsideNamespace {
        /// The target's namespace; None for a cluster-scoped object.
        target: Option<String>,
        parent: String,
    },
}

/// Refuses an outcome that must not be applied (see [`Refusal`]).
///
/// `scope` tells whether an owned kind is namespaced (`None`: unknown, the
/// scope checks are skipped). Patch grants are the registration's
/// `capabilities.patches`.
pub fn check(
    outcome: &Outcome,
    reg: &Registration,
    parent: &Value,
    grant: &WriteGrant,
    scope: &dyn Fn(&Gvk) -> Option<bool>,
) -> Result<(), Refusal> {
    if outcome.children.len() > grant.max_children {
        return Err(Refusal::TooManyChildren {
            plugin: reg.name.clone(),
            count: outcome.children.len(),
            max: grant.max_children,
        });
    }
    let parent_ns = if reg.parent.namespaced {
        str_at(parent, "/metadata/namespace")
    } else {
        None
    };
    let mut seen = HashMap::new();
    for (index, child) in outcome.children.iter().enumerate() {
        describe_child(child).map_err(|error| Refusal::Malformed { index, error })?;
        let gvk = gvk_of(child);
        let name = str_at(child, "/metadata/name").unwrap_or_default();
        let namespaced = scope(&gvk);
        let ns = match namespaced {
            Some(false) => str_at(child, "/metadata/namespace"),
            _ => str_at(child, "/metadata/namespace").or(parent_ns),
        };
        let refused = |why| Refusal::Child {
            index,
            child: describe(&gvk.kind, ns, name),
            why: Box::new(why),
        };
        check_child(child, &gvk, reg, grant, namespaced, parent_ns).map_err(refused)?;
        let identity = (gvk.group_kind(), ns.map(str::to_string), name.to_string());
        if let Some(earlier) = seen.insert(identity, index) {
            return Err(refused(ChildRefusal::Duplicate(earlier)));
        }
    }
    for (index, p) in outcome.patches.iter().enumerate() {
        let t = &p.target;
        check_patch(p, reg)
            .and_then(|()| confine_patch(p, grant, parent_ns, scope))
            .map_err(|why| Refusal::Patch {
                index,
                target: describe(&t.kind, t.namespace.as_deref(), &t.name),
                why: Box::new(why),
            })?;
    }
    if let Some(status) = &outcome.status
        && !status.is_object()
    {
        return Err(Refusal::StatusNotObject);
    }
    Ok(())
}

/// One child: an owned kind, in its parent's namespace, no token Secret
/// without the grant.
fn check_child(
    child: &Value,
    gvk: &Gvk,
    reg: &Registration,
    grant: &WriteGrant,
    namespaced: Option<bool>,
    parent_ns: Option<&str>,
) -> Result<(), ChildRefusal> {
    if !reg.owns.iter().any(|o| o.same_kind(gvk)) {
        return Err(ChildRefusal::NotOwned {
            kind: gvk.clone(),
            plugin: reg.name.clone(),
            owns: list(&reg.owns),
        });
    }
    if privileged::is_token_secret(child) && !grant.service_account_tokens {
        return Err(ChildRefusal::TokenSecret {
            plugin: reg.name.clone(),
        });
    }
    let own_ns = str_at(child, "/metadata/namespace");
    match (namespaced, parent_ns) {
        (Some(false), Some(_)) => return Err(ChildRefusal::ClusterScoped(gvk.clone())),
        (Some(true), None) if own_ns.is_none() => {
            return Err(ChildRefusal::NeedsNamespace(gvk.clone()));
        }
        _ => {}
    }
    match (own_ns, parent_ns) {
        (Some(own), Some(parent)) if own != parent => Err(ChildRefusal::OtherNamespace {
            own: own.into(),
            parent: parent.into(),
        }),
        _ => Ok(()),
    }
}

/// One patch of a non-owned object: named, granted, a body of its type.
fn check_patch(p: &DecodedPatch, reg: &Registration) -> Result<(), PatchRefusal> {
    let t = &p.target;
    if t.name.is_empty() {
        return Err(PatchRefusal::NoName);
    }
    let gvk = Gvk::from_api_version(&t.api_version, &t.kind);
    let grants = &reg.capabilities.patches;
    if !grants.iter().any(|g| g.same_kind(&gvk)) {
        return Err(PatchRefusal::NotGranted {
            plugin: reg.name.clone(),
            kind: gvk,
            grants: list(grants),
        });
    }
    match p.patch_type {
        PatchType::Json => json_patch(&p.body)
            .map(|_| ())
            .map_err(|e| PatchRefusal::NotJsonPatch(format!("{e:#}"))),
        PatchType::Merge | PatchType::Apply if !p.body.is_object() => Err(PatchRefusal::NotObject),
        _ => Ok(()),
    }
}

/// A tenant's patch: a namespaced object in its parent's namespace. A kind
/// whose scope is unknown counts as cluster-scoped when the target names no
/// namespace, and the API server decides otherwise.
fn confine_patch(
    p: &DecodedPatch,
    grant: &WriteGrant,
    parent_ns: Option<&str>,
    scope: &dyn Fn(&Gvk) -> Option<bool>,
) -> Result<(), PatchRefusal> {
    if !grant.confined {
        return Ok(());
    }
    let t = &p.target;
    let cluster_scoped = scope(&Gvk::from_api_version(&t.api_version, &t.kind)) == Some(false);
    let target = if cluster_scoped {
        None
    } else {
        t.namespace.clone()
    };
    match (target.as_deref(), parent_ns) {
        (Some(own), Some(parent)) if own == parent => Ok(()),
        _ => Err(PatchRefusal::OutsideNamespace {
            target,
            parent: parent_ns.unwrap_or_default().to_string(),
        }),
    }
}

/// An RFC 6902 JSON patch body as kube's [`Patch::Json`].
pub fn json_patch(body: &Value) -> anyhow::Result<Patch<Value>> {
    Ok(Patch::Json(serde_json::from_value(body.clone())?))
}

/// The kind of an object from its `apiVersion` and `kind`.
pub fn gvk_of(obj: &Value) -> Gvk {
    Gvk::from_api_version(
        str_at(obj, "/apiVersion").unwrap_or_default(),
        str_at(obj, "/kind").unwrap_or_default(),
    )
}

/// The versionless kind of an object.
pub fn group_kind_of(obj: &Value) -> GroupKind {
    GroupKind::from_api_version(
        str_at(obj, "/apiVersion").unwrap_or_default(),
        str_at(obj, "/kind").unwrap_or_default(),
    )
}

pub(crate) fn str_at<'a>(obj: &'a Value, pointer: &str) -> Option<&'a str> {
    obj.pointer(pointer)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// `Kind namespace/name`, or `Kind name` without a namespace.
pub fn describe(kind: &str, ns: Option<&str>, name: &str) -> String {
    match ns {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}

fn list(kinds: &[Gvk]) -> String {
    if kinds.is_empty() {
        return "none".into();
    }
    kinds
        .iter()
        .map(Gvk::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
pub(crate) mod tests {
    use serde_json::json;

    use super::*;
    use crate::contract::ParentKind;
    use crate::contract::bindings::operon::reconciler::types::Capabilities;
    use crate::contract::outcome::{DecodedPatch, Target};

    fn gvk(g: &str, v: &str, k: &str) -> Gvk {
        Gvk {
            group: g.into(),
            version: v.into(),
            kind: k.into(),
        }
    }

    pub(crate) fn registration(namespaced: bool) -> Registration {
        Registration {
            name: "memcached".into(),
            version: "0.1.0".into(),
            parent: ParentKind {
                kind: gvk("cache.operon.dev", "v1", "Memcached"),
                namespaced,
            },
            owns: vec![
                gvk("apps", "v1", "Deployment"),
                gvk("", "v1", "Service"),
                gvk("", "v1", "Namespace"),
            ],
            related: vec![],
            finalizer: false,
            crds: vec![],
            capabilities: Capabilities {
                reads: vec![],
                patches: vec![gvk("db.operon.dev", "v1", "PostgresCluster")],
                secrets: false,
            },
        }
    }

    fn child(api: &str, kind: &str, ns: Option<&str>, name: &str) -> Value {
        let mut c = json!({"apiVersion": api, "kind": kind, "metadata": {"name": name}});
        if let Some(ns) = ns {
            c["metadata"]["namespace"] = json!(ns);
        }
        c
    }

    fn outcome(children: Vec<Value>) -> Outcome {
        Outcome {
            children,
            status: None,
            events: vec![],
            requeue_after_ms: None,
            finalized: false,
            patches: vec![],
            sizes: None,
        }
    }

    fn scope(g: &Gvk) -> Option<bool> {
        Some(g.kind != "Namespace")
    }

    fn run(out: &Outcome, namespaced: bool) -> Result<(), String> {
        let parent = if namespaced {
            json!({"metadata": {"name": "m", "namespace": "demo"}})
        } else {
            json!({"metadata": {"name": "m"}})
        };
        let grant = WriteGrant {
            max_children: 3,
            service_account_tokens: false,
            confined: false,
        };
        check(out, &registration(namespaced), &parent, &grant, &scope).map_err(|e| e.to_string())
    }

    #[test]
    fn accepts_owned_children_in_the_parents_namespace() {
        let out = outcome(vec![
            child("apps/v1", "Deployment", None, "a"),
            child("v1", "Service", Some("demo"), "a"),
        ]);
        run(&out, true).unwrap();
    }

    #[test]
    fn refuses_kinds_not_owned() {
        let out = outcome(vec![
            child("v1", "Service", None, "a"),
            child("v1", "ConfigMap", None, "x"),
        ]);
        assert_eq!(
            run(&out, true).unwrap_err(),
            "child #1 (ConfigMap demo/x): kind v1/ConfigMap is not owned by plugin memcached; \
             it owns apps/v1/Deployment, v1/Service, v1/Namespace"
        );
    }

    #[test]
    fn refuses_missing_names_other_namespaces_and_duplicates() {
        let mut nameless = child("v1", "Service", None, "a");
        nameless["metadata"].as_object_mut().unwrap().remove("name");
        let err = run(&outcome(vec![nameless]), true).unwrap_err();
        assert_eq!(err, "child #0: Service has no metadata.name");

        let out = outcome(vec![child("v1", "Service", Some("other"), "a")]);
        let err = run(&out, true).unwrap_err();
        assert!(
            err.starts_with(
                "child #0 (Service other/a): namespace other is not the parent's namespace demo"
            ),
            "{err}"
        );

        let out = outcome(vec![
            child("v1", "Service", None, "a"),
            child("v1", "Service", Some("demo"), "a"),
        ]);
        assert_eq!(
            run(&out, true).unwrap_err(),
            "child #1 (Service demo/a): duplicate of child #0"
        );
        // Same name, other kind: fine.
        let out = outcome(vec![
            child("v1", "Service", None, "a"),
            child("apps/v1", "Deployment", None, "a"),
        ]);
        run(&out, true).unwrap();
    }

    #[test]
    fn checks_scopes() {
        let out = outcome(vec![child("v1", "Namespace", None, "ns1")]);
        let err = run(&out, true).unwrap_err();
        assert!(
            err.contains(
                "kind v1/Namespace is cluster-scoped and cannot be owned by a namespaced parent"
            ),
            "{err}"
        );
        run(&out, false).unwrap();

        let out = outcome(vec![child("v1", "Service", None, "a")]);
        let err = run(&out, false).unwrap_err();
        assert_eq!(
            err,
            "child #0 (Service a): kind v1/Service is namespaced: a child of a cluster-scoped parent needs metadata.namespace"
        );
        // A cluster-scoped parent may own namespaced children anywhere.
        run(
            &outcome(vec![child("v1", "Service", Some("x"), "a")]),
            false,
        )
        .unwrap();
    }

    #[test]
    fn limits_the_number_of_children() {
        let out = outcome(
            (0..4)
                .map(|i| child("v1", "Service", None, &format!("s{i}")))
                .collect(),
        );
        assert_eq!(
            run(&out, true).unwrap_err(),
            "plugin memcached returned 4 children; at most 3 are allowed per parent (raise limits.maxChildren in the plugin's grant)"
        );
    }

    #[test]
    fn refuses_token_secrets_without_the_grant() {
        let mut reg = registration(true);
        reg.owns.push(gvk("", "v1", "Secret"));
        let mut secret = child("v1", "Secret", None, "t");
        secret["type"] = json!("kubernetes.io/service-account-token");
        let parent = json!({"metadata": {"name": "m", "namespace": "demo"}});
        let mut grant = WriteGrant {
            max_children: 3,
            service_account_tokens: false,
            confined: false,
        };
        let out = outcome(vec![secret]);
        let err = check(&out, &reg, &parent, &grant, &scope)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(
                "child #0 (Secret demo/t): a Secret of type kubernetes.io/service-account-token"
            ) && err.ends_with("only with serviceAccountTokens: true in its grant"),
            "{err}"
        );
        grant.service_account_tokens = true;
        check(&out, &reg, &parent, &grant, &scope).unwrap();
        // An ordinary Secret needs nothing more than owning Secrets.
        grant.service_account_tokens = false;
        check(
            &outcome(vec![child("v1", "Secret", None, "p")]),
            &reg,
            &parent,
            &grant,
            &scope,
        )
        .unwrap();
    }

    #[test]
    fn refuses_what_is_over_its_size_limit() {
        let limits = SizeLimits {
            child: 100,
            status: 50,
            response: 1000,
        };
        let mut big = child("v1", "Service", None, "big");
        big["spec"] = json!({"x": "y".repeat(200)});
        let out = outcome(vec![child("v1", "Service", None, "a"), big]);
        assert_eq!(
            check_sizes(&out, &limits).unwrap_err().to_string(),
            "child #1 (Service big) is 278 B of JSON, over the limit of 100 B \
             (raise limits.childKib in the plugin's grant)"
        );
        let mut out = outcome(vec![]);
        out.status = Some(json!({"s": "z".repeat(60)}));
        assert!(
            check_sizes(&out, &limits)
                .unwrap_err()
                .to_string()
                .starts_with("the status is 68 B")
        );
        out.children = (0..20)
            .map(|i| {
                let mut c = child("v1", "Service", None, &format!("s{i}"));
                c["spec"] = json!({"x": "y".repeat(1 << 20)});
                c
            })
            .collect();
        out.status = None;
        let huge = SizeLimits {
            child: 2 << 20,
            status: 256 << 10,
            response: 8 << 20,
        };
        assert_eq!(
            check_sizes(&out, &huge).unwrap_err().to_string(),
            "the answer is 20.0 MiB of JSON, over the limit of 8.0 MiB \
             (raise limits.responseKib in the plugin's grant)"
        );
        out.children.clear();
        out.status = Some(json!({}));
        check_sizes(&out, &limits).unwrap();
    }

    #[test]
    fn checks_patches_and_status() {
        let patch = |api: &str, kind: &str, patch_type, body| DecodedPatch {
            target: Target {
                api_version: api.into(),
                kind: kind.into(),
                namespace: Some("demo".into()),
                name: "pg".into(),
            },
            subresource: None,
            patch_type,
            body,
        };
        let mut out = outcome(vec![]);
        out.patches = vec![
            patch(
                "db.operon.dev/v1",
                "PostgresCluster",
                PatchType::Merge,
                json!({"spec": {}}),
            ),
            patch(
                "db.operon.dev/v1",
                "PostgresCluster",
                PatchType::Json,
                json!([{"op": "replace", "path": "/spec/instances", "value": 2}]),
            ),
        ];
        run(&out, true).unwrap();
        out.patches
            .push(patch("apps/v1", "Deployment", PatchType::Merge, json!({})));
        assert_eq!(
            run(&out, true).unwrap_err(),
            "patch #2 (Deployment demo/pg): plugin memcached has no patches grant on kind apps/v1/Deployment; \
             it may patch db.operon.dev/v1/PostgresCluster"
        );
        out.patches[2] = patch(
            "db.operon.dev/v1",
            "PostgresCluster",
            PatchType::Json,
            json!({"op": "add"}),
        );
        assert!(
            run(&out, true)
                .unwrap_err()
                .starts_with("patch #2 (PostgresCluster demo/pg): the body is not a JSON patch")
        );
        out.patches.truncate(2);
        out.status = Some(json!([1]));
        assert_eq!(run(&out, true).unwrap_err(), "status must be a JSON object");
    }

    #[test]
    fn a_tenants_patches_stay_in_its_namespace() {
        let patch = |kind: &str, namespace: Option<&str>| DecodedPatch {
            target: Target {
                api_version: if kind == "Namespace" {
                    "v1"
                } else {
                    "db.operon.dev/v1"
                }
                .into(),
                kind: kind.into(),
                namespace: namespace.map(str::to_string),
                name: "pg".into(),
            },
            subresource: None,
            patch_type: PatchType::Merge,
            body: json!({"metadata": {"labels": {"a": "b"}}}),
        };
        let mut reg = registration(true);
        reg.capabilities.patches.push(gvk("", "v1", "Namespace"));
        let parent = json!({"metadata": {"name": "m", "namespace": "demo"}});
        let tenant = WriteGrant {
            max_children: 3,
            service_account_tokens: false,
            confined: true,
        };
        let check_one = |p: DecodedPatch, grant: &WriteGrant| {
            let mut out = outcome(vec![]);
            out.patches = vec![p];
            check(&out, &reg, &parent, grant, &scope).map_err(|e| e.to_string())
        };
        check_one(patch("PostgresCluster", Some("demo")), &tenant).unwrap();
        assert_eq!(
            check_one(patch("PostgresCluster", Some("team-b")), &tenant).unwrap_err(),
            "patch #0 (PostgresCluster team-b/pg): a ReconcilerPlugin patches only objects in its \
             own namespace demo; this one is in namespace team-b"
        );
        for namespace in [None, Some("demo")] {
            assert_eq!(
                check_one(patch("Namespace", namespace), &tenant).unwrap_err(),
                format!(
                    "patch #0 (Namespace {}pg): a ReconcilerPlugin patches only objects in its \
                     own namespace demo; this one is cluster-scoped",
                    namespace.map(|n| format!("{n}/")).unwrap_or_default()
                )
            );
        }
        // A cluster plugin's grant is the admin's consent to patch anywhere.
        let cluster = WriteGrant {
            confined: false,
            ..tenant
        };
        check_one(patch("PostgresCluster", Some("team-b")), &cluster).unwrap();
        check_one(patch("Namespace", None), &cluster).unwrap();
    }
}
