//! Kubernetes kinds known only at run time: plugins name them in
//! `describe()`, and the host resolves each through discovery once
//! (plural, scope) and remembers it.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use anyhow::Context as _;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::discovery::{self, Scope};

use crate::contract::Gvk;

/// A resolved kind: how to address it in the API.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub gvk: Gvk,
    pub resource: ApiResource,
    pub namespaced: bool,
}

type Cache = RwLock<HashMap<(String, String, String), Resolved>>;

/// Resolves and remembers kinds, and addresses them through one client.
pub struct Kinds {
    client: Client,
    cache: Arc<Cache>,
}

impl Kinds {
    pub fn new(client: Client) -> Kinds {
        Kinds {
            client,
            cache: Arc::default(),
        }
    }

    /// The same resolved kinds addressed through another client: with
    /// `--impersonate` each plugin writes through a client that acts as its
    /// ServiceAccount, while discovery is done once for all.
    pub fn with_client(&self, client: Client) -> Kinds {
        Kinds {
            client,
            cache: self.cache.clone(),
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Resolves a kind through discovery (cached after the first time).
    /// Fails with the kind's name when the API server does not serve it,
    /// e.g. a CRD that is not installed.
    pub async fn resolve(&self, gvk: &Gvk) -> anyhow::Result<Resolved> {
        let key = (gvk.group.clone(), gvk.version.clone(), gvk.kind.clone());
        if let Some(found) = self
            .cache
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Ok(found.clone());
        }
        let kube_gvk = kube::api::GroupVersionKind::gvk(&gvk.group, &gvk.version, &gvk.kind);
        let (resource, caps) = discovery::pinned_kind(&self.client, &kube_gvk)
            .await
            .map_err(crate::api::concise)
            .with_context(|| format!("the API server does not serve kind {gvk}"))?;
        let resolved = Resolved {
            gvk: gvk.clone(),
            resource,
            namespaced: caps.scope == Scope::Namespaced,
        };
        self.cache
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, resolved.clone());
        Ok(resolved)
    }

    /// A resolved kind from the cache only (no API call), for hot paths.
    pub fn cached(&self, gvk: &Gvk) -> Option<Resolved> {
        let key = (gvk.group.clone(), gvk.version.clone(), gvk.kind.clone());
        self.cache
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .cloned()
    }

    /// An `Api` for a resolved kind: namespaced kinds in `namespace`
    /// (all namespaces when `None`), cluster-scoped kinds cluster-wide.
    pub fn api(&self, kind: &Resolved, namespace: Option<&str>) -> Api<DynamicObject> {
        match (kind.namespaced, namespace) {
            (true, Some(ns)) => Api::namespaced_with(self.client.clone(), ns, &kind.resource),
            _ => Api::all_with(self.client.clone(), &kind.resource),
        }
    }
}
