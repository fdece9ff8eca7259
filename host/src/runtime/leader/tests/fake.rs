//! A fake API server holding one Lease, with the API server's optimistic
//! concurrency (resourceVersion, 409 Conflict), as a tower service behind
//! `kube::Client::new`. A replica's connection can be cut: its requests
//! then hang, as over a dead TCP connection without a read timeout.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use http_body_util::BodyExt;
use hyper::{Method, Request, Response, StatusCode};
use k8s_openapi::api::coordination::v1::Lease;
use kube::client::Body;
use serde_json::json;
use tokio::time::Instant;

use super::super::record::Record;

/// The one Lease the fake serves, and a log of its writes.
#[derive(Default)]
pub struct Store {
    pub lease: Option<Lease>,
    pub version: u64,
    /// (holder after the write, when)
    pub writes: Vec<(Option<String>, Instant)>,
}

/// One replica's connection to the fake: it can be cut (requests hang).
#[derive(Clone)]
pub struct Fake {
    pub store: Arc<Mutex<Store>>,
    pub cut: Arc<AtomicBool>,
}

const PATH: &str = "/apis/coordination.k8s.io/v1/namespaces/ns/leases";

fn status(code: StatusCode, reason: &str) -> Response<Body> {
    let body = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
        "reason": reason, "code": code.as_u16(), "message": reason});
    let mut r = Response::new(Body::from(body.to_string().into_bytes()));
    *r.status_mut() = code;
    r
}

fn ok(value: impl serde::Serialize) -> Response<Body> {
    Response::new(Body::from(serde_json::to_vec(&value).unwrap()))
}

impl Fake {
    pub fn new() -> Fake {
        Fake {
            store: Arc::default(),
            cut: Arc::default(),
        }
    }

    /// Another connection to the same store.
    pub fn peer(&self) -> Fake {
        Fake {
            store: self.store.clone(),
            cut: Arc::default(),
        }
    }

    pub fn client(&self) -> kube::Client {
        let fake = self.clone();
        let service = tower::service_fn(move |req: Request<Body>| {
            let fake = fake.clone();
            async move { Ok::<_, Infallible>(fake.answer(req).await) }
        });
        kube::Client::new(service, "ns")
    }

    async fn answer(&self, req: Request<Body>) -> Response<Body> {
        if self.cut.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        let (method, path) = (req.method().clone(), req.uri().path().to_string());
        let watch = req.uri().query().is_some_and(|q| q.contains("watch=true"));
        let body = req.into_body().collect().await.unwrap().to_bytes();
        match (method, path.strip_prefix(PATH)) {
            // The watch stays silent: these tests exercise the polls.
            (Method::GET, Some("")) if watch => std::future::pending().await,
            (Method::GET, Some("")) => {
                let store = self.store.lock().unwrap();
                let items: Vec<&Lease> = store.lease.iter().collect();
                ok(
                    json!({"apiVersion": "coordination.k8s.io/v1", "kind": "LeaseList",
                    "metadata": {"resourceVersion": store.version.to_string()}, "items": items}),
                )
            }
            (Method::GET, Some("/l")) => match &self.store.lock().unwrap().lease {
                Some(l) => ok(l),
                None => status(StatusCode::NOT_FOUND, "NotFound"),
            },
            (Method::POST, Some("")) => self.write(&body, true),
            (Method::PUT, Some("/l")) => self.write(&body, false),
            (m, _) => panic!("unexpected {m} {path}"),
        }
    }

    fn write(&self, body: &[u8], create: bool) -> Response<Body> {
        let mut lease: Lease = serde_json::from_slice(body).unwrap();
        let mut store = self.store.lock().unwrap();
        let current = store
            .lease
            .as_ref()
            .and_then(|l| l.metadata.resource_version.clone());
        let conflict = match create {
            true => store.lease.is_some(),
            false => current.is_none() || lease.metadata.resource_version != current,
        };
        if conflict {
            return status(StatusCode::CONFLICT, "Conflict");
        }
        store.version += 1;
        lease.metadata.resource_version = Some(store.version.to_string());
        let holder = Record::of(&lease).holder;
        store.writes.push((holder, Instant::now()));
        store.lease = Some(lease.clone());
        ok(lease)
    }

    pub fn holder(&self) -> Option<String> {
        self.store
            .lock()
            .unwrap()
            .lease
            .as_ref()
            .and_then(|l| Record::of(l).holder)
    }
}
