//! Checks the CRD schemas cannot express, with messages naming the field.
//!
//! A refused backup makes nothing and says why in `Ready=False` (reason
//! `InvalidSpec`); a refused schedule makes no new backups. The schedule
//! checks its template with the same rules as a backup, so a bad template
//! is refused once on the schedule rather than by every backup it would
//! have made.

use jiff::tz::TimeZone;

use crate::cron::Cron;
use crate::duration::parse_duration;
use crate::spec::{BackupSpec, Method, ScheduleSpec};
use crate::zone::parse_zone;

/// Names in Kubernetes object names: `<backup>-backup`, `<schedule>-<slot>`.
pub const MAX_NAME_LEN: usize = 52;

/// A backup's spec; `field` prefixes the messages (`spec` or
/// `spec.backupTemplate`).
pub fn backup(field: &str, spec: &BackupSpec) -> Result<(), String> {
    if spec.cluster_ref.name.is_empty() {
        return Err(format!(
            "{field}.clusterRef.name is missing: name the PostgresCluster to back up"
        ));
    }
    for db in &spec.databases {
        let ok = !db.is_empty()
            && db.len() <= 63
            && db
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !ok {
            return Err(format!(
                "{field}.databases: {db:?} is not a database name ([A-Za-z0-9_-], at most 63)"
            ));
        }
    }
    if spec.method != Method::Dump && !spec.databases.is_empty() {
        return Err(format!(
            "{field}.databases is for method dump only; {} copies every database",
            spec.method.as_str()
        ));
    }
    let t = &spec.target;
    match (&t.claim_name, &t.claim_template) {
        (None, None) => {
            return Err(format!(
                "{field}.target needs claimName (an existing PersistentVolumeClaim) or claimTemplate"
            ));
        }
        (Some(_), Some(_)) => {
            return Err(format!(
                "{field}.target has both claimName and claimTemplate: choose one"
            ));
        }
        (Some(c), None) if c.is_empty() => {
            return Err(format!("{field}.target.claimName is empty"));
        }
        (None, Some(tpl)) if !is_quantity(&tpl.size) => {
            return Err(format!(
                "{field}.target.claimTemplate.size {:?} is not a quantity (e.g. 10Gi)",
                tpl.size
            ));
        }
        _ => {}
    }
    let path_ok = !t.path.is_empty()
        && !t.path.starts_with('/')
        && t.path
            .split('/')
            .all(|p| !p.is_empty() && p != "." && p != "..")
        && t.path
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c));
    if !path_ok {
        return Err(format!(
            "{field}.target.path {:?} must be a relative directory without '..' ([A-Za-z0-9-_./])",
            t.path
        ));
    }
    if let Some(ttl) = &spec.ttl
        && parse_duration(ttl).is_none()
    {
        return Err(format!(
            "{field}.ttl {ttl:?} is not a duration (e.g. 7d, 12h, 1h30m)"
        ));
    }
    if spec.active_deadline_seconds.is_some_and(|s| s <= 0) {
        return Err(format!("{field}.activeDeadlineSeconds must be positive"));
    }
    if spec.backoff_limit < 0 {
        return Err(format!("{field}.backoffLimit must be >= 0"));
    }
    Ok(())
}

/// A schedule's spec with its template already decoded (`template`).
pub fn schedule(spec: &ScheduleSpec, template: &BackupSpec) -> Result<(Cron, TimeZone), String> {
    let cron = Cron::parse(&spec.schedule)
        .map_err(|e| format!("spec.schedule {:?}: {e}", spec.schedule))?;
    let zone = parse_zone(&spec.time_zone).map_err(|e| format!("spec.timeZone: {e}"))?;
    if spec.starting_deadline_seconds <= 0 {
        return Err("spec.startingDeadlineSeconds must be positive".into());
    }
    let r = &spec.retention;
    for (name, value) in [
        ("keepLast", r.keep_last),
        ("keepDaily", r.keep_daily),
        ("keepWeekly", r.keep_weekly),
    ] {
        if value.is_some_and(|v| v < 1) {
            return Err(format!(
                "spec.retention.{name} must be at least 1 (leave it out to not use it)"
            ));
        }
    }
    if let Some(age) = &r.max_age
        && parse_duration(age).is_none()
    {
        return Err(format!(
            "spec.retention.maxAge {age:?} is not a duration (e.g. 30d)"
        ));
    }
    backup("spec.backupTemplate", template)?;
    if template.cluster_ref.name != spec.cluster_ref.name {
        return Err(format!(
            "spec.backupTemplate.clusterRef.name {:?} differs from spec.clusterRef.name {:?}: leave it out",
            template.cluster_ref.name, spec.cluster_ref.name
        ));
    }
    Ok((cron, zone))
}

/// `10Gi`, `500M`, `1.5Ti`, `1073741824`: a positive Kubernetes quantity.
fn is_quantity(q: &str) -> bool {
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    let suffixes = [
        "", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei",
    ];
    number.parse::<f64>().is_ok_and(|n| n > 0.0) && suffixes.contains(&suffix)
}
