//! Test plugin: answers an empty response at once. The floor for
//! benchmarks: whatever a reconcile of this plugin costs is host overhead.

use operon_sdk::{Context, Error, Gvk, Reconciler, Registration, Request, Response};

struct Trivial;

impl Reconciler for Trivial {
    fn describe() -> Registration {
        Registration::new(
            "trivial",
            env!("CARGO_PKG_VERSION"),
            Gvk::new("test.operon.dev", "v1", "Widget"),
        )
    }

    fn reconcile(_ctx: &Context, _req: Request) -> Result<Response, Error> {
        Ok(Response::new())
    }
}

operon_sdk::export!(Trivial);
