//! Test support for operon: a real Kubernetes control plane for integration
//! tests.
//!
//! ```no_run
//! # async fn t() {
//! let env = operon_test_support::TestEnv::new().await;
//! // env.client: kube::Client (cluster admin), env.namespace: a fresh namespace,
//! // env.kubeconfig_path: the admin kubeconfig. The namespace is deleted on drop.
//! # }
//! ```
//!
//! Which cluster is used, first match wins:
//! 1. `OPERON_TEST_KUBECONFIG=<path>`: an already running cluster
//!    (`cargo xtask test` starts one and sets this);
//! 2. `KUBECONFIG`, only if `OPERON_TEST_USE_KUBECONFIG=1`;
//! 3. otherwise the first `TestEnv` in a test binary starts a private control
//!    plane (built from `tests/controlplane`, cached in `~/.cache/operon`),
//!    shared by all tests of that binary and stopped when the binary exits
//!    (a watchdog also stops it if the binary is killed).
//!
//! Set `OPERON_TEST_KEEP_NAMESPACES=1` to keep test namespaces for debugging.

pub mod controlplane;
pub mod image;
pub mod toxiproxy;

#[cfg(feature = "client")]
mod env;

#[cfg(feature = "client")]
pub use env::{TestEnv, client_for, shared_kubeconfig, wait_until};
