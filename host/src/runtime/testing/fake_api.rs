//! A fake API server for the runtime's unit tests: a `tower` service that
//! `kube::Client::new` takes in place of the HTTP stack, over objects kept
//! in memory — as kube-rs and Kubewarden's policy-evaluator test their
//! Kubernetes code, one level higher so that the host's own code paths
//! (discovery, the shared watch caches, apply, status, finalizers, events)
//! run unchanged.
//!
//! What it serves, for the kinds in [`KINDS`]:
//! - discovery: `/api/v1` and `/apis/{group}/{version}` resource lists;
//! - list and get; **watch** as a streaming body fed by a channel, so that
//!   every change made through the fake (by the host or by a test) reaches
//!   the host's watch caches; watches resume from a resource version;
//! - create; merge and JSON patches (`test`, `add`, `remove`, `replace`),
//!   on the object and on `/status`; delete, with finalizers holding an
//!   object (`deletionTimestamp`) until the last one is removed.
//!
//! Where it is simpler than the real thing: server-side apply is a merge
//! patch that creates a missing object (no field ownership, so no
//! conflicts); a strategic merge patch is a merge patch; no validation, no
//! admission, no selectors, no pagination; a status subresource is
//! honoured (writes to the object keep its status, writes to `/status`
//! keep the rest); `metadata.generation` moves when anything outside
//! metadata and status changes; a write that changes nothing is a no-op
//! with no event, as on a real server (the host's applies rely on it).
//!
//! For assertions: a log of every write (method, path, content type, body,
//! the code answered), the reads' paths, the watches open. For faults: the
//! next request to a path answered with an error code, or held until the
//! test releases it; watch events paused and resumed.
//!
//! A mock for unit tests only: the integration and e2e suites run against
//! the real control plane (tests/controlplane).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use futures::StreamExt;
use futures::channel::mpsc;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::{Method, Request, Response};
use serde_json::{Value, json};
use tokio::sync::watch;

use super::patch;

/// A kind the fake serves.
pub struct KindDef {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    pub namespaced: bool,
    /// Has a `status` subresource.
    pub status: bool,
}

/// The kinds the runtime's tests use.
pub const KINDS: &[KindDef] = &[
    KindDef::new("v1", "ConfigMap", "configmaps", false),
    KindDef::new("v1", "Secret", "secrets", false),
    KindDef::new("v1", "ServiceAccount", "serviceaccounts", false),
    KindDef::new("apps/v1", "Deployment", "deployments", true),
    KindDef::new("test.operon.dev/v1", "Widget", "widgets", true),
    KindDef::new("test.operon.dev/v1", "Gadget", "gadgets", true),
    KindDef::new("events.k8s.io/v1", "Event", "events", false),
];

impl KindDef {
    const fn new(
        api_version: &'static str,
        kind: &'static str,
        plural: &'static str,
        status: bool,
    ) -> KindDef {
        KindDef {
            api_version,
            kind,
            plural,
            namespaced: true,
            status,
        }
    }

    fn group_version_path(&self) -> String {
        match self.api_version.contains('/') {
            true => format!("/apis/{}", self.api_version),
            false => format!("/api/{}", self.api_version),
        }
    }

    /// The collection across namespaces: how the fake names a resource.
    pub fn collection(&self) -> String {
        format!("{}/{}", self.group_version_path(), self.plural)
    }

    /// The path of one object (`sub`: a subresource such as `status`).
    pub fn path(&self, ns: &str, name: &str, sub: Option<&str>) -> String {
        let sub = sub.map(|s| format!("/{s}")).unwrap_or_default();
        let gv = self.group_version_path();
        format!("{gv}/namespaces/{ns}/{}/{name}{sub}", self.plural)
    }
}

/// The definition of a kind by apiVersion and kind (a test's typo panics).
pub fn kind(api_version: &str, kind: &str) -> &'static KindDef {
    KINDS
        .iter()
        .find(|k| k.api_version == api_version && k.kind == kind)
        .unwrap_or_else(|| panic!("the fake API serves no {api_version} {kind}"))
}

/// One write the fake received.
#[derive(Debug, Clone)]
pub struct Write {
    pub method: Method,
    pub path: String,
    pub content_type: String,
    pub body: Value,
    /// The HTTP code it was answered with.
    pub code: u16,
}

impl Write {
    pub fn is(&self, method: &Method, path: &str) -> bool {
        self.method == method && self.path == path
    }
}

/// A request held by [`FakeApi::hold_next`] until released.
#[derive(Clone)]
pub struct Held(Arc<Gate>);

struct Gate {
    reached: watch::Sender<bool>,
    open: watch::Sender<bool>,
}

impl Held {
    /// Waits until the held request has arrived.
    pub async fn reached(&self) {
        let _ = self.0.reached.subscribe().wait_for(|r| *r).await;
    }

    /// Lets the request (and any later one) through.
    pub fn release(&self) {
        self.0.open.send_replace(true);
    }
}

enum Action {
    Fail(u16),
    Hold(Held),
}

/// Which requests a fault is for: a method, a path and, optionally, a
/// test of the body.
type BodyTest = Box<dyn Fn(&Value) -> bool + Send>;

/// A fault for the next matching request.
struct Rule {
    method: Method,
    path: String,
    body: Option<BodyTest>,
    action: Action,
}

/// One event of a watch, kept for watches that resume from older versions.
#[derive(Clone)]
struct Change {
    resource: String,
    ns: String,
    rv: u64,
    line: Bytes,
}

struct Watch {
    resource: String,
    ns: Option<String>,
    tx: mpsc::UnboundedSender<Bytes>,
}

/// (collection, namespace, name).
type Key = (String, String, String);

#[derive(Default)]
struct State {
    objects: BTreeMap<Key, Value>,
    rv: u64,
    uids: u64,
    history: Vec<Change>,
    watches: Vec<Watch>,
    /// Events held back while watches are paused.
    paused: Option<Vec<Change>>,
    rules: Vec<Rule>,
    writes: Vec<Write>,
    /// Every request as (method, path, query).
    requests: Vec<(Method, String, String)>,
}

/// The fake API server; clones share the same state.
#[derive(Clone, Default)]
pub struct FakeApi {
    state: Arc<Mutex<State>>,
}

type Body = UnsyncBoxBody<Bytes, Infallible>;

impl FakeApi {
    pub fn new() -> FakeApi {
        FakeApi::default()
    }

    /// A client whose every request this fake answers.
    pub fn client(&self) -> kube::Client {
        let state = self.state.clone();
        let service = tower::service_fn(move |request| {
            let state = state.clone();
            async move { Ok::<_, Infallible>(serve(state, request).await) }
        });
        kube::Client::new(service, "default")
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Creates or replaces an object as someone else would (not logged);
    /// may carry a `deletionTimestamp`, to stand for an object another
    /// party is deleting.
    pub fn put(&self, object: Value) {
        let k = kind(str_of(&object, "/apiVersion"), str_of(&object, "/kind"));
        let key = key_of(k, &object);
        let mut s = self.lock();
        let old = s.objects.get(&key).cloned();
        s.commit(k, key, old.as_ref(), object, true);
    }

    /// A merge patch of an object as a user would make it (not logged).
    pub fn edit(&self, api_version: &str, kind_: &str, ns: &str, name: &str, merge: Value) {
        let k = kind(api_version, kind_);
        let key = (k.collection(), ns.to_string(), name.to_string());
        let mut s = self.lock();
        let old = s.objects.get(&key).cloned().expect("an object to edit");
        let mut new = old.clone();
        patch::merge(&mut new, &merge);
        s.commit(k, key, Some(&old), new, false);
    }

    /// Deletes an object as a user would (not logged): with finalizers it
    /// only gets a `deletionTimestamp`.
    pub fn delete(&self, api_version: &str, kind_: &str, ns: &str, name: &str) {
        let k = kind(api_version, kind_);
        let key = (k.collection(), ns.to_string(), name.to_string());
        self.lock()
            .delete(k, key, &Value::Null)
            .expect("an object to delete");
    }

    pub fn get(&self, api_version: &str, kind_: &str, ns: &str, name: &str) -> Option<Value> {
        let key = (
            kind(api_version, kind_).collection(),
            ns.into(),
            name.into(),
        );
        self.lock().objects.get(&key).cloned()
    }

    /// Every object of a kind.
    pub fn list(&self, api_version: &str, kind_: &str) -> Vec<Value> {
        let resource = kind(api_version, kind_).collection();
        let s = self.lock();
        let of_kind = s.objects.iter().filter(|((r, _, _), _)| *r == resource);
        of_kind.map(|(_, o)| o.clone()).collect()
    }

    /// Every write so far, in the order they were handled.
    pub fn writes(&self) -> Vec<Write> {
        self.lock().writes.clone()
    }

    /// How many lists (not watches) of a collection path were served.
    pub fn lists(&self, path: &str) -> usize {
        let s = self.lock();
        let is_list = |(m, p, q): &&(Method, String, String)| {
            *m == Method::GET && p == path && !q.contains("watch=true")
        };
        s.requests.iter().filter(is_list).count()
    }

    /// Watches of a collection path open now.
    pub fn watching(&self, path: &str) -> usize {
        let s = self.lock();
        let open = |w: &&Watch| w.resource == path && !w.tx.is_closed();
        s.watches.iter().filter(open).count()
    }

    /// Answers the next `method` request to `path` with `code`.
    pub fn fail_next(&self, method: Method, path: &str, code: u16) {
        self.rule(method, path, None, Action::Fail(code));
    }

    /// Holds the next `method` request to `path` until released.
    pub fn hold_next(&self, method: Method, path: &str) -> Held {
        self.hold(method, path, None)
    }

    /// Holds the next `method` request to `path` whose body passes `test`.
    pub fn hold_next_if(
        &self,
        method: Method,
        path: &str,
        test: impl Fn(&Value) -> bool + Send + 'static,
    ) -> Held {
        self.hold(method, path, Some(Box::new(test)))
    }

    fn hold(&self, method: Method, path: &str, body: Option<BodyTest>) -> Held {
        let held = Held(Arc::new(Gate {
            reached: watch::channel(false).0,
            open: watch::channel(false).0,
        }));
        self.rule(method, path, body, Action::Hold(held.clone()));
        held
    }

    fn rule(&self, method: Method, path: &str, body: Option<BodyTest>, action: Action) {
        let path = path.to_string();
        self.lock().rules.push(Rule {
            method,
            path,
            body,
            action,
        });
    }

    /// Holds back every watch event from now on (the writes still apply).
    pub fn pause_watches(&self) {
        self.lock().paused.get_or_insert_with(Vec::new);
    }

    /// Delivers the held-back events, in order, and stops holding them.
    pub fn resume_watches(&self) {
        let mut s = self.lock();
        for change in s.paused.take().unwrap_or_default() {
            s.send(&change);
        }
    }
}

/// What a request is answered with.
enum Reply {
    Json(Value),
    Watch(mpsc::UnboundedReceiver<Bytes>),
}

async fn serve(state: Arc<Mutex<State>>, request: Request<kube::client::Body>) -> Response<Body> {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().unwrap_or_default().to_string();
    let content_type = parts
        .headers
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let bytes = body.collect_bytes().await.unwrap_or_default();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let lock = || state.lock().unwrap_or_else(PoisonError::into_inner);
    let action = lock().take_rule(&parts.method, &path, &body);
    let injected = match action {
        Some(Action::Fail(code)) => Some(code),
        Some(Action::Hold(held)) => {
            held.0.reached.send_replace(true);
            let _ = held.0.open.subscribe().wait_for(|o| *o).await;
            None
        }
        None => None,
    };
    let mut s = lock();
    s.requests
        .push((parts.method.clone(), path.clone(), query.clone()));
    let (code, reply) = match injected {
        Some(code) => (code, Reply::Json(status(code, "injected by the test"))),
        None => s.handle(&parts.method, &path, &query, &content_type, &body),
    };
    if parts.method != Method::GET {
        s.writes.push(Write {
            method: parts.method,
            path,
            content_type,
            body,
            code,
        });
    }
    drop(s);
    respond(code, reply)
}

fn respond(code: u16, reply: Reply) -> Response<Body> {
    let body = match reply {
        Reply::Json(v) => Full::new(Bytes::from(v.to_string())).boxed_unsync(),
        Reply::Watch(rx) => StreamBody::new(rx.map(|b| Ok(Frame::data(b)))).boxed_unsync(),
    };
    Response::builder()
        .status(code)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(body)
        .expect("a valid response")
}

/// A failure as the API server says it.
fn status(code: u16, message: impl Into<String>) -> Value {
    let reason = match code {
        404 => "NotFound",
        405 => "MethodNotAllowed",
        409 => "Conflict",
        413 => "RequestEntityTooLarge",
        422 => "Invalid",
        _ => "InternalError",
    };
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message.into(), "reason": reason, "code": code})
}

type Answer = Result<(u16, Value), (u16, String)>;

/// What a path addresses.
enum Target {
    /// `/api/v1`, `/apis/{group}/{version}`.
    Discovery(String),
    Resource {
        kind: &'static KindDef,
        ns: Option<String>,
        name: Option<String>,
        sub: Option<String>,
    },
}

fn parse(path: &str) -> Option<Target> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (gv, rest) = match parts.as_slice() {
        ["api", v, rest @ ..] => (v.to_string(), rest),
        ["apis", g, v, rest @ ..] => (format!("{g}/{v}"), rest),
        _ => return None,
    };
    let (ns, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some(ns.to_string()), rest),
        _ => (None, rest),
    };
    let Some((plural, rest)) = rest.split_first() else {
        return Some(Target::Discovery(gv));
    };
    let kind = KINDS
        .iter()
        .find(|k| k.api_version == gv && k.plural == *plural)?;
    Some(Target::Resource {
        kind,
        ns,
        name: rest.first().map(|s| s.to_string()),
        sub: rest.get(1).map(|s| s.to_string()),
    })
}

fn str_of<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn key_of(k: &KindDef, object: &Value) -> Key {
    let ns = str_of(object, "/metadata/namespace").to_string();
    (k.collection(), ns, str_of(object, "/metadata/name").into())
}

fn now() -> String {
    crate::apply::status::now()
}

impl State {
    fn take_rule(&mut self, method: &Method, path: &str, body: &Value) -> Option<Action> {
        let at = self.rules.iter().position(|r| {
            r.method == method && r.path == path && r.body.as_ref().is_none_or(|test| test(body))
        })?;
        Some(self.rules.remove(at).action)
    }

    fn handle(
        &mut self,
        method: &Method,
        path: &str,
        query: &str,
        ct: &str,
        body: &Value,
    ) -> (u16, Reply) {
        let answer = match parse(path) {
            None => Err((404, format!("the server could not find {path}"))),
            Some(Target::Discovery(gv)) => discovery(&gv),
            Some(Target::Resource {
                kind,
                ns,
                name,
                sub,
            }) => {
                let key = |name: &str| {
                    (
                        kind.collection(),
                        ns.clone().unwrap_or_default(),
                        name.to_string(),
                    )
                };
                match (method, name.as_deref()) {
                    (&Method::GET, None) if query.contains("watch=true") => {
                        return (200, Reply::Watch(self.watch(kind, ns, query)));
                    }
                    (&Method::GET, None) => Ok((200, self.list_of(kind, ns.as_deref()))),
                    (&Method::GET, Some(n)) => self.get(key(n)),
                    (&Method::POST, None) => self.create(kind, ns.unwrap_or_default(), body),
                    (&Method::PATCH, Some(n)) => self.patch(kind, key(n), sub.as_deref(), ct, body),
                    (&Method::DELETE, Some(n)) => self.delete(kind, key(n), body),
                    _ => Err((405, format!("{method} {path} is not served"))),
                }
            }
        };
        match answer {
            Ok((code, v)) => (code, Reply::Json(v)),
            Err((code, message)) => (code, Reply::Json(status(code, message))),
        }
    }

    fn get(&self, key: Key) -> Answer {
        match self.objects.get(&key) {
            Some(o) => Ok((200, o.clone())),
            None => Err((404, format!("{} \"{}\" not found", key.0, key.2))),
        }
    }

    fn list_of(&self, kind: &KindDef, ns: Option<&str>) -> Value {
        let resource = kind.collection();
        let items: Vec<&Value> = self
            .objects
            .iter()
            .filter(|((r, n, _), _)| *r == resource && ns.is_none_or(|ns| ns == n))
            .map(|(_, o)| o)
            .collect();
        json!({"apiVersion": kind.api_version, "kind": format!("{}List", kind.kind),
               "metadata": {"resourceVersion": self.rv.to_string()}, "items": items})
    }

    /// A watch from the query's resource version: the changes since then
    /// (not those held back by a pause), then every change as it happens.
    fn watch(
        &mut self,
        kind: &KindDef,
        ns: Option<String>,
        query: &str,
    ) -> mpsc::UnboundedReceiver<Bytes> {
        let from: u64 = query
            .split('&')
            .find_map(|p| p.strip_prefix("resourceVersion="))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let held_from = self.paused.as_ref().and_then(|p| p.first()).map(|c| c.rv);
        let (tx, rx) = mpsc::unbounded();
        let w = Watch {
            resource: kind.collection(),
            ns,
            tx,
        };
        for c in &self.history {
            if c.rv > from && held_from.is_none_or(|h| c.rv < h) && w.wants(c) {
                let _ = w.tx.unbounded_send(c.line.clone());
            }
        }
        self.watches.push(w);
        rx
    }

    fn create(&mut self, kind: &'static KindDef, ns: String, body: &Value) -> Answer {
        let mut object = body.clone();
        object["metadata"]["namespace"] = json!(ns);
        if let Some(meta) = object["metadata"].as_object_mut() {
            meta.remove("deletionTimestamp");
        }
        let key = key_of(kind, &object);
        if self.objects.contains_key(&key) {
            return Err((409, format!("{} \"{}\" already exists", key.0, key.2)));
        }
        Ok((201, self.commit(kind, key, None, object, false)))
    }

    fn patch(
        &mut self,
        kind: &'static KindDef,
        key: Key,
        sub: Option<&str>,
        ct: &str,
        body: &Value,
    ) -> Answer {
        let old = self.objects.get(&key).cloned();
        let apply = ct.starts_with("application/apply-patch");
        let mut doc = match (&old, apply) {
            (Some(o), _) => o.clone(),
            (None, true) if sub.is_none() => {
                json!({"metadata": {"name": key.2, "namespace": key.1}})
            }
            (None, _) => return Err((404, format!("{} \"{}\" not found", key.0, key.2))),
        };
        match ct {
            "application/json-patch+json" => {
                patch::json_patch(&mut doc, body).map_err(|e| (422, e))?
            }
            _ => patch::merge(&mut doc, body),
        }
        let new = match (sub, &old) {
            (Some("status"), Some(o)) if kind.status => with_status(o.clone(), doc.get("status")),
            (Some(other), _) => return Err((404, format!("no subresource {other}"))),
            (None, Some(o)) if kind.status => with_status(doc, o.get("status")),
            (None, _) => doc,
        };
        let code = if old.is_some() { 200 } else { 201 };
        Ok((code, self.commit(kind, key, old.as_ref(), new, false)))
    }

    fn delete(&mut self, kind: &'static KindDef, key: Key, body: &Value) -> Answer {
        let Some(old) = self.objects.get(&key).cloned() else {
            return Err((404, format!("{} \"{}\" not found", key.0, key.2)));
        };
        let uid = body.pointer("/preconditions/uid").and_then(Value::as_str);
        if uid.is_some_and(|u| u != str_of(&old, "/metadata/uid")) {
            return Err((409, "the precondition on the uid does not hold".into()));
        }
        let mut new = old.clone();
        if new.pointer("/metadata/deletionTimestamp").is_none() {
            new["metadata"]["deletionTimestamp"] = json!(now());
        }
        Ok((200, self.commit(kind, key, Some(&old), new, true)))
    }

    /// Stores a write: server-managed metadata kept (`server`: the server's
    /// own change, which may set `deletionTimestamp`), no-ops dropped,
    /// generation and resource version moved, the object removed once it is
    /// being deleted without finalizers; watchers told. Returns the object.
    fn commit(
        &mut self,
        kind: &'static KindDef,
        key: Key,
        old: Option<&Value>,
        mut new: Value,
        server: bool,
    ) -> Value {
        new["apiVersion"] = json!(kind.api_version);
        new["kind"] = json!(kind.kind);
        match old {
            Some(old) => {
                let mut kept = vec!["uid", "creationTimestamp", "generation", "resourceVersion"];
                if !server {
                    kept.push("deletionTimestamp");
                }
                for field in kept {
                    match old["metadata"].get(field) {
                        Some(v) => new["metadata"][field] = v.clone(),
                        None => {
                            new["metadata"].as_object_mut().map(|m| m.remove(field));
                        }
                    }
                }
                if new == *old {
                    return new;
                }
                if without(old, &["metadata", "status"]) != without(&new, &["metadata", "status"]) {
                    let generation = old["metadata"]["generation"].as_i64().unwrap_or(0);
                    new["metadata"]["generation"] = json!(generation + 1);
                }
            }
            None => {
                self.uids += 1;
                new["metadata"]["uid"] = json!(format!("uid-{}", self.uids));
                new["metadata"]["creationTimestamp"] = json!(now());
                new["metadata"]["generation"] = json!(1);
            }
        }
        self.rv += 1;
        new["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        let deleting = new.pointer("/metadata/deletionTimestamp").is_some();
        let finalizers = new
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array);
        let gone = deleting && finalizers.is_none_or(Vec::is_empty);
        let type_ = match (gone, old) {
            (true, _) => "DELETED",
            (false, None) => "ADDED",
            (false, Some(_)) => "MODIFIED",
        };
        match gone {
            true => self.objects.remove(&key),
            false => self.objects.insert(key.clone(), new.clone()),
        };
        self.emit(kind, &key.1, type_, &new);
        new
    }

    fn emit(&mut self, kind: &KindDef, ns: &str, type_: &str, object: &Value) {
        let line = format!("{}\n", json!({"type": type_, "object": object}));
        let change = Change {
            resource: kind.collection(),
            ns: ns.to_string(),
            rv: self.rv,
            line: Bytes::from(line),
        };
        self.history.push(change.clone());
        match &mut self.paused {
            Some(held) => held.push(change),
            None => self.send(&change),
        }
    }

    fn send(&mut self, change: &Change) {
        self.watches.retain(|w| !w.tx.is_closed());
        for w in self.watches.iter().filter(|w| w.wants(change)) {
            let _ = w.tx.unbounded_send(change.line.clone());
        }
    }
}

impl Watch {
    fn wants(&self, c: &Change) -> bool {
        self.resource == c.resource && self.ns.as_ref().is_none_or(|ns| *ns == c.ns)
    }
}

/// `object` with its status replaced by `status` (removed when `None`).
fn with_status(mut object: Value, status: Option<&Value>) -> Value {
    match (status, object.as_object_mut()) {
        (Some(s), Some(m)) => {
            m.insert("status".into(), s.clone());
        }
        (None, Some(m)) => {
            m.remove("status");
        }
        _ => {}
    }
    object
}

fn without(object: &Value, fields: &[&str]) -> Value {
    let mut v = object.clone();
    if let Some(m) = v.as_object_mut() {
        for f in fields {
            m.remove(*f);
        }
    }
    v
}

/// The resource list of a group version.
fn discovery(gv: &str) -> Answer {
    let mut resources = Vec::new();
    for k in KINDS.iter().filter(|k| k.api_version == gv) {
        let verbs = [
            "create", "delete", "get", "list", "patch", "update", "watch",
        ];
        resources.push(
            json!({"name": k.plural, "singularName": k.kind.to_lowercase(),
            "namespaced": k.namespaced, "kind": k.kind, "verbs": verbs}),
        );
        if k.status {
            resources.push(
                json!({"name": format!("{}/status", k.plural), "singularName": "",
                "namespaced": k.namespaced, "kind": k.kind, "verbs": ["get", "patch", "update"]}),
            );
        }
    }
    if resources.is_empty() {
        return Err((404, format!("the server could not find /apis/{gv}")));
    }
    Ok((
        200,
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
                    "resources": resources}),
    ))
}
