//! Test plugin: `reconcile` never returns. The host must stop it with its
//! time limit (epoch interruption) and stay healthy.

use operon_sdk::{Context, Error, Gvk, Reconciler, Registration, Request, Response};

struct Spin;

impl Reconciler for Spin {
    fn describe() -> Registration {
        Registration::new(
            "spin",
            env!("CARGO_PKG_VERSION"),
            Gvk::new("test.operon.dev", "v1", "Widget"),
        )
    }

    fn reconcile(_ctx: &Context, _req: Request) -> Result<Response, Error> {
        // `black_box` is opaque to the optimizer, so the loop survives LTO
        // and -Os as real work rather than being folded away.
        let mut n: u64 = 0;
        loop {
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }
}

operon_sdk::export!(Spin);
