//! How the process's allocator is set up, before any thread starts.
//!
//! glibc gives a thread that finds the main heap busy an arena of its
//! own, up to eight per core, and memory freed into an arena serves only
//! that arena's next allocations. The watch caches' pods are decoded on
//! whichever tokio worker reads the stream and freed on whichever drops
//! the look, so the freed pages of a list or a burst of events strand in
//! arenas nobody allocates from again: at 1 000 workers × 30 pods the
//! adapter held 70 MB with the default arenas and 43 MB with two
//! (`examples/api_cost.rs`). The engine makes a few decisions a second at
//! most, so two arenas cost it nothing measurable.

/// At most two malloc arenas, unless the operator chose (`MALLOC_ARENA_MAX`
/// or `GLIBC_TUNABLES=glibc.malloc.arena_max=N`, which glibc reads
/// itself; a call here would override it). Call first thing in `main`.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none()
        && !std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains("glibc.malloc.arena_max"))
    {
        // SAFETY: mallopt only sets a parameter of the allocator; called
        // before the runtime starts any other thread.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}
