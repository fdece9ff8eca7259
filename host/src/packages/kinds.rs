//! What the package controller needs of each kind of plugin object, so one
//! reconcile serves `ClusterReconcilerPlugin` (cluster-scoped, its
//! revisions cluster-scoped) and `ReconcilerPlugin` (a tenant's, its
//! revisions in its namespace).

use std::fmt::Debug;

use kube::{Api, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::def::Def;
use super::types::{
    ClusterReconcilerPlugin, ClusterReconcilerPluginRevision, ClusterReconcilerPluginRevisionSpec,
    PluginStatus, ReconcilerPlugin, ReconcilerPluginPolicy, ReconcilerPluginRevision,
    ReconcilerPluginRevisionSpec, RevisionSpec, RevisionStatus,
};

/// A kind of plugin object and its revision kind.
pub trait PluginKind:
    Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + Debug + Send + Sync + 'static
{
    type Revision: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + Serialize
        + Debug
        + Send
        + Sync
        + 'static;

    /// Whether it is a tenant's (its policies must be read first).
    const TENANT: bool;

    fn def(&self, host_namespace: Option<&str>, policies: &[ReconcilerPluginPolicy]) -> Def;
    fn plugin_status(&self) -> Option<&PluginStatus>;
    fn api(client: kube::Client, namespace: Option<&str>) -> Api<Self>;
    fn revisions(client: kube::Client, namespace: Option<&str>) -> Api<Self::Revision>;
    fn new_revision(name: &str, spec: RevisionSpec) -> Self::Revision;
    fn revision_spec(r: &Self::Revision) -> &RevisionSpec;
    fn revision_status(r: &Self::Revision) -> Option<&RevisionStatus>;
}

impl PluginKind for ClusterReconcilerPlugin {
    type Revision = ClusterReconcilerPluginRevision;
    const TENANT: bool = false;

    fn def(&self, host_namespace: Option<&str>, _: &[ReconcilerPluginPolicy]) -> Def {
        Def::cluster(self, host_namespace)
    }
    fn plugin_status(&self) -> Option<&PluginStatus> {
        self.status.as_ref()
    }
    fn api(client: kube::Client, _: Option<&str>) -> Api<Self> {
        Api::all(client)
    }
    fn revisions(client: kube::Client, _: Option<&str>) -> Api<Self::Revision> {
        Api::all(client)
    }
    fn new_revision(name: &str, spec: RevisionSpec) -> Self::Revision {
        ClusterReconcilerPluginRevision::new(
            name,
            ClusterReconcilerPluginRevisionSpec { revision: spec },
        )
    }
    fn revision_spec(r: &Self::Revision) -> &RevisionSpec {
        &r.spec.revision
    }
    fn revision_status(r: &Self::Revision) -> Option<&RevisionStatus> {
        r.status.as_ref()
    }
}

impl PluginKind for ReconcilerPlugin {
    type Revision = ReconcilerPluginRevision;
    const TENANT: bool = true;

    fn def(&self, _: Option<&str>, policies: &[ReconcilerPluginPolicy]) -> Def {
        Def::tenant(self, policies)
    }
    fn plugin_status(&self) -> Option<&PluginStatus> {
        self.status.as_ref()
    }
    fn api(client: kube::Client, namespace: Option<&str>) -> Api<Self> {
        match namespace {
            Some(ns) => Api::namespaced(client, ns),
            None => Api::all(client),
        }
    }
    fn revisions(client: kube::Client, namespace: Option<&str>) -> Api<Self::Revision> {
        match namespace {
            Some(ns) => Api::namespaced(client, ns),
            None => Api::all(client),
        }
    }
    fn new_revision(name: &str, spec: RevisionSpec) -> Self::Revision {
        ReconcilerPluginRevision::new(name, ReconcilerPluginRevisionSpec { revision: spec })
    }
    fn revision_spec(r: &Self::Revision) -> &RevisionSpec {
        &r.spec.revision
    }
    fn revision_status(r: &Self::Revision) -> Option<&RevisionStatus> {
        r.status.as_ref()
    }
}
