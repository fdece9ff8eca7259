//! Write operon reconcilers in Rust.
//!
//! A reconciler is a pure function: the host hands it a parent object and
//! the children it already owns, and it answers with the children it wants,
//! the parent's status, events and when to come back. The host does every
//! write. This crate turns the WIT contract (`operon:reconciler`) into plain
//! Rust types, so reconciler logic compiles and is unit-tested natively with
//! `cargo test`, and the same code builds as a `wasm32-wasip2` component.
//!
//! ```
//! use k8s_openapi::api::core::v1::ConfigMap;
//! use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
//! use operon_sdk::{Context, Error, Gvk, Reconciler, Registration, Request, Response};
//!
//! struct Greeter;
//!
//! impl Reconciler for Greeter {
//!     fn describe() -> Registration {
//!         Registration::new("greeter", env!("CARGO_PKG_VERSION"), Gvk::new("demo.operon.dev", "v1", "Greeting"))
//!             .owns::<ConfigMap>()
//!     }
//!
//!     fn reconcile(_ctx: &Context, req: Request) -> Result<Response, Error> {
//!         #[derive(serde::Deserialize)]
//!         struct Spec { message: String }
//!         let spec: Spec = req.spec()?;
//!         let cm = ConfigMap {
//!             metadata: ObjectMeta { name: Some(req.name().to_string()), ..Default::default() },
//!             data: Some([("message".to_string(), spec.message)].into()),
//!             ..Default::default()
//!         };
//!         Ok(Response::new().child(cm))
//!     }
//! }
//!
//! operon_sdk::export!(Greeter);
//!
//! // Natively, test the logic directly:
//! let req = Request::new(serde_json::json!({
//!     "apiVersion": "demo.operon.dev/v1", "kind": "Greeting",
//!     "metadata": {"name": "hi", "namespace": "demo"},
//!     "spec": {"message": "hello"}
//! }));
//! let ctx = operon_sdk::testing::FakeCluster::new().into_context();
//! let resp = Greeter::reconcile(&ctx, req).unwrap();
//! assert_eq!(resp.children[0]["data"]["message"], "hello");
//! ```
//!
//! Build the component with
//! `cargo build --target wasm32-wasip2 --profile plugin -p <crate>`.
//!
//! Modules: [`types`] (registration, refs, events, patches), [`conditions`]
//! (`metav1.Condition` helpers), [`context`] (cluster reads and logging),
//! [`testing`] (the native fake cluster), [`time`] (the clock and RFC 3339
//! timestamps), [`job`] (Jobs as children: their state, their template),
//! [`mod@export`] (the component boundary, and the [`export!`] macro).

pub mod conditions;
pub mod context;
mod decode;
mod error;
pub mod export;
pub mod job;
mod request;
mod response;
pub mod testing;
pub mod time;
pub mod types;

pub use conditions::{Condition, ConditionStatus, set_condition};
pub use context::{Context, LogLevel, LogRecord};
pub use decode::decode;
pub use error::{ClusterError, Error};
pub use request::{Request, SYNCED_CONDITION, name_of};
pub use response::Response;
pub use types::{
    Capabilities, Event, EventType, Gvk, ObjectRef, ParentKind, Patch, PatchType, Registration,
    RelatedKind, RelatedMapping,
};

/// The crates whose types appear in this API, so a plugin's versions match.
pub use jiff;
pub use k8s_openapi;
pub use serde;
pub use serde_json;

/// A reconciler: what a plugin implements, then exports with
/// [`export!`].
///
/// The functions take no `self`: the host instantiates the component afresh
/// for every call, so there is no state to keep between calls anyway, and
/// everything a reconcile needs arrives in the [`Request`] or through the
/// [`Context`].
pub trait Reconciler {
    /// Names the plugin and the kinds it reconciles, owns and reads. Called
    /// once per load; must not depend on configuration.
    fn describe() -> Registration;

    /// Computes the desired state of one parent from the observed state.
    /// Must be idempotent: the host calls it again whenever anything
    /// relevant changes, and after restarts.
    fn reconcile(ctx: &Context, req: Request) -> Result<Response, Error>;

    /// For related kinds with [`RelatedMapping::Custom`] (the `map-related` export): which parents a
    /// changed related object concerns. The default concerns none.
    fn map_related(ctx: &Context, related: &serde_json::Value) -> Vec<ObjectRef> {
        let _ = (ctx, related);
        Vec::new()
    }
}
