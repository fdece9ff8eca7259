//! Applying a plugin's [`Outcome`] to the cluster.
//!
//! The order is fixed, and each step only runs when the previous ones
//! succeeded:
//!
//! 1. [`validate::check`]: the whole answer is checked before anything is
//!    applied (owned kinds only, names, namespaces, duplicates, patch grants,
//!    limits). A refusal is [`ApplyError::Invalid`] and nothing is applied.
//! 2. Children: each is [`children::prepare`]d (namespace, controller
//!    ownerReference, `operon.dev/*` labels) and server-side applied with
//!    field manager `operon/<plugin>` ([`children::apply`]).
//! 3. [`children::prune`]: observed children the answer no longer lists are
//!    deleted. Pruning runs only after every desired child applied, so a
//!    failed apply never leaves the parent with fewer children than before.
//! 4. Patches to objects the plugin does not own ([`patch`]).
//!
//! [`apply_outcome`] runs steps 1–4. Status and events are separate because
//! the runtime needs them on failures too (a trap or an invalid answer still
//! sets `Synced=False` and records a warning): after every reconcile the
//! runtime calls [`report`] (or [`status::compute`] + [`status::patch`] and
//! [`events::record`] itself), with the plugin's status and events on success
//! and none plus a host event on failure.

pub mod children;
pub mod events;
pub mod finalizer;
pub mod status;
pub mod validate;

use std::collections::HashMap;

use anyhow::Context as _;
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};

use crate::contract::outcome::{DecodedEvent, DecodedPatch};
use crate::contract::{Gvk, Outcome, PatchType, Registration};
use crate::kinds::{Kinds, Resolved};

/// Default limit on the number of children of one parent.
pub const MAX_CHILDREN: usize = 1000;

/// The field manager of a plugin's server-side applies.
pub fn field_manager(plugin: &str) -> String {
    format!("operon/{plugin}")
}

/// Why an outcome was not (fully) applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The answer was refused whole; nothing of it was applied. Retrying the
    /// same answer cannot help: wait for the parent (or plugin) to change.
    #[error("invalid output: {0}")]
    Invalid(String),
    /// An API call failed (possibly after some children were applied);
    /// retry with backoff.
    #[error("{0:#}")]
    Api(#[from] anyhow::Error),
}

/// An API call's error as users need it: the API server's own message, its
/// code and reason (kube's default text repeats the whole `Status` twice).
pub fn concise(e: kube::Error) -> anyhow::Error {
    match e {
        kube::Error::Api(s) if !s.message.is_empty() => {
            anyhow::anyhow!("{} ({} {})", s.message, s.code, s.reason)
        }
        other => anyhow::Error::new(other),
    }
}

/// How strictly [`apply_outcome`] checks an answer.
#[derive(Debug, Clone, Copy)]
pub struct Checks {
    /// Most children one parent may have (the plugin's limit).
    pub max_children: usize,
    /// Check the answer against the plugin's grant; false only under the
    /// test hook described at [`widen`].
    pub enforce_grants: bool,
}

/// What [`apply_outcome`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppliedSummary {
    /// Children server-side applied.
    pub applied: usize,
    /// Children deleted, each as `Kind namespace/name`.
    pub pruned: Vec<String>,
    /// Patches applied to non-owned objects.
    pub patched: usize,
}

/// Validates and applies an outcome's children, pruning and patches (steps
/// 1–4 of the module docs). `observed_children` are the children of owned
/// kinds controlled by this parent. Status and events are left to
/// [`report`].
pub async fn apply_outcome(
    kinds: &Kinds,
    plugin: &str,
    reg: &Registration,
    parent: &Value,
    observed_children: &[Value],
    outcome: &Outcome,
    checks: Checks,
) -> Result<AppliedSummary, ApplyError> {
    let Checks {
        max_children,
        enforce_grants,
    } = checks;
    let widened;
    let reg = if enforce_grants {
        reg
    } else {
        widened = widen(reg, outcome);
        &widened
    };
    let mut scopes = HashMap::new();
    for gvk in &reg.owns {
        let kind = kinds.resolve(gvk).await?;
        scopes.insert((gvk.group.clone(), gvk.kind.clone()), kind.namespaced);
    }
    let scope = |g: &Gvk| scopes.get(&(g.group.clone(), g.kind.clone())).copied();
    validate::check(outcome, reg, parent, max_children, &scope).map_err(ApplyError::Invalid)?;

    let desired: Vec<Value> = outcome
        .children
        .iter()
        .map(|c| children::prepare(c.clone(), parent, plugin))
        .collect();
    for child in &desired {
        children::apply(kinds, plugin, child).await?;
    }
    let pruned = children::prune(kinds, plugin, &desired, observed_children).await?;
    for p in &outcome.patches {
        patch(kinds, plugin, p).await?;
    }
    Ok(AppliedSummary {
        applied: desired.len(),
        pruned,
        patched: outcome.patches.len(),
    })
}

/// The registration widened to every kind the answer writes: the test hook
/// `operon run --unsafe-skip-grant-checks`, which shows that with
/// `--impersonate` the API server still refuses what the grant does not
/// allow. Structural checks (names, namespaces, duplicates, limits) stay.
fn widen(reg: &Registration, outcome: &Outcome) -> Registration {
    let mut reg = reg.clone();
    for child in &outcome.children {
        let gvk = validate::gvk_of(child);
        if !reg.owns.iter().any(|o| o.same_kind(&gvk)) {
            reg.owns.push(gvk);
        }
    }
    for p in &outcome.patches {
        let gvk = Gvk::from_api_version(&p.target.api_version, &p.target.kind);
        if !reg.capabilities.patches.iter().any(|o| o.same_kind(&gvk)) {
            reg.capabilities.patches.push(gvk);
        }
    }
    reg
}

/// Applies one patch to a non-owned object (already validated against the
/// plugin's grants). Merge and JSON patches go as they are; `apply` is a
/// forced server-side apply with field manager `operon/<plugin>` (the grant
/// is the operator's consent to take the fields over), with apiVersion,
/// kind and name filled in from the target when the body lacks them.
pub async fn patch(kinds: &Kinds, plugin: &str, p: &DecodedPatch) -> anyhow::Result<()> {
    let t = &p.target;
    let what = match &t.namespace {
        Some(ns) => format!("{} {ns}/{}", t.kind, t.name),
        None => format!("{} {}", t.kind, t.name),
    };
    let kind = kinds
        .resolve(&Gvk::from_api_version(&t.api_version, &t.kind))
        .await?;
    let api = kinds.api(&kind, t.namespace.as_deref());
    let manager = field_manager(plugin);
    let (params, body) = match p.patch_type {
        PatchType::Merge => (params_for(&manager), Patch::Merge(p.body.clone())),
        PatchType::Json => (params_for(&manager), validate::json_patch(&p.body)?),
        PatchType::Apply => {
            let mut body = p.body.clone();
            if p.subresource.is_none() {
                fill_identity(
                    &mut body,
                    t.api_version.as_str(),
                    &t.kind,
                    &t.name,
                    t.namespace.as_deref(),
                );
            }
            (PatchParams::apply(&manager).force(), Patch::Apply(body))
        }
    };
    let result = match &p.subresource {
        Some(sub) => api.patch_subresource(sub, &t.name, &params, &body).await,
        None => api.patch(&t.name, &params, &body).await,
    };
    let sub = p
        .subresource
        .as_ref()
        .map(|s| format!(" ({s})"))
        .unwrap_or_default();
    result
        .map_err(concise)
        .with_context(|| format!("patching {what}{sub} failed"))?;
    Ok(())
}

fn params_for(manager: &str) -> PatchParams {
    PatchParams {
        field_manager: Some(manager.to_string()),
        ..PatchParams::default()
    }
}

fn fill_identity(body: &mut Value, api_version: &str, kind: &str, name: &str, ns: Option<&str>) {
    let Some(obj) = body.as_object_mut() else {
        return;
    };
    obj.entry("apiVersion")
        .or_insert_with(|| json!(api_version));
    obj.entry("kind").or_insert_with(|| json!(kind));
    let meta = obj.entry("metadata").or_insert_with(|| json!({}));
    if let Some(meta) = meta.as_object_mut() {
        meta.entry("name").or_insert_with(|| json!(name));
        if let Some(ns) = ns {
            meta.entry("namespace").or_insert_with(|| json!(ns));
        }
    }
}

/// After a reconcile (successful or not): computes the parent's new status
/// from the plugin's (none on failure) and `synced`, patches it when it
/// changed, then records `events` (best effort). Returns whether the status
/// was patched. `parent_kind` is the resolved parent kind.
pub async fn report(
    kinds: &Kinds,
    parent_kind: &Resolved,
    plugin: &str,
    parent: &Value,
    plugin_status: Option<&Value>,
    synced: status::Synced,
    events: &[DecodedEvent],
) -> anyhow::Result<bool> {
    let current = parent.get("status");
    let generation = parent
        .pointer("/metadata/generation")
        .and_then(Value::as_i64);
    let new = status::compute(plugin_status, current, generation, synced, &status::now());
    let patched = status::patch(kinds, parent_kind, parent, &new).await?;
    for event in events {
        events::record(kinds.client(), parent, plugin, event).await;
    }
    Ok(patched)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_errors_read_as_the_servers_message() {
        let status =
            kube::core::Status::failure("secrets \"x\" is forbidden", "Forbidden").with_code(403);
        let e = concise(kube::Error::Api(Box::new(status)));
        assert_eq!(e.to_string(), "secrets \"x\" is forbidden (403 Forbidden)");
    }

    #[test]
    fn apply_patches_get_their_identity_from_the_target() {
        let mut body = json!({"spec": {"instances": 3}});
        fill_identity(
            &mut body,
            "db.operon.dev/v1",
            "PostgresCluster",
            "pg",
            Some("demo"),
        );
        assert_eq!(body["apiVersion"], "db.operon.dev/v1");
        assert_eq!(body["kind"], "PostgresCluster");
        assert_eq!(body["metadata"], json!({"name": "pg", "namespace": "demo"}));
        assert_eq!(body["spec"]["instances"], 3);
    }
}
