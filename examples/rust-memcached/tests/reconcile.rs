//! The reconciler's rules, checked natively against the fixtures that
//! `operon reconcile` also uses.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use operon_sdk::conditions::find_condition;
use operon_sdk::testing::FakeCluster;
use operon_sdk::{ConditionStatus, Error, EventType, Gvk, Reconciler, Request, Response};
use rust_memcached::{MemcachedReconciler, MemcachedStatus, labels};
use serde_json::{Value, json};

fn fixture(name: &str) -> Vec<Value> {
    let path = format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_saphyr::from_multiple(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn parent() -> Value {
    fixture("parent.yaml").remove(0)
}

fn request(parent: Value, observed: Vec<Value>) -> Request {
    observed
        .into_iter()
        .fold(Request::new(parent), Request::with_observed)
}

fn reconcile(req: Request) -> Result<Response, Error> {
    let ctx = FakeCluster::new().into_context();
    MemcachedReconciler::reconcile(&ctx, req)
}

fn fixtures_response() -> Response {
    let resp = reconcile(request(parent(), fixture("observed.yaml"))).expect("reconcile");
    resp.validate().expect("valid response");
    resp
}

fn status(resp: &Response) -> MemcachedStatus {
    resp.status_as()
        .expect("status parses")
        .expect("status set")
}

fn observed_deployment(ready: Option<i32>, replicas: i32) -> Value {
    let mut d = fixture("observed.yaml").remove(0);
    d["spec"]["replicas"] = json!(replicas);
    match ready {
        Some(r) => d["status"]["readyReplicas"] = json!(r),
        None => {
            d["status"]
                .as_object_mut()
                .map(|s| s.remove("readyReplicas"));
        }
    }
    d
}

#[test]
fn desired_children() {
    let resp = fixtures_response();
    assert_eq!(resp.children.len(), 2);

    let d: Deployment = resp.child_of("example").unwrap().expect("deployment");
    assert_eq!(d.metadata.namespace.as_deref(), Some("demo"));
    assert_eq!(d.metadata.labels, Some(labels("example")));
    let spec = d.spec.expect("deployment spec");
    assert_eq!(spec.replicas, Some(3));
    assert_eq!(spec.selector.match_labels, Some(labels("example")));
    let pod = spec.template.spec.expect("pod spec");
    assert_eq!(
        spec.template.metadata.and_then(|m| m.labels),
        Some(labels("example"))
    );
    let c = &pod.containers[0];
    assert_eq!(c.name, "memcached");
    assert_eq!(c.image.as_deref(), Some("memcached:1.6-alpine"));
    assert_eq!(
        c.args.as_deref(),
        Some(&["-m=64", "-o", "modern", "-v"].map(String::from)[..])
    );
    let port = &c.ports.as_ref().expect("ports")[0];
    assert_eq!(
        (port.name.as_deref(), port.container_port),
        (Some("memcached"), 11211)
    );

    let s: Service = resp.child_of("example").unwrap().expect("service");
    assert_eq!(s.metadata.namespace.as_deref(), Some("demo"));
    let spec = s.spec.expect("service spec");
    assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
    assert_eq!(spec.selector, Some(labels("example")));
    let port = &spec.ports.expect("ports")[0];
    assert_eq!(port.port, 11211);
    assert_eq!(
        port.target_port,
        Some(IntOrString::String("memcached".into()))
    );
}

#[test]
fn children_carry_kind_and_no_server_fields() {
    let resp = fixtures_response();
    let kinds: Vec<_> = resp
        .children
        .iter()
        .map(|c| (c["apiVersion"].clone(), c["kind"].clone()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (json!("apps/v1"), json!("Deployment")),
            (json!("v1"), json!("Service"))
        ]
    );
    for child in &resp.children {
        // Server-set fields in an apply would fight the API server.
        assert!(child.get("status").is_none());
        assert!(child["metadata"].get("uid").is_none());
        assert!(child["metadata"].get("resourceVersion").is_none());
    }
}

#[test]
fn spec_defaults_and_custom_port() {
    let mut p = parent();
    p["spec"] = json!({"size": 1});
    let resp = reconcile(request(p.clone(), vec![])).unwrap();
    let d: Deployment = resp.child_of("example").unwrap().unwrap();
    let c = &d.spec.unwrap().template.spec.unwrap().containers[0];
    assert_eq!(c.image.as_deref(), Some("memcached:1.6-alpine"));
    assert_eq!(c.ports.as_ref().unwrap()[0].container_port, 11211);

    p["spec"] = json!({"size": 1, "port": 12000, "image": "memcached:1.6.29"});
    let resp = reconcile(request(p, vec![])).unwrap();
    let d: Deployment = resp.child_of("example").unwrap().unwrap();
    let c = &d.spec.unwrap().template.spec.unwrap().containers[0];
    assert_eq!(c.image.as_deref(), Some("memcached:1.6.29"));
    assert_eq!(c.ports.as_ref().unwrap()[0].container_port, 12000);
    assert!(c.args.as_ref().unwrap().contains(&"-p=12000".to_string()));
    // Clients still use 11211.
    let s: Service = resp.child_of("example").unwrap().unwrap();
    assert_eq!(s.spec.unwrap().ports.unwrap()[0].port, 11211);
}

#[test]
fn status_from_observed() {
    assert_eq!(status(&fixtures_response()).ready_replicas, 2);
    // Nothing observed yet: nothing ready.
    let resp = reconcile(request(parent(), vec![])).unwrap();
    assert_eq!(status(&resp).ready_replicas, 0);
    // A Deployment whose status has no readyReplicas (none ready) reads as 0.
    let resp = reconcile(request(parent(), vec![observed_deployment(None, 3)])).unwrap();
    assert_eq!(status(&resp).ready_replicas, 0);
}

#[test]
fn ready_false_while_progressing() {
    let st = status(&fixtures_response());
    let ready = find_condition(&st.conditions, "Ready").expect("Ready");
    assert_eq!(ready.status, ConditionStatus::False);
    assert_eq!(ready.reason, "Progressing");
    assert_eq!(ready.message, "2/3 replicas ready");
    assert_eq!(ready.observed_generation, Some(2));
}

#[test]
fn ready_true_when_all_replicas_ready() {
    let resp = reconcile(request(parent(), vec![observed_deployment(Some(3), 3)])).unwrap();
    let st = status(&resp);
    assert_eq!(st.ready_replicas, 3);
    let ready = find_condition(&st.conditions, "Ready").expect("Ready");
    assert!(ready.is_true());
    assert_eq!(ready.reason, "AllReplicasReady");
    assert_eq!(ready.message, "3/3 replicas ready");
}

#[test]
fn size_zero_is_ready_with_nothing() {
    let mut p = parent();
    p["spec"]["size"] = json!(0);
    let resp = reconcile(request(p, vec![])).unwrap();
    let st = status(&resp);
    assert!(find_condition(&st.conditions, "Ready").unwrap().is_true());
}

#[test]
fn invalid_size_is_permanent() {
    let p = fixture("parent-invalid.yaml").remove(0);
    let err = reconcile(request(p, vec![])).unwrap_err();
    assert_eq!(
        err,
        Error::Permanent("spec.size must be >= 0, got -1".into())
    );
}

#[test]
fn malformed_spec_is_permanent_and_names_the_field() {
    let mut p = parent();
    p["spec"]["size"] = json!("three");
    let err = reconcile(request(p, vec![])).unwrap_err();
    assert!(!err.is_retryable());
    assert!(err.message().contains("spec.size: invalid type"), "{err}");
}

#[test]
fn transition_time_kept_when_status_unchanged() {
    // The parent fixture already says Ready=False since 12:05:01.
    let st = status(&fixtures_response());
    let ready = find_condition(&st.conditions, "Ready").unwrap();
    assert_eq!(ready.last_transition_time, "2024-05-01T12:05:01Z");
}

#[test]
fn transition_time_moves_when_status_flips() {
    let resp = reconcile(request(parent(), vec![observed_deployment(Some(3), 3)])).unwrap();
    let st = status(&resp);
    let ready = find_condition(&st.conditions, "Ready").unwrap();
    assert_ne!(ready.last_transition_time, "2024-05-01T12:05:01Z");
    assert_eq!(
        ready.last_transition_time.len(),
        "2024-05-01T12:05:01Z".len()
    );
}

#[test]
fn hosts_synced_condition_is_not_echoed() {
    let st = status(&fixtures_response());
    assert!(find_condition(&st.conditions, "Synced").is_none());
    assert_eq!(st.conditions.len(), 1);
}

#[test]
fn scaled_event_only_when_replicas_differ() {
    assert!(
        fixtures_response().events.is_empty(),
        "observed already has 3 replicas"
    );
    let resp = reconcile(request(parent(), vec![observed_deployment(Some(2), 2)])).unwrap();
    assert_eq!(resp.events.len(), 1);
    let e = &resp.events[0];
    assert_eq!((e.type_, e.reason.as_str()), (EventType::Normal, "Scaled"));
    assert_eq!(e.message, "Scaling Deployment example from 2 to 3 replicas");
    // Nothing observed (first reconcile): creating is not scaling.
    assert!(
        reconcile(request(parent(), vec![]))
            .unwrap()
            .events
            .is_empty()
    );
}

#[test]
fn no_requeue() {
    assert_eq!(fixtures_response().requeue_after, None);
}

#[test]
fn registration() {
    let reg = MemcachedReconciler::describe();
    assert_eq!(reg.name, "memcached");
    assert_eq!(reg.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(
        reg.parent.kind,
        Gvk::new("cache.operon.dev", "v1alpha1", "Memcached")
    );
    assert!(reg.parent.namespaced);
    assert_eq!(
        reg.owns,
        vec![
            Gvk::new("apps", "v1", "Deployment"),
            Gvk::new("", "v1", "Service")
        ]
    );
    assert!(reg.related.is_empty());
    assert!(!reg.finalizer);
    assert_eq!(reg.capabilities, Default::default());
    assert_eq!(reg.crds.len(), 1);
}

#[test]
fn crd_matches_the_kind() {
    let crd: Value = serde_json::from_str(rust_memcached::CRD).expect("CRD is JSON");
    assert_eq!(crd["metadata"]["name"], "memcacheds.cache.operon.dev");
    assert_eq!(crd["spec"]["group"], "cache.operon.dev");
    assert_eq!(crd["spec"]["names"]["kind"], "Memcached");
    assert_eq!(crd["spec"]["names"]["shortNames"], json!(["mc"]));
    assert_eq!(crd["spec"]["scope"], "Namespaced");
    let v = &crd["spec"]["versions"][0];
    assert_eq!(v["name"], "v1alpha1");
    assert_eq!(v["subresources"]["scale"]["specReplicasPath"], ".spec.size");
    assert_eq!(
        v["subresources"]["scale"]["statusReplicasPath"],
        ".status.readyReplicas"
    );
    assert!(v["subresources"]["status"].is_object());
    let columns: Vec<_> = v["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].clone())
        .collect();
    assert_eq!(columns, vec![json!("Size"), json!("Ready"), json!("Age")]);
    let spec = &v["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"];
    assert_eq!(spec["size"]["minimum"], 0);
    assert_eq!(spec["image"]["default"], "memcached:1.6-alpine");
    assert_eq!(spec["port"]["default"], 11211);
}

#[test]
fn user_manifest_is_a_valid_parent() {
    let m = fixture("memcached.yaml").remove(0);
    let resp = reconcile(request(m, vec![])).unwrap();
    assert_eq!(resp.children.len(), 2);
}
