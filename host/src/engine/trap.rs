//! Why a call into a plugin died, in words an operator can act on.
//!
//! The reason is a small closed set so that it can label metrics
//! (`operon_plugin_traps_total{reason}`) and conditions without unbounded
//! cardinality; the detail (the plugin's last stderr line, wasmtime's
//! message) goes into the message.

use super::limits::MemoryLimitExceeded;

/// The class of a trap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TrapReason {
    /// The call ran past its time limit (epoch deadline).
    Timeout,
    /// The call used up its fuel budget.
    OutOfFuel,
    /// A memory growth past the plugin's memory limit.
    MemoryLimit,
    /// The Wasm stack overflowed (deep recursion).
    StackOverflow,
    /// `unreachable` executed: in Rust, a panic or abort.
    Unreachable,
    /// An out-of-bounds memory access.
    MemoryOutOfBounds,
    /// Instantiation failed (e.g. the instance pool is exhausted).
    Instantiate,
    /// Any other trap (division by zero, bad indirect call, ...).
    Other,
}

impl TrapReason {
    pub fn as_str(self) -> &'static str {
        match self {
            TrapReason::Timeout => "timeout",
            TrapReason::OutOfFuel => "out-of-fuel",
            TrapReason::MemoryLimit => "memory-limit",
            TrapReason::StackOverflow => "stack-overflow",
            TrapReason::Unreachable => "unreachable",
            TrapReason::MemoryOutOfBounds => "memory-out-of-bounds",
            TrapReason::Instantiate => "instantiate",
            TrapReason::Other => "other",
        }
    }

    /// Classifies an error returned by a call into a component.
    pub fn of(error: &wasmtime::Error) -> TrapReason {
        if error.chain().any(|e| e.is::<MemoryLimitExceeded>()) {
            return TrapReason::MemoryLimit;
        }
        match error.downcast_ref::<wasmtime::Trap>() {
            Some(wasmtime::Trap::Interrupt) => TrapReason::Timeout,
            Some(wasmtime::Trap::OutOfFuel) => TrapReason::OutOfFuel,
            Some(wasmtime::Trap::StackOverflow) => TrapReason::StackOverflow,
            Some(wasmtime::Trap::UnreachableCodeReached) => TrapReason::Unreachable,
            Some(wasmtime::Trap::MemoryOutOfBounds) => TrapReason::MemoryOutOfBounds,
            _ => TrapReason::Other,
        }
    }

    /// A sentence describing the reason, for messages.
    pub fn describe(self) -> &'static str {
        match self {
            TrapReason::Timeout => "time limit exceeded",
            TrapReason::OutOfFuel => "fuel exhausted",
            TrapReason::MemoryLimit => "memory limit exceeded",
            TrapReason::StackOverflow => "stack overflow",
            TrapReason::Unreachable => "unreachable executed (panic or abort)",
            TrapReason::MemoryOutOfBounds => "out-of-bounds memory access",
            TrapReason::Instantiate => "instantiation failed",
            TrapReason::Other => "trap",
        }
    }
}

impl std::fmt::Display for TrapReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
