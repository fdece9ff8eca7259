//! Conditions on the host's own objects, set the way `metav1.Condition`
//! expects: one per type, `lastTransitionTime` kept while the status holds.

use super::types::Condition;

/// The condition types of plugins and revisions.
pub mod kind {
    /// Plugin: its source names an artifact (the tag resolved).
    pub const RESOLVED: &str = "Resolved";
    /// Plugin: a revision serves.
    pub const READY: &str = "Ready";
    /// Plugin and revision: the active revision passed its probation.
    pub const HEALTHY: &str = "Healthy";
    /// Revision: the artifact was pulled and checked.
    pub const FETCHED: &str = "Fetched";
    /// Revision: its signature verified (or none was asked for).
    pub const VERIFIED: &str = "Verified";
    /// Revision: compiled, described and checked against its grants.
    pub const COMPILED: &str = "Compiled";
    /// Revision: it serves now.
    pub const ACTIVE: &str = "Active";
}

/// Sets condition `type_` to `ok` (`None`: Unknown) with `reason` and
/// `message`; the transition time changes only with the status.
pub fn set(
    conditions: &mut Vec<Condition>,
    type_: &str,
    ok: Option<bool>,
    reason: &str,
    message: impl Into<String>,
) {
    let status = match ok {
        Some(true) => "True",
        Some(false) => "False",
        None => "Unknown",
    };
    let message = crate::bounded::message(&message.into()).into_owned();
    let now = crate::apply::status::now();
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(c) => {
            if c.status != status {
                c.last_transition_time = now;
            }
            c.status = status.into();
            c.reason = reason.into();
            c.message = message;
        }
        None => conditions.push(Condition {
            type_: type_.into(),
            status: status.into(),
            reason: reason.into(),
            message,
            last_transition_time: now,
        }),
    }
}

/// Whether condition `type_` is `True`.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == type_ && c.status == "True")
}

/// Whether condition `type_` is there at all.
pub fn has(conditions: &[Condition], type_: &str) -> bool {
    conditions.iter().any(|c| c.type_ == type_)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_condition_per_type_and_the_time_of_its_last_change() {
        let mut cs = Vec::new();
        set(
            &mut cs,
            kind::READY,
            Some(false),
            "Waiting",
            "no revision yet",
        );
        let first = cs[0].last_transition_time.clone();
        cs[0].last_transition_time = "2020-01-01T00:00:00Z".into();
        set(&mut cs, kind::READY, Some(false), "Waiting", "still");
        assert_eq!(cs.len(), 1);
        assert_eq!(cs[0].last_transition_time, "2020-01-01T00:00:00Z");
        set(
            &mut cs,
            kind::READY,
            Some(true),
            "Active",
            "revision 1 serves",
        );
        assert_ne!(cs[0].last_transition_time, "2020-01-01T00:00:00Z");
        assert!(!first.is_empty());
        assert!(is_true(&cs, kind::READY) && has(&cs, kind::READY) && !has(&cs, kind::HEALTHY));
    }
}
