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
//!    ownerReference, `operon.dev/*` labels), stamped with the digest of
//!    what is applied, and server-side applied with field manager
//!    `operon/<plugin>` ([`children::apply`]) — unless the cached child
//!    already is what the apply would make it ([`unchanged`]): then no
//!    request is sent, so a reconcile that changes nothing writes nothing.
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

pub(crate) mod children;
pub(crate) mod claim;
pub(crate) mod events;
pub(crate) mod finalizer;
mod patch;
pub(crate) mod status;
pub mod unchanged;
pub mod validate;

use anyhow::Context as _;
use serde_json::Value;

use crate::api::concise;
use crate::contract::{Gvk, Outcome, Registration};
use crate::kinds::{Kinds, Resolved};
use crate::plugin::Plugin;
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
    Invalid(#[from] validate::Refusal),
    /// The answer, its status or a child is over its size limit; nothing
    /// was applied. The same answer would be refused again.
    #[error(transparent)]
    TooLarge(#[from] validate::TooLarge),
    /// A child names an object this parent does not control; nothing was
    /// applied. Retry with backoff: the other object may go away.
    #[error("child #{index}: {refused}")]
    NotOurs {
        index: usize,
        refused: claim::Refused,
    },
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
    /// test hook described at [`Checks::enforce_grants`]: the registration
    /// is then widened to every kind the answer writes (`operon run
    /// --unsafe-skip-grant-checks`, which shows that with `--impersonate`
    /// the API server still refuses what the grant does not allow).
    /// Structural checks (names, namespaces, duplicates, limits) stay.
    pub enforce_grants: bool,
    /// The grant's `adopt`: take existing objects no one controls.
    pub adopt: bool,
    /// The grant's `serviceAccountTokens`.
    pub service_account_tokens: bool,
    /// A tenant's plugin: patches stay in the parent's namespace (see
    /// [`validate::WriteGrant::confined`]). A grant check, so the test hook
    /// lifts it and the API server's RBAC is what refuses.
    pub confined: bool,
}

impl Checks {
    /// What a plugin's limits and grant allow, grants enforced and no
    /// tenant confinement: what `operon reconcile` checks offline. The
    /// runtime sets the last two from its options.
    pub fn of(plugin: &Plugin) -> Checks {
        let (limits, grant) = (plugin.limits(), plugin.grant());
        Checks {
            max_children: limits.max_children,
            sizes: validate::SizeLimits {
                child: limits.child_bytes,
                status: limits.status_bytes,
                response: limits.response_bytes,
            },
            enforce_grants: true,
            adopt: grant.adopt,
            service_account_tokens: grant.service_account_tokens,
            confined: false,
        }
    }
}

/// Steps 1 and 2: the checks of a whole answer that need no API call, made
/// here for the running host and for `operon reconcile` alike, so an
/// answer refused in the cluster is refused offline too. `scope` says
/// whether a kind is namespaced (`None`: not known).
pub fn check_answer(
    outcome: &Outcome,
    reg: &Registration,
    parent: &Value,
    checks: &Checks,
    scope: &dyn Fn(&Gvk) -> Option<bool>,
) -> Result<(), ApplyError> {
    validate::check_sizes(outcome, &checks.sizes)?;
    let grant = validate::WriteGrant {
        max_children: checks.max_children,
        service_account_tokens: checks.service_account_tokens || !checks.enforce_grants,
        confined: checks.confined && checks.enforce_grants,
    };
    validate::check(outcome, reg, parent, &grant, scope)?;
    Ok(())
}

/// Who applies, for which plugin, with what: everything [`apply_outcome`]
/// needs besides the parent and the answer.
pub struct Writer<'a> {
    /// Where the writes go: the host's client, or one acting as the
    /// plugin's ServiceAccount (`--impersonate`).
    pub kinds: &'a Kinds,
    pub plugin: &'a str,
    pub registration: &'a Registration,
    /// The owned kinds, resolved once when the plugin's controller started.
    pub owned: &'a [Resolved],
    pub checks: Checks,
    /// Where the claims of step 3 are looked up first.
    pub existing: &'a dyn Existing,
}

/// What [`apply_outcome`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppliedSummary {
    /// Children server-side applied, by why ([`unchanged::Why::label`]).
    pub applied: Vec<&'static str>,
    /// Children left alone: the live object already was what was wanted.
    pub unchanged: usize,
    /// Children deleted, each as `Kind namespace/name`.
    pub pruned: Vec<String>,
    /// Patches applied to non-owned objects.
    pub patched: usize,
}

impl Writer<'_> {
    /// The resolved kind of a child: one of the owned kinds (no lookup), or
    /// through discovery (a version other than the registration's, or the
    /// test hook's widened kinds).
    async fn kind_of(&self, gvk: &Gvk) -> anyhow::Result<Resolved> {
        match self.owned.iter().find(|k| k.gvk == *gvk) {
            Some(k) => Ok(k.clone()),
            None => self.kinds.resolve(gvk).await,
        }
    }

    /// Whether an owned kind is namespaced (`None`: not owned).
    fn scope(&self, gvk: &Gvk) -> Option<bool> {
        self.owned
            .iter()
            .find(|k| k.gvk.same_kind(gvk))
            .map(|k| k.namespaced)
    }
}

/// Validates and applies an outcome's children, pruning and patches (steps
/// 1–6 of the module docs). `observed_children` are the children of owned
/// kinds controlled by this parent, as cached: what a desired child is
/// compared with before it is applied. Status and events are left to the
/// caller.
pub async fn apply_outcome(
    w: &Writer<'_>,
    parent: &Value,
    observed_children: &[Value],
    outcome: &Outcome,
) -> Result<AppliedSummary, ApplyError> {
    let checks = &w.checks;
    let widened;
    let reg = if checks.enforce_grants {
        w.registration
    } else {
        widened = widen(w.registration, outcome);
        &widened
    };
    let mut scopes = std::collections::HashMap::new();
    // A tenant's patch targets are resolved too: their scope decides.
    let patched: Vec<Gvk> = if checks.confined {
        let targets = outcome.patches.iter().map(|p| &p.target);
        targets
            .map(|t| Gvk::from_api_version(&t.api_version, &t.kind))
            .collect()
    } else {
        Vec::new()
    };
    for gvk in reg
        .owns
        .iter()
        .chain(&patched)
        .filter(|g| w.scope(g).is_none())
    {
        scopes.insert(gvk.group_kind(), w.kind_of(gvk).await?.namespaced);
    }
    let scope = |g: &Gvk| w.scope(g).or_else(|| scopes.get(&g.group_kind()).copied());
    check_answer(outcome, reg, parent, checks, &scope)?;

    let desired: Vec<Value> = outcome
        .children
        .iter()
        .map(|c| {
            let mut child = children::prepare(c.clone(), parent, w.plugin);
            unchanged::stamp(&mut child);
            child
        })
        .collect();
    check_claims(w, parent, &desired).await?;
    let (applied, same) = apply_children(w, &desired, observed_children).await?;
    let mut pruned = Vec::new();
    for stale in children::stale(&desired, observed_children) {
        let kind = w.kind_of(&validate::gvk_of(stale)).await?;
        if let Some(gone) = children::prune(w.kinds, &kind, w.plugin, stale).await? {
            pruned.push(gone);
        }
    }
    for p in &outcome.patches {
        patch::send(w.kinds, w.plugin, p).await?;
    }
    Ok(AppliedSummary {
        applied,
        unchanged: same,
        pruned,
        patched: outcome.patches.len(),
    })
}

/// Step 4: each desired child applied unless its cached self already is
/// what the apply would make it. Returns why each applied child was, and
/// how many were left unchanged.
async fn apply_children(
    w: &Writer<'_>,
    desired: &[Value],
    observed: &[Value],
) -> Result<(Vec<&'static str>, usize), ApplyError> {
    let live = children::Observed::new(observed);
    let (mut applied, mut same) = (Vec::new(), 0);
    for child in desired {
        match unchanged::decide(child, live.get(child)) {
            unchanged::Decision::Unchanged => same += 1,
            unchanged::Decision::Apply(why) => {
                if let unchanged::Why::Drifted(at) = &why {
                    tracing::debug!(plugin = w.plugin, child = %children::describe_obj(child), field = %at, "applying: the live child differs from what the plugin wants");
                }
                let kind = w.kind_of(&validate::gvk_of(child)).await?;
                children::apply(w.kinds, &kind, w.plugin, child).await?;
                applied.push(why.label());
            }
        }
    }
    Ok((applied, same))
}

/// Step 3: every (prepared) child is absent or this parent's already, or
/// no one's and the grant's `adopt` allows taking it.
async fn check_claims(w: &Writer<'_>, parent: &Value, desired: &[Value]) -> Result<(), ApplyError> {
    let parent_uid = validate::str_at(parent, "/metadata/uid").unwrap_or_default();
    for (index, child) in desired.iter().enumerate() {
        let gvk = validate::gvk_of(child);
        let ns = validate::str_at(child, "/metadata/namespace");
        let name = validate::str_at(child, "/metadata/name").unwrap_or_default();
        let claim = match w.existing.known(&gvk, ns, name) {
            Known::Cached(found) => Claim::of(found.as_deref().map(|o| &o.metadata), parent_uid),
            Known::Unknown => {
                let kind = w.kind_of(&gvk).await?;
                let found = w
                    .kinds
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
        if let Some(refused) = claim.refusal(&gvk.kind, ns, name, w.checks.adopt) {
            return Err(ApplyError::NotOurs { index, refused });
        }
    }
    Ok(())
}

/// The registration widened to every kind the answer writes (the test hook
/// of [`Checks::enforce_grants`]).
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
