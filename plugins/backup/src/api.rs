//! The names both backup components use: the API group and kinds, and
//! the annotation through which a restore reaches the postgres plugin.

pub const GROUP: &str = "postgres.operon.dev";
pub const VERSION: &str = "v1alpha1";
pub const BACKUP_KIND: &str = "PostgresBackup";
pub const CLUSTER_API_VERSION: &str = "postgres.operon.dev/v1alpha1";
pub const CLUSTER_KIND: &str = "PostgresCluster";
/// On a PostgresCluster with `bootstrap.fromBackup`: the backup's phase
/// and artifact as JSON, written by the backup plugin and read by the
/// postgres plugin from its own parent, so that plugin needs no grant to
/// read backups (and loads without a grants file).
pub const RESTORE_ANNOTATION: &str = "postgres.operon.dev/restore-source";
