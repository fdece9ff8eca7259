//! Leader election (`operon run --leader-elect`): of the replicas of a host,
//! one writes and the others stand by, warm.
//!
//! # How
//!
//! The replicas share one `coordination.k8s.io/v1` Lease in the host's
//! namespace, as client-go's `leaderelection` package does, with its
//! defaults (lease 15 s, renew deadline 10 s, retry 2 s) and its rules
//! ([`record::next`] decides, [`lease::LeaseClient`] reads and writes,
//! [`elector::Elector`] loops):
//!
//! 1. A candidate reads the Lease. None exists: it creates one naming
//!    itself. One exists and names another holder: the candidate notes
//!    *when it saw the record change* (its own clock, never the
//!    `renewTime` written by another machine, so clock skew does not
//!    matter) and waits until that moment plus `leaseDurationSeconds`.
//! 2. A Lease that names nobody (released), or whose holder did not renew
//!    within its duration as this candidate observed it, is taken: the
//!    candidate writes itself in with the `resourceVersion` it read, so of
//!    two candidates racing, the API server lets exactly one through (the
//!    other gets 409 Conflict and waits again).
//! 3. The leader renews every retry period. A renewal that has not
//!    succeeded within the renew deadline of the last good one loses the
//!    lease: every API call is bounded by that deadline (kube sets no read
//!    timeout of its own), so a hung connection cannot keep a leader that
//!    others already consider gone.
//!
//! Beyond client-go, to hand over in well under a second:
//! - candidates **watch** the Lease (one object, a field selector), so a
//!   release or a renewal is seen when it happens, not at the next poll;
//!   the poll every retry period stays as a fallback;
//! - a replica **campaigns only once it is warm** (its caches synced, its
//!   plugins compiled — [`super::run`] starts the election after that), so
//!   a replica just starting cannot win a handover from a warm standby;
//! - the leader **releases on SIGTERM**, after its in-flight reconciles are
//!   done, and the watching standby takes over at once;
//! - a watch event that names another holder makes the leader check the
//!   Lease right away, and stop if it was taken from it.
//!
//! # Guarantees
//!
//! Never two writers: the leader stops at `renew deadline` after the start
//! of its last successful renewal; a candidate takes over no earlier than
//! `lease duration` after it *saw* that renewal, which happened after the
//! renewal started. The difference (5 s by default) is the margin for clock
//! rate differences and for a write already on the wire. The [`Gate`] the
//! workers wait on closes the moment the deadline passes, and `operon run`
//! then exits at once (exit code 1), without draining, as
//! controller-runtime does: in-flight writes die with the process, and the
//! kubelet restarts it as a standby. Demoting in place instead would leave
//! reconciles in flight that keep writing.
//!
//! # Caveats
//!
//! - Only the writes of reconciles and of the plugin-object controllers
//!   are gated. Every replica installs the CRDs its plugins ship (the same
//!   server-side apply of the same objects by the same field manager, a
//!   no-op once the leader has done it): that is what lets a standby watch
//!   the plugins' kinds and stay warm. A standby also records events about
//!   its own Pod (rejected builds).
//! - Plugins declared as objects (`--plugin-objects`) are fetched and
//!   compiled by the leader only: their controllers write revisions and
//!   statuses from the first step, so they start when the gate opens. A
//!   failover compiles them then (the compile cache on disk makes a
//!   restart of the same Pod fast, not a new one).
//!
//! # Why not `kube-lease-manager`
//!
//! Version 0.13.1 supports kube 5 and was checked first. It does not fit
//! three of the rules above: it computes expiry from the `renewTime` the
//! holder wrote (so clock skew between nodes counts, within a configured
//! grace); a standby sleeps until that expiry instead of watching, so a
//! release on SIGTERM is only seen when the old lease would have run out
//! (a handover then takes up to the lease duration, the minutes-long kind
//! of opentelemetry-operator#3058); and its API calls have no timeout nor
//! any renew deadline that stops the leader before others may take over.
//! The loop here is small and tested against a fake API server (the
//! `tests` module), on tokio's paused clock.

mod admin;
mod elector;
mod gate;
mod lease;
mod record;
#[cfg(test)]
mod tests;

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::time::Duration;

pub use admin::ReplicaAdmin;
pub use elector::Elector;
pub use gate::Gate;

/// The Lease and the timings (`--leader-elect-*`).
#[derive(Debug, Clone)]
pub struct ElectionOptions {
    /// Name of the Lease (`--leader-elect-lease`).
    pub lease: String,
    /// Namespace of the Lease: the host's own.
    pub namespace: String,
    /// This replica's name in the Lease (its Pod's name in a cluster).
    pub identity: String,
    /// How long a holder that stopped renewing keeps the lease, as the
    /// others observe it.
    pub lease_duration: Duration,
    /// How long the leader keeps writing without a successful renewal.
    pub renew_deadline: Duration,
    /// How often the leader renews and candidates look again.
    pub retry_period: Duration,
}

impl ElectionOptions {
    /// client-go's defaults for `lease` in `namespace`.
    pub fn new(lease: &str, namespace: &str, identity: &str) -> ElectionOptions {
        ElectionOptions {
            lease: lease.to_string(),
            namespace: namespace.to_string(),
            identity: identity.to_string(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }

    /// client-go's checks: the leader must stop before others may take
    /// over, and get more than one try within its deadline.
    pub fn check(&self) -> Result<(), ElectionError> {
        let timing = |why: &'static str| Err(ElectionError::Timing { why });
        if self.renew_deadline >= self.lease_duration {
            return timing("the renew deadline must be shorter than the lease duration");
        }
        if self.retry_period.mul_f64(1.2) >= self.renew_deadline {
            return timing("the renew deadline must be longer than 1.2 retry periods");
        }
        if self.retry_period.is_zero() || self.lease_duration.as_secs() < 1 {
            return timing("the retry period must be positive and the lease duration at least 1 s");
        }
        if self.identity.is_empty() {
            return timing("the identity must not be empty");
        }
        Ok(())
    }

    /// `namespace/name` of the Lease.
    pub fn lease_ref(&self) -> String {
        format!("{}/{}", self.namespace, self.lease)
    }
}

/// Why leader election stopped or cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ElectionError {
    /// The timings given cannot guarantee a single writer.
    #[error("invalid --leader-elect timings: {why}")]
    Timing { why: &'static str },
    /// The leader could not renew within its deadline, or found the Lease
    /// taken: it must stop writing now.
    #[error("lost the Lease {lease}: {why}")]
    Lost { lease: String, why: String },
}

/// Where `operon run` is in its shutdown, as the election follows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Running,
    /// SIGTERM: intake stopped, in-flight reconciles finishing. A standby
    /// stops campaigning; the leader keeps renewing (a drain may outlast
    /// the lease) so nobody takes over while it still writes.
    Draining,
    /// Nothing is in flight any more: the leader releases the Lease.
    Drained,
}

/// This replica's name: the Pod's (`OPERON_POD_NAME`, from the downward
/// API), else the host name with a random suffix, as client-go does, so
/// two processes on one machine never share a name.
pub fn default_identity() -> String {
    if let Ok(pod) = std::env::var("OPERON_POD_NAME")
        && !pod.is_empty()
    {
        return pod;
    }
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "operon".to_string());
    let suffix = RandomState::new().hash_one((std::process::id(), std::time::SystemTime::now()));
    format!("{host}_{:08x}", suffix as u32)
}
