//! The component boundary: WIT bindings and the [`crate::export!`] macro.
//!
//! Conversion between the generated binding types and the SDK's own types
//! lives here, once, in a generic [`Adapter`]; the macro a plugin invokes only
//! names its reconciler. Everything is gated on `wasm32`, so a plugin crate
//! also builds natively (as an `rlib` for its unit tests) without exporting
//! or importing anything.

use std::marker::PhantomData;

/// Implements the generated `Guest` trait for any [`crate::Reconciler`].
#[doc(hidden)]
pub struct Adapter<R>(PhantomData<R>);

/// Exports a [`crate::Reconciler`] as the component's `reconciler` world.
///
/// ```text
/// struct Memcached;
/// impl operon_sdk::Reconciler for Memcached { /* ... */ }
/// operon_sdk::export!(Memcached);
/// ```
///
/// Natively this expands to nothing, so `cargo test` of the plugin crate
/// calls `Memcached::reconcile` directly.
#[macro_export]
macro_rules! export {
    ($reconciler:ty) => {
        // Natively nothing is exported, but naming the impl keeps the
        // reconciler from looking like dead code to the compiler.
        #[cfg(not(target_arch = "wasm32"))]
        const _: fn(
            &$crate::Context,
            $crate::Request,
        ) -> ::core::result::Result<$crate::Response, $crate::Error> =
            <$reconciler as $crate::Reconciler>::reconcile;
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            type OperonAdapter = $crate::export::Adapter<$reconciler>;
            $crate::export::bindings::__operon_export_world!(
                OperonAdapter with_types_in $crate::export::bindings
            );
        };
    };
}

/// The guest bindings of `wit/reconciler.wit`, generated at build time.
#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
#[allow(clippy::all, missing_docs)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "operon:reconciler/reconciler",
        pub_export_macro: true,
        export_macro_name: "__operon_export_world",
        default_bindings_module: "operon_sdk::export::bindings",
    });
}

#[cfg(target_arch = "wasm32")]
mod guest {
    use std::time::Duration;

    use super::Adapter;
    use super::bindings::{self, operon::reconciler::types as wit};
    use crate::{
        Context, Error, EventType, Gvk, ObjectRef, PatchType, Reconciler, Registration,
        RelatedMapping, Request, Response,
    };

    impl<R: Reconciler> bindings::Guest for Adapter<R> {
        fn describe() -> wit::Registration {
            registration(R::describe())
        }

        fn reconcile(req: wit::Request) -> Result<wit::Response, wit::Error> {
            let ctx = Context::host();
            let outcome = request(req)
                .and_then(|req| R::reconcile(&ctx, req))
                .and_then(|resp| {
                    resp.validate()?;
                    response(resp)
                });
            outcome.map_err(|e| match e {
                Error::Retryable(m) => wit::Error::Retryable(m),
                Error::Permanent(m) => wit::Error::Permanent(m),
            })
        }

        fn map_related(related: String) -> Vec<wit::ObjectRef> {
            let ctx = Context::host();
            match serde_json::from_str(&related) {
                Ok(related) => R::map_related(&ctx, &related)
                    .into_iter()
                    .map(object_ref)
                    .collect(),
                Err(e) => {
                    ctx.log(
                        crate::LogLevel::Error,
                        &format!("map-related: related object is not JSON: {e}"),
                    );
                    Vec::new()
                }
            }
        }
    }

    /// The host sends JSON it got from the API server; text that does not
    /// parse would not parse on a retry either.
    fn request(req: wit::Request) -> Result<Request, Error> {
        let parse = |what: &str, text: &str| {
            serde_json::from_str(text)
                .map_err(|e| Error::Permanent(format!("{what} is not JSON: {e}")))
        };
        let mut out = Request::new(parse("parent", &req.parent)?).with_finalizing(req.finalizing);
        for (i, child) in req.observed.iter().enumerate() {
            out = out.with_observed(parse(&format!("observed child #{}", i + 1), child)?);
        }
        for entry in req.config {
            out = out.with_config(entry.key, entry.value);
        }
        Ok(out)
    }

    fn response(resp: Response) -> Result<wit::Response, Error> {
        let to_text = |what: &str, v: &serde_json::Value| {
            serde_json::to_string(v)
                .map_err(|e| Error::Permanent(format!("{what} does not serialize: {e}")))
        };
        Ok(wit::Response {
            children: resp
                .children
                .iter()
                .map(|c| to_text("child", c))
                .collect::<Result<_, _>>()?,
            status: resp
                .status
                .as_ref()
                .map(|s| to_text("status", s))
                .transpose()?,
            events: resp
                .events
                .into_iter()
                .map(|e| wit::Event {
                    type_: match e.type_ {
                        EventType::Normal => wit::EventType::Normal,
                        EventType::Warning => wit::EventType::Warning,
                    },
                    reason: e.reason,
                    message: e.message,
                })
                .collect(),
            requeue_after_ms: resp.requeue_after.map(millis),
            finalized: resp.finalized,
            patches: resp
                .patches
                .into_iter()
                .map(|p| {
                    Ok(wit::Patch {
                        body: to_text("patch body", &p.body)?,
                        target: object_ref(p.target),
                        subresource: p.subresource,
                        patch_type: match p.patch_type {
                            PatchType::Merge => wit::PatchType::Merge,
                            PatchType::Json => wit::PatchType::Json,
                            PatchType::Apply => wit::PatchType::Apply,
                        },
                    })
                })
                .collect::<Result<_, Error>>()?,
        })
    }

    /// Saturates rather than wraps: a requeue centuries away is "never".
    fn millis(d: Duration) -> u64 {
        u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
    }

    fn gvk(g: Gvk) -> wit::Gvk {
        wit::Gvk {
            group: g.group,
            version: g.version,
            kind: g.kind,
        }
    }

    fn object_ref(r: ObjectRef) -> wit::ObjectRef {
        wit::ObjectRef {
            api_version: r.api_version,
            kind: r.kind,
            namespace: r.namespace,
            name: r.name,
        }
    }

    fn registration(r: Registration) -> wit::Registration {
        wit::Registration {
            name: r.name,
            version: r.version,
            parent: wit::ParentKind {
                kind: gvk(r.parent.kind),
                namespaced: r.parent.namespaced,
            },
            owns: r.owns.into_iter().map(gvk).collect(),
            related: r
                .related
                .into_iter()
                .map(|k| wit::RelatedKind {
                    kind: gvk(k.kind),
                    mapping: match k.mapping {
                        RelatedMapping::Custom => wit::RelatedMapping::Custom,
                        RelatedMapping::Label(l) => wit::RelatedMapping::Label(l),
                        RelatedMapping::Field(f) => wit::RelatedMapping::Field(f),
                        RelatedMapping::Namespace => wit::RelatedMapping::Namespace,
                    },
                })
                .collect(),
            finalizer: r.finalizer,
            crds: r.crds,
            capabilities: wit::Capabilities {
                reads: r.capabilities.reads.into_iter().map(gvk).collect(),
                patches: r.capabilities.patches.into_iter().map(gvk).collect(),
                secrets: r.capabilities.secrets,
            },
        }
    }
}
