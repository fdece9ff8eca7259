//! The finalizer `operon.dev/<plugin>`, for plugins whose registration asks
//! for one, as one flow decided before the plugin is called
//! ([`Controller::finalizer`]) and ended after its answer is applied
//! ([`Controller::release`]).
//!
//! 1. **Not deleting, finalizer missing**: add it (a JSON patch guarded by
//!    a `test` op, see `apply::finalizer`), then call the plugin as usual.
//!    If adding fails, the plugin is not called: a parent without the
//!    finalizer could be deleted without its finalizing call. Retried with
//!    backoff.
//! 2. **Deleting, without our finalizer** (or the plugin asks for none):
//!    nothing to do; Kubernetes deletes the parent and, through their
//!    ownerReferences, its children.
//! 3. **Deleting, already released by this host** (same uid): the watch
//!    cache has not caught up with the release yet; nothing to do.
//! 4. **Deleting, with our finalizer**: call the plugin with `finalizing`.
//!    Its answer is applied and its status written as usual; when it says
//!    `finalized`, [`Controller::release`] removes the finalizer and
//!    remembers the uid (for step 3) until the deletion arrives. Until it
//!    says `finalized`, the parent stays (its `requeue-after` or an error's
//!    backoff brings the next call).
//!
//! # Guarantees
//!
//! - A parent that carried the finalizer is never deleted before one
//!   finalizing call answered `finalized` and its answer was applied.
//! - The finalizing call runs once per deletion in the common case (step
//!   3), and again only if releasing the finalizer failed.
//!
//! # Caveats
//!
//! - A plugin that never answers `finalized` holds its parent, and the
//!   parent's namespace, from deletion. Removing the plugin leaves its
//!   finalizers in place (see the README).
//! - The memory of step 3 is the controller's: a new revision inherits it
//!   on a swap (`Controller::inherit`); a restarted host does not need it,
//!   since its caches start from the API server.

use super::next::Next;
use super::reconcile::Loaded;
use super::{Controller, lock};
use crate::apply::finalizer;
use crate::apply::status::reason;

/// What the finalizer flow lets the reconcile do.
pub(super) enum Step {
    /// Call the plugin; `finalizing` for a parent being deleted.
    Call { finalizing: bool },
    /// End the reconcile here.
    Stop(Next),
}

impl Controller {
    /// Steps 1–4 of the module docs, up to the call.
    pub(super) async fn finalizer(&self, key: &str, parent: &Loaded) -> Step {
        let wanted = self.plugin.registration().finalizer;
        let name = finalizer::name(self.name());
        let carried = finalizer::has(&parent.json, &name);
        if !parent.deleting {
            if wanted && !carried {
                // Step 1.
                let added =
                    finalizer::add(&self.writer, &self.parent.kind, &parent.json, &name).await;
                if let Err(e) = added {
                    return Step::Stop(Next::retry(
                        reason::FINALIZER_FAILED,
                        format!("{e:#}"),
                        parent.json.clone(),
                    ));
                }
            }
            return Step::Call { finalizing: false };
        }
        if !(wanted && carried) {
            return Step::Stop(Next::Done); // Step 2.
        }
        if lock(&self.finalized).get(key) == Some(&parent.uid) {
            return Step::Stop(Next::Done); // Step 3.
        }
        Step::Call { finalizing: true } // Step 4.
    }

    /// The end of step 4: the plugin answered `finalized` and its answer
    /// was applied; the finalizer goes.
    pub(super) async fn release(&self, key: &str, parent: &Loaded) -> Result<(), Next> {
        let name = finalizer::name(self.name());
        if let Err(e) =
            finalizer::remove(&self.writer, &self.parent.kind, &parent.json, &name).await
        {
            return Err(Next::retry(
                reason::FINALIZER_FAILED,
                format!("{e:#}"),
                parent.json.clone(),
            ));
        }
        lock(&self.finalized).insert(key.to_string(), parent.uid.clone());
        Ok(())
    }
}
