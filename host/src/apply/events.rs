//! Kubernetes events about a parent (`events.k8s.io/v1`), best effort.
//!
//! Why not `kube::runtime::events::Recorder`: it aggregates repeats into an
//! `EventSeries` keyed by type, reason, action, reporter and object — not
//! the note — and keeps the *first* note of a series. operon's failure
//! events say what failed and which attempt this was and when the next one
//! comes (`… (attempt 4; next try in 800ms)`); under the Recorder a parent
//! failing for a new reason would keep showing the first message, and the
//! backoff would no longer be visible in `kubectl describe`. Repeats are
//! already bounded by that backoff (doubling up to `--backoff-max-s`), and
//! each note by [`crate::bounded`]. Should aggregation be wanted, it has to
//! keep the latest note, as client-go's correlator does.

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, PostParams};
use serde_json::Value;

use super::status::truncate;
use super::validate::str_at;
use crate::contract::EventType;
use crate::contract::outcome::DecodedEvent;

/// The longest note the API server accepts.
pub const MAX_NOTE: usize = 1024;

/// An event the host itself records (e.g. `ReconcileError`).
pub fn host_event(type_: EventType, reason: &str, message: impl Into<String>) -> DecodedEvent {
    DecodedEvent {
        type_,
        reason: reason.into(),
        message: message.into(),
    }
}

/// The reporting instance: `$HOSTNAME` (the pod name), else `operon`.
pub fn instance() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "operon".into())
}

/// The Event for `event` about `parent`, in the parent's namespace
/// (`default` for cluster-scoped parents).
pub fn build(
    parent: &Value,
    plugin: &str,
    event: &DecodedEvent,
    instance: &str,
    now: Timestamp,
) -> Event {
    let name = str_at(parent, "/metadata/name").unwrap_or_default();
    let ns = str_at(parent, "/metadata/namespace");
    let s = |p: &str| str_at(parent, p).map(str::to_string);
    Event {
        metadata: ObjectMeta {
            // As client-go names events: `<object>.<unix nanos in hex>`.
            // (`generateName: "<object>."` is refused: a name may not end
            // in a dot.)
            name: Some(format!("{name}.{:x}", now.as_nanosecond())),
            namespace: Some(ns.unwrap_or("default").into()),
            ..ObjectMeta::default()
        },
        regarding: Some(ObjectReference {
            api_version: s("/apiVersion"),
            kind: s("/kind"),
            name: Some(name.into()),
            namespace: ns.map(str::to_string),
            uid: s("/metadata/uid"),
            ..ObjectReference::default()
        }),
        reason: Some(truncate(&event.reason, 128).into()),
        note: Some(crate::bounded::cut(&event.message, MAX_NOTE).into_owned()),
        type_: Some(match event.type_ {
            EventType::Normal => "Normal".into(),
            EventType::Warning => "Warning".into(),
        }),
        action: Some("Reconcile".into()),
        reporting_controller: Some(truncate(&format!("operon.dev/{plugin}"), 128).into()),
        reporting_instance: Some(truncate(instance, 128).into()),
        event_time: Some(MicroTime(now)),
        ..Event::default()
    }
}

/// Records an event about `parent`. Never fails: an error is logged and
/// swallowed (events must not fail a reconcile).
pub async fn record(client: &Client, parent: &Value, plugin: &str, event: &DecodedEvent) {
    let ev = build(parent, plugin, event, &instance(), Timestamp::now());
    let ns = ev.metadata.namespace.clone().unwrap_or_default();
    let api: Api<Event> = Api::namespaced(client.clone(), &ns);
    if let Err(e) = api.create(&PostParams::default(), &ev).await {
        let error = format!("{:#}", crate::api::concise(e));
        tracing::warn!(plugin, reason = %event.reason, error = %crate::bounded::message(&error), "could not record an event");
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn builds_an_event_about_the_parent() {
        let parent = json!({"apiVersion": "cache.operon.dev/v1", "kind": "Memcached",
            "metadata": {"name": "m", "namespace": "demo", "uid": "u-1"}});
        let ev = host_event(EventType::Warning, "ReconcileError", "é".repeat(600));
        let e = build(&parent, "memcached", &ev, "pod-0", Timestamp::UNIX_EPOCH);
        let event_name = e.metadata.name.as_deref().unwrap();
        assert!(
            event_name.starts_with("m.") && event_name.len() > 2,
            "{event_name}"
        );
        assert_eq!(e.metadata.namespace.as_deref(), Some("demo"));
        let r = e.regarding.unwrap();
        assert_eq!(
            (r.kind.as_deref(), r.uid.as_deref()),
            (Some("Memcached"), Some("u-1"))
        );
        let note = e.note.unwrap();
        assert!(note.len() <= 1024 && note.len() > 990, "{}", note.len());
        assert!(note.ends_with("more bytes cut]"), "cut visibly: {note}");
        assert_eq!(e.type_.as_deref(), Some("Warning"));
        assert_eq!(
            e.reporting_controller.as_deref(),
            Some("operon.dev/memcached")
        );
        assert_eq!(e.reporting_instance.as_deref(), Some("pod-0"));
        assert_eq!(e.action.as_deref(), Some("Reconcile"));

        let cluster = json!({"apiVersion": "x/v1", "kind": "Tenant", "metadata": {"name": "t"}});
        let e = build(&cluster, "p", &ev, "pod-0", Timestamp::UNIX_EPOCH);
        assert_eq!(e.metadata.namespace.as_deref(), Some("default"));
        assert_eq!(e.regarding.unwrap().namespace, None);
    }
}
