//! operon's PostgreSQL plugin: a `PostgresCluster` (`postgres.operon.dev/
//! v1alpha1`) becomes a replicated PostgreSQL cluster.
//!
//! Every reconcile recomputes the whole cluster from the spec, the observed
//! children and the previous status (the plugin's only memory): one
//! StatefulSet of one Pod per instance with its PVCs, the Services, Secrets,
//! the configuration, a PodDisruptionBudget, the SQL and data-load Jobs and
//! the optional PgBouncer pooler. Day-2 operations are decisions in
//! [`plan`]: which instances exist, which is primary, which one may restart
//! next, which step of a major upgrade comes next. README.md describes the
//! design and its failure modes.

pub mod children;
pub mod conf;
pub mod password;
pub mod plan;
pub mod quantity;
pub mod restore;
pub mod spec;
pub mod sql;
pub mod validate;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use operon_sdk::{Context, Error, Gvk, Reconciler, Registration, Request, Response};

/// The CRD this plugin ships; the host installs it.
pub const CRD: &str = include_str!("../crd.json");

pub const GROUP: &str = "postgres.operon.dev";
pub const VERSION: &str = "v1alpha1";
pub const KIND: &str = "PostgresCluster";
pub const POSTGRES_PORT: i32 = 5432;

pub struct PostgresReconciler;

impl Reconciler for PostgresReconciler {
    fn describe() -> Registration {
        Registration::new(
            "postgres",
            env!("CARGO_PKG_VERSION"),
            Gvk::new(GROUP, VERSION, KIND),
        )
        .owns::<StatefulSet>()
        .owns::<PersistentVolumeClaim>()
        .owns::<Service>()
        .owns::<Secret>()
        .owns::<ConfigMap>()
        .owns::<PodDisruptionBudget>()
        .owns::<Job>()
        .owns::<Deployment>()
        .crd(CRD)
    }

    fn reconcile(_ctx: &Context, req: Request) -> Result<Response, Error> {
        plan::reconcile_at(&req, operon_sdk::time::now_secs())
    }
}

operon_sdk::export!(PostgresReconciler);
