//! The work queue of one controller: which parents to reconcile next.
//!
//! Semantics, as controller-runtime users expect them, plus per-key backoff:
//! - **Dedupe**: a key queued twice is reconciled once.
//! - **One at a time per key**: a key added while it is being reconciled is
//!   marked dirty and queued again when that reconcile is done, never run
//!   twice at once.
//! - **Priorities**: live changes go before objects from an initial list, so
//!   a restart over thousands of objects does not delay a user's edit.
//! - **Per-key exponential backoff with jitter** after failures, reset on
//!   success; `requeue-after` delays; a newer schedule of a key replaces an
//!   older one (stale timers are ignored by generation).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// How urgent an add is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// A live change or a timer.
    High,
    /// An object seen in an initial list (start-up or watch restart).
    Low,
}

/// Backoff after failures: `base * 2^(failures-1)`, capped, times a jitter
/// factor in [0.75, 1.25).
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_millis(200),
            max: Duration::from_secs(300),
        }
    }
}

impl Backoff {
    /// The delay before attempt number `failures + 1`, without jitter.
    pub fn delay(&self, failures: u32) -> Duration {
        let exp = failures.saturating_sub(1).min(30);
        self.base.saturating_mul(1u32 << exp).min(self.max)
    }
}

#[derive(Debug, Default)]
struct Entry {
    queued: bool,
    in_flight: bool,
    /// Added while in flight: queue again when done.
    dirty: bool,
    failures: u32,
    /// Bumped whenever the key is added or scheduled; a timer with an
    /// older value is stale.
    timer: u64,
    /// A timer is pending for this key.
    scheduled: bool,
    /// When the key entered the queue (for the queue-duration metric).
    since: Option<Instant>,
}

#[derive(Debug, Default)]
struct State {
    entries: HashMap<String, Entry>,
    high: VecDeque<String>,
    low: VecDeque<String>,
    closed: bool,
    rng: u64,
}

/// A work queue shared by a controller's workers and its event sources.
#[derive(Clone)]
pub struct WorkQueue {
    state: Arc<Mutex<State>>,
    notify: Arc<Notify>,
    backoff: Backoff,
}

/// A key handed to a worker, with how long it waited.
#[derive(Debug)]
pub struct Item {
    pub key: String,
    pub waited: Duration,
}

impl WorkQueue {
    pub fn new(backoff: Backoff) -> WorkQueue {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x9e37_79b9, |d| d.as_nanos() as u64)
            | 1;
        WorkQueue {
            state: Arc::new(Mutex::new(State {
                rng: seed,
                ..State::default()
            })),
            notify: Arc::new(Notify::new()),
            backoff,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues a key now.
    pub fn add(&self, key: &str, priority: Priority) {
        let mut s = self.lock();
        if s.closed {
            return;
        }
        let e = s.entries.entry(key.to_string()).or_default();
        // An add now supersedes a pending timer: the reconcile it causes
        // decides anew when to come back.
        e.timer += 1;
        e.scheduled = false;
        if e.in_flight {
            e.dirty = true;
            return;
        }
        if e.queued {
            // Promote a low-priority key that became urgent.
            if priority == Priority::High
                && let Some(pos) = s.low.iter().position(|k| k == key)
            {
                s.low.remove(pos);
                s.high.push_back(key.to_string());
            }
            return;
        }
        e.queued = true;
        e.since = Some(Instant::now());
        match priority {
            Priority::High => s.high.push_back(key.to_string()),
            Priority::Low => s.low.push_back(key.to_string()),
        }
        drop(s);
        self.notify.notify_one();
    }

    /// Queues a key after a delay (requeue-after). A later add or schedule
    /// of the same key supersedes this one.
    pub fn add_after(&self, key: &str, delay: Duration) {
        let timer = {
            let mut s = self.lock();
            let e = s.entries.entry(key.to_string()).or_default();
            e.timer += 1;
            e.scheduled = true;
            e.timer
        };
        let (queue, key) = (self.clone(), key.to_string());
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let due = queue
                .lock()
                .entries
                .get(&key)
                .is_some_and(|e| e.scheduled && e.timer == timer);
            if due {
                queue.add(&key, Priority::High);
            }
        });
    }

    /// Records a failure and queues the key again after its backoff.
    /// Returns the delay chosen.
    pub fn retry(&self, key: &str) -> Duration {
        let delay = {
            let mut s = self.lock();
            let failures = {
                let e = s.entries.entry(key.to_string()).or_default();
                e.failures += 1;
                e.failures
            };
            // xorshift: jitter needs no cryptographic randomness.
            s.rng ^= s.rng << 13;
            s.rng ^= s.rng >> 7;
            s.rng ^= s.rng << 17;
            let jitter = 0.75 + (s.rng % 1000) as f64 / 2000.0;
            self.backoff.delay(failures).mul_f64(jitter)
        };
        self.add_after(key, delay);
        delay
    }

    /// Clears a key's failure count (after a success).
    pub fn forget(&self, key: &str) {
        if let Some(e) = self.lock().entries.get_mut(key) {
            e.failures = 0;
        }
    }

    /// Failures recorded for a key since its last success.
    pub fn failures(&self, key: &str) -> u32 {
        self.lock().entries.get(key).map_or(0, |e| e.failures)
    }

    /// Waits for the next key. `None` once the queue is shut down.
    pub async fn next(&self) -> Option<Item> {
        loop {
            let notified = self.notify.notified();
            {
                let mut s = self.lock();
                if s.closed {
                    return None;
                }
                let key = s.high.pop_front().or_else(|| s.low.pop_front());
                if let Some(key) = key {
                    let more = !s.high.is_empty() || !s.low.is_empty();
                    let e = s.entries.entry(key.clone()).or_default();
                    e.queued = false;
                    e.in_flight = true;
                    let waited = e.since.take().map_or(Duration::ZERO, |t| t.elapsed());
                    drop(s);
                    if more {
                        self.notify.notify_one();
                    }
                    return Some(Item { key, waited });
                }
            }
            notified.await;
        }
    }

    /// Marks a key's reconcile finished; queues it again if it changed
    /// meanwhile.
    pub fn done(&self, key: &str) {
        let requeue = {
            let mut s = self.lock();
            let Some(e) = s.entries.get_mut(key) else {
                return;
            };
            e.in_flight = false;
            let dirty = std::mem::take(&mut e.dirty);
            if !dirty && e.failures == 0 && !e.queued && !e.scheduled {
                // Keep the map small: an idle key needs no entry.
                s.entries.remove(key);
            }
            dirty
        };
        if requeue {
            self.add(key, Priority::High);
        }
    }

    /// Keys waiting now.
    pub fn depth(&self) -> usize {
        let s = self.lock();
        s.high.len() + s.low.len()
    }

    /// Stops handing out keys; workers see `None`.
    pub fn shutdown(&self) {
        self.lock().closed = true;
        self.notify.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue() -> WorkQueue {
        WorkQueue::new(Backoff::default())
    }

    #[tokio::test]
    async fn dedupes_and_prefers_live_changes() {
        let q = queue();
        q.add("ns/a", Priority::Low);
        q.add("ns/b", Priority::Low);
        q.add("ns/a", Priority::Low);
        q.add("ns/c", Priority::High);
        assert_eq!(q.depth(), 3);
        assert_eq!(q.next().await.unwrap().key, "ns/c");
        // b becomes urgent: promoted ahead of a.
        q.add("ns/b", Priority::High);
        assert_eq!(q.next().await.unwrap().key, "ns/b");
        assert_eq!(q.next().await.unwrap().key, "ns/a");
        assert_eq!(q.depth(), 0);
    }

    #[tokio::test]
    async fn a_key_is_never_handed_out_twice_at_once() {
        let q = queue();
        q.add("k", Priority::High);
        let item = q.next().await.unwrap();
        q.add("k", Priority::High); // changes while in flight
        assert_eq!(q.depth(), 0, "not queued while in flight");
        q.done(&item.key);
        assert_eq!(q.depth(), 1, "queued again once done");
        let again = q.next().await.unwrap();
        q.done(&again.key);
        assert_eq!(q.depth(), 0);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let b = Backoff {
            base: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        let delays: Vec<u128> = (1..=6).map(|n| b.delay(n).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
    }

    #[tokio::test(start_paused = true)]
    async fn retries_grow_and_success_resets() {
        let q = WorkQueue::new(Backoff {
            base: Duration::from_millis(100),
            max: Duration::from_secs(10),
        });
        let mut delays = Vec::new();
        for _ in 0..4 {
            delays.push(q.retry("k"));
            let item = q.next().await.unwrap();
            q.done(&item.key);
        }
        assert_eq!(q.failures("k"), 4);
        for pair in delays.windows(2) {
            assert!(pair[1] > pair[0], "delays grow: {delays:?}");
        }
        q.forget("k");
        assert_eq!(q.failures("k"), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_newer_schedule_supersedes_an_older_timer() {
        let q = queue();
        q.add_after("k", Duration::from_secs(60));
        q.add_after("k", Duration::from_secs(1));
        tokio::time::sleep(Duration::from_secs(2)).await;
        let item = q.next().await.unwrap();
        q.done(&item.key);
        tokio::time::sleep(Duration::from_secs(120)).await;
        assert_eq!(q.depth(), 0, "the superseded 60 s timer did not fire");
    }

    #[tokio::test(start_paused = true)]
    async fn requeue_after_fires_after_the_reconcile_is_done() {
        let q = queue();
        q.add("k", Priority::High);
        let item = q.next().await.unwrap();
        q.add_after("k", Duration::from_secs(30)); // the reconcile asked for it
        q.done(&item.key);
        assert_eq!(q.depth(), 0);
        tokio::time::sleep(Duration::from_secs(31)).await;
        assert_eq!(q.depth(), 1, "requeued after 30 s");
    }

    #[tokio::test]
    async fn shutdown_releases_waiting_workers() {
        let q = queue();
        let waiter = tokio::spawn({
            let q = q.clone();
            async move { q.next().await.is_none() }
        });
        tokio::task::yield_now().await;
        q.shutdown();
        assert!(waiter.await.unwrap());
    }
}
