//! Test plugin: `reconcile` allocates without end. The host must stop it at
//! its memory limit (a failed `memory.grow` aborts the guest) and stay
//! healthy.

use operon_sdk::{Context, Error, Gvk, Reconciler, Registration, Request, Response};

struct Hog;

const CHUNK: usize = 1 << 20;

impl Reconciler for Hog {
    fn describe() -> Registration {
        Registration::new(
            "hog",
            env!("CARGO_PKG_VERSION"),
            Gvk::new("test.operon.dev", "v1", "Widget"),
        )
    }

    fn reconcile(_ctx: &Context, _req: Request) -> Result<Response, Error> {
        let mut kept: Vec<Vec<u8>> = Vec::new();
        loop {
            // Non-zero fill touches every page; `black_box` keeps the chunks
            // from being proven dead and elided.
            kept.push(std::hint::black_box(vec![0xA5; CHUNK]));
            std::hint::black_box(&kept);
        }
    }
}

operon_sdk::export!(Hog);
