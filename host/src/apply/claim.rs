//! Whose an existing object is, decided before a child is applied onto it.
//!
//! Server-side apply with `force` takes every field it names, whoever set
//! them, and the controller ownerReference the host adds makes the object
//! the parent's child: deleting the parent would then garbage-collect it.
//! So a child is applied only onto an object that does not exist yet or
//! that this parent already controls. An object controlled by another owner
//! is never taken; one that no one controls is adopted only when the
//! plugin's grant says `adopt: true`. Either refusal fails the whole answer
//! before anything of it is applied.
//!
//! # Where the host learns what exists
//!
//! From the shared watch cache of the child's kind (every owned kind is
//! watched), without an API call, when that cache is synced and covers the
//! child's namespace; otherwise with one GET. The cache lags the API server
//! by the watch's latency: an object someone else creates in that instant,
//! under the same name, is the one case left, and Kubernetes offers no
//! create-only form of server-side apply to close it.

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::DynamicObject;

use super::validate::describe;
use crate::contract::Gvk;

/// What the host's caches know of an object.
pub enum Known {
    /// The cache covers it: the object as cached, or `None` when absent.
    Cached(Option<Arc<DynamicObject>>),
    /// The cache cannot tell (not synced, or another namespace): ask the
    /// API server.
    Unknown,
}

/// Where [`super::apply_outcome`] looks objects up before applying.
pub trait Existing: Send + Sync {
    fn known(&self, gvk: &Gvk, namespace: Option<&str>, name: &str) -> Known;
}

/// Who holds an existing object, seen from one parent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// There is no such object: applying creates it.
    Absent,
    /// This parent controls it already.
    Ours,
    /// It exists and no one controls it.
    Unowned,
    /// Another owner controls it: `Kind name (uid …)`.
    Other(String),
}

impl Claim {
    /// The claim on `meta` (the object's metadata, `None` when absent) for
    /// the parent with uid `parent_uid`.
    pub fn of(meta: Option<&ObjectMeta>, parent_uid: &str) -> Claim {
        let Some(meta) = meta else {
            return Claim::Absent;
        };
        let controller = meta
            .owner_references
            .iter()
            .flatten()
            .find(|r| r.controller == Some(true));
        match controller {
            None => Claim::Unowned,
            Some(r) if r.uid == parent_uid => Claim::Ours,
            Some(r) => Claim::Other(format!("{} {} (uid {})", r.kind, r.name, r.uid)),
        }
    }

    /// Why applying onto the object is refused, if it is (`adopt`: the
    /// grant's consent to adopt objects no one controls).
    pub fn refusal(
        &self,
        kind: &str,
        ns: Option<&str>,
        name: &str,
        adopt: bool,
    ) -> Option<Refused> {
        let object = describe(kind, ns, name);
        match self {
            Claim::Absent | Claim::Ours => None,
            Claim::Unowned if adopt => None,
            Claim::Unowned => Some(Refused::Unowned { object }),
            Claim::Other(owner) => Some(Refused::Other {
                object,
                owner: owner.clone(),
            }),
        }
    }
}

/// Why a child is not applied onto an existing object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error(
        "{object} exists and no one controls it; the host adopts an existing object only when \
         the plugin's grant says adopt: true"
    )]
    Unowned { object: String },
    #[error(
        "{object} exists and is controlled by {owner}; the host never takes over another \
         owner's object"
    )]
    Other { object: String, owner: String },
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

    use super::*;

    fn meta(controller: Option<(&str, bool)>) -> ObjectMeta {
        ObjectMeta {
            name: Some("x".into()),
            owner_references: controller.map(|(uid, c)| {
                vec![OwnerReference {
                    api_version: "cache.operon.dev/v1".into(),
                    kind: "Memcached".into(),
                    name: "other".into(),
                    uid: uid.into(),
                    controller: Some(c),
                    block_owner_deletion: None,
                }]
            }),
            ..ObjectMeta::default()
        }
    }

    #[test]
    fn claims_are_told_by_the_controller_reference() {
        assert_eq!(Claim::of(None, "u1"), Claim::Absent);
        assert_eq!(Claim::of(Some(&meta(None)), "u1"), Claim::Unowned);
        // An owner that is not the controller does not claim the object.
        assert_eq!(
            Claim::of(Some(&meta(Some(("u2", false)))), "u1"),
            Claim::Unowned
        );
        assert_eq!(
            Claim::of(Some(&meta(Some(("u1", true)))), "u1"),
            Claim::Ours
        );
        assert_eq!(
            Claim::of(Some(&meta(Some(("u2", true)))), "u1"),
            Claim::Other("Memcached other (uid u2)".into())
        );
    }

    #[test]
    fn refusals_name_the_object_and_the_owner() {
        let other = Claim::Other("Memcached other (uid u2)".into());
        assert_eq!(
            other
                .refusal("ConfigMap", Some("demo"), "x", true)
                .unwrap()
                .to_string(),
            "ConfigMap demo/x exists and is controlled by Memcached other (uid u2); the host \
             never takes over another owner's object"
        );
        let unowned = Claim::Unowned;
        assert!(
            unowned
                .refusal("ConfigMap", Some("demo"), "x", false)
                .unwrap()
                .to_string()
                .contains("adopt: true")
        );
        assert_eq!(unowned.refusal("ConfigMap", Some("demo"), "x", true), None);
        assert_eq!(Claim::Ours.refusal("ConfigMap", None, "x", false), None);
        assert_eq!(Claim::Absent.refusal("ConfigMap", None, "x", false), None);
    }
}
