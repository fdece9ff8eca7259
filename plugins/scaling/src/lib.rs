//! operon's scaling plugin: a `PostgresScalingPolicy`
//! (`postgres.operon.dev/v1alpha1`) sets the instances and grows the
//! storage of one `PostgresCluster` from figures its instance Pods carry.
//!
//! The plugin owns nothing. It reads the target cluster and its Pods
//! through the contract's `cluster` import and, in `Enforce` mode, changes
//! the cluster through patches the host operator grants explicitly: the
//! scale subresource for instances, a merge patch of `spec.storage.size`
//! for storage. It never talks to the Postgres plugin: the two compose
//! through the API server only. Between reconciles its memory is the
//! policy's status (last scale time, recent recommendations), so every
//! decision is a pure function of the policy, the cluster, the Pods and
//! the time ([`plan::reconcile_at`]). README.md documents the inputs.

pub mod figures;
pub mod history;
pub mod plan;
pub mod policy;
pub mod quantity;
pub mod replicas;
pub mod status;
pub mod storage;
pub mod validate;

use operon_sdk::{
    Context, Error, Gvk, ObjectRef, Reconciler, Registration, RelatedMapping, Request, Response,
};
use serde_json::Value;

/// The CRD this plugin ships; the host installs it.
pub const CRD: &str = include_str!("../crd.json");

pub const GROUP: &str = "postgres.operon.dev";
pub const VERSION: &str = "v1alpha1";
pub const API_VERSION: &str = "postgres.operon.dev/v1alpha1";
pub const KIND: &str = "PostgresScalingPolicy";
/// The kind a policy scales (the Postgres plugin's).
pub const CLUSTER_KIND: &str = "PostgresCluster";

pub struct ScalingReconciler;

impl Reconciler for ScalingReconciler {
    fn describe() -> Registration {
        let cluster = Gvk::new(GROUP, VERSION, CLUSTER_KIND);
        let pod = Gvk::new("", "v1", "Pod");
        Registration::new(
            "scaling",
            env!("CARGO_PKG_VERSION"),
            Gvk::new(GROUP, VERSION, KIND),
        )
        // A cluster's change (its instances, its storage, its status)
        // and a Pod's new figures both concern the policies targeting
        // that cluster; only the plugin knows which those are.
        .related(cluster.clone(), RelatedMapping::Custom)
        .related(pod.clone(), RelatedMapping::Custom)
        .reads(cluster.clone())
        .reads(pod)
        .patches(cluster)
        .crd(CRD)
    }

    fn reconcile(ctx: &Context, req: Request) -> Result<Response, Error> {
        plan::reconcile_at(ctx, &req, operon_sdk::time::now_secs())
    }

    fn map_related(ctx: &Context, related: &Value) -> Vec<ObjectRef> {
        policies_for(ctx, related)
    }
}

/// The policies in the related object's namespace whose `targetRef` names
/// its cluster: the cluster itself, or the cluster an instance Pod belongs
/// to (other Pods, e.g. Jobs', carry no figures and concern none). A read
/// failure maps to none: the next change or requeue brings the policy
/// round anyway.
pub fn policies_for(ctx: &Context, related: &Value) -> Vec<ObjectRef> {
    let meta = &related["metadata"];
    let cluster = match related["kind"].as_str() {
        Some(CLUSTER_KIND) => meta["name"].as_str(),
        Some("Pod") if meta["labels"][figures::LABEL_COMPONENT] == "instance" => {
            meta["labels"][figures::LABEL_CLUSTER].as_str()
        }
        _ => None,
    };
    let (Some(cluster), Some(ns)) = (cluster, meta["namespace"].as_str()) else {
        return Vec::new();
    };
    let Ok(policies) = ctx.list_json(API_VERSION, KIND, Some(ns), None) else {
        return Vec::new();
    };
    policies
        .iter()
        .filter(|p| p["spec"]["targetRef"]["name"].as_str() == Some(cluster))
        .filter_map(ObjectRef::from_object)
        .collect()
}

operon_sdk::export!(ScalingReconciler);
