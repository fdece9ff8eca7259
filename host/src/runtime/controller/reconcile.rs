//! One reconcile of one key, in stages read top to bottom by
//! [`Controller::reconcile`]: load the parent, the finalizer flow, the
//! request, the call, apply, report. Each stage either hands the next one
//! what it needs or ends the reconcile with its [`Next`].

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::finalize::Step;
use super::next::Next;
use super::record::Answered;
use super::{Controller, lock, split};
use crate::apply::status::{self, PatchFailed, Synced, reason};
use crate::apply::{self, ApplyError, events};
use crate::bounded;
use crate::contract::{Outcome, PluginError, Request};
use crate::plugin::recorder::Tape;
use crate::plugin::shadow;
use crate::plugin::{CallError, CallStats};
use crate::runtime::cache::OwnedCaches;

/// A parent as one reconcile sees it.
pub(super) struct Loaded {
    pub json: Value,
    pub uid: String,
    pub generation: Option<i64>,
    pub deleting: bool,
}

impl Controller {
    /// Reconciles one key: the stages, in order.
    pub(super) async fn reconcile(&self, key: &str) -> Next {
        // 1. The parent; one that is gone needs nothing (its children go
        //    with it through their ownerReferences).
        let Some(parent) = self.load(key) else {
            return Next::Done;
        };
        // 2. The finalizer flow decides whether, and how, to call.
        let finalizing = match self.finalizer(key, &parent).await {
            Step::Call { finalizing } => finalizing,
            Step::Stop(next) => return next,
        };
        // 3. A generation that failed for good waits for the next one.
        if !finalizing && self.failed_for_good(key, parent.generation) {
            return Next::Done;
        }
        // 4. The request: the parent, its observed children, the config.
        let observed = self.observed(&parent.uid);
        let mut request = Request::new(
            parent.json.to_string(),
            observed.iter().map(Value::to_string).collect(),
            self.config.clone(),
        );
        request.finalizing = finalizing;
        // 5. The call, in a fresh sandbox (and the shadow candidate's),
        //    taped while `operon plugins record` asks.
        let tape = self
            .hooks
            .recorder
            .tape(key, &parent.json, &observed, finalizing);
        let outcome = match self.call(key, request, tape.as_ref()).await {
            Ok(outcome) => outcome,
            Err(e) => {
                self.keep(tape, Answered::Failed(&e)).await;
                return self.call_failed(e, parent.json);
            }
        };
        // 6. Apply: children, claims, pruning, patches.
        let applied = self.apply(&parent.json, &observed, &outcome).await;
        self.keep(tape, Answered::Outcome(&outcome, applied.as_ref().err()))
            .await;
        if let Err(e) = applied {
            return self.apply_failed(e, parent.json);
        }
        self.judge(None);
        // 7. Report: status, events, and the finalizer once finalized.
        self.report(key, parent, &outcome).await
    }

    /// Stage 1: the parent from the cache, or `None` when it is gone.
    fn load(&self, key: &str) -> Option<Loaded> {
        let (ns, name) = split(key);
        let Some(object) = self.parent.get(ns, name) else {
            lock(&self.finalized).remove(key);
            return None;
        };
        let json = self.parent.to_json(&object);
        Some(Loaded {
            deleting: crate::apply::finalizer::is_deleting(&json),
            uid: object.metadata.uid.clone().unwrap_or_default(),
            generation: object.metadata.generation,
            json,
        })
    }

    /// Stage 3: whether this generation of the parent already failed in a
    /// way a retry cannot help (a newer generation clears the mark).
    fn failed_for_good(&self, key: &str, generation: Option<i64>) -> bool {
        let mut permanent = lock(&self.permanent);
        match permanent.get(key) {
            Some(g) if *g == generation => true,
            Some(_) => {
                permanent.remove(key);
                false
            }
            None => false,
        }
    }

    /// Stage 4's children: the objects of owned kinds this parent controls
    /// (from each kind's owner index: no scan of the cache).
    fn observed(&self, uid: &str) -> Vec<Value> {
        self.owned
            .iter()
            .flat_map(|w| {
                w.controlled_by(uid)
                    .into_iter()
                    .map(|o| w.to_json(&o))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Stage 5: the plugin's answer, on a blocking thread within the
    /// plugin's admission limit; a shadow candidate answers the same
    /// request in dry run.
    async fn call(
        &self,
        key: &str,
        request: Request,
        tape: Option<&Tape>,
    ) -> Result<Outcome, CallError> {
        let plugin = self.plugin.clone();
        let ctx = self.call_context(key);
        // Only the active revision's reads and clock are taped.
        let taped = tape.map(|t| t.context(ctx.clone()));
        let candidate = self.hooks.shadow.get();
        let admitted = self.admit().await;
        let called = tokio::task::spawn_blocking(move || {
            let (result, stats) = plugin.reconcile(&request, taped.as_ref().unwrap_or(&ctx));
            let dry = candidate.map(|c| {
                let answer = c.plugin.reconcile(&request, &ctx).0;
                (c, answer)
            });
            (result, stats, dry)
        })
        .await;
        drop(admitted);
        let (result, stats, dry) = called.map_err(|e| CallError::Trap {
            reason: crate::engine::TrapReason::Other,
            detail: format!("the reconcile task failed: {e}"),
        })?;
        if let Some((candidate, answer)) = dry {
            self.compare_shadow(key, &candidate, &result, &answer);
        }
        self.record_call(&stats);
        result
    }

    fn record_call(&self, stats: &CallStats) {
        self.metrics
            .plugin_reconcile_duration(self.name(), stats.duration.as_secs_f64());
        self.metrics
            .plugin_memory_peak(self.name(), stats.memory_peak as u64);
    }

    /// What a failed call means: the plugin's own error (retried or not as
    /// it says), a trap (retried with backoff) or an unreadable answer.
    fn call_failed(&self, e: CallError, parent: Value) -> Next {
        let (why, retry) = match &e {
            CallError::Plugin(PluginError::Permanent(_)) => (reason::ERROR, false),
            CallError::Plugin(PluginError::Retryable(_)) => (reason::ERROR, true),
            CallError::Trap { reason: trap, .. } => {
                self.metrics.plugin_trap(self.name(), trap.as_str());
                (reason::TRAP, true)
            }
            CallError::InvalidOutput(_) => (reason::INVALID, false),
        };
        self.judge(Some(&format!(
            "{why}: {}",
            bounded::message(&e.to_string())
        )));
        Next::failed(retry, why, e, parent)
    }

    /// Stage 6: the answer checked whole, then applied.
    async fn apply(
        &self,
        parent: &Value,
        observed: &[Value],
        outcome: &Outcome,
    ) -> Result<(), ApplyError> {
        let writer = apply::Writer {
            kinds: &self.writer,
            plugin: self.name(),
            registration: self.plugin.registration(),
            owned: &self.owned_kinds,
            checks: self.checks(),
            existing: &OwnedCaches(&self.owned),
        };
        let summary = apply::apply_outcome(&writer, parent, observed, outcome).await?;
        for why in &summary.applied {
            self.metrics.child_applies(self.name(), why, 1);
        }
        let unchanged = summary.unchanged as u64;
        self.metrics
            .child_applies(self.name(), "unchanged", unchanged);
        Ok(())
    }

    /// The limits and consents the answer is checked against.
    pub(super) fn checks(&self) -> apply::Checks {
        apply::Checks {
            enforce_grants: self.options.enforce_grants,
            confined: self.options.namespace.is_some(),
            ..apply::Checks::of(&self.plugin)
        }
    }

    /// What a failed apply means. Refusals of the answer count against the
    /// revision (its probation); API errors do not.
    fn apply_failed(&self, e: ApplyError, parent: Value) -> Next {
        let (why, retry) = match &e {
            ApplyError::Invalid(_) => (reason::INVALID, false),
            ApplyError::TooLarge(_) => (reason::TOO_LARGE, false),
            ApplyError::NotOurs { .. } => (reason::ADOPTION_REFUSED, true),
            ApplyError::Api(_) => (reason::APPLY_FAILED, true),
        };
        if !matches!(e, ApplyError::Api(_)) {
            self.judge(Some(&format!(
                "{why}: {}",
                bounded::message(&e.to_string())
            )));
        }
        Next::failed(retry, why, e, parent)
    }

    /// Stage 7: the status (only when it changed), the plugin's events,
    /// and — when the plugin finalized a parent being deleted — the
    /// finalizer's release.
    async fn report(&self, key: &str, parent: Loaded, outcome: &Outcome) -> Next {
        let status = self
            .write_status(&parent.json, outcome.status.as_ref(), Synced::ok())
            .await;
        for event in &outcome.events {
            events::record(self.writer.client(), &parent.json, self.name(), event).await;
        }
        let finalized = parent.deleting && outcome.finalized;
        if let Err(e) = status {
            self.metrics
                .status_write_failure(self.name(), &e.code_label());
            if !finalized {
                return status_failed(e, parent.json);
            }
            // A parent on its way out: letting it go matters more than
            // its last status.
            tracing::warn!(plugin = self.name(), parent = key, "{e}");
        }
        if finalized && let Err(next) = self.release(key, &parent).await {
            return next;
        }
        match outcome.requeue_after_ms {
            Some(ms) => Next::RequeueAfter(Duration::from_millis(ms)),
            None => Next::Done,
        }
    }

    /// The parent's new status from the plugin's (the current one when
    /// `None`) and `synced`, patched when it changed.
    pub(super) async fn write_status(
        &self,
        parent: &Value,
        plugin_status: Option<&Value>,
        synced: Synced,
    ) -> Result<(), PatchFailed> {
        let current = parent.get("status");
        let generation = parent
            .pointer("/metadata/generation")
            .and_then(Value::as_i64);
        let new = status::compute(plugin_status, current, generation, synced, &status::now());
        if !status::changed(&new, current) {
            return Ok(());
        }
        status::patch(&self.writer, &self.parent.kind, parent, &new)
            .await
            .map(|_| ())
    }

    /// Counts one reconcile for the revision and acts on the verdict.
    fn judge(&self, failure: Option<&str>) {
        let revision = self.plugin.info().short_digest();
        self.metrics
            .revision_reconcile(self.name(), revision, failure.is_none());
        match self.hooks.tracker.record(failure) {
            crate::plugin::revisions::Verdict::Pending => {}
            crate::plugin::revisions::Verdict::Healthy => tracing::info!(
                plugin = self.name(),
                revision,
                "the new revision passed its probation"
            ),
            crate::plugin::revisions::Verdict::RollBack(why) => (self.hooks.on_failing)(why),
        }
    }

    /// Compares the candidate's dry run with the active answer; nothing of
    /// the candidate is applied.
    fn compare_shadow(
        &self,
        key: &str,
        candidate: &Arc<shadow::Candidate>,
        active: &Result<Outcome, CallError>,
        dry: &Result<Outcome, CallError>,
    ) {
        let (difference, failed) = match (active, dry) {
            (Ok(a), Ok(c)) => (shadow::diff(a, c), false),
            (Ok(_), Err(e)) => (Some(format!("the candidate failed: {e}")), true),
            (Err(e), Ok(_)) => (
                Some(format!(
                    "the active revision failed ({e}); the candidate answered"
                )),
                false,
            ),
            (Err(_), Err(_)) => (None, false),
        };
        self.metrics
            .shadow_reconcile(self.name(), candidate.label(), difference.is_some(), failed);
        candidate.record(key, difference, failed);
    }
}

/// A status the API server refused: retried with backoff when the same
/// patch may pass later, else (too large, invalid) held until the parent
/// changes.
fn status_failed(e: PatchFailed, parent: Value) -> Next {
    Next::failed(e.retryable(), reason::STATUS_WRITE_FAILED, e, parent)
}
