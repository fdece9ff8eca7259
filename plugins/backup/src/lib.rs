//! operon's PostgreSQL backups: `PostgresBackup` (one-shot, a Job that
//! dumps or copies a `PostgresCluster`) and `BackupSchedule` (backups on a
//! cron schedule, pruned by retention), in `postgres.operon.dev/v1alpha1`.
//!
//! The contract gives one component one parent kind, so this crate's
//! component (`operon_backup.wasm`) reconciles `PostgresBackup`, and the
//! `operon-backup-schedule` crate's component reconciles `BackupSchedule`
//! with the modules of this crate ([`schedule`] and what it uses),
//! compiled into it by path: a component crate cannot link another
//! component crate, whose exports would clash with its own. README.md
//! describes the design.

pub mod api;
pub mod backup;
pub mod children;
pub mod cron;
pub mod duration;
pub mod retention;
pub mod schedule;
pub mod spec;
pub mod validate;
pub mod zone;

use operon_sdk::{
    Context, Error, Gvk, Reconciler, Registration, RelatedMapping, Request, Response,
};

use api::{BACKUP_KIND, CLUSTER_KIND, GROUP, VERSION};

/// The PostgresBackup CRD; this component ships it.
pub const CRD: &str = include_str!("../crd/postgresbackup.json");

pub struct BackupReconciler;

impl Reconciler for BackupReconciler {
    fn describe() -> Registration {
        let cluster = Gvk::new(GROUP, VERSION, CLUSTER_KIND);
        Registration::new(
            "backup",
            env!("CARGO_PKG_VERSION"),
            Gvk::new(GROUP, VERSION, BACKUP_KIND),
        )
        .owns_kind(Gvk::new("batch", "v1", "Job"))
        .owns_kind(Gvk::new("", "v1", "PersistentVolumeClaim"))
        // A cluster bootstrapping from a backup wakes that backup, which
        // publishes the restore source on it. (Backups waiting for a
        // cluster to be Ready look again on their own.)
        .related(
            cluster.clone(),
            RelatedMapping::Field("spec.bootstrap.fromBackup.backupName".into()),
        )
        // The Job's Pod reports the artifact's size.
        .reads(Gvk::new("", "v1", "Pod"))
        // The restore source annotation on clusters bootstrapping
        // from a backup.
        .patches(cluster)
        .finalizer(true)
        .crd(CRD)
    }

    fn reconcile(ctx: &Context, req: Request) -> Result<Response, Error> {
        backup::reconcile_at(ctx, &req, operon_sdk::time::now_secs())
    }
}

operon_sdk::export!(BackupReconciler);
