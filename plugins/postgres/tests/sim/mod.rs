//! A small stand-in for the API server and the controllers, for native
//! multi-step tests and for writing the observed fixtures
//! (`cargo run -p postgres --example fixtures`): it "applies" a response
//! (children stored with the fields the API server adds, StatefulSets
//! rolled out, status written back to the parent) so the next reconcile
//! sees what it would see in a cluster.

#![allow(dead_code)]

use std::collections::BTreeMap;

use operon_sdk::{Request, Response};
use postgres::plan::reconcile_at;
use serde_json::{Value, json};

/// 2026-01-01T00:00:00Z: fixtures use a fixed clock.
pub const NOW: i64 = 1_767_225_600;

pub fn key(o: &Value) -> (String, String) {
    (
        o["kind"].as_str().unwrap_or_default().to_string(),
        o["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

/// A parent and its children, as a cluster holds them.
#[derive(Clone)]
pub struct Sim {
    pub parent: Value,
    pub objects: BTreeMap<(String, String), Value>,
    /// Whether StatefulSets become ready as soon as they are applied.
    pub auto_ready: bool,
    /// Whether Jobs succeed as soon as they are applied.
    pub jobs_succeed: bool,
    pub now: i64,
    counter: u64,
}

impl Sim {
    pub fn new(parent: Value) -> Sim {
        Sim {
            parent,
            objects: BTreeMap::new(),
            auto_ready: true,
            jobs_succeed: true,
            now: NOW,
            counter: 100,
        }
    }

    pub fn request(&self) -> Request {
        self.objects
            .values()
            .cloned()
            .fold(Request::new(self.parent.clone()), Request::with_observed)
    }

    pub fn observed(&self) -> Vec<Value> {
        self.objects.values().cloned().collect()
    }

    pub fn reconcile(&self) -> Response {
        let resp = reconcile_at(&self.request(), self.now).expect("reconcile");
        resp.validate().expect("valid response");
        resp
    }

    /// Reconciles and applies the answer; returns it.
    pub fn step(&mut self) -> Response {
        let resp = self.reconcile();
        self.apply(&resp);
        resp
    }

    pub fn get(&self, kind: &str, name: &str) -> Option<&Value> {
        self.objects.get(&(kind.to_string(), name.to_string()))
    }

    pub fn get_mut(&mut self, kind: &str, name: &str) -> Option<&mut Value> {
        self.objects.get_mut(&(kind.to_string(), name.to_string()))
    }

    fn next_rv(&mut self) -> String {
        self.counter += 1;
        self.counter.to_string()
    }

    /// Stores the desired children (pruning the rest) and the status.
    pub fn apply(&mut self, resp: &Response) {
        let parent_name = self.parent["metadata"]["name"].clone();
        let parent_uid = self.parent["metadata"]["uid"].clone();
        let mut next = BTreeMap::new();
        for child in &resp.children {
            let k = key(child);
            let prev = self.objects.get(&k).cloned();
            let mut obj = child.clone();
            let meta = obj["metadata"].as_object_mut().expect("metadata");
            meta.insert(
                "uid".into(),
                json!(format!("uid-{}-{}", k.0.to_lowercase(), k.1)),
            );
            meta.insert("creationTimestamp".into(), json!("2026-01-01T00:00:00Z"));
            let labels = meta.entry("labels").or_insert(json!({}));
            labels["operon.dev/plugin"] = json!("postgres");
            labels["operon.dev/parent"] = parent_name.clone();
            meta.insert(
                "ownerReferences".into(),
                json!([{"apiVersion": "postgres.operon.dev/v1alpha1", "kind": "PostgresCluster",
                        "name": parent_name, "uid": parent_uid, "controller": true, "blockOwnerDeletion": true}]),
            );
            let changed = prev.as_ref().is_none_or(|p| strip(p) != strip(&obj));
            let rv = if changed {
                self.next_rv()
            } else {
                prev.as_ref().unwrap()["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap()
                    .to_string()
            };
            obj["metadata"]["resourceVersion"] = json!(rv);
            match k.0.as_str() {
                "StatefulSet" => self.rollout(&mut obj, prev.as_ref()),
                "Job" => {
                    obj["status"] = prev
                        .as_ref()
                        .map(|p| p["status"].clone())
                        .filter(|s| !s.is_null())
                        .unwrap_or_else(|| {
                            if self.jobs_succeed {
                                json!({"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]})
                            } else {
                                json!({"active": 1})
                            }
                        });
                }
                "PersistentVolumeClaim" => {
                    let size = obj["spec"]["resources"]["requests"]["storage"].clone();
                    obj["spec"]["volumeName"] = json!(format!("pv-{}", k.1));
                    obj["status"] = json!({"phase": "Bound", "accessModes": ["ReadWriteOnce"], "capacity": {"storage": size}});
                }
                "Service" if obj["spec"]["clusterIP"].is_null() => {
                    obj["spec"]["clusterIP"] = json!(format!("10.96.0.{}", self.counter % 250));
                }
                "Deployment" => {
                    let r = obj["spec"]["replicas"].clone();
                    obj["metadata"]["generation"] = json!(1);
                    obj["status"] = json!({"observedGeneration": 1, "replicas": r, "readyReplicas": r, "availableReplicas": r});
                }
                _ => {}
            }
            next.insert(k, obj);
        }
        self.objects = next;
        if let Some(status) = &resp.status {
            let mut s = status.clone();
            s["observedGeneration"] = self.parent["metadata"]["generation"].clone();
            self.parent["status"] = s;
        }
    }

    fn rollout(&mut self, obj: &mut Value, prev: Option<&Value>) {
        let prev_gen = prev
            .and_then(|p| p["metadata"]["generation"].as_i64())
            .unwrap_or(0);
        let spec_changed = prev.is_none_or(|p| p["spec"] != obj["spec"]);
        let generation = if spec_changed { prev_gen + 1 } else { prev_gen };
        obj["metadata"]["generation"] = json!(generation);
        let revision = format!(
            "{}-{}",
            obj["metadata"]["name"].as_str().unwrap(),
            postgres::children::short_hash(&[&obj["spec"]["template"].to_string()])
        );
        let replicas = obj["spec"]["replicas"].as_i64().unwrap_or(1);
        if !spec_changed && let Some(p) = prev {
            obj["status"] = p["status"].clone();
            return;
        }
        obj["status"] = if self.auto_ready {
            json!({"observedGeneration": generation, "replicas": replicas, "readyReplicas": replicas,
                   "currentReplicas": replicas, "updatedReplicas": replicas,
                   "currentRevision": revision, "updateRevision": revision, "availableReplicas": replicas})
        } else {
            json!({"observedGeneration": generation, "replicas": replicas, "readyReplicas": 0,
                   "updatedReplicas": replicas, "currentRevision": revision, "updateRevision": revision})
        };
    }

    /// Marks an instance's StatefulSet ready (or not).
    pub fn set_ready(&mut self, instance: &str, ready: bool) {
        let sts = self.get_mut("StatefulSet", instance).expect("instance");
        sts["status"]["readyReplicas"] = json!(if ready { 1 } else { 0 });
    }

    /// Changes the parent's spec (and its generation, as the API server does).
    pub fn edit(&mut self, f: impl FnOnce(&mut Value)) {
        f(&mut self.parent["spec"]);
        let g = self.parent["metadata"]["generation"].as_i64().unwrap_or(1);
        self.parent["metadata"]["generation"] = json!(g + 1);
    }
}

fn strip(o: &Value) -> Value {
    let mut o = o.clone();
    if let Some(m) = o["metadata"].as_object_mut() {
        m.remove("resourceVersion");
        m.remove("generation");
    }
    if let Some(m) = o.as_object_mut() {
        m.remove("status");
    }
    if o["kind"] == "Service"
        && let Some(s) = o["spec"].as_object_mut()
    {
        s.remove("clusterIP");
    }
    if o["kind"] == "PersistentVolumeClaim"
        && let Some(s) = o["spec"].as_object_mut()
    {
        s.remove("volumeName");
    }
    o
}
