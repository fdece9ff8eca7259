//! `operon run --impersonate NS`: each plugin's writes go to the API server
//! as the plugin's own ServiceAccount, so Kubernetes RBAC enforces the
//! plugin's boundary a second time, independently of the host's own checks.
//!
//! Reads (the shared watch caches) stay the host's: one watch per kind
//! serves every plugin, and reads are confined by the grants on every
//! `cluster.get/list`. Writes (children, pruning, patches, status,
//! finalizers, events) carry `Impersonate-User:
//! system:serviceaccount:<NS>:<account>`; the API server adds the
//! ServiceAccount's groups itself. The RBAC objects a cluster admin creates
//! for this are printed by `operon rbac` (see [`crate::rbac`]).

use anyhow::Context as _;

use crate::plugin::Grant;

/// The ServiceAccount a plugin's writes act as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub namespace: String,
    pub name: String,
}

impl Identity {
    /// The account of `plugin`: the grant's `serviceAccount`, else
    /// `operon-plugin-<plugin>`, in `namespace`.
    pub fn for_plugin(namespace: &str, plugin: &str, grant: &Grant) -> Identity {
        Identity {
            namespace: namespace.to_string(),
            name: grant
                .service_account
                .clone()
                .unwrap_or_else(|| default_account(plugin)),
        }
    }

    /// The user name the API server knows the account by.
    pub fn user(&self) -> String {
        format!("system:serviceaccount:{}:{}", self.namespace, self.name)
    }

    /// A client that acts as this account, from the host's own config (the
    /// host must be allowed to impersonate it).
    pub fn client(&self, base: &kube::Config) -> anyhow::Result<kube::Client> {
        let mut config = base.clone();
        config.auth_info.impersonate = Some(self.user());
        config.auth_info.impersonate_groups = None;
        kube::Client::try_from(config)
            .with_context(|| format!("building a client that acts as {}", self.user()))
    }
}

/// `operon-plugin-<plugin>`: prefixed so plugin accounts are easy to find
/// and cannot collide with the namespace's other accounts.
pub fn default_account(plugin: &str) -> String {
    format!("operon-plugin-{plugin}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grant_names_the_account_or_the_plugin_does() {
        let mut grant = Grant::default();
        let id = Identity::for_plugin("operon-system", "memcached", &grant);
        assert_eq!(
            id.user(),
            "system:serviceaccount:operon-system:operon-plugin-memcached"
        );
        grant.service_account = Some("cache-writer".into());
        let id = Identity::for_plugin("operon-system", "memcached", &grant);
        assert_eq!(
            id.user(),
            "system:serviceaccount:operon-system:cache-writer"
        );
    }
}
