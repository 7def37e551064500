//! Compiling and deploying share the cores with serving. Their threads run
//! at a lower CPU priority (nice 10), so that while a module compiles the
//! serving threads win the cores: a deploy takes longer on a busy server,
//! requests do not. Cranelift's build of a module already serving from
//! Winch's is wanted least: it compiles on a pool of its own, lower still,
//! so a deploy's compile never waits behind it.

use std::sync::OnceLock;

/// The nice value of compile and deploy threads.
pub const NICE: i32 = 10;
/// The nice value of the threads that compile Cranelift's replacement for
/// a Winch build.
pub const TIER_UP_NICE: i32 = 15;

/// Lowers the calling thread's CPU priority to [`NICE`] (on Linux a
/// priority is per thread), unless it is lower already.
pub fn lower_this_thread() {
    lower_this_thread_to(NICE);
}

fn lower_this_thread_to(nice: i32) {
    #[cfg(target_os = "linux")]
    // SAFETY: plain syscalls about the calling thread.
    unsafe {
        let tid = libc::gettid() as libc::id_t;
        // -1 is also a valid priority: clear errno to tell it from an error.
        *libc::__errno_location() = 0;
        let now = libc::getpriority(libc::PRIO_PROCESS, tid);
        if *libc::__errno_location() == 0
            && now < nice
            && libc::setpriority(libc::PRIO_PROCESS, tid, nice) != 0
        {
            tracing::debug!(
                "could not lower a compile thread's priority: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}

/// wasmtime compiles a module's functions on rayon's global pool: its
/// threads run at the lower priority. Call before the first compile; a
/// second call changes nothing.
pub fn compile_in_background() {
    let built = rayon::ThreadPoolBuilder::new()
        .thread_name(|i| format!("snow-compile-{i}"))
        .start_handler(|_| lower_this_thread())
        .build_global();
    if let Err(err) = built {
        tracing::debug!("the compile pool was built already: {err}");
    }
}

/// Runs `compile` (and the compile jobs wasmtime spawns from it) on the
/// tier-up pool: as many threads as cores, at [`TIER_UP_NICE`].
pub fn tier_up<R: Send>(compile: impl FnOnce() -> R + Send) -> R {
    static POOL: OnceLock<Option<rayon::ThreadPool>> = OnceLock::new();
    let pool = POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .thread_name(|i| format!("snow-tier-up-{i}"))
            .start_handler(|_| lower_this_thread_to(TIER_UP_NICE))
            .build()
            .inspect_err(|err| {
                tracing::warn!("no tier-up pool, compiling on the shared one: {err}")
            })
            .ok()
    });
    lower_this_thread_to(TIER_UP_NICE);
    match pool {
        Some(pool) => pool.install(compile),
        None => compile(),
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::{lower_this_thread, NICE};

    fn priority() -> i32 {
        // SAFETY: reads the calling thread's priority.
        unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) }
    }

    #[test]
    fn a_lowered_thread_runs_at_the_background_priority_and_others_do_not() {
        let before = priority();
        let lowered = std::thread::spawn(|| {
            lower_this_thread();
            priority()
        })
        .join()
        .expect("the thread ran");
        assert_eq!(lowered, NICE.max(before));
        assert_eq!(priority(), before, "only the thread that asked");
    }
}
