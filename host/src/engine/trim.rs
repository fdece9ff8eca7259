//! Handing the memory a compile freed back to the operating system.
//!
//! Compiling a component allocates a great deal, briefly, on many threads
//! (wasmtime spreads a component's functions over its compile threads).
//! glibc's allocator keeps one arena per thread and gives freed memory
//! back only from the top of each, so every compile left some of it
//! resident: with a new build swapped in every few seconds, the host's
//! anonymous memory grew by about 1 MiB per swap, most of it free space in
//! those arenas (a `malloc_trim(0)` through gdb into such a host gave back
//! 19 of its 48 MiB of growth; `MALLOC_ARENA_MAX=1` kept the growth down to
//! the same level). So after every compile the host asks glibc to return
//! the free pages of every arena: a walk of the free lists, milliseconds,
//! done only when a component is loaded.
//!
//! No crate offers this (it is one libc call); on other C libraries, whose
//! allocators differ, it is a no-op.

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
