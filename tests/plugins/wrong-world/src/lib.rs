//! Test plugin: a component of the wrong world (`test:other/other`, which
//! exports only `describe: func() -> string`). Loading it must fail with a
//! message naming the missing `reconcile` export.

wit_bindgen::generate!({
    path: "wit",
    world: "test:other/other",
});

struct WrongWorld;

impl Guest for WrongWorld {
    fn describe() -> String {
        "I am not a reconciler".to_string()
    }
}

export!(WrongWorld);
