//! The election against a fake API server ([`fake`]) holding one Lease,
//! on tokio's paused clock: the timings are exact, nothing waits for real.

mod fake;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::time::Instant;

use super::record::{Next, Observed, Record, next};
use super::*;
use crate::runtime::Watching;
use crate::server::{Admin, AdminError, AdminRequest, Metrics};
use fake::Fake;

/// A replica: its elector's task, its gate and its phase.
struct Replica {
    gate: Gate,
    phase: watch::Sender<Phase>,
    task: tokio::task::JoinHandle<Result<(), ElectionError>>,
    /// When its gate opened and closed, as the workers would see it.
    changes: Arc<Mutex<Vec<(bool, Instant)>>>,
}

fn replica(fake: &Fake, identity: &str) -> Replica {
    let options = ElectionOptions::new("l", "ns", identity);
    let (elector, gate) = Elector::new(
        fake.client(),
        &Watching::default(),
        options,
        Arc::new(Metrics::new()),
    );
    let (phase, phase_rx) = watch::channel(Phase::Running);
    let changes: Arc<Mutex<Vec<(bool, Instant)>>> = Arc::default();
    let (mut seen, log) = (gate.watch(), changes.clone());
    tokio::spawn(async move {
        while seen.changed().await.is_ok() {
            let open = *seen.borrow_and_update();
            log.lock().unwrap().push((open, Instant::now()));
        }
    });
    let task = tokio::spawn(elector.run(phase_rx));
    Replica {
        gate,
        phase,
        task,
        changes,
    }
}

async fn settle(d: Duration) {
    tokio::time::sleep(d).await;
}

#[tokio::test(start_paused = true)]
async fn one_leads_the_other_stands_by_and_a_release_hands_over() {
    let fake = Fake::new();
    let a = replica(&fake, "a");
    settle(Duration::from_secs(1)).await;
    assert!(a.gate.is_open());
    let b = replica(&fake.peer(), "b");
    settle(Duration::from_secs(60)).await;
    assert!(a.gate.is_open(), "a renews and keeps leading");
    assert!(!b.gate.is_open(), "b stands by while a renews");
    assert!(b.changes.lock().unwrap().is_empty());
    assert_eq!(fake.holder().as_deref(), Some("a"));

    // SIGTERM on a: it drains (still leading), then releases.
    a.phase.send(Phase::Draining).unwrap();
    settle(Duration::from_secs(20)).await;
    assert!(
        a.gate.is_open() && !b.gate.is_open(),
        "nobody takes over while a drains"
    );
    a.phase.send(Phase::Drained).unwrap();
    a.task.await.unwrap().unwrap();
    let released = Instant::now();
    settle(Duration::from_secs(3)).await;
    assert!(
        b.gate.is_open(),
        "b takes over within a retry period of the release"
    );
    let (open, at) = b.changes.lock().unwrap()[0];
    assert!(
        open && at - released <= Duration::from_millis(2400),
        "{:?}",
        at - released
    );
    assert_eq!(fake.holder().as_deref(), Some("b"));
    let writes = fake.store.lock().unwrap().writes.clone();
    let holders: Vec<Option<&str>> = writes.iter().map(|(h, _)| h.as_deref()).collect();
    let first_b = holders.iter().position(|h| *h == Some("b")).unwrap();
    assert!(holders[..first_b].iter().all(|h| *h != Some("b")));
    assert_eq!(
        holders[first_b - 1],
        None,
        "a released before b wrote: {holders:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_leader_cut_off_stops_writing_before_anyone_takes_over() {
    let fake = Fake::new();
    let a_conn = fake.clone();
    let a = replica(&a_conn, "a");
    settle(Duration::from_secs(1)).await;
    let b = replica(&fake.peer(), "b");
    settle(Duration::from_secs(5)).await;
    assert!(a.gate.is_open() && !b.gate.is_open());

    a_conn.cut.store(true, Ordering::SeqCst); // a's requests hang from now on
    let err = a.task.await.unwrap().unwrap_err();
    assert!(
        err.to_string()
            .starts_with("lost the Lease ns/l: not renewed within the renew deadline (10s)"),
        "{err}"
    );
    assert!(!a.gate.is_open());
    settle(Duration::from_secs(30)).await;
    assert!(b.gate.is_open(), "b takes over once the lease expired");
    let a_closed = a.changes.lock().unwrap().last().copied().unwrap();
    let b_opened = b.changes.lock().unwrap()[0];
    assert_eq!((a_closed.0, b_opened.0), (false, true));
    assert!(
        a_closed.1 < b_opened.1,
        "a stopped writing before b started"
    );
    // The margin is the lease duration minus the renew deadline, less
    // at most one retry period of a's last renewal.
    assert!(
        b_opened.1 - a_closed.1 >= Duration::from_secs(3),
        "{:?}",
        b_opened.1 - a_closed.1
    );
}

#[tokio::test(start_paused = true)]
async fn a_lease_taken_from_the_leader_is_lost_at_the_next_renewal() {
    let fake = Fake::new();
    let a = replica(&fake, "a");
    settle(Duration::from_secs(1)).await;
    assert!(a.gate.is_open());
    {
        let mut store = fake.store.lock().unwrap();
        let lease = store.lease.as_mut().unwrap();
        lease.spec.as_mut().unwrap().holder_identity = Some("intruder".into());
    }
    let err = a.task.await.unwrap().unwrap_err();
    assert_eq!(
        err.to_string(),
        "lost the Lease ns/l: the Lease is held by intruder"
    );
    assert!(!a.gate.is_open());
}

#[tokio::test(start_paused = true)]
async fn a_standby_stops_at_once_on_sigterm_and_closes_its_gate_for_good() {
    let fake = Fake::new();
    let a = replica(&fake, "a");
    settle(Duration::from_secs(1)).await;
    let b = replica(&fake.peer(), "b");
    settle(Duration::from_secs(1)).await;
    let mut gate = b.gate.clone();
    b.phase.send(Phase::Draining).unwrap();
    b.task.await.unwrap().unwrap();
    // Workers waiting on the gate return: it can never open again.
    assert!(!gate.wait_open().await);
    assert_eq!(fake.holder().as_deref(), Some("a"));
    drop(a);
}

fn observed(holder: Option<&str>, at: Instant) -> Observed {
    Observed {
        record: Record {
            holder: holder.map(str::to_string),
            duration: Duration::from_secs(15),
            acquired: None,
            renewed: None,
            transitions: 3,
        },
        resource_version: Some("7".into()),
        at,
    }
}

#[tokio::test(start_paused = true)]
async fn next_reads_the_lease_by_the_time_it_was_seen() {
    let seen = Instant::now();
    let later = |s: u64| seen + Duration::from_secs(s);
    assert_eq!(next(None, "me", seen), Next::Create);
    let other = observed(Some("other"), seen);
    assert_eq!(
        next(Some(&other), "me", later(14)),
        Next::Held {
            holder: "other".into(),
            until: later(15)
        }
    );
    assert_eq!(next(Some(&other), "me", later(15)), Next::Write);
    assert_eq!(next(Some(&observed(None, seen)), "me", seen), Next::Write);
    assert_eq!(
        next(Some(&observed(Some("me"), seen)), "me", seen),
        Next::Write
    );
}

#[test]
fn claiming_counts_transitions_and_keeps_the_acquisition_on_renewal() {
    let other = observed(Some("other"), Instant::now()).record;
    let taken = Record::claimed(Some(&other), "me", Duration::from_secs(15));
    assert_eq!(
        (taken.holder.as_deref(), taken.transitions),
        (Some("me"), 4)
    );
    let renewed = Record::claimed(Some(&taken), "me", Duration::from_secs(15));
    assert_eq!(
        (renewed.transitions, &renewed.acquired),
        (4, &taken.acquired)
    );
    let released = renewed.released();
    assert_eq!(
        (released.holder, released.duration),
        (None, Duration::from_secs(1))
    );
    assert_eq!(
        Record::claimed(None, "me", Duration::from_secs(15)).transitions,
        0
    );
}

#[test]
fn timings_that_allow_two_writers_are_refused() {
    let mut o = ElectionOptions::new("l", "ns", "me");
    assert!(o.check().is_ok());
    o.renew_deadline = Duration::from_secs(15);
    let err = o.check().unwrap_err().to_string();
    assert_eq!(
        err,
        "invalid --leader-elect timings: the renew deadline must be shorter than the lease duration"
    );
    o.renew_deadline = Duration::from_secs(2);
    assert!(
        o.check()
            .unwrap_err()
            .to_string()
            .contains("1.2 retry periods")
    );
}

/// Answers every request with an empty object.
#[derive(Debug)]
struct Empty;

impl Admin for Empty {
    fn ask(&self, _: AdminRequest) -> BoxFuture<'_, Result<Value, AdminError>> {
        Box::pin(async { Ok(json!({})) })
    }
}

#[tokio::test]
async fn a_standby_lists_but_refuses_rollbacks() {
    let (gate, leading) = Gate::closed();
    let (_holder_tx, holder) = watch::channel(Some("a".to_string()));
    let admin = ReplicaAdmin {
        inner: Empty,
        identity: "b".into(),
        lease: "ns/l".into(),
        leading,
        holder,
    };
    let list = admin.ask(AdminRequest::List).await.unwrap();
    assert_eq!(
        list["replica"],
        json!({"identity": "b", "lease": "ns/l", "leader": false, "holder": "a"})
    );
    let rollback = AdminRequest::Rollback {
        name: "pg".into(),
        to: None,
    };
    let err = admin.ask(rollback.clone()).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "this replica (b) is a standby of Lease ns/l: roll back on the leader (a)"
    );
    gate.send(true).unwrap();
    assert_eq!(
        admin.ask(rollback).await.unwrap()["replica"]["leader"],
        true
    );
}
