//! The epoch clock behind the time limit: a thread that advances the
//! engine's epoch every [`EPOCH_TICK`](super::EPOCH_TICK), but only while at
//! least one call is in flight. An idle host therefore wakes up not at all
//! (a clock ticking forever cost 0.5 % of a core at rest, 200 wake-ups a
//! second, measured by `cargo xtask bench`'s idle section).
//!
//! Each store holds a [`Ticking`] guard; the first guard wakes the clock,
//! and when the last one drops the clock parks on a condition variable.
//! Deadlines are set relative to the epoch when the store is made, so a
//! parked clock cannot shorten or lengthen a call's time limit by more than
//! one tick.

use std::sync::{Arc, Condvar, Mutex, PoisonError, Weak};
use std::thread;
use std::time::Duration;

#[derive(Default)]
struct State {
    /// Stores alive now.
    active: usize,
    /// The engine is gone: the thread ends.
    stopped: bool,
}

/// Shared by the engine, its clock thread and the guards.
#[derive(Default)]
pub struct Clock {
    state: Mutex<State>,
    wake: Condvar,
}

/// Keeps the clock ticking while alive (one per store).
pub struct Ticking(Arc<Clock>);

impl Drop for Ticking {
    fn drop(&mut self) {
        let mut s = self.0.state.lock().unwrap_or_else(PoisonError::into_inner);
        s.active -= 1;
    }
}

impl Clock {
    /// Starts the clock thread, which calls `tick` (holding only a weak
    /// reference to what it ticks) every `period` while a guard is alive.
    pub fn start<T: Send + Sync + 'static>(
        target: Weak<T>,
        tick: fn(&T),
        period: Duration,
    ) -> std::io::Result<Arc<Clock>> {
        let clock = Arc::new(Clock::default());
        let shared = clock.clone();
        thread::Builder::new()
            .name("operon-epoch".into())
            .spawn(move || {
                loop {
                    {
                        let s = shared.state.lock().unwrap_or_else(PoisonError::into_inner);
                        let s = shared
                            .wake
                            .wait_while(s, |s| s.active == 0 && !s.stopped)
                            .unwrap_or_else(PoisonError::into_inner);
                        if s.stopped {
                            return;
                        }
                    }
                    let Some(target) = target.upgrade() else {
                        return;
                    };
                    tick(&target);
                    drop(target);
                    thread::sleep(period);
                }
            })?;
        Ok(clock)
    }

    /// A guard that keeps the clock ticking until dropped.
    pub fn ticking(self: &Arc<Self>) -> Ticking {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        s.active += 1;
        if s.active == 1 {
            self.wake.notify_one();
        }
        Ticking(self.clone())
    }

    /// Ends the thread (the engine is being dropped).
    pub fn stop(&self) {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .stopped = true;
        self.wake.notify_one();
    }

    #[cfg(test)]
    fn active(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .active
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    fn tick(n: &AtomicU64) {
        n.fetch_add(1, Ordering::SeqCst);
    }

    /// Waits (bounded) until `f` holds; the clock is another thread.
    fn eventually(f: impl Fn() -> bool) -> bool {
        (0..2000).any(|_| {
            thread::sleep(Duration::from_millis(1));
            f()
        })
    }

    #[test]
    fn ticks_only_while_a_guard_is_alive() {
        let counter = Arc::new(AtomicU64::new(0));
        let clock = Clock::start(Arc::downgrade(&counter), tick, Duration::from_millis(1)).unwrap();
        thread::sleep(Duration::from_millis(20));
        assert_eq!(counter.load(Ordering::SeqCst), 0, "idle: no ticks");

        let guard = clock.ticking();
        assert!(
            eventually(|| counter.load(Ordering::SeqCst) >= 3),
            "ticks while a call runs"
        );
        drop(guard);
        assert_eq!(clock.active(), 0);
        // At most the tick in progress when the guard dropped follows.
        thread::sleep(Duration::from_millis(10));
        let parked = counter.load(Ordering::SeqCst);
        thread::sleep(Duration::from_millis(20));
        assert_eq!(counter.load(Ordering::SeqCst), parked, "parked again");
        clock.stop();
    }
}
