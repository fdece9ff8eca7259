//! Applying a plugin's [`Outcome`] to the cluster.
//!
//! The order is fixed, and each step only runs when the previous ones
//! succeeded:
//!
//! 1. [`validate::check_sizes`]: the answer, its status and each child fit
//!    their limits ([`ApplyError::TooLarge`]).
//! 2. [`validate::check`]: the whole answer is checked before anything is
//!    applied (owned kinds only, names, namespaces, duplicates, patch
//!    grants, Secrets that mint tokens). A refusal is
//!    [`ApplyError::Invalid`].
//! 3. Claims ([`claim`]): each child either does not exist yet or is
//!    controlled by this parent already (or, with the grant's consent, is
//!    controlled by no one and is adopted). A refusal is
//!    [`ApplyError::NotOurs`].
//! 4. Children: each is [`children::prepare`]d (namespace, controller
//!    ownerReference, `operon.dev/*` labels) and server-side applied with
//!    field manager `operon/<plugin>` ([`children::apply`]).
//! 5. [`children::prune`]: observed children the answer no longer lists are
//!    deleted. Pruning runs only after every desired child applied, so a
//!    failed apply never leaves the parent with fewer children than before.
//! 6. Patches to objects the plugin does not own ([`patch`]).
//!
//! Nothing is sent to the API server before steps 1–3 have passed for the
//! whole answer. [`apply_outcome`] runs steps 1–6. Status and events are
//! separate because the runtime needs them on failures too (a trap or an
//! invalid answer still sets `Synced=False` and records a warning):
//! [`status::compute`] + [`status::patch`] and [`events::record`].

pub mod children;
pub mod claim;
pub mod events;
pub mod finalizer;
pub mod status;
pub mod validate;

use std::collections::HashMap;

use anyhow::Context as _;
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};

use crate::contract::outcome::DecodedPatch;
use crate::contract::{Gvk, Outcome, PatchType, Registration};
use crate::api::concise;
use crate::kinds::Kinds;
use claim::{Claim, Existing, Known};

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
    /// The answer, its status or a child is over its size limit; nothing
    /// was applied. The same answer would be refused again.
    #[error("{0}")]
    TooLarge(String),
    /// A child names an object this parent does not control; nothing was
    /// applied. Retry with backoff: the other object may go away.
    #[error("{0}")]
    NotOurs(String),
    /// An API call failed (possibly after some children were applied);
    /// retry with backoff.
    #[error("{0:#}")]
    Api(#[from] anyhow::Error),
}

/// How strictly [`apply_outcome`] checks an answer: the plugin's limits
/// and what its grant consents to.
#[derive(Debug, Clone, Copy)]
pub struct Checks {
    /// Most children one parent may have (the plugin's limit).
    pub max_children: usize,
    pub sizes: validate::SizeLimits,
    /// Check the answer against the plugin's grant; false only under the
    /// test hook described at [`widen`].
    pub enforce_grants: bool,
    /// The grant's `adopt`: take existing objects no one controls.
    pub adopt: bool,
    /// The grant's `serviceAccountTokens`.
    pub service_account_tokens: bool,
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
/// 1–6 of the module docs). `observed_children` are the children of owned
/// kinds controlled by this parent; `existing` is where the claims of step
/// 3 are looked up first. Status and events are left to the caller.
#[allow(clippy::too_many_arguments)]
pub async fn apply_outcome(
    kinds: &Kinds,
    plugin: &str,
    reg: &Registration,
    parent: &Value,
    observed_children: &[Value],
    outcome: &Outcome,
    checks: Checks,
    existing: &dyn Existing,
) -> Result<AppliedSummary, ApplyError> {
    validate::check_sizes(outcome, &checks.sizes).map_err(ApplyError::TooLarge)?;
    let widened;
    let reg = if checks.enforce_grants {
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
    let grant = validate::WriteGrant {
        max_children: checks.max_children,
        service_account_tokens: checks.service_account_tokens || !checks.enforce_grants,
    };
    validate::check(outcome, reg, parent, &grant, &scope).map_err(ApplyError::Invalid)?;

    let desired: Vec<Value> = outcome
        .children
        .iter()
        .map(|c| children::prepare(c.clone(), parent, plugin))
        .collect();
    check_claims(kinds, parent, &desired, existing, checks.adopt).await?;
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

/// Step 3: every (prepared) child is absent or this parent's already, or
/// no one's and `adopt` allows taking it.
async fn check_claims(
    kinds: &Kinds,
    parent: &Value,
    desired: &[Value],
    existing: &dyn Existing,
    adopt: bool,
) -> Result<(), ApplyError> {
    let parent_uid = validate::str_at(parent, "/metadata/uid").unwrap_or_default();
    for (i, child) in desired.iter().enumerate() {
        let gvk = validate::gvk_of(child);
        let ns = validate::str_at(child, "/metadata/namespace");
        let name = validate::str_at(child, "/metadata/name").unwrap_or_default();
        let claim = match existing.known(&gvk, ns, name) {
            Known::Cached(found) => Claim::of(found.as_deref().map(|o| &o.metadata), parent_uid),
            Known::Unknown => {
                let kind = kinds.resolve(&gvk).await?;
                let found = kinds
                    .api(&kind, ns)
                    .get_opt(name)
                    .await
                    .map_err(concise)
                    .with_context(|| {
                        format!(
                            "reading {} before applying it",
                            validate::describe(&gvk.kind, ns, name)
                        )
                    })?;
                Claim::of(found.as_ref().map(|o| &o.metadata), parent_uid)
            }
        };
        if let Some(why) = claim.refusal(&gvk.kind, ns, name, adopt) {
            return Err(ApplyError::NotOurs(format!("child #{i}: {why}")));
        }
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

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
