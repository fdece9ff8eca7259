//! Progress of a long compile. The first compile of a large component (a
//! Python one is ~19 MB and takes half a minute on two cores) would
//! otherwise be silence: after [`FIRST`] it is said, then every [`EVERY`],
//! then its end. The host logs it (info); an offline command whose stderr
//! is a terminal also prints it there, as cargo shows its progress, and
//! stays quiet in scripts, where a failure must remain one line.

use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Silence this long is normal (a cache load, a small component).
pub const FIRST: Duration = Duration::from_secs(3);
/// How often a compile still running is mentioned again.
pub const EVERY: Duration = Duration::from_secs(10);

/// Where progress goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Report {
    /// The log only (info).
    #[default]
    Log,
    /// The log, and stderr for a person watching a terminal.
    Terminal,
}

impl Report {
    fn say(self, line: &str) {
        tracing::info!("{line}");
        if self == Report::Terminal {
            eprintln!("{line}");
        }
    }
}

/// Says one line of progress.
type Say = Arc<dyn Fn(&str) + Send + Sync>;

/// A compile being watched; dropping it ends the watch (and says how long
/// the compile took, if anything was said).
pub struct Watch {
    done: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<bool>>,
    what: String,
    start: Instant,
    say: Say,
}

/// Watches the compile of `what` (e.g. "a 18.8 MiB component"); `note`
/// follows its first mention (whether the result is cached).
pub fn watch(what: String, note: &'static str, report: Report) -> Watch {
    watch_with(
        what,
        note,
        FIRST,
        EVERY,
        Arc::new(move |l: &str| report.say(l)),
    )
}

fn watch_with(
    what: String,
    note: &'static str,
    first: Duration,
    every: Duration,
    say: Say,
) -> Watch {
    let done = Arc::new((Mutex::new(false), Condvar::new()));
    let start = Instant::now();
    let thread = {
        let (done, what, say) = (done.clone(), what.clone(), say.clone());
        std::thread::Builder::new()
            .name("operon-compile-progress".into())
            .spawn(move || {
                let (lock, wake) = &*done;
                let mut next = first;
                let mut said = false;
                let mut finished = lock.lock().unwrap_or_else(PoisonError::into_inner);
                loop {
                    let left = next.saturating_sub(start.elapsed());
                    let (guard, _) = wake
                        .wait_timeout_while(finished, left, |d| !*d)
                        .unwrap_or_else(PoisonError::into_inner);
                    finished = guard;
                    if *finished {
                        return said;
                    }
                    let line = if said {
                        format!("still compiling {what}: {} s", start.elapsed().as_secs())
                    } else {
                        format!("compiling {what} to native code{note}")
                    };
                    say(&line);
                    said = true;
                    next += every;
                }
            })
            .ok()
    };
    Watch {
        done,
        thread,
        what,
        start,
        say,
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let (lock, wake) = &*self.done;
        *lock.lock().unwrap_or_else(PoisonError::into_inner) = true;
        wake.notify_all();
        let said = self.thread.take().and_then(|t| t.join().ok());
        if said == Some(true) {
            let secs = self.start.elapsed().as_secs_f64();
            (self.say)(&format!("compiled {} in {secs:.1} s", self.what));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorder() -> (Arc<Mutex<Vec<String>>>, Say) {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        (
            lines,
            Arc::new(move |l: &str| sink.lock().unwrap().push(l.to_string())),
        )
    }

    #[test]
    fn a_quick_compile_says_nothing() {
        let (lines, say) = recorder();
        drop(watch_with(
            "x".into(),
            "",
            Duration::from_secs(60),
            Duration::from_secs(60),
            say,
        ));
        assert!(lines.lock().unwrap().is_empty());
    }

    #[test]
    fn a_long_compile_is_said_again_and_ended() {
        let (lines, say) = recorder();
        let w = watch_with(
            "a 1.0 MiB component".into(),
            " (no cache)",
            Duration::from_millis(20),
            Duration::from_millis(40),
            say,
        );
        // Until the first repetition has been said.
        while lines.lock().unwrap().len() < 2 {
            std::thread::sleep(Duration::from_millis(5));
        }
        drop(w);
        let lines = lines.lock().unwrap();
        assert_eq!(
            lines[0],
            "compiling a 1.0 MiB component to native code (no cache)"
        );
        assert!(lines[1].starts_with("still compiling a 1.0 MiB component: "));
        assert!(
            lines
                .last()
                .unwrap()
                .starts_with("compiled a 1.0 MiB component in ")
        );
    }
}
