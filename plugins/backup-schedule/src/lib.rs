//! The `BackupSchedule` component of operon's backup plugin.
//!
//! The contract gives a component one parent kind, so schedules are their
//! own component beside `operon-backup` (PostgresBackup). Their logic is
//! the backup crate's `schedule` module and what it uses, compiled here
//! from the same files: depending on `operon-backup` would link its
//! component exports into this one, and two `describe` exports clash.
//! Tests of this logic run natively in `plugins/backup`.

#[path = "../../backup/src/api.rs"]
pub mod api;
#[path = "../../backup/src/cron.rs"]
pub mod cron;
#[path = "../../backup/src/duration.rs"]
pub mod duration;
#[path = "../../backup/src/retention.rs"]
pub mod retention;
#[path = "../../backup/src/schedule.rs"]
pub mod schedule;
#[path = "../../backup/src/spec.rs"]
pub mod spec;
#[path = "../../backup/src/validate.rs"]
pub mod validate;
#[path = "../../backup/src/zone.rs"]
pub mod zone;

operon_sdk::export!(schedule::ScheduleReconciler);
