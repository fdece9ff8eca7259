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

/// What is wrong with a registration, naming the field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RegistrationError {
    #[error("name {0:?} must be a lowercase DNS label (a-z, 0-9, '-', at most 63)")]
    Name(String),
    #[error("{what} needs a version and a kind, got {gvk:?}")]
    Kind { what: String, gvk: Gvk },
    #[error("owns[{index}] is the parent kind {gvk}; a plugin cannot own its parents")]
    OwnsParent { index: usize, gvk: Gvk },
    #[error("crds[{index}] is not valid JSON: {error}")]
    CrdNotJson { index: usize, error: String },
    #[error("crds[{0}] is not a CustomResourceDefinition")]
    NotCrd(usize),
}

fn check_gvk(what: &str, gvk: &Gvk) -> Result<(), RegistrationError> {
    if gvk.version.is_empty() || gvk.kind.is_empty() {
        return Err(RegistrationError::Kind {
            what: what.to_string(),
            gvk: gvk.clone(),
        });
    }
    Ok(())
}

/// The registration is complete and consistent; the error names the field.
pub fn validate(reg: &Registration) -> Result<(), RegistrationError> {
    if !is_dns_label(&reg.name) {
        return Err(RegistrationError::Name(reg.name.clone()));
    }
    check_gvk("parent", &reg.parent.kind)?;
    for (i, gvk) in reg.owns.iter().enumerate() {
        check_gvk(&format!("owns[{i}]"), gvk)?;
        if gvk.same_kind(&reg.parent.kind) {
            return Err(RegistrationError::OwnsParent {
                index: i,
                gvk: gvk.clone(),
            });
        }
    }
    for (i, related) in reg.related.iter().enumerate() {
        check_gvk(&format!("related[{i}]"), &related.kind)?;
    }
    for (i, crd) in reg.crds.iter().enumerate() {
        let value: serde_json::Value =
            serde_json::from_str(crd).map_err(|e| RegistrationError::CrdNotJson {
                index: i,
                error: e.to_string(),
            })?;
        if value.get("kind").and_then(|k| k.as_str()) != Some("CustomResourceDefinition") {
            return Err(RegistrationError::NotCrd(i));
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
