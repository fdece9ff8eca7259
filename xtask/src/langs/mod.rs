//! Components written in languages other than Rust: each module builds its
//! example with a pinned toolchain installed into a cache outside the clone.

pub mod c;
mod common;
pub mod go;
mod go_abi;
pub mod js;
pub mod postgres;
pub mod python;
