//! glibc's allocator, tuned at start so that memory freed after a burst of big
//! messages goes back to the system (issue 18 item 1).
//!
//! By default glibc serves an allocation of 128 KiB or more with its own `mmap`, but
//! raises that threshold to the size of every such block freed (up to 32 MiB): after
//! the first big answer, later ones of that size come from the heaps (arenas), and
//! freeing them leaves the pages in the process (RSS stayed at 0.9–1.6 GiB after 256
//! unread 4 MB answers were closed). Fixing the threshold keeps every big message
//! (request bodies, results, answers) in its own mapping, unmapped when freed. Each
//! thread that allocates may also get an arena of its own (up to 8 per core), each
//! keeping its own free memory: a few are enough for emcee's threads.

/// Blocks of this size or more are mapped on their own and unmapped when freed
/// (glibc's default starting threshold, kept fixed).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 128 * 1024;

/// Most arenas (glibc's default is 8 per core).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const ARENA_MAX: libc::c_int = 4;

/// Apply the settings; call first thing in `main`, before any other thread starts.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` only sets parameters of glibc's allocator (it takes the
    // arena lock itself); it is called before any other thread exists, with
    // parameters and values glibc documents. A value it refuses returns 0 and
    // leaves the default: nothing to handle.
    #[allow(unsafe_code)]
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_ARENA_MAX, ARENA_MAX);
    }
}
