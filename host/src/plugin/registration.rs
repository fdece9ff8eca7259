//! Checks of what `describe()` answered, before the host relies on it.

use crate::contract::{Gvk, Registration};

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn check_gvk(what: &str, gvk: &Gvk) -> Result<(), String> {
    if gvk.version.is_empty() || gvk.kind.is_empty() {
        return Err(format!("{what} needs a version and a kind, got {gvk:?}"));
    }
    Ok(())
}

/// The registration is complete and consistent; the error names the field.
pub fn validate(reg: &Registration) -> Result<(), String> {
    if !is_dns_label(&reg.name) {
        return Err(format!(
            "name {:?} must be a lowercase DNS label (a-z, 0-9, '-', at most 63)",
            reg.name
        ));
    }
    check_gvk("parent", &reg.parent.kind)?;
    for (i, gvk) in reg.owns.iter().enumerate() {
        check_gvk(&format!("owns[{i}]"), gvk)?;
        if gvk.same_kind(&reg.parent.kind) {
            return Err(format!(
                "owns[{i}] is the parent kind {gvk}; a plugin cannot own its parents"
            ));
        }
    }
    for (i, related) in reg.related.iter().enumerate() {
        check_gvk(&format!("related[{i}]"), &related.kind)?;
    }
    for (i, crd) in reg.crds.iter().enumerate() {
        let value: serde_json::Value =
            serde_json::from_str(crd).map_err(|e| format!("crds[{i}] is not valid JSON: {e}"))?;
        if value.get("kind").and_then(|k| k.as_str()) != Some("CustomResourceDefinition") {
            return Err(format!("crds[{i}] is not a CustomResourceDefinition"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels() {
        assert!(is_dns_label("memcached"));
        assert!(is_dns_label("pg-backup2"));
        for bad in ["", "Memcached", "-a", "a-", "a_b", &"x".repeat(64)] {
            assert!(!is_dns_label(bad), "{bad}");
        }
    }
}
