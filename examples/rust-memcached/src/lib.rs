//! The classic operator tutorial as an operon reconciler.
//!
//! A `Memcached` (`cache.operon.dev/v1alpha1`) becomes a Deployment of
//! `spec.size` memcached pods and a ClusterIP Service in front of them, both
//! named after the parent. The status reports how many pods are ready and a
//! `Ready` condition. The host applies the children, prunes what is no longer
//! wanted and patches the status; this crate only computes them, so every
//! rule below is unit-tested natively (`cargo test -p rust-memcached`).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, PodSpec, PodTemplateSpec, Service, ServicePort, ServiceSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use operon_sdk::conditions::{Condition, set_condition};
use operon_sdk::{Context, Error, Event, Gvk, Reconciler, Registration, Request, Response};
use serde::{Deserialize, Serialize};

/// The CRD this plugin ships; the host installs it.
pub const CRD: &str = include_str!("../crd.json");

pub const GROUP: &str = "cache.operon.dev";
pub const VERSION: &str = "v1alpha1";
pub const KIND: &str = "Memcached";

/// The port clients use, whatever port the pods listen on.
pub const SERVICE_PORT: i32 = 11211;
const DEFAULT_IMAGE: &str = "memcached:1.6-alpine";
const CONTAINER: &str = "memcached";

/// The parent, as much of it as the reconciler reads.
#[derive(Debug, Deserialize)]
pub struct Memcached {
    pub metadata: ObjectMeta,
    pub spec: MemcachedSpec,
}

/// `spec` of a Memcached. Defaults mirror the CRD's, so a parent that was
/// stored before a default existed still reconciles the same.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemcachedSpec {
    pub size: i32,
    #[serde(default = "default_image")]
    pub image: String,
    #[serde(default = "default_port")]
    pub port: i32,
}

fn default_image() -> String {
    DEFAULT_IMAGE.to_string()
}

fn default_port() -> i32 {
    SERVICE_PORT
}

/// `status` of a Memcached.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MemcachedStatus {
    pub ready_replicas: i32,
    pub conditions: Vec<Condition>,
}

pub struct MemcachedReconciler;

impl Reconciler for MemcachedReconciler {
    fn describe() -> Registration {
        Registration::new(
            "memcached",
            env!("CARGO_PKG_VERSION"),
            Gvk::new(GROUP, VERSION, KIND),
        )
        .owns::<Deployment>()
        .owns::<Service>()
        .crd(CRD)
    }

    fn reconcile(_ctx: &Context, req: Request) -> Result<Response, Error> {
        let parent: Memcached = req.parent()?;
        let spec = &parent.spec;
        if spec.size < 0 {
            // The CRD's `minimum: 0` normally stops this at admission; a
            // parent stored before the CRD was installed can still carry it.
            return Err(Error::permanent(format!(
                "spec.size must be >= 0, got {}",
                spec.size
            )));
        }
        let name = req.name();
        let namespace = req.namespace();

        let observed: Option<Deployment> = req.observed_named(name)?;
        let ready = observed
            .as_ref()
            .and_then(|d| d.status.as_ref())
            .and_then(|s| s.ready_replicas)
            .unwrap_or(0);

        let mut conditions = req.conditions();
        let ready_condition = if ready == spec.size {
            Condition::new(
                "Ready",
                true,
                "AllReplicasReady",
                format!("{ready}/{} replicas ready", spec.size),
            )
        } else {
            Condition::new(
                "Ready",
                false,
                "Progressing",
                format!("{ready}/{} replicas ready", spec.size),
            )
        };
        set_condition(
            &mut conditions,
            ready_condition.with_observed_generation(req.generation()),
        );

        let mut response = Response::new()
            .child(deployment(name, namespace, spec))
            .child(service(name, namespace))
            .status(MemcachedStatus {
                ready_replicas: ready,
                conditions,
            });

        let observed_replicas = observed
            .as_ref()
            .and_then(|d| d.spec.as_ref())
            .and_then(|s| s.replicas);
        if let Some(current) = observed_replicas
            && current != spec.size
        {
            response = response.event(Event::normal(
                "Scaled",
                format!(
                    "Scaling Deployment {name} from {current} to {} replicas",
                    spec.size
                ),
            ));
        }
        Ok(response)
    }
}

operon_sdk::export!(MemcachedReconciler);

/// The labels of every child, and the pod selector.
pub fn labels(name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "app.kubernetes.io/name".to_string(),
            "memcached".to_string(),
        ),
        ("app.kubernetes.io/instance".to_string(), name.to_string()),
    ])
}

fn meta(name: &str, namespace: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: namespace.map(str::to_string),
        labels: Some(labels(name)),
        ..Default::default()
    }
}

/// The desired Deployment.
pub fn deployment(name: &str, namespace: Option<&str>, spec: &MemcachedSpec) -> Deployment {
    let mut args: Vec<String> = ["-m=64", "-o", "modern", "-v"].map(String::from).to_vec();
    if spec.port != SERVICE_PORT {
        args.push(format!("-p={}", spec.port));
    }
    Deployment {
        metadata: meta(name, namespace),
        spec: Some(DeploymentSpec {
            replicas: Some(spec.size),
            selector: LabelSelector {
                match_labels: Some(labels(name)),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(name)),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![Container {
                        name: CONTAINER.to_string(),
                        image: Some(spec.image.clone()),
                        args: Some(args),
                        ports: Some(vec![ContainerPort {
                            name: Some(CONTAINER.to_string()),
                            container_port: spec.port,
                            protocol: Some("TCP".to_string()),
                            ..Default::default()
                        }]),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The desired Service: port 11211, forwarded to the pods' named port.
pub fn service(name: &str, namespace: Option<&str>) -> Service {
    Service {
        metadata: meta(name, namespace),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_string()),
            selector: Some(labels(name)),
            ports: Some(vec![ServicePort {
                name: Some(CONTAINER.to_string()),
                port: SERVICE_PORT,
                target_port: Some(IntOrString::String(CONTAINER.to_string())),
                protocol: Some("TCP".to_string()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}
