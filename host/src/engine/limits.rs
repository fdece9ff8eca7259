//! Per-plugin resource limits and the store's resource limiter.
//!
//! wasmtime's stock `StoreLimits` reports a memory limit hit as an untyped
//! error; operon needs to say "memory limit" precisely (in CLI errors,
//! Synced conditions and `operon_plugin_traps_total{reason}`) and to record
//! each call's memory peak, hence a limiter of its own.

use std::time::Duration;

use wasmtime::ResourceLimiter;

/// Limits applied to every call of one plugin.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Total linear memory of one instance.
    pub memory_bytes: usize,
    /// Wall-clock time of one call (instantiate + reconcile).
    pub timeout: Duration,
    /// Instruction budget of one call, when the engine counts fuel.
    pub fuel: Option<u64>,
    /// Bytes of stdout and of stderr kept per call; the rest is dropped
    /// (and counted).
    pub output_bytes: usize,
    /// Most children one response may hold; more fails the reconcile
    /// before anything is applied.
    pub max_children: usize,
    /// Largest child, as JSON. The API server takes at most 3 MiB per
    /// request and etcd stores at most 1.5 MiB per object by default; the
    /// server adds `managedFields` and metadata, so 1 MiB leaves room.
    pub child_bytes: usize,
    /// Largest status, as JSON: it is stored inside the parent, which must
    /// fit etcd's 1.5 MiB with its spec and metadata.
    pub status_bytes: usize,
    /// Largest whole answer (children, status, patches, events), as JSON:
    /// bounds what the host holds and sends per reconcile.
    pub response_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 256 << 20,
            timeout: Duration::from_secs(2),
            fuel: None,
            output_bytes: 64 << 10,
            max_children: 1000,
            child_bytes: 1 << 20,
            status_bytes: 256 << 10,
            response_bytes: 8 << 20,
        }
    }
}

/// A memory growth past the plugin's limit. Kept as a typed error so the
/// trap can be reported as a memory-limit hit, not a generic failure.
#[derive(Debug, thiserror::Error)]
#[error("memory limit of {limit} bytes exceeded (wanted {desired} bytes)")]
pub struct MemoryLimitExceeded {
    pub limit: usize,
    pub desired: usize,
}

/// The limiter installed in every store.
#[derive(Debug)]
pub struct Limiter {
    memory_limit: usize,
    /// Sum of the sizes of the instance's linear memories right now.
    memory_now: usize,
    /// Highest `memory_now` seen during the call.
    pub memory_peak: usize,
}

impl Limiter {
    pub fn new(memory_limit: usize) -> Limiter {
        Limiter {
            memory_limit,
            memory_now: 0,
            memory_peak: 0,
        }
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self.memory_now - current.min(self.memory_now) + desired;
        if total > self.memory_limit {
            return Err(MemoryLimitExceeded {
                limit: self.memory_limit,
                desired: total,
            }
            .into());
        }
        self.memory_now = total;
        self.memory_peak = self.memory_peak.max(total);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Tables hold function references; a million is far beyond any
        // real plugin and keeps a hostile one from eating host memory.
        Ok(desired <= 1_000_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_every_memory_and_refuses_past_the_limit() {
        let mut l = Limiter::new(100);
        assert!(l.memory_growing(0, 40, None).unwrap());
        assert!(l.memory_growing(0, 30, None).unwrap()); // a second memory
        assert_eq!(l.memory_peak, 70);
        let err = l.memory_growing(30, 70, None).unwrap_err();
        let hit = err.downcast_ref::<MemoryLimitExceeded>().unwrap();
        assert_eq!((hit.limit, hit.desired), (100, 110));
        assert_eq!(l.memory_peak, 70);
    }
}
