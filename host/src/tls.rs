//! The process's one TLS crypto provider: ring, which kube uses.
//!
//! rustls refuses to pick a provider when two are compiled in (kube with
//! ring, oci-client's default TLS with aws-lc-rs), and panics when a
//! client config is built. oci-client is built without a provider, so ring
//! is the only one; installing it as the process default makes that
//! explicit for every client (kube's, the registry's).

use std::sync::Once;

/// Installs ring as the default provider, once; harmless if one is set.
pub fn install_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
