//! Raw bindings generated from `wit/reconciler.wit`.
//!
//! Kept in a module of its own so the generated names do not leak into the
//! rest of the host: other modules import the re-exports in [`super`].

wasmtime::component::bindgen!({
    world: "reconciler",
    path: "../wit",
    additional_derives: [serde::Serialize, PartialEq],
});
