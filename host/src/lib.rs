//! operon: a Kubernetes controller host whose reconcilers are sandboxed
//! WebAssembly components.
//!
//! Data flows one way: an event names a parent, the [`plugin`] computes its
//! desired state inside the [`engine`] (a fresh sandbox per call), and the
//! result is applied to the cluster. The [`contract`] module is the host side
//! of the WIT package in `wit/`, the product's public API.

pub(crate) mod answer_diff;
pub(crate) mod api;
pub mod apply;
pub(crate) mod bounded;
pub mod cli;
pub mod contract;
pub mod crd_schema;
pub mod engine;
pub mod fuzzing;
pub(crate) mod kinds;
pub mod oci;
pub(crate) mod packages;
pub mod plugin;
pub(crate) mod rbac;
pub(crate) mod runtime;
pub(crate) mod server;
pub(crate) mod tls;

pub use runtime::client;
