//! Where the numbers come from: annotations on the cluster's instance
//! Pods.
//!
//! There is no metrics-server to ask, and a plugin has no network: it can
//! only read objects through the host's cache. So the figures live on the
//! objects themselves. An exporter sidecar (or an agent, or a test) writes
//! them on each instance Pod as decimal annotations; the Pod's change
//! wakes the policies that target its cluster. Pods being deleted are
//! left out: their figures describe an instance that is going.
//!
//! | annotation | meaning |
//! |---|---|
//! | `postgres.operon.dev/connections` | client connections now |
//! | `postgres.operon.dev/cpu-millis` | CPU used, millicores |
//! | `postgres.operon.dev/replication-lag-bytes` | a replica's replay lag behind the primary |
//! | `postgres.operon.dev/disk-used-percent` | how full the data volume is, 0–100 |

use std::collections::BTreeMap;

use serde_json::Value;

pub const CONNECTIONS: &str = "postgres.operon.dev/connections";
pub const CPU_MILLIS: &str = "postgres.operon.dev/cpu-millis";
pub const LAG_BYTES: &str = "postgres.operon.dev/replication-lag-bytes";
pub const DISK_USED_PERCENT: &str = "postgres.operon.dev/disk-used-percent";

/// Labels the Postgres plugin puts on instance Pods.
pub const LABEL_CLUSTER: &str = "postgres.operon.dev/cluster";
pub const LABEL_COMPONENT: &str = "postgres.operon.dev/component";
pub const LABEL_ROLE: &str = "postgres.operon.dev/role";

/// The label selector of a cluster's instance Pods when its status has
/// none yet (`status.selector` is the scale subresource's, and the same).
pub fn default_selector(cluster: &str) -> String {
    format!("{LABEL_CLUSTER}={cluster},{LABEL_COMPONENT}=instance")
}

/// One instance Pod as the policy sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    pub pod: String,
    pub primary: bool,
    annotations: BTreeMap<String, String>,
}

/// One figure of one Pod.
#[derive(Debug, Clone, PartialEq)]
pub enum Figure {
    Missing,
    /// Present but not a non-negative decimal; the text as found.
    Malformed(String),
    Value(f64),
}

impl Instance {
    /// The instance of a Pod (JSON as the API server returns it); none for a
    /// Pod being deleted.
    pub fn from_pod(pod: &Value) -> Option<Instance> {
        let meta = &pod["metadata"];
        if !meta["deletionTimestamp"].is_null() {
            return None;
        }
        let annotations = meta["annotations"]
            .as_object()
            .map(|a| {
                a.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        Some(Instance {
            pod: meta["name"].as_str()?.to_string(),
            primary: meta["labels"][LABEL_ROLE] == "primary",
            annotations,
        })
    }

    pub fn figure(&self, annotation: &str) -> Figure {
        match self.annotations.get(annotation) {
            None => Figure::Missing,
            Some(text) => match text.trim().parse::<f64>() {
                Ok(v) if v >= 0.0 && v.is_finite() => Figure::Value(v),
                _ => Figure::Malformed(text.clone()),
            },
        }
    }
}

/// The instances of a list of Pods, sorted by Pod name so that messages
/// and decisions do not depend on the cache's order.
pub fn instances(pods: &[Value]) -> Vec<Instance> {
    let mut all: Vec<Instance> = pods.iter().filter_map(Instance::from_pod).collect();
    all.sort_by(|a, b| a.pod.cmp(&b.pod));
    all
}

/// One figure over all instances: the values found, the Pods without one,
/// and the malformed ones (which count as without, and are named in the
/// status so the exporter can be fixed).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reading {
    pub values: Vec<f64>,
    /// Pods without the annotation.
    pub absent: Vec<String>,
    /// `<pod> has <annotation>="<text>"` for each unreadable figure.
    pub malformed: Vec<String>,
}

impl Reading {
    pub fn of(instances: &[Instance], annotation: &str) -> Reading {
        let mut r = Reading::default();
        for i in instances {
            match i.figure(annotation) {
                Figure::Value(v) => r.values.push(v),
                Figure::Missing => r.absent.push(i.pod.clone()),
                Figure::Malformed(text) => {
                    r.malformed
                        .push(format!("{} has {annotation}={text:?}", i.pod));
                }
            }
        }
        r
    }

    /// Pods that count as without a figure.
    pub fn without(&self) -> usize {
        self.absent.len() + self.malformed.len()
    }

    pub fn max(&self) -> Option<f64> {
        self.values.iter().copied().reduce(f64::max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, role: &str, annotations: Value) -> Value {
        json!({"metadata": {"name": name, "labels": {LABEL_ROLE: role}, "annotations": annotations}})
    }

    #[test]
    fn reads_figures_and_names_the_bad_ones() {
        let mut gone = pod("hippo-9-0", "replica", json!({CONNECTIONS: "99"}));
        gone["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        let pods = [
            pod("hippo-1-0", "replica", json!({CONNECTIONS: "lots"})),
            pod("hippo-0-0", "primary", json!({CONNECTIONS: " 12 "})),
            pod("hippo-2-0", "replica", json!({})),
            gone,
        ];
        let all = instances(&pods);
        assert_eq!(all.len(), 3, "the Pod being deleted is left out");
        assert!(all[0].primary && !all[1].primary);
        let r = Reading::of(&all, CONNECTIONS);
        assert_eq!(r.values, [12.0]);
        assert_eq!(r.absent, ["hippo-2-0"]);
        assert_eq!(r.without(), 2);
        assert_eq!(
            r.malformed,
            ["hippo-1-0 has postgres.operon.dev/connections=\"lots\""]
        );
        assert_eq!(all[0].figure(LAG_BYTES), Figure::Missing);
        let negative = Instance::from_pod(&pod("p", "replica", json!({LAG_BYTES: "-1"}))).unwrap();
        assert_eq!(negative.figure(LAG_BYTES), Figure::Malformed("-1".into()));
    }
}
