//! The Lease on the API server: read, create, take, renew, release, watch.
//! Every decision is [`super::record::next`]'s; this module only keeps
//! what was last seen and when.

use std::pin::Pin;
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::watch;
use tokio::time::{Instant, timeout};

use super::ElectionOptions;
use super::record::{Next, Observed, Record, next};
use crate::runtime::Watching;

/// How one round of the algorithm ended.
#[derive(Debug, PartialEq)]
pub(super) enum Attempt {
    /// This replica holds the Lease now (created, taken or renewed).
    Holding,
    /// Another replica holds it, unexpired as far as we can tell.
    HeldBy(String),
    /// Someone wrote the Lease between our read and our write (409).
    Conflict,
}

/// Changes of the Lease, as a watch delivers them.
pub(super) type LeaseEvents = Pin<Box<dyn Stream<Item = Lease> + Send>>;

/// This replica's view of the Lease and its calls to the API server.
pub(super) struct LeaseClient {
    api: Api<Lease>,
    /// The Lease through the watch client, with its timeout.
    watched: (Api<Lease>, watcher::Config),
    options: ElectionOptions,
    observed: Option<Observed>,
    /// Who holds the Lease as last seen (for the admin endpoint).
    holder: watch::Sender<Option<String>>,
}

impl LeaseClient {
    pub fn new(client: kube::Client, watching: &Watching, options: ElectionOptions) -> LeaseClient {
        let watched = Api::namespaced(watching.client_or(&client), &options.namespace);
        let config = watching
            .config()
            .fields(&format!("metadata.name={}", options.lease));
        LeaseClient {
            api: Api::namespaced(client, &options.namespace),
            watched: (watched, config),
            options,
            observed: None,
            holder: watch::Sender::new(None),
        }
    }

    pub fn options(&self) -> &ElectionOptions {
        &self.options
    }

    pub fn holder(&self) -> watch::Receiver<Option<String>> {
        self.holder.subscribe()
    }

    /// When the Lease, as last seen, is another's until (if it is).
    pub fn held_until(&self) -> Option<Instant> {
        match next(
            self.observed.as_ref(),
            &self.options.identity,
            Instant::now(),
        ) {
            Next::Held { until, .. } => Some(until),
            _ => None,
        }
    }

    /// Every change of the Lease, from a watch that restarts with backoff.
    pub fn events(&self) -> LeaseEvents {
        let (api, config) = self.watched.clone();
        let stream = watcher(api, config)
            .default_backoff()
            .applied_objects()
            .filter_map(|r| async move {
                r.map_err(|e| tracing::debug!(error = %e, "watching the leader Lease"))
                    .ok()
            });
        // Should the watch ever end, the poll every retry period remains.
        Box::pin(stream.chain(futures::stream::pending()))
    }

    /// Notes a record that changed since last seen, with the time seen.
    pub fn observe(&mut self, lease: &Lease) {
        let record = Record::of(lease);
        let changed = self.observed.as_ref().is_none_or(|o| o.record != record);
        self.holder.send_if_modified(|h| {
            let modified = *h != record.holder;
            h.clone_from(&record.holder);
            modified
        });
        let resource_version = lease.metadata.resource_version.clone();
        match &mut self.observed {
            Some(o) if !changed => o.resource_version = resource_version,
            _ => {
                self.observed = Some(Observed {
                    record,
                    resource_version,
                    at: Instant::now(),
                })
            }
        }
    }

    /// One round of the algorithm: read the Lease, and write ourselves in
    /// when [`next`] allows it. Unbounded: the caller sets the deadline.
    pub async fn try_acquire_or_renew(&mut self) -> Result<Attempt, kube::Error> {
        match self.api.get_opt(&self.options.lease).await? {
            Some(lease) => self.observe(&lease),
            None => self.observed = None,
        }
        let me = self.options.identity.clone();
        let duration = self.options.lease_duration;
        let written = match next(self.observed.as_ref(), &me, Instant::now()) {
            Next::Held { holder, .. } => return Ok(Attempt::HeldBy(holder)),
            Next::Create => {
                let lease = self.lease(&Record::claimed(None, &me, duration), None);
                self.api.create(&PostParams::default(), &lease).await
            }
            Next::Write => {
                let (previous, version) = match &self.observed {
                    Some(o) => (Some(o.record.clone()), o.resource_version.clone()),
                    None => (None, None),
                };
                let record = Record::claimed(previous.as_ref(), &me, duration);
                let lease = self.lease(&record, version);
                let params = PostParams::default();
                self.api.replace(&self.options.lease, &params, &lease).await
            }
        };
        match written {
            Ok(lease) => {
                self.observe(&lease);
                Ok(Attempt::Holding)
            }
            // Another writer came first (409 on replace and on create).
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(Attempt::Conflict),
            Err(e) => Err(e),
        }
    }

    /// Gives the Lease up so a standby takes over now, not after it
    /// expires. Best effort, bounded by `within`: a failure leaves it to
    /// expire.
    pub async fn release(&mut self, within: Duration) {
        let Some(o) = self.observed.clone() else {
            return;
        };
        if o.record.holder.as_deref() != Some(self.options.identity.as_str()) {
            return;
        }
        let lease = self.lease(&o.record.released(), o.resource_version);
        let params = PostParams::default();
        let call = self.api.replace(&self.options.lease, &params, &lease);
        let lease_ref = self.options.lease_ref();
        match timeout(within, call).await {
            Ok(Ok(_)) => tracing::info!(lease = %lease_ref, "released the leader Lease"),
            Ok(Err(e)) => {
                tracing::warn!(lease = %lease_ref, error = %e, "releasing the leader Lease failed; it expires on its own")
            }
            Err(_) => {
                tracing::warn!(lease = %lease_ref, "releasing the leader Lease timed out; it expires on its own")
            }
        }
    }

    fn lease(&self, record: &Record, resource_version: Option<String>) -> Lease {
        let labels = [("app.kubernetes.io/managed-by", "operon")]
            .map(|(k, v)| (k.to_string(), v.to_string()));
        Lease {
            metadata: ObjectMeta {
                name: Some(self.options.lease.clone()),
                namespace: Some(self.options.namespace.clone()),
                resource_version,
                labels: Some(labels.into()),
                ..ObjectMeta::default()
            },
            spec: Some(record.spec()),
        }
    }
}
