//! Semantic checks the CRD schema cannot express.
//!
//! The schema rejects wrong types, unknown enum values and negative counts at
//! admission; what needs more than one field at a time (a data load naming a
//! database the spec does not have, duplicates, a downgrade) is checked here.
//! A spec that fails is reported in status (`Ready=False`, reason and
//! message) and nothing new is applied: a fresh cluster gets no children, an
//! existing one keeps those of its last valid spec.

use std::collections::BTreeSet;

use crate::quantity::parse_quantity;
use crate::spec::{ClusterSpec, Ensure};

/// The majors the plugin knows how to run (the CRD's enum says the same).
pub const SUPPORTED_VERSIONS: [i64; 4] = [15, 16, 17, 18];

/// Parent names are prefixes of Pod names (`<name>-<n>-0`) whose
/// `controller-revision-hash` label must stay within 63 characters.
pub const MAX_NAME_LEN: usize = 40;

/// Settings the plugin owns in postgresql.conf: a user value would break
/// replication, the Services or the probes.
pub const MANAGED_PARAMETERS: [&str; 10] = [
    "port",
    "listen_addresses",
    "wal_level",
    "hot_standby",
    "data_directory",
    "hba_file",
    "ident_file",
    "config_file",
    "primary_conninfo",
    "unix_socket_directories",
];

const HBA_TYPES: [&str; 6] = [
    "local",
    "host",
    "hostssl",
    "hostnossl",
    "hostgssenc",
    "hostnogssenc",
];

/// Role names the plugin manages itself.
pub const RESERVED_USERS: [&str; 2] = ["postgres", "replicator"];

/// Why a spec cannot be reconciled: a machine-readable reason for the
/// `Ready` condition and a message naming the field and the cause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub reason: &'static str,
    pub message: String,
}

fn invalid(message: impl Into<String>) -> Invalid {
    Invalid {
        reason: "InvalidSpec",
        message: message.into(),
    }
}

/// Checks `spec` of the cluster `name`, given the major version it runs
/// now. The checks run in the order of the spec's fields, and the first
/// that fails is the answer.
pub fn validate(name: &str, spec: &ClusterSpec, running: Option<i64>) -> Result<(), Invalid> {
    name_and_version(name, spec, running)?;
    bootstrap(spec)?;
    instances_and_storage(spec)?;
    duplicates("spec.users", spec.users.iter().map(|u| &u.name))?;
    duplicates("spec.databases", spec.databases.iter().map(|d| &d.name))?;
    duplicates("spec.dataLoads", spec.data_loads.iter().map(|d| &d.name))?;
    users_and_databases(spec)?;
    data_loads(spec)?;
    configuration(spec)
}

/// The name leaves room for the children's names; the major is supported,
/// not a downgrade, and the one of the image's tag.
fn name_and_version(name: &str, spec: &ClusterSpec, running: Option<i64>) -> Result<(), Invalid> {
    if name.len() > MAX_NAME_LEN {
        return Err(invalid(format!(
            "metadata.name {name:?} is {} characters long; at most {MAX_NAME_LEN} leave room for the instance, Pod and Job names",
            name.len()
        )));
    }
    if !SUPPORTED_VERSIONS.contains(&spec.version) {
        return Err(invalid(format!(
            "spec.version {} is not supported (supported: {})",
            spec.version,
            join(SUPPORTED_VERSIONS.iter())
        )));
    }
    if let Some(running) = running
        && spec.version < running
    {
        return Err(invalid(format!(
            "spec.version {} is lower than the running major {running}: major downgrades are not possible",
            spec.version
        )));
    }
    if let Some(image) = &spec.image
        && let Some(major) = image_major(image)
        && major != spec.version
    {
        return Err(invalid(format!(
            "spec.image {image:?} is PostgreSQL {major} but spec.version is {}",
            spec.version
        )));
    }
    Ok(())
}

/// `bootstrap.fromBackup` names a backup, and asks for no point in time
/// (which needs WAL archiving).
fn bootstrap(spec: &ClusterSpec) -> Result<(), Invalid> {
    let Some(backup) = &spec.bootstrap.from_backup else {
        return Ok(());
    };
    if backup.backup_name.is_empty() {
        return Err(invalid("spec.bootstrap.fromBackup.backupName is empty"));
    }
    if let Some(pit) = &backup.point_in_time {
        return Err(Invalid {
            reason: "BootstrapNotSupported",
            message: format!(
                "spec.bootstrap.fromBackup.pointInTime ({pit:?}) is not supported yet: point-in-time recovery needs WAL archiving, which the backup plugin does not do; leave it out to restore backup {:?} as it was taken",
                backup.backup_name
            ),
        });
    }
    Ok(())
}

/// A count of instances, and volume sizes that are positive quantities.
fn instances_and_storage(spec: &ClusterSpec) -> Result<(), Invalid> {
    if spec.instances < 0 {
        return Err(invalid(format!(
            "spec.instances must be >= 0, got {}",
            spec.instances
        )));
    }
    for (field, size) in [
        ("spec.storage.size", Some(&spec.storage.size)),
        ("spec.storage.walSize", spec.storage.wal_size.as_ref()),
    ] {
        if let Some(size) = size
            && parse_quantity(size).is_none_or(|b| b <= 0.0)
        {
            return Err(invalid(format!(
                "{field} {size:?} is not a positive quantity (e.g. 10Gi)"
            )));
        }
    }
    Ok(())
}

/// The databases users and data loads may name: the present ones and
/// `postgres` (a set: specs with hundreds of users look each one up).
fn present_databases(spec: &ClusterSpec) -> BTreeSet<&str> {
    spec.databases
        .iter()
        .filter(|d| d.ensure == Ensure::Present)
        .map(|d| d.name.as_str())
        .chain(["postgres"])
        .collect()
}

/// Users and databases need a primary; their names are identifiers and
/// not the plugin's own; what they name exists.
fn users_and_databases(spec: &ClusterSpec) -> Result<(), Invalid> {
    if spec.instances == 0 && (!spec.users.is_empty() || !spec.databases.is_empty()) {
        return Err(invalid(format!(
            "spec.instances is 0 but spec.users/spec.databases list {}: users and databases need a running primary",
            join(
                spec.users
                    .iter()
                    .map(|u| &u.name)
                    .chain(spec.databases.iter().map(|d| &d.name))
            )
        )));
    }
    let databases = present_databases(spec);
    for user in &spec.users {
        check_identifier(&format!("spec.users[{}].name", user.name), &user.name)?;
        if RESERVED_USERS.contains(&user.name.as_str()) {
            return Err(invalid(format!(
                "spec.users: {:?} is managed by the plugin (its Secret is <name>-superuser or <name>-replication)",
                user.name
            )));
        }
        let missing = user
            .databases
            .iter()
            .find(|db| !databases.contains(&db.as_str()));
        if user.ensure == Ensure::Present
            && let Some(db) = missing
        {
            return Err(invalid(format!(
                "spec.users[{}].databases names {db:?}, which is not in spec.databases",
                user.name
            )));
        }
    }
    let present_users: BTreeSet<&str> = spec
        .users
        .iter()
        .filter(|u| u.ensure == Ensure::Present)
        .map(|u| u.name.as_str())
        .collect();
    for db in &spec.databases {
        check_identifier(&format!("spec.databases[{}].name", db.name), &db.name)?;
        if ["postgres", "template0", "template1"].contains(&db.name.as_str()) {
            return Err(invalid(format!(
                "spec.databases: {:?} is a system database",
                db.name
            )));
        }
        if let Some(owner) = &db.owner
            && db.ensure == Ensure::Present
            && owner != "postgres"
            && !present_users.contains(&owner.as_str())
        {
            return Err(invalid(format!(
                "spec.databases[{}].owner {owner:?} is not a present user in spec.users",
                db.name
            )));
        }
    }
    Ok(())
}

/// A data load goes into a present database, and its table definition
/// is a column list (it is spliced into `CREATE TABLE`).
fn data_loads(spec: &ClusterSpec) -> Result<(), Invalid> {
    let databases = present_databases(spec);
    for load in &spec.data_loads {
        if !databases.contains(&load.database.as_str()) {
            return Err(invalid(format!(
                "spec.dataLoads[{}].database {:?} is not in spec.databases",
                load.name, load.database
            )));
        }
        if let Some(def) = &load.table_definition
            && def.contains(';')
        {
            return Err(invalid(format!(
                "spec.dataLoads[{}].tableDefinition must be a column list without ';'",
                load.name
            )));
        }
    }
    Ok(())
}

/// postgresql.conf parameters the plugin does not own, each one line;
/// pg_hba.conf rules; an exporter port apart from PostgreSQL's.
fn configuration(spec: &ClusterSpec) -> Result<(), Invalid> {
    for (key, value) in &spec.postgresql.parameters {
        if MANAGED_PARAMETERS.contains(&key.as_str()) {
            return Err(invalid(format!(
                "spec.postgresql.parameters.{key} is managed by the plugin"
            )));
        }
        if !key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        {
            return Err(invalid(format!(
                "spec.postgresql.parameters: {key:?} is not a parameter name"
            )));
        }
        let text = value.to_string();
        if !(value.is_string() || value.is_number()) || text.contains(['\n', '\r']) {
            return Err(invalid(format!(
                "spec.postgresql.parameters.{key} must be a single-line string or a number"
            )));
        }
    }
    for (i, line) in spec.postgresql.pg_hba.iter().enumerate() {
        let first = line.split_whitespace().next().unwrap_or_default();
        if line.contains(['\n', '\r']) || !HBA_TYPES.contains(&first) {
            return Err(invalid(format!(
                "spec.postgresql.pgHBA[{i}] {line:?} is not a pg_hba.conf rule (one line starting with {})",
                HBA_TYPES.join("|")
            )));
        }
    }
    if spec.monitoring.exporter.enabled && spec.monitoring.exporter.port == crate::POSTGRES_PORT {
        return Err(invalid(
            "spec.monitoring.exporter.port 5432 is the PostgreSQL port",
        ));
    }
    Ok(())
}

/// The major version in an image tag (`postgres:16.4-bookworm` → 16), when
/// the tag starts with one.
pub fn image_major(image: &str) -> Option<i64> {
    let tag = image.rsplit_once(':')?.1;
    if tag.contains('/') {
        return None; // a registry port, not a tag
    }
    let digits: String = tag.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

fn check_identifier(field: &str, name: &str) -> Result<(), Invalid> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "{field}: {name:?} must be a lowercase identifier ([a-z_][a-z0-9_]*, at most 63)"
        )))
    }
}

fn duplicates<'a>(field: &str, names: impl Iterator<Item = &'a String>) -> Result<(), Invalid> {
    let mut seen = BTreeSet::new();
    let mut dup = BTreeSet::new();
    for n in names {
        if !seen.insert(n) {
            dup.insert(n);
        }
    }
    if dup.is_empty() {
        Ok(())
    } else {
        Err(invalid(format!(
            "{field}: duplicate names {}",
            join(dup.iter())
        )))
    }
}

fn join<T: std::fmt::Display>(items: impl Iterator<Item = T>) -> String {
    items.map(|i| i.to_string()).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_majors() {
        assert_eq!(image_major("postgres:16.4"), Some(16));
        assert_eq!(image_major("postgres:17"), Some(17));
        assert_eq!(image_major("registry:5000/postgres"), None);
        assert_eq!(image_major("postgres:latest"), None);
    }
}
