//! One replica's side of the election: campaign until elected, then lead
//! until shutdown or until the lease is lost (see the module docs of
//! [`super`] for the rules and what they guarantee).

use std::sync::Arc;

use futures::StreamExt;
use tokio::sync::watch;
use tokio::time::{Instant, sleep_until, timeout, timeout_at};

use super::lease::{Attempt, LeaseClient, LeaseEvents};
use super::record::{Record, jittered};
use super::{ElectionError, ElectionOptions, Gate, Phase};
use crate::runtime::Watching;
use crate::server::Metrics;

/// One replica's side of the election.
pub struct Elector {
    lease: LeaseClient,
    /// Open (`true`) while this replica may write; the workers wait on it.
    gate: watch::Sender<bool>,
    metrics: Arc<Metrics>,
}

/// The next phase; a dropped sender counts as [`Phase::Drained`].
async fn changed(phase: &mut watch::Receiver<Phase>) -> Phase {
    match phase.changed().await {
        Ok(()) => *phase.borrow_and_update(),
        Err(_) => Phase::Drained,
    }
}

impl Elector {
    /// The elector, and the gate it opens while this replica leads.
    pub fn new(
        client: kube::Client,
        watching: &Watching,
        options: ElectionOptions,
        metrics: Arc<Metrics>,
    ) -> (Elector, Gate) {
        metrics.leader_status(&options.lease, false);
        let (gate, workers) = Gate::closed();
        let elector = Elector {
            lease: LeaseClient::new(client, watching, options),
            gate,
            metrics,
        };
        (elector, workers)
    }

    /// The Lease and timings, with the namespace resolved.
    pub fn options(&self) -> &ElectionOptions {
        self.lease.options()
    }

    /// Who holds the Lease, as this replica last saw it.
    pub fn holder(&self) -> watch::Receiver<Option<String>> {
        self.lease.holder()
    }

    /// Campaigns until elected, then leads, until `phase` says to stop
    /// (see [`Phase`]). An error is a lost lease: the caller must stop
    /// writing at once (the gate is already closed). Dropping the elector
    /// on return closes the gate for good.
    pub async fn run(mut self, mut phase: watch::Receiver<Phase>) -> Result<(), ElectionError> {
        let mut events = self.lease.events();
        if !self.campaign(&mut phase, &mut events).await {
            return Ok(());
        }
        self.lead(&mut phase, &mut events).await
    }

    /// Tries until this replica holds the Lease (`true`) or shutdown starts
    /// (`false`). Each try is bounded by the renew deadline.
    async fn campaign(
        &mut self,
        phase: &mut watch::Receiver<Phase>,
        events: &mut LeaseEvents,
    ) -> bool {
        let o = self.options().clone();
        let lease = o.lease_ref();
        tracing::info!(%lease, identity = %o.identity, "campaigning for leadership; workers idle until elected");
        let mut now_phase = *phase.borrow();
        loop {
            if now_phase != Phase::Running {
                return false;
            }
            match timeout(o.renew_deadline, self.lease.try_acquire_or_renew()).await {
                Ok(Ok(Attempt::Holding)) => {
                    self.set_leading(true);
                    tracing::info!(%lease, identity = %o.identity, "elected leader: reconciling");
                    return true;
                }
                Ok(Ok(Attempt::HeldBy(_) | Attempt::Conflict)) => {}
                Ok(Err(e)) => {
                    tracing::warn!(%lease, error = %e, "cannot read or write the leader Lease")
                }
                Err(_) => tracing::warn!(%lease, "the leader Lease did not answer in time"),
            }
            let mut wake = Instant::now() + jittered(o.retry_period);
            if let Some(until) = self.lease.held_until() {
                wake = wake.min(until);
            }
            tokio::select! {
                p = changed(phase) => now_phase = p,
                () = sleep_until(wake) => {}
                Some(lease) = events.next() => self.lease.observe(&lease),
            }
        }
    }

    /// Renews until shutdown (then releases) or until the lease is lost.
    async fn lead(
        &mut self,
        phase: &mut watch::Receiver<Phase>,
        events: &mut LeaseEvents,
    ) -> Result<(), ElectionError> {
        let o = self.options().clone();
        let mut now_phase = *phase.borrow();
        let mut renewed = Instant::now();
        let mut next_renewal = renewed + o.retry_period;
        loop {
            if now_phase == Phase::Drained {
                self.set_leading(false);
                self.lease.release(o.renew_deadline).await;
                return Ok(());
            }
            let deadline = renewed + o.renew_deadline;
            tokio::select! {
                p = changed(phase) => { now_phase = p; continue }
                () = sleep_until(next_renewal) => {}
                Some(lease) = events.next() => {
                    self.lease.observe(&lease);
                    if Record::of(&lease).holder.as_deref() == Some(o.identity.as_str()) {
                        continue; // our own renewal
                    }
                    // Another holder in an event: an old one, or the Lease
                    // was taken. Renewing now tells which.
                }
            }
            let started = Instant::now();
            match timeout_at(deadline, self.lease.try_acquire_or_renew()).await {
                Ok(Ok(Attempt::Holding)) => {
                    renewed = started;
                    next_renewal = started + o.retry_period;
                }
                Ok(Ok(Attempt::HeldBy(holder))) => {
                    return Err(self.lost(format!("the Lease is held by {holder}")));
                }
                // Someone touched the Lease (a label, a candidate that
                // lost the race): read it again at once.
                Ok(Ok(Attempt::Conflict)) => next_renewal = Instant::now(),
                Ok(Err(e)) => {
                    tracing::warn!(lease = %o.lease_ref(), error = %e, "renewing the leader Lease failed; retrying until the renew deadline");
                    next_renewal = (Instant::now() + o.retry_period).min(deadline);
                }
                Err(_) => {
                    let why = format!(
                        "not renewed within the renew deadline ({:?})",
                        o.renew_deadline
                    );
                    return Err(self.lost(why));
                }
            }
        }
    }

    /// Closes the gate and says why; the caller stops the process.
    fn lost(&mut self, why: String) -> ElectionError {
        self.set_leading(false);
        ElectionError::Lost {
            lease: self.options().lease_ref(),
            why,
        }
    }

    fn set_leading(&mut self, leading: bool) {
        self.gate.send_replace(leading);
        let lease = &self.lease.options().lease;
        self.metrics.leader_status(lease, leading);
        self.metrics.leader_transition(lease, leading);
    }
}
