//! What a reconcile may ask of the host: cluster reads and logging.
//!
//! In the component, [`Context`] calls the contract's `cluster` and `log`
//! imports; reads are served from the host's watch cache and limited to the
//! kinds the plugin was granted. Natively (unit tests of reconciler logic)
//! there is no host, so a [`Context`] is backed by a
//! [`crate::testing::FakeCluster`] and keeps the log lines for assertions.
//!
//! ```
//! use k8s_openapi::api::core::v1::ConfigMap;
//! use operon_sdk::{info, testing::FakeCluster};
//!
//! let ctx = FakeCluster::new()
//!     .with(serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
//!                              "metadata": {"name": "settings", "namespace": "demo"}}))
//!     .into_context();
//! let cm: Option<ConfigMap> = ctx.get(Some("demo"), "settings").unwrap();
//! info!(ctx, "found settings: {}", cm.is_some());
//! assert_eq!(ctx.logs()[0].message, "found settings: true");
//! ```

use std::cell::RefCell;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::Error;
use crate::decode::decode;
use crate::request::describe_object;
use crate::testing::FakeCluster;

/// Log severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

/// A log line kept by a fake-backed [`Context`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    pub level: LogLevel,
    pub message: String,
}

enum Backend {
    #[cfg(target_arch = "wasm32")]
    Host,
    Fake(FakeCluster),
}

/// Access to the cluster (read-only) and to the host's log, for one
/// reconcile.
pub struct Context {
    backend: Backend,
    logs: RefCell<Vec<LogRecord>>,
}

impl Context {
    /// A context served by an in-memory cluster, for native tests.
    pub fn fake(cluster: FakeCluster) -> Self {
        Context {
            backend: Backend::Fake(cluster),
            logs: RefCell::new(Vec::new()),
        }
    }

    /// The context of a reconcile running in the host.
    #[cfg(target_arch = "wasm32")]
    pub(crate) fn host() -> Self {
        Context {
            backend: Backend::Host,
            logs: RefCell::new(Vec::new()),
        }
    }

    /// One object of a k8s-openapi kind, or none if it does not exist.
    /// `namespace` is none for cluster-scoped kinds.
    pub fn get<T>(&self, namespace: Option<&str>, name: &str) -> Result<Option<T>, Error>
    where
        T: k8s_openapi::Resource + DeserializeOwned,
    {
        self.get_json(T::API_VERSION, T::KIND, namespace, name)?
            .map(|o| decode(&o, &describe_object(&o)))
            .transpose()
    }

    /// Objects of a k8s-openapi kind, optionally in one namespace and
    /// filtered by a label selector (`app=db,tier!=cache`).
    pub fn list<T>(
        &self,
        namespace: Option<&str>,
        label_selector: Option<&str>,
    ) -> Result<Vec<T>, Error>
    where
        T: k8s_openapi::Resource + DeserializeOwned,
    {
        self.list_json(T::API_VERSION, T::KIND, namespace, label_selector)?
            .iter()
            .map(|o| decode(o, &describe_object(o)))
            .collect()
    }

    /// One object of any kind (e.g. a custom resource) as JSON.
    pub fn get_json(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<Value>, Error> {
        match &self.backend {
            #[cfg(target_arch = "wasm32")]
            Backend::Host => host::get(api_version, kind, namespace, name),
            Backend::Fake(cluster) => Ok(cluster.get(api_version, kind, namespace, name)?),
        }
    }

    /// Objects of any kind as JSON, optionally in one namespace and filtered
    /// by a label selector.
    pub fn list_json(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        label_selector: Option<&str>,
    ) -> Result<Vec<Value>, Error> {
        match &self.backend {
            #[cfg(target_arch = "wasm32")]
            Backend::Host => host::list(api_version, kind, namespace, label_selector),
            Backend::Fake(cluster) => {
                Ok(cluster.list(api_version, kind, namespace, label_selector)?)
            }
        }
    }

    /// Logs through the host, tagged with the plugin and the parent. A fake
    /// context keeps the line (see [`Context::logs`]) and prints it to
    /// stderr, which the test harness shows for failing tests.
    pub fn log(&self, level: LogLevel, message: &str) {
        match &self.backend {
            #[cfg(target_arch = "wasm32")]
            Backend::Host => host::log(level, message),
            Backend::Fake(_) => {
                eprintln!("[{level:?}] {message}");
                self.logs.borrow_mut().push(LogRecord {
                    level,
                    message: message.to_string(),
                });
            }
        }
    }

    /// The lines logged through a fake context, oldest first (empty in the
    /// component, where lines go to the host).
    pub fn logs(&self) -> Vec<LogRecord> {
        self.logs.borrow().clone()
    }
}

/// Logs at a level with `format!` arguments: `log!(ctx, LogLevel::Info, "x={}", x)`.
#[macro_export]
macro_rules! log {
    ($ctx:expr, $level:expr, $($arg:tt)+) => {
        $ctx.log($level, &::std::format!($($arg)+))
    };
}

/// `trace!(ctx, "...", args)`: logs at trace level.
#[macro_export]
macro_rules! trace {
    ($ctx:expr, $($arg:tt)+) => { $crate::log!($ctx, $crate::LogLevel::Trace, $($arg)+) };
}

/// `debug!(ctx, "...", args)`: logs at debug level.
#[macro_export]
macro_rules! debug {
    ($ctx:expr, $($arg:tt)+) => { $crate::log!($ctx, $crate::LogLevel::Debug, $($arg)+) };
}

/// `info!(ctx, "...", args)`: logs at info level.
#[macro_export]
macro_rules! info {
    ($ctx:expr, $($arg:tt)+) => { $crate::log!($ctx, $crate::LogLevel::Info, $($arg)+) };
}

/// `warn!(ctx, "...", args)`: logs at warn level.
#[macro_export]
macro_rules! warn {
    ($ctx:expr, $($arg:tt)+) => { $crate::log!($ctx, $crate::LogLevel::Warn, $($arg)+) };
}

/// `error!(ctx, "...", args)`: logs at error level.
#[macro_export]
macro_rules! error {
    ($ctx:expr, $($arg:tt)+) => { $crate::log!($ctx, $crate::LogLevel::Error, $($arg)+) };
}

/// The imports of the contract, reached only in the component: natively the
/// generated stubs would panic, so nothing here is compiled there.
#[cfg(target_arch = "wasm32")]
mod host {
    use serde_json::Value;

    use super::LogLevel;
    use crate::export::bindings::operon::reconciler::{cluster, log as wit_log, types};
    use crate::{ClusterError, Error};

    fn cluster_error(err: types::ClusterError) -> Error {
        match err {
            types::ClusterError::Forbidden(m) => ClusterError::Forbidden(m),
            types::ClusterError::UnknownKind(m) => ClusterError::UnknownKind(m),
            types::ClusterError::Invalid(m) => ClusterError::Invalid(m),
        }
        .into()
    }

    /// The host's cache holds what the API server sent; text that does not
    /// parse is a host fault, worth a retry rather than a stuck parent.
    fn parse(text: &str, api_version: &str, kind: &str) -> Result<Value, Error> {
        serde_json::from_str(text).map_err(|e| {
            Error::Retryable(format!(
                "host returned malformed JSON for {api_version} {kind}: {e}"
            ))
        })
    }

    pub(super) fn get(
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<Value>, Error> {
        cluster::get(api_version, kind, namespace, name)
            .map_err(cluster_error)?
            .map(|text| parse(&text, api_version, kind))
            .transpose()
    }

    pub(super) fn list(
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        label_selector: Option<&str>,
    ) -> Result<Vec<Value>, Error> {
        cluster::list(api_version, kind, namespace, label_selector)
            .map_err(cluster_error)?
            .iter()
            .map(|text| parse(text, api_version, kind))
            .collect()
    }

    pub(super) fn log(level: LogLevel, message: &str) {
        let level = match level {
            LogLevel::Trace => types::LogLevel::Trace,
            LogLevel::Debug => types::LogLevel::Debug,
            LogLevel::Info => types::LogLevel::Info,
            LogLevel::Warn => types::LogLevel::Warn,
            LogLevel::Error => types::LogLevel::Error,
        };
        wit_log::log(level, message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ClusterError;
    use k8s_openapi::api::core::v1::ConfigMap;
    use serde_json::json;

    fn cm(ns: &str, name: &str, app: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": name, "namespace": ns, "labels": {"app": app}}})
    }

    #[test]
    fn typed_and_raw_reads() {
        let ctx = FakeCluster::new()
            .with(cm("a", "one", "db"))
            .with(cm("a", "two", "web"))
            .with(cm("b", "three", "db"))
            .into_context();
        let one: Option<ConfigMap> = ctx.get(Some("a"), "one").unwrap();
        assert!(one.is_some());
        assert!(ctx.get::<ConfigMap>(Some("b"), "one").unwrap().is_none());
        assert_eq!(ctx.list::<ConfigMap>(None, None).unwrap().len(), 3);
        assert_eq!(ctx.list::<ConfigMap>(Some("a"), None).unwrap().len(), 2);
        assert_eq!(
            ctx.list_json("v1", "ConfigMap", None, Some("app=db"))
                .unwrap()
                .len(),
            2
        );
        assert!(
            ctx.get_json("v1", "Secret", Some("a"), "one")
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn denied_kinds_are_forbidden() {
        let ctx = FakeCluster::new().deny("v1", "Secret").into_context();
        let err = ctx.get_json("v1", "Secret", Some("a"), "s").unwrap_err();
        let expected: Error =
            ClusterError::Forbidden("reads of v1 Secret are not granted".into()).into();
        assert_eq!(err, expected);
    }

    #[test]
    fn logs_are_kept() {
        let ctx = FakeCluster::new().into_context();
        crate::warn!(ctx, "{} is {}", "x", 1);
        crate::error!(ctx, "bad");
        assert_eq!(
            ctx.logs(),
            vec![
                LogRecord {
                    level: LogLevel::Warn,
                    message: "x is 1".into()
                },
                LogRecord {
                    level: LogLevel::Error,
                    message: "bad".into()
                },
            ]
        );
    }
}
