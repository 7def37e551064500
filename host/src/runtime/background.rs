//! Compiling and deploying share the cores with serving. Their threads run
//! at a lower CPU priority (nice 10), so that while a module compiles the
//! serving threads win the cores: a deploy takes longer on a busy server,
//! requests do not.

/// The nice value of compile and deploy threads.
pub const NICE: i32 = 10;

/// Lowers the calling thread's CPU priority to [`NICE`] (on Linux a
/// priority is per thread), unless it is lower already.
pub fn lower_this_thread() {
    #[cfg(target_os = "linux")]
    // SAFETY: plain syscalls about the calling thread.
    unsafe {
        let tid = libc::gettid() as libc::id_t;
        // -1 is also a valid priority: clear errno to tell it from an error.
        *libc::__errno_location() = 0;
        let now = libc::getpriority(libc::PRIO_PROCESS, tid);
        if *libc::__errno_location() == 0
            && now < NICE
            && libc::setpriority(libc::PRIO_PROCESS, tid, NICE) != 0
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
