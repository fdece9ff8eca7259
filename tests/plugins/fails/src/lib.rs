//! Test plugin: fails on purpose, as chosen by config key `mode`:
//! `retryable` (default) answers a retryable error, `permanent` a permanent
//! one, `panic` panics (a trap in the component). Exercises the host's
//! backoff, terminal errors, trap containment and `Synced` condition.

use operon_sdk::{Context, Error, Gvk, Reconciler, Registration, Request, Response};

struct Fails;

impl Reconciler for Fails {
    fn describe() -> Registration {
        Registration::new(
            "fails",
            env!("CARGO_PKG_VERSION"),
            Gvk::new("test.operon.dev", "v1", "Widget"),
        )
    }

    fn reconcile(_ctx: &Context, req: Request) -> Result<Response, Error> {
        match req.config("mode").unwrap_or("retryable") {
            "permanent" => Err(Error::permanent("spec.version 99 is not supported")),
            "panic" => panic!("boom"),
            _ => Err(Error::retryable("database not reachable")),
        }
    }
}

operon_sdk::export!(Fails);
