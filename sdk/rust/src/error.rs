//! Why a reconcile failed, and why a cluster read failed.

use std::fmt;

/// Why a reconcile failed. The two variants tell the host whether to try
/// again: like controller-runtime's `TerminalError`, a [`Error::Permanent`]
/// error is not retried until the parent changes, so an invalid spec does not
/// burn backoff cycles, while a [`Error::Retryable`] one is retried with
/// per-key exponential backoff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Transient (a dependency not ready, a read that failed): retry later.
    Retryable(String),
    /// The parent cannot be reconciled as it is (e.g. an invalid spec).
    Permanent(String),
}

impl Error {
    /// A transient failure: the host retries with backoff.
    pub fn retryable(message: impl Into<String>) -> Self {
        Error::Retryable(message.into())
    }

    /// A failure that retrying cannot fix: no retry until the parent changes.
    pub fn permanent(message: impl Into<String>) -> Self {
        Error::Permanent(message.into())
    }

    /// The human-readable message, whatever the variant.
    pub fn message(&self) -> &str {
        match self {
            Error::Retryable(m) | Error::Permanent(m) => m,
        }
    }

    /// Whether the host will retry.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Retryable(_))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Retryable(m) => write!(f, "{m} (will retry)"),
            Error::Permanent(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for Error {}

/// Why a read through [`crate::Context`] failed, as the host reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterError {
    /// The plugin was not granted reads of this kind or namespace.
    Forbidden(String),
    /// The kind is not known to the host (not watched, or no such kind).
    UnknownKind(String),
    /// The request was malformed, e.g. a bad label selector.
    Invalid(String),
}

impl fmt::Display for ClusterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClusterError::Forbidden(m) => write!(f, "forbidden: {m}"),
            ClusterError::UnknownKind(m) => write!(f, "unknown kind: {m}"),
            ClusterError::Invalid(m) => write!(f, "invalid read: {m}"),
        }
    }
}

impl std::error::Error for ClusterError {}

/// Lets `?` turn a failed read into a reconcile error.
///
/// An unknown kind can be transient (a CRD installed a moment ago, a watch
/// not started yet), so it is retried. A missing grant or a malformed request
/// does not fix itself by waiting; the host reloads and requeues a plugin when
/// its grants change, so those are permanent.
impl From<ClusterError> for Error {
    fn from(err: ClusterError) -> Self {
        match err {
            ClusterError::UnknownKind(_) => Error::Retryable(err.to_string()),
            ClusterError::Forbidden(_) | ClusterError::Invalid(_) => {
                Error::Permanent(err.to_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_errors_map_to_retry_policy() {
        let e: Error = ClusterError::UnknownKind("x/v1 Foo".into()).into();
        assert!(e.is_retryable());
        let e: Error = ClusterError::Forbidden("v1 Secret".into()).into();
        assert_eq!(e, Error::Permanent("forbidden: v1 Secret".into()));
    }

    #[test]
    fn display_and_message() {
        let e = Error::retryable("db down");
        assert_eq!(e.message(), "db down");
        assert_eq!(e.to_string(), "db down (will retry)");
        assert_eq!(Error::permanent("bad").to_string(), "bad");
    }
}
