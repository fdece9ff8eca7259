//! The gate the workers pass before each reconcile: open while this
//! replica may write.
//!
//! A `watch` channel rather than a flag, so that a standby's workers wait
//! without polling and wake the moment it is elected. The elector holds
//! the only sender; once it is dropped closed (a standby told to stop, or
//! a leader that released), the gate can never open again and waiting
//! workers return.

use tokio::sync::watch;

/// Whether this replica may write, as the workers see it.
#[derive(Debug, Clone)]
pub struct Gate(watch::Receiver<bool>);

impl Gate {
    /// Always open: a host without leader election writes from the start.
    /// (A dropped sender whose last value is `true` keeps the gate open:
    /// [`watch::Receiver::wait_for`] checks the current value first.)
    pub fn open() -> Gate {
        Gate(watch::channel(true).1)
    }

    /// A closed gate and its sender, for the elector.
    pub fn closed() -> (watch::Sender<bool>, Gate) {
        let (tx, rx) = watch::channel(false);
        (tx, Gate(rx))
    }

    /// Waits until this replica may write; `false` once it never will.
    pub async fn wait_open(&mut self) -> bool {
        self.0.wait_for(|open| *open).await.is_ok()
    }

    /// Whether this replica may write now.
    pub fn is_open(&self) -> bool {
        *self.0.borrow()
    }

    /// The channel itself, for tests that log every change.
    #[cfg(test)]
    pub fn watch(&self) -> watch::Receiver<bool> {
        self.0.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_open_gate_stays_open_a_dropped_closed_one_never_opens() {
        let mut open = Gate::open();
        assert!(open.is_open() && open.wait_open().await);

        let (tx, mut gate) = Gate::closed();
        assert!(!gate.is_open());
        tx.send_replace(true);
        assert!(gate.wait_open().await);
        tx.send_replace(false);
        drop(tx);
        assert!(!gate.wait_open().await, "closed for good");
    }
}
