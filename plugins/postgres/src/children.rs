//! The objects a cluster is made of, each a pure function of the spec and
//! of decisions already taken (roles, images, sizes, passwords).
//!
//! Objects are built as JSON rather than k8s-openapi structs: they are
//! mostly nested literals, and the API server's dry-run in the e2e tests
//! checks them against the real schemas.

use std::collections::BTreeMap;

use base64::Engine;
use base64::alphabet;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::POSTGRES_PORT;
use crate::conf;
use crate::spec::{ClusterSpec, DataLoad, User};
use crate::sql;

pub const LABEL_CLUSTER: &str = "postgres.operon.dev/cluster";
pub const LABEL_INSTANCE: &str = "postgres.operon.dev/instance";
pub const LABEL_ROLE: &str = "postgres.operon.dev/role";
pub const LABEL_COMPONENT: &str = "postgres.operon.dev/component";
/// On each instance StatefulSet: the [`InstanceInputs`] it was rendered
/// from, so an instance not yet rolled is rendered again exactly as it is.
pub const ANNOTATION_INPUTS: &str = "postgres.operon.dev/inputs";
/// On the cluster ConfigMap: the spec last applied, which `paused` and an
/// invalid spec keep rendering so nothing changes.
pub const ANNOTATION_SPEC: &str = "postgres.operon.dev/applied-spec";

/// Where the volumes are mounted in the postgres container.
pub const DATA_MOUNT: &str = "/var/lib/postgresql/data";
pub const PGDATA: &str = "/var/lib/postgresql/data/pgdata";
pub const WAL_MOUNT: &str = "/var/lib/postgresql/wal";
pub const CONFIG_MOUNT: &str = "/etc/postgres";
/// uid/gid of the postgres user in the official images.
const POSTGRES_UID: i64 = 999;

pub const DEFAULT_EXPORTER_IMAGE: &str = "quay.io/prometheuscommunity/postgres-exporter:v0.17.1";
pub const DEFAULT_POOLER_IMAGE: &str = "docker.io/edoburu/pgbouncer:v1.24.1-p1";

/// What a parent's children share: names, namespace, labels, annotations.
pub struct Cluster<'a> {
    pub name: &'a str,
    pub namespace: Option<&'a str>,
    pub spec: &'a ClusterSpec,
}

/// First 10 hex digits of the SHA-256 of `parts`, for names and config
/// checksums.
pub fn short_hash(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    h.finalize()
        .iter()
        .take(5)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The inputs of an instance's Pod template that a change of rolls the
/// instances one at a time (image, resources, exporter, configuration).
/// Role and replica count are not among them: they change at once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceInputs {
    pub image: String,
    pub major: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exporter: Option<(String, i32)>,
    pub config_hash: String,
}

/// One instance as the plan decided it.
pub struct InstancePlan<'a> {
    pub name: String,
    pub primary: bool,
    pub replicas: i32,
    pub inputs: &'a InstanceInputs,
    pub wal: bool,
}

impl Cluster<'_> {
    pub fn labels(&self, component: &str) -> BTreeMap<String, String> {
        let mut l = self.spec.metadata.labels.clone();
        l.extend([
            ("app.kubernetes.io/name".into(), "postgres".into()),
            ("app.kubernetes.io/instance".into(), self.name.into()),
            ("app.kubernetes.io/managed-by".into(), "operon".into()),
            (LABEL_CLUSTER.into(), self.name.into()),
            (LABEL_COMPONENT.into(), component.into()),
        ]);
        l
    }

    fn selector(&self, component: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            (LABEL_CLUSTER.to_string(), self.name.to_string()),
            (LABEL_COMPONENT.to_string(), component.to_string()),
        ])
    }

    /// The `status.selector` of the scale subresource: every instance Pod.
    pub fn instance_selector(&self) -> String {
        format!("{LABEL_CLUSTER}={},{LABEL_COMPONENT}=instance", self.name)
    }

    fn meta(&self, name: &str, component: &str) -> Value {
        self.meta_with(name, component, BTreeMap::new(), BTreeMap::new())
    }

    fn meta_with(
        &self,
        name: &str,
        component: &str,
        labels: BTreeMap<String, String>,
        annotations: BTreeMap<String, String>,
    ) -> Value {
        let mut l = self.labels(component);
        l.extend(labels);
        let mut a = self.spec.metadata.annotations.clone();
        a.extend(annotations);
        let mut m = Map::new();
        m.insert("name".into(), name.into());
        m.insert("labels".into(), strings(l));
        if !a.is_empty() {
            m.insert("annotations".into(), strings(a));
        }
        if let Some(ns) = self.namespace {
            m.insert("namespace".into(), ns.into());
        }
        Value::Object(m)
    }

    /// Pod template metadata: the same labels and annotations, no name.
    fn pod_meta(&self, component: &str, labels: BTreeMap<String, String>) -> Value {
        let mut m = self.meta_with("", component, labels, BTreeMap::new());
        if let Some(m) = m.as_object_mut() {
            m.remove("name");
            m.remove("namespace");
        }
        m
    }

    fn host(&self, service: &str) -> String {
        match self.namespace {
            Some(ns) => format!("{}-{service}.{ns}.svc", self.name),
            None => format!("{}-{service}", self.name),
        }
    }

    pub fn superuser_secret(&self) -> String {
        format!("{}-superuser", self.name)
    }
    pub fn replication_secret(&self) -> String {
        format!("{}-replication", self.name)
    }
    pub fn user_secret(&self, user: &str) -> String {
        format!("{}-pguser-{}", self.name, user.replace('_', "-"))
    }
    pub fn config_map(&self) -> String {
        format!("{}-config", self.name)
    }
    pub fn instance_name(&self, ordinal: u32) -> String {
        format!("{}-{ordinal}", self.name)
    }

    /// A Secret in the layout PGO users know: user, password, host, port,
    /// dbname, uri, jdbc-uri (and the pgbouncer-* keys with the pooler).
    pub fn credentials_secret(
        &self,
        secret: &str,
        user: &str,
        password: &str,
        dbname: &str,
    ) -> Value {
        let (host, port) = (self.host("rw"), POSTGRES_PORT.to_string());
        let mut data = Map::new();
        let mut put = |key: &str, value: &str| {
            data.insert(key.into(), base64(value.as_bytes()).into());
        };
        put("user", user);
        put("username", user);
        put("password", password);
        put("host", &host);
        put("port", &port);
        put("dbname", dbname);
        put(
            "uri",
            &format!("postgresql://{user}:{password}@{host}:{POSTGRES_PORT}/{dbname}"),
        );
        put(
            "jdbc-uri",
            &format!(
                "jdbc:postgresql://{host}:{POSTGRES_PORT}/{dbname}?password={password}&user={user}"
            ),
        );
        if self.spec.pooler.enabled {
            let pooler = self.host("pooler");
            put("pgbouncer-host", &pooler);
            put("pgbouncer-port", &port);
            put(
                "pgbouncer-uri",
                &format!("postgresql://{user}:{password}@{pooler}:{POSTGRES_PORT}/{dbname}"),
            );
        }
        object([
            ("apiVersion", "v1".into()),
            ("kind", "Secret".into()),
            ("metadata", self.meta(secret, "credentials")),
            ("type", "Opaque".into()),
            ("data", Value::Object(data)),
        ])
    }

    /// The ConfigMap every instance mounts: configuration and entrypoint.
    /// It also records the spec it was rendered from.
    pub fn config(&self) -> Value {
        let applied = serde_json::to_string(self.spec).unwrap_or_default();
        json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": self.meta_with(&self.config_map(), "config", BTreeMap::new(),
                BTreeMap::from([(ANNOTATION_SPEC.to_string(), applied)])),
            "data": {
                "postgresql.conf": conf::postgresql_conf(self.spec),
                "pg_hba.conf": conf::pg_hba_conf(self.spec),
                "instance.sh": conf::INSTANCE_SH,
            }
        })
    }

    /// The checksum of what the instances read from the ConfigMap: a
    /// change rolls them (PostgreSQL reads some settings only at start).
    pub fn config_hash(&self) -> String {
        short_hash(&[
            &conf::postgresql_conf(self.spec),
            &conf::pg_hba_conf(self.spec),
            conf::INSTANCE_SH,
        ])
    }

    pub fn services(&self) -> Vec<Value> {
        let s = &self.spec.services;
        let port = json!([{"name": "postgres", "port": POSTGRES_PORT, "targetPort": "postgres", "protocol": "TCP"}]);
        let mut out = Vec::new();
        let mut rw_sel = self.selector("instance");
        rw_sel.insert(LABEL_ROLE.into(), "primary".into());
        out.push(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": self.meta_with(&format!("{}-rw", self.name), "service", BTreeMap::new(), s.primary.annotations.clone()),
            "spec": {"type": s.primary.type_, "selector": rw_sel, "ports": port},
        }));
        if s.replicas.enabled {
            let mut ro_sel = self.selector("instance");
            ro_sel.insert(LABEL_ROLE.into(), "replica".into());
            out.push(json!({
                "apiVersion": "v1", "kind": "Service",
                "metadata": self.meta_with(&format!("{}-ro", self.name), "service", BTreeMap::new(), s.replicas.annotations.clone()),
                "spec": {"type": s.replicas.type_, "selector": ro_sel, "ports": port},
            }));
        }
        // Headless: stable DNS names for the Pods (the StatefulSets'
        // serviceName), ready or not, so a recovering replica is reachable.
        out.push(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": self.meta(&format!("{}-pods", self.name), "service"),
            "spec": {"clusterIP": "None", "publishNotReadyAddresses": true,
                     "selector": self.selector("instance"), "ports": port},
        }));
        out
    }

    pub fn pdb(&self) -> Value {
        json!({
            "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": self.meta(self.name, "instance"),
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": self.selector("instance")}},
        })
    }

    pub fn pvc(&self, name: &str, instance: &str, size: &str) -> Value {
        let mut spec = json!({
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": size}},
        });
        if let Some(class) = &self.spec.storage.storage_class_name {
            spec["storageClassName"] = json!(class);
        }
        json!({
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": self.meta_with(name, "storage",
                BTreeMap::from([(LABEL_INSTANCE.to_string(), instance.to_string())]), BTreeMap::new()),
            "spec": spec,
        })
    }

    fn secret_env(&self, env: &str, secret: &str, key: &str) -> Value {
        json!({"name": env, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}})
    }

    /// The StatefulSet of one instance: one Pod, its PVCs, the entrypoint
    /// from the ConfigMap with the role in its environment.
    pub fn statefulset(&self, p: &InstancePlan) -> Value {
        let role = if p.primary { "primary" } else { "replica" };
        let mut pod_labels = BTreeMap::from([
            (LABEL_INSTANCE.to_string(), p.name.clone()),
            (LABEL_ROLE.to_string(), role.to_string()),
        ]);
        let pod_meta = self.pod_meta("instance", pod_labels.clone());
        pod_labels.remove(LABEL_ROLE);
        let mut selector = self.selector("instance");
        selector.insert(LABEL_INSTANCE.into(), p.name.clone());

        let initdb = &self.spec.bootstrap.initdb;
        let mut initdb_args = format!("--encoding={} --locale={}", initdb.encoding, initdb.locale);
        if initdb.data_checksums {
            initdb_args.push_str(" --data-checksums");
        }
        let mut env = vec![
            json!({"name": "PGDATA", "value": PGDATA}),
            json!({"name": "PGPORT", "value": POSTGRES_PORT.to_string()}),
            json!({"name": "PG_MAJOR", "value": p.inputs.major.to_string()}),
            json!({"name": "PG_ROLE", "value": role}),
            json!({"name": "PG_INSTANCE", "value": p.name}),
            json!({"name": "PG_PRIMARY_HOST", "value": format!("{}-rw", self.name)}),
            json!({"name": "PG_CONFIG_DIR", "value": CONFIG_MOUNT}),
            json!({"name": "PG_INITDB_ARGS", "value": initdb_args}),
            self.secret_env("POSTGRES_PASSWORD", &self.superuser_secret(), "password"),
            self.secret_env(
                "PG_REPLICATION_PASSWORD",
                &self.replication_secret(),
                "password",
            ),
        ];
        let mut mounts = vec![
            json!({"name": "data", "mountPath": DATA_MOUNT}),
            json!({"name": "config", "mountPath": CONFIG_MOUNT}),
            json!({"name": "dshm", "mountPath": "/dev/shm"}),
        ];
        let mut volumes = vec![
            json!({"name": "data", "persistentVolumeClaim": {"claimName": format!("{}-data", p.name)}}),
            json!({"name": "config", "configMap": {"name": self.config_map()}}),
            json!({"name": "dshm", "emptyDir": {"medium": "Memory"}}),
        ];
        if p.wal {
            env.push(json!({"name": "PG_WALDIR", "value": format!("{WAL_MOUNT}/pg_wal")}));
            mounts.push(json!({"name": "wal", "mountPath": WAL_MOUNT}));
            volumes.push(json!({"name": "wal", "persistentVolumeClaim": {"claimName": format!("{}-wal", p.name)}}));
        }
        let mut postgres = json!({
            "name": "postgres",
            "image": p.inputs.image,
            "command": ["sh", format!("{CONFIG_MOUNT}/instance.sh")],
            "env": env,
            "ports": [{"name": "postgres", "containerPort": POSTGRES_PORT, "protocol": "TCP"}],
            "readinessProbe": {
                "exec": {"command": ["pg_isready", "-q", "-h", "127.0.0.1", "-p", POSTGRES_PORT.to_string()]},
                "periodSeconds": 5, "timeoutSeconds": 3, "failureThreshold": 3,
            },
            "volumeMounts": mounts,
        });
        if let Some(r) = &p.inputs.resources {
            postgres["resources"] = r.clone();
        }
        let mut containers = vec![postgres];
        if let Some((image, port)) = &p.inputs.exporter {
            containers.push(json!({
                "name": "exporter",
                "image": image,
                "env": [
                    {"name": "DATA_SOURCE_URI", "value": format!("127.0.0.1:{POSTGRES_PORT}/postgres?sslmode=disable")},
                    {"name": "DATA_SOURCE_USER", "value": "postgres"},
                    self.secret_env("DATA_SOURCE_PASS", &self.superuser_secret(), "password"),
                ],
                "args": [format!("--web.listen-address=:{port}")],
                "ports": [{"name": "metrics", "containerPort": port, "protocol": "TCP"}],
            }));
        }
        let inputs = serde_json::to_string(p.inputs).unwrap_or_default();
        json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": self.meta_with(&p.name, "instance", pod_labels,
                BTreeMap::from([(ANNOTATION_INPUTS.to_string(), inputs)])),
            "spec": {
                "replicas": p.replicas,
                "serviceName": format!("{}-pods", self.name),
                "selector": {"matchLabels": selector},
                "podManagementPolicy": "Parallel",
                "updateStrategy": {"type": "RollingUpdate"},
                "template": {
                    "metadata": pod_meta,
                    "spec": {
                        "securityContext": {"runAsUser": POSTGRES_UID, "runAsGroup": POSTGRES_UID,
                                            "fsGroup": POSTGRES_UID, "runAsNonRoot": true},
                        "terminationGracePeriodSeconds": 60,
                        "containers": containers,
                        "volumes": volumes,
                    }
                }
            }
        })
    }

    /// Environment every Job uses to reach the primary as the superuser.
    fn job_env(&self) -> Vec<Value> {
        vec![
            json!({"name": "PGHOST", "value": format!("{}-rw", self.name)}),
            json!({"name": "PGPORT", "value": POSTGRES_PORT.to_string()}),
            json!({"name": "PGUSER", "value": "postgres"}),
            self.secret_env("PGPASSWORD", &self.superuser_secret(), "password"),
        ]
    }

    pub(crate) fn job(&self, name: &str, component: &str, image: &str, pod: Value) -> Value {
        let pod_meta = self.pod_meta(component, BTreeMap::new());
        let mut spec = pod;
        spec["restartPolicy"] = json!("OnFailure");
        spec["securityContext"] =
            json!({"runAsUser": POSTGRES_UID, "runAsGroup": POSTGRES_UID, "runAsNonRoot": true});
        if let Some(c) = spec["containers"][0].as_object_mut() {
            c.insert("image".into(), json!(image));
        }
        let template = object([("metadata", pod_meta), ("spec", spec)]);
        object([
            ("apiVersion", "batch/v1".into()),
            ("kind", "Job".into()),
            ("metadata", self.meta(name, component)),
            (
                "spec",
                object([("backoffLimit", 6.into()), ("template", template)]),
            ),
        ])
    }

    /// The SQL Job for `script`, named by the hash of what it applies (the
    /// script, where each password comes from, and the generated passwords
    /// themselves), so a changed spec, or a user Secret deleted to rotate
    /// its password, is a new Job, and an unchanged one is never re-run.
    pub fn sql_job(
        &self,
        image: &str,
        script: &str,
        passwords: &BTreeMap<String, String>,
    ) -> (String, Value) {
        let mut env = self.job_env();
        let mut sources = vec![script.to_string()];
        let present = self
            .spec
            .users
            .iter()
            .filter(|u| u.ensure == crate::spec::Ensure::Present);
        for (i, user) in present.enumerate() {
            let (secret, key) = self.password_source(user);
            sources.push(format!("{secret}/{key}"));
            if let Some(pw) = passwords.get(&user.name) {
                sources.push(pw.clone());
            }
            env.push(self.secret_env(&sql::password_env(i), &secret, &key));
        }
        env.push(json!({"name": "SQL", "value": script}));
        let refs: Vec<&str> = sources.iter().map(String::as_str).collect();
        let hash = short_hash(&refs);
        let name = format!("{}-sql-{hash}", self.name);
        // `env` moved in, not through `json!` (which would copy it whole).
        let mut pod =
            json!({"containers": [{"name": "sql", "command": ["sh", "-c", conf::JOB_SH]}]});
        pod["containers"][0]["env"] = Value::Array(env);
        (hash, self.job(&name, "sql", image, pod))
    }

    /// Where the SQL Job reads a user's password: the user's own Secret if
    /// given, else the generated one.
    pub fn password_source(&self, user: &User) -> (String, String) {
        match &user.password_secret_ref {
            Some(r) => (r.name.clone(), r.key.clone()),
            None => (self.user_secret(&user.name), "password".into()),
        }
    }

    /// A data-load Job, named by the hash of the load's definition.
    pub fn load_job(&self, image: &str, load: &DataLoad) -> (String, Value) {
        let script = sql::load_script(load);
        let hash = short_hash(&[
            &script,
            &load.database,
            &load.source.config_map,
            &load.source.key,
        ]);
        let name = format!("{}-load-{hash}", self.name);
        let mut env = self.job_env();
        env.push(json!({"name": "PGDATABASE", "value": load.database}));
        env.push(json!({"name": "LOAD_FILE", "value": format!("/load/{}", load.source.key)}));
        env.push(json!({"name": "SQL", "value": script}));
        let pod = json!({
            "containers": [{"name": "load", "command": ["sh", "-c", conf::JOB_SH], "env": env,
                            "volumeMounts": [{"name": "source", "mountPath": "/load", "readOnly": true}]}],
            "volumes": [{"name": "source", "configMap": {"name": load.source.config_map,
                         "items": [{"key": load.source.key, "path": load.source.key}]}}],
        });
        let mut job = self.job(&name, "load", image, pod);
        job["metadata"]["annotations"]["postgres.operon.dev/data-load"] = json!(load.name);
        (hash, job)
    }

    /// The pg_upgrade Job of a major upgrade, on the primary's volumes.
    /// It is idempotent: a data directory already on `to` is left alone,
    /// so a re-run after a crash finishes instead of failing.
    pub fn upgrade_job(&self, image: &str, primary: &str, from: i64, to: i64, wal: bool) -> Value {
        let initdb = &self.spec.bootstrap.initdb;
        let checksums = if initdb.data_checksums {
            "--data-checksums"
        } else {
            ""
        };
        let script = format!(
            "set -eu\n\
             cd /tmp\n\
             old={PGDATA}; new={DATA_MOUNT}/pgdata-{to}\n\
             if [ \"$(cat $old/PG_VERSION)\" = {to} ]; then echo already upgraded; exit 0; fi\n\
             rm -rf \"$new\"\n\
             /usr/lib/postgresql/{to}/bin/initdb -D \"$new\" -U postgres --auth-local=peer --auth-host=scram-sha-256 \
             --encoding={enc} --locale={loc} {checksums}\n\
             /usr/lib/postgresql/{to}/bin/pg_upgrade --link -b /usr/lib/postgresql/{from}/bin -B /usr/lib/postgresql/{to}/bin -d \"$old\" -D \"$new\" -U postgres\n\
             mv \"$old\" {DATA_MOUNT}/pgdata-{from}-old\n\
             mv \"$new\" \"$old\"\n",
            enc = initdb.encoding,
            loc = initdb.locale,
        );
        let mut mounts = vec![json!({"name": "data", "mountPath": DATA_MOUNT})];
        let mut volumes = vec![
            json!({"name": "data", "persistentVolumeClaim": {"claimName": format!("{primary}-data")}}),
        ];
        if wal {
            mounts.push(json!({"name": "wal", "mountPath": WAL_MOUNT}));
            volumes.push(json!({"name": "wal", "persistentVolumeClaim": {"claimName": format!("{primary}-wal")}}));
        }
        let pod = json!({
            "containers": [{"name": "upgrade", "command": ["sh", "-c", script], "volumeMounts": mounts}],
            "volumes": volumes,
        });
        let name = format!("{}-upgrade-{from}-to-{to}", self.name);
        let mut job = self.job(&name, "upgrade", image, pod);
        job["spec"]["backoffLimit"] = json!(0);
        job
    }

    pub fn pooler(&self, superuser_password: &str, replicas: i32) -> Vec<Value> {
        let name = format!("{}-pooler", self.name);
        let p = &self.spec.pooler;
        let selector = self.selector("pooler");
        let pod_meta = self.pod_meta("pooler", BTreeMap::new());
        let ini = conf::pgbouncer_ini(self.name, self.spec);
        let userlist = format!("\"postgres\" \"{superuser_password}\"\n");
        vec![
            json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": self.meta(&name, "pooler"),
                "data": {"pgbouncer.ini": ini},
            }),
            json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": self.meta(&name, "pooler"),
                "type": "Opaque",
                "data": {"userlist.txt": base64(userlist.as_bytes())},
            }),
            json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": self.meta(&name, "pooler"),
                "spec": {
                    "replicas": replicas,
                    "selector": {"matchLabels": selector},
                    "template": {
                        "metadata": pod_meta,
                        "spec": {
                            "securityContext": {"runAsNonRoot": true, "runAsUser": 70},
                            "containers": [{
                                "name": "pgbouncer",
                                "image": p.image.as_deref().unwrap_or(DEFAULT_POOLER_IMAGE),
                                "command": ["pgbouncer", "/etc/pgbouncer/pgbouncer.ini"],
                                "ports": [{"name": "pgbouncer", "containerPort": POSTGRES_PORT, "protocol": "TCP"}],
                                "readinessProbe": {"tcpSocket": {"port": POSTGRES_PORT}, "periodSeconds": 5},
                                "volumeMounts": [
                                    {"name": "config", "mountPath": "/etc/pgbouncer/pgbouncer.ini", "subPath": "pgbouncer.ini"},
                                    {"name": "auth", "mountPath": "/etc/pgbouncer/auth"},
                                ],
                                // The ini's checksum: a config change rolls the pooler.
                                "env": [{"name": "CONFIG_HASH", "value": short_hash(&[&ini, &userlist])}],
                            }],
                            "volumes": [
                                {"name": "config", "configMap": {"name": name}},
                                {"name": "auth", "secret": {"secretName": name}},
                            ],
                        }
                    }
                }
            }),
            json!({
                "apiVersion": "v1", "kind": "Service",
                "metadata": self.meta(&name, "pooler"),
                "spec": {"type": "ClusterIP", "selector": selector,
                         "ports": [{"name": "pgbouncer", "port": POSTGRES_PORT, "targetPort": "pgbouncer", "protocol": "TCP"}]},
            }),
        ]
    }
}

/// Standard base64 with padding, as Secret `data` wants it.
/// A JSON object of these fields, the values moved in: `json!` would
/// serialize a `Value` it is given again, a deep copy on the per-user path.
fn object<const N: usize>(fields: [(&str, Value); N]) -> Value {
    Value::Object(
        fields
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    )
}

/// A JSON object of string values.
fn strings(map: BTreeMap<String, String>) -> Value {
    Value::Object(
        map.into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect(),
    )
}

pub fn base64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Decodes the observed Secrets' `data` (standard base64; padding
/// optional, as users editing a Secret by hand sometimes leave it out);
/// none if it is not base64.
pub fn unbase64(text: &str) -> Option<Vec<u8>> {
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    LENIENT.decode(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips() {
        for s in ["", "a", "ab", "abc", "abcd", "postgresql://u:p@h:5432/db"] {
            let e = base64(s.as_bytes());
            assert_eq!(unbase64(&e).unwrap(), s.as_bytes(), "{e}");
        }
        assert_eq!(base64(b"hello"), "aGVsbG8=");
        assert_eq!(unbase64("a$==="), None);
        assert_eq!(unbase64("aGVsbG8").unwrap(), b"hello", "unpadded");
    }
}
