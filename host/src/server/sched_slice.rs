//! A shorter scheduling slice for worker threads.
//!
//! With the clients on the same cores (or other busy processes), a worker
//! is often preempted in the middle of a task; the other workers take on
//! the tasks waiting behind it, but not the one it was running, which
//! waits until it runs again, for up to the kernel's slice, some
//! milliseconds. When each worker owned its connections, that wait was
//! most of Snow's 99th percentile at 64 connections on two cores. Linux
//! 6.12 and later let a thread ask for a shorter slice (EEVDF's custom slice, `sched_attr.sched_runtime` for a
//! normal thread): it then runs sooner and in shorter turns, without any
//! priority over other threads' share of the CPU. Older kernels ignore it.

use std::time::Duration;

/// `struct sched_attr` of `sched_setattr(2)`, as far as its first version
/// goes.
#[repr(C)]
struct SchedAttr {
    size: u32,
    policy: u32,
    flags: u64,
    nice: i32,
    priority: u32,
    runtime: u64,
    deadline: u64,
    period: u64,
}

/// Asks for `slice` for the calling thread; zero asks for nothing. Its
/// policy, nice value and other attributes stay as they are.
pub fn request(slice: Duration) -> std::io::Result<()> {
    if slice.is_zero() {
        return Ok(());
    }
    let mut attr = attributes()?;
    attr.runtime = u64::try_from(slice.as_nanos()).unwrap_or(u64::MAX);
    // SAFETY: `attr` is a valid `sched_attr` of the size it states, alive
    // for the call, read only; pid 0 is the calling thread.
    let rc = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The calling thread's attributes, `runtime` being its slice when it
/// asked for one.
fn attributes() -> std::io::Result<SchedAttr> {
    let size = std::mem::size_of::<SchedAttr>() as u32;
    let mut attr = SchedAttr {
        size,
        policy: 0,
        flags: 0,
        nice: 0,
        priority: 0,
        runtime: 0,
        deadline: 0,
        period: 0,
    };
    // SAFETY: `attr` is a writable `sched_attr` of `size` bytes, alive for
    // the call; pid 0 is the calling thread.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_sched_getattr,
            0,
            &mut attr as *mut SchedAttr,
            size,
            0,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // The kernel writes the size of its own version of the struct.
    attr.size = size;
    Ok(attr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_can_ask_for_a_slice_and_zero_asks_nothing() {
        std::thread::spawn(|| {
            request(Duration::ZERO).expect("nothing asked");
            // Kernels before 6.12 take the call and ignore the slice; a
            // sandbox may refuse the syscall, which the worker only logs.
            match request(Duration::from_micros(300)) {
                Ok(()) => {
                    let now = Duration::from_nanos(
                        attributes().expect("the thread's attributes").runtime,
                    );
                    assert!(
                        now == Duration::from_micros(300)
                            || now.is_zero()
                            || now > Duration::from_millis(1),
                        "{now:?}"
                    );
                }
                Err(err) => assert!(
                    matches!(
                        err.raw_os_error(),
                        Some(libc::EPERM | libc::ENOSYS | libc::EINVAL)
                    ),
                    "{err}"
                ),
            }
        })
        .join()
        .expect("thread");
    }
}
