//! The controller's side of `operon plugins record`
//! ([`crate::plugin::recorder`]): a tape for a reconcile while the
//! plugin's recorder asks for one, and the record it becomes, with the
//! answer in the words `operon test` compares.

use std::sync::Arc;

use serde_json::Value;

use super::Controller;
use crate::apply::{self, ApplyError};
use crate::contract::Outcome;
use crate::plugin::recorder::{Record, Tape};
use crate::plugin::{CallContext, CallError, case_error};

/// How a taped reconcile ended, as far as the plugin's answer goes.
pub(super) enum Answered<'a> {
    /// The call failed.
    Failed(&'a CallError),
    /// The plugin answered; apply refused it, or did not (a failed API
    /// call is the cluster's doing, not the answer's: offline it passes).
    Outcome(&'a Outcome, Option<&'a ApplyError>),
}

impl Answered<'_> {
    /// The answer as a golden case's expected file holds it: the words of
    /// `operon test` ([`CallError::as_case`], `refused` for an answer the
    /// host's checks refused).
    fn value(&self) -> Value {
        match self {
            Answered::Failed(e) => {
                let (kind, message) = e.as_case();
                case_error(kind, &message)
            }
            Answered::Outcome(_, Some(e @ (ApplyError::Invalid(_) | ApplyError::TooLarge(_)))) => {
                case_error("refused", &e.to_string())
            }
            Answered::Outcome(outcome, _) => serde_json::to_value(outcome)
                .unwrap_or_else(|e| case_error("failed", &e.to_string())),
        }
    }
}

impl Controller {
    /// Turns a tape into a record and hands it to the recorder. When Secret
    /// values were redacted, the live answer may hold them or what the
    /// plugin made of them: the answer recorded is then the same revision's
    /// to the redacted input, so that the case replays and leaks nothing.
    pub(super) async fn keep(&self, tape: Option<Tape>, answered: Answered<'_>) {
        // A tape handed out before the recording ended is not worth a record.
        let Some(tape) = tape.filter(|_| self.hooks.recorder.is_on()) else {
            return;
        };
        let (key, now) = (tape.subject.clone(), tape.now);
        let mut record = tape.into_record(&self.config, self.plugin.info().short_digest());
        record.redact();
        record.answer = if record.redacted.is_empty() {
            answered.value()
        } else {
            self.replay(&key, &record, now).await
        };
        self.hooks.recorder.keep(record);
    }

    /// The answer of this revision to a record's (redacted) input, checked
    /// as an answer to apply would be. Outside the plugin's admission
    /// limit (the worker still holds its global slot): it happens only
    /// while recording, at most once per record.
    async fn replay(&self, key: &str, record: &Record, now: std::time::SystemTime) -> Value {
        let plugin = self.plugin.clone();
        let request = record.request();
        let ctx = CallContext {
            cluster: Arc::new(record.cluster()),
            fixed_time: Some(now),
            ..self.call_context(key)
        };
        let called = tokio::task::spawn_blocking(move || plugin.reconcile(&request, &ctx).0).await;
        let outcome = match called {
            Err(e) => return case_error("failed", &format!("the reconcile task failed: {e}")),
            Ok(Err(e)) => return Answered::Failed(&e).value(),
            Ok(Ok(outcome)) => outcome,
        };
        let scope = |g: &crate::contract::Gvk| {
            self.owned_kinds
                .iter()
                .find(|k| k.gvk.same_kind(g))
                .map(|k| k.namespaced)
        };
        let reg = self.plugin.registration();
        let refused =
            apply::check_answer(&outcome, reg, &record.parent, &self.checks(), &scope).err();
        Answered::Outcome(&outcome, refused.as_ref()).value()
    }
}
