//! The Lease as the election reads it, and the one decision made from it:
//! [`next`].

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use tokio::time::Instant;

/// The part of a Lease the election reads and writes.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Record {
    pub holder: Option<String>,
    pub duration: Duration,
    pub acquired: Option<MicroTime>,
    pub renewed: Option<MicroTime>,
    pub transitions: i32,
}

impl Record {
    pub fn of(lease: &Lease) -> Record {
        let spec = lease.spec.clone().unwrap_or_default();
        Record {
            holder: spec.holder_identity.filter(|h| !h.is_empty()),
            duration: Duration::from_secs(spec.lease_duration_seconds.unwrap_or(0).max(0) as u64),
            acquired: spec.acquire_time,
            renewed: spec.renew_time,
            transitions: spec.lease_transitions.unwrap_or(0),
        }
    }

    /// The record with `me` holding it from now: a renewal keeps the
    /// acquisition time, a takeover counts one more transition.
    pub fn claimed(previous: Option<&Record>, me: &str, duration: Duration) -> Record {
        let now = MicroTime(Timestamp::now());
        let ours = previous.is_some_and(|p| p.holder.as_deref() == Some(me));
        Record {
            holder: Some(me.to_string()),
            duration,
            acquired: match previous {
                Some(p) if ours => p.acquired.clone(),
                _ => Some(now.clone()),
            },
            renewed: Some(now),
            transitions: match previous {
                Some(p) if ours => p.transitions,
                Some(p) => p.transitions + 1,
                None => 0,
            },
        }
    }

    /// client-go's release: nobody holds it, and it expires in a second
    /// for any candidate that would not read the empty holder as free.
    pub fn released(&self) -> Record {
        let now = MicroTime(Timestamp::now());
        Record {
            holder: None,
            duration: Duration::from_secs(1),
            acquired: Some(now.clone()),
            renewed: Some(now),
            transitions: self.transitions,
        }
    }

    pub fn spec(&self) -> LeaseSpec {
        LeaseSpec {
            holder_identity: self.holder.clone(),
            lease_duration_seconds: Some(self.duration.as_secs() as i32),
            acquire_time: self.acquired.clone(),
            renew_time: self.renewed.clone(),
            lease_transitions: Some(self.transitions),
            ..LeaseSpec::default()
        }
    }
}

/// A record as this replica saw it, and when it saw it change.
#[derive(Debug, Clone)]
pub(super) struct Observed {
    pub record: Record,
    pub resource_version: Option<String>,
    pub at: Instant,
}

/// What the Lease, as observed, allows this replica to do now.
#[derive(Debug, PartialEq)]
pub(super) enum Next {
    /// No Lease: create it.
    Create,
    /// Released, expired, or ours: write ourselves in.
    Write,
    /// Another replica holds it until `until`, as far as we can tell.
    Held { holder: String, until: Instant },
}

/// The decision: another holder's record is respected for its duration
/// from the moment this replica *saw* it change (never from the
/// `renewTime` another machine's clock wrote).
pub(super) fn next(observed: Option<&Observed>, me: &str, now: Instant) -> Next {
    let Some(o) = observed else {
        return Next::Create;
    };
    let until = o.at + o.record.duration;
    match &o.record.holder {
        Some(holder) if holder != me && until > now => Next::Held {
            holder: holder.clone(),
            until,
        },
        _ => Next::Write,
    }
}

/// `period` stretched by up to a fifth, so candidates do not all ask at
/// once.
pub(super) fn jittered(period: Duration) -> Duration {
    let r = RandomState::new().hash_one(std::time::SystemTime::now()) % 1000;
    period + period.mul_f64(0.2 * r as f64 / 1000.0)
}
