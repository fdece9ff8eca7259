//! From a watched change to the parent keys it concerns: the parent itself,
//! an owned child's controller reference, or a related object's mapping
//! (label, field, namespace, or the plugin's own `map-related`).

use std::sync::Arc;

use kube::api::DynamicObject;
use serde_json::Value;
use tokio::sync::broadcast;

use super::{Controller, key};
use crate::bounded;
use crate::contract::{RelatedMapping, group_of};
use crate::runtime::cache::Change;
use crate::runtime::queue::Priority;

/// Which of the plugin's kinds a watch serves.
pub(super) enum Route {
    Parent,
    Owned,
    Related(RelatedMapping),
}

impl Controller {
    /// Queues the parents each change of one watch concerns, until the
    /// controller stops (the task is aborted).
    pub(super) async fn route(self: Arc<Self>, mut rx: broadcast::Receiver<Change>, route: Route) {
        loop {
            match rx.recv().await {
                Ok(change) => {
                    let (obj, prio) = match &change {
                        Change::Applied(o, p) => (o, *p),
                        Change::Deleted(o) => (o, Priority::High),
                    };
                    for k in self.keys_for(obj, &route).await {
                        if self.enqueue(&k, prio) {
                            self.metrics.workqueue_adds_total(self.name());
                        }
                    }
                    self.metrics
                        .workqueue_depth(self.name(), self.queue.depth() as i64);
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(
                        plugin = self.name(),
                        missed = n,
                        "fell behind the watch; resyncing"
                    );
                    self.resync(Priority::Low);
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }

    /// Which parents a change concerns.
    async fn keys_for(&self, obj: &DynamicObject, route: &Route) -> Vec<String> {
        let ns = obj.metadata.namespace.as_deref();
        match route {
            Route::Parent => vec![key(ns, obj.metadata.name.as_deref().unwrap_or_default())],
            Route::Owned => {
                let parent = &self.plugin.registration().parent.kind;
                let parent_ns = if self.parent.kind.namespaced {
                    ns
                } else {
                    None
                };
                obj.metadata
                    .owner_references
                    .iter()
                    .flatten()
                    .filter(|o| {
                        o.controller == Some(true)
                            && o.kind == parent.kind
                            && group_of(&o.api_version) == parent.group
                    })
                    .map(|o| key(parent_ns, &o.name))
                    .collect()
            }
            Route::Related(mapping) => self.map_related(obj, mapping).await,
        }
    }

    async fn map_related(&self, obj: &DynamicObject, mapping: &RelatedMapping) -> Vec<String> {
        let ns = obj.metadata.namespace.as_deref();
        match mapping {
            RelatedMapping::Label(label) => obj
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(label))
                .map(|name| vec![key(ns, name)])
                .unwrap_or_default(),
            RelatedMapping::Field(path) => {
                let value = serde_json::to_value(obj).unwrap_or(Value::Null);
                let pointer = format!("/{}", path.replace('.', "/"));
                value
                    .pointer(&pointer)
                    .and_then(Value::as_str)
                    .map(|name| vec![key(ns, name)])
                    .unwrap_or_default()
            }
            RelatedMapping::Namespace => self
                .parent
                .all()
                .iter()
                .filter(|p| p.metadata.namespace.as_deref() == ns)
                .map(|p| key(ns, p.metadata.name.as_deref().unwrap_or_default()))
                .collect(),
            RelatedMapping::Custom => self.map_by_plugin(obj).await,
        }
    }

    /// The plugin's own `map-related`. Its reads are confined as for a
    /// parent in the related object's namespace (the grant decides how far
    /// from it).
    async fn map_by_plugin(&self, obj: &DynamicObject) -> Vec<String> {
        let ns = obj.metadata.namespace.as_deref();
        let value = serde_json::to_value(obj).unwrap_or(Value::Null);
        let mut ctx = self.call_context(&key(ns, obj.metadata.name.as_deref().unwrap_or_default()));
        ctx.namespace = ns.map(str::to_string);
        let _admitted = self.admit().await;
        match self.plugin.map(&value.to_string(), &ctx) {
            Ok(refs) => refs
                .iter()
                .map(|r| key(r.namespace.as_deref(), &r.name))
                .collect(),
            Err(e) => {
                tracing::warn!(plugin = self.name(), error = %bounded::message(&e.to_string()), "map-related failed");
                Vec::new()
            }
        }
    }
}
