//! Handing the memory a compile freed back to the operating system.
//!
//! Compiling a component allocates a great deal, briefly, on many threads
//! (wasmtime spreads a component's functions over its compile threads).
//! glibc's allocator keeps one arena per thread and gives freed memory
//! back in two ways, and both needed help:
//!
//! - **Free chunks inside an arena** go back only through `malloc_trim`.
//!   After every compile the host asks glibc to return the free pages of
//!   every arena: a walk of the free lists, milliseconds, done only when a
//!   component is loaded.
//! - **The free top of a thread's arena** is not touched by `malloc_trim`
//!   (it trims only the main arena's top) and is given back by `free` only
//!   when it exceeds the trim threshold, which glibc raises to twice the
//!   largest `mmap`-ed block ever freed. A compile frees blocks of several
//!   MiB, so each arena kept megabytes of freed, resident top: with a new
//!   build swapped in every 10 s, ten arenas held 66 MiB resident with
//!   10 MiB in use (`malloc_stats` through gdb), anonymous memory rising
//!   15 -> 83 MiB over 30 swaps. Fixing both thresholds at start
//!   ([`bound_arena_tops`]) turns the dynamic raise off: the same 30 swaps
//!   went 15 -> 21 MiB and stayed there for 30 min after (debug build,
//!   the memcached example, `--keep-revisions 2`).
//!
//! No crate offers either (each is one libc call); a different allocator
//! (jemalloc, mimalloc) would mean a C build and a second allocator's
//! behaviour to learn for two calls. On other C libraries, whose
//! allocators differ, both are no-ops.

/// Blocks at least this large are `mmap`-ed and unmapped on free
/// (glibc's initial default, kept from being raised).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 128 << 10;

/// An arena's free top above this is handed back on `free`: small enough
/// that a dozen arenas hold little, large enough that a reconcile's
/// allocations do not map and unmap pages on every call.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_THRESHOLD: libc::c_int = 1 << 20;

/// Fixes glibc's mmap and trim thresholds (see the module doc). Process
/// wide; called when the engine is built, before any compile.
pub fn bound_arena_tops() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            // SAFETY: mallopt only sets the allocator's own parameters
            // under its lock; it takes no pointer and may be called from
            // any thread at any time.
            let set = unsafe {
                libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD)
                    & libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD)
            };
            if set != 1 {
                tracing::warn!(
                    "glibc refused the malloc thresholds; memory freed by compiles may stay resident"
                );
            }
        });
    }
}

/// Returns freed heap memory of every arena to the OS (glibc only).
pub fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim only walks and trims the allocator's own
        // free lists under its locks; it takes no pointer of ours and is
        // safe to call from any thread at any time.
        unsafe {
            libc::malloc_trim(0);
        }
    }
}
