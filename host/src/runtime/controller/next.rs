//! What one reconcile decides for its key — [`Next`] — and the one place
//! that decision becomes queue operations and metric labels, as
//! controller-runtime's `reconcileHandler` turns (result, error) into
//! exactly one queue action and kube-runtime's `error_policy` maps errors
//! to an `Action`. Failures are then written on the parent: `Synced=False`
//! with the reason, and a Warning event saying which attempt this was and
//! when the next one comes.

use std::time::Duration;

use serde_json::Value;

use super::{Controller, lock};
use crate::apply::events;
use crate::apply::status::Synced;
use crate::bounded;
use crate::contract::EventType;

/// What happens to a key after one reconcile.
#[derive(Debug)]
pub(crate) enum Next {
    /// Nothing more to do until something changes.
    Done,
    /// Done; reconcile again after this long (the plugin's `requeue-after`).
    RequeueAfter(Duration),
    /// Failed; retry with backoff (errors, traps, API errors).
    Retry(Failure),
    /// Failed in a way retrying cannot help (a permanent error, an answer
    /// refused whole): wait for the parent's generation to change.
    AwaitChange(Failure),
}

/// A failed reconcile, as the parent will show it.
#[derive(Debug)]
pub(crate) struct Failure {
    /// The `Synced` condition's reason (`apply::status::reason`).
    pub reason: &'static str,
    pub message: String,
    /// The parent as this reconcile read it, to report the failure on.
    pub parent: Value,
}

impl Next {
    pub fn retry(reason: &'static str, message: impl ToString, parent: Value) -> Next {
        Next::Retry(Failure {
            reason,
            message: message.to_string(),
            parent,
        })
    }

    /// A failure, retried with backoff or held until the parent changes.
    pub fn failed(
        retry: bool,
        reason: &'static str,
        message: impl ToString,
        parent: Value,
    ) -> Next {
        match retry {
            true => Next::retry(reason, message, parent),
            false => Next::await_change(reason, message, parent),
        }
    }

    pub fn await_change(reason: &'static str, message: impl ToString, parent: Value) -> Next {
        Next::AwaitChange(Failure {
            reason,
            message: message.to_string(),
            parent,
        })
    }
}

/// Room left after a failure's message, within the bound, for the note on
/// what comes next.
const NOTE_ROOM: usize = 64;

impl Controller {
    /// Turns a reconcile's [`Next`] into queue operations and metrics, then
    /// reports a failure on the parent. Returns the `result` label of
    /// `controller_runtime_reconcile_total`.
    pub(super) async fn settle(&self, key: &str, next: Next) -> &'static str {
        match next {
            Next::Done => {
                self.queue.forget(key);
                "success"
            }
            Next::RequeueAfter(after) => {
                self.queue.forget(key);
                self.queue.add_after(key, after);
                "requeue_after"
            }
            Next::Retry(failure) => {
                self.metrics.reconcile_errors_total(self.name());
                self.metrics.workqueue_retries_total(self.name());
                let delay = self.queue.retry(key);
                let attempt = self.queue.failures(key);
                let when = format!("attempt {attempt}; next try in {}ms", delay.as_millis());
                self.report_failure(key, &failure, &when).await;
                "error"
            }
            Next::AwaitChange(failure) => {
                self.metrics.reconcile_errors_total(self.name());
                let generation = failure
                    .parent
                    .pointer("/metadata/generation")
                    .and_then(Value::as_i64);
                lock(&self.permanent).insert(key.to_string(), generation);
                let when = "not retried until the parent changes";
                self.report_failure(key, &failure, when).await;
                "error"
            }
        }
    }

    /// Writes a failure on the parent — `Synced=False` with the reason and
    /// the (bounded) message, keeping the rest of its status — and a
    /// Warning event whose note says `when` the next attempt comes, so the
    /// backoff is visible to users without reading host logs.
    async fn report_failure(&self, key: &str, failure: &Failure, when: &str) {
        let message = bounded::cut(&failure.message, bounded::MESSAGE_BYTES - NOTE_ROOM);
        let note = format!("{message} ({when})");
        tracing::warn!(
            plugin = self.name(),
            parent = key,
            reason = failure.reason,
            "{note}"
        );
        let synced = Synced::failed(failure.reason, message.as_ref());
        if let Err(e) = self.write_status(&failure.parent, None, synced).await {
            self.metrics
                .status_write_failure(self.name(), &e.code_label());
            tracing::warn!(plugin = self.name(), parent = key, "{e}");
        }
        let event = events::host_event(EventType::Warning, "ReconcileError", note);
        events::record(self.writer.client(), &failure.parent, self.name(), &event).await;
    }
}
