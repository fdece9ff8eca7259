//! Why a plugin did not load, or why one call failed.

use super::Missing;
use crate::contract::outcome::DecodeError;
use crate::contract::{PACKAGE, PluginError};
use crate::engine::TrapReason;

fn list(missing: &[Missing]) -> String {
    missing
        .iter()
        .map(Missing::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A plugin that cannot be used, with the one reason that matters first.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("not a WebAssembly component: {0}")]
    NotComponent(String),
    #[error("{0}")]
    Contract(String),
    #[error("describe() failed: {0}")]
    Describe(CallError),
    #[error("invalid registration: {0}")]
    Registration(#[from] super::registration::RegistrationError),
    #[error(
        "plugin {plugin} asks for more than it is granted: {} (grant it {})",
        list(missing),
        place.hint(plugin)
    )]
    NotGranted {
        plugin: String,
        missing: Vec<Missing>,
        place: GrantPlace,
    },
}

/// Where the host operator writes a plugin's grant, for the error that
/// says what to add.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantPlace {
    /// `operon run --grants FILE`.
    File,
    /// `spec.grants` of its plugin object.
    Object,
}

impl GrantPlace {
    fn hint(self, plugin: &str) -> String {
        match self {
            GrantPlace::File => format!("in the grants file under plugins.{plugin}"),
            GrantPlace::Object => "in the plugin object's spec.grants".into(),
        }
    }
}

impl LoadError {
    /// A linking or typing failure, which means the component was built
    /// against another world or another version of the contract.
    pub(crate) fn contract(e: &wasmtime::Error) -> LoadError {
        LoadError::Contract(format!("component does not implement {PACKAGE}: {e:#}"))
    }
}

/// Checks the 8-byte header, so that "this is not a component" is said
/// plainly instead of as a parser error deep in wasmtime.
pub(crate) fn check_header(bytes: &[u8]) -> Result<(), LoadError> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(LoadError::NotComponent(
            "the file is not WebAssembly (no \\0asm header)".into(),
        ));
    }
    // Bytes 4..8 are the version and layer: 1,0,0,0 is a core module,
    // 0x0d,0,1,0 a component.
    if bytes[4..8] == [1, 0, 0, 0] {
        return Err(LoadError::NotComponent(
            "this is a core WebAssembly module; build for wasm32-wasip2 or wrap it with \
             `wasm-tools component new`"
                .into(),
        ));
    }
    Ok(())
}

/// Why one call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    /// The plugin answered with an error on purpose.
    #[error("{0}")]
    Plugin(PluginError),
    /// The plugin trapped or hit a limit.
    #[error("trapped: {} ({detail})", reason.describe())]
    Trap { reason: TrapReason, detail: String },
    /// The plugin answered, but the answer is malformed.
    #[error("invalid output: {0}")]
    InvalidOutput(#[from] DecodeError),
}

impl CallError {
    /// Whether the host should retry with backoff.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, CallError::Plugin(PluginError::Permanent(_)))
    }

    /// The failure as a golden case's expected file names it (see
    /// [`case_error`]): `permanent` or `retryable` with the plugin's own
    /// message, else `failed` with the whole error. `operon test` and
    /// `operon plugins record` both say it this way, so a recorded failure
    /// compares equal offline.
    pub fn as_case(&self) -> (&'static str, String) {
        match self {
            CallError::Plugin(PluginError::Permanent(m)) => ("permanent", m.clone()),
            CallError::Plugin(PluginError::Retryable(m)) => ("retryable", m.clone()),
            other => ("failed", other.to_string()),
        }
    }
}

/// A golden case's expected answer for a reconcile that gave none the host
/// would apply: `{"error": {"<kind>": "<message>"}}`.
pub fn case_error(kind: &str, message: &str) -> serde_json::Value {
    serde_json::json!({ "error": { kind: message } })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_check_tells_modules_from_components() {
        let err = check_header(b"hello world").unwrap_err().to_string();
        assert!(err.contains("not WebAssembly"), "{err}");
        let err = check_header(b"\0asm\x01\0\0\0").unwrap_err().to_string();
        assert!(err.contains("core WebAssembly module"), "{err}");
        assert!(check_header(b"\0asm\x0d\0\x01\0").is_ok());
    }
}
