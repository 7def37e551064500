//! Which epoll instance a worker's runtime sleeps in, for busy polls that
//! end as soon as it has events (`busy_poll`). Tokio does not expose it,
//! so the process's epoll descriptors are listed before and after the
//! runtime is built, the builds taking turns. Tokio keeps two descriptors
//! of its instance (the poller's and a clone for registrations); they are
//! told to be one instance by what they watch, from `/proc/self/fdinfo`.
//! Anything else new (another thread made an instance meanwhile) leaves
//! the question unanswered, and the polls run their whole budget as they
//! would without it. A wrong answer could only end polls early or late.

use std::collections::{BTreeMap, HashSet};
use std::os::fd::RawFd;
use std::sync::Mutex;

static BUILDING: Mutex<()> = Mutex::new(());

/// Runs `build` and returns what it built with a descriptor of the epoll
/// instance it opened, when that can be told.
pub fn build_noting_epoll<T>(build: impl FnOnce() -> T) -> (T, Option<RawFd>) {
    let _turn = BUILDING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let before = epoll_fds();
    let built = build();
    let fd = before
        .zip(epoll_fds())
        .and_then(|(before, after)| one_instance(after.difference(&before).copied().collect()));
    (built, fd)
}

/// A descriptor of the one instance `fds` are all of; `None` when they
/// are of none or of several.
fn one_instance(fds: Vec<RawFd>) -> Option<RawFd> {
    let mut instances: BTreeMap<String, RawFd> = BTreeMap::new();
    for fd in fds {
        let watched = watched(fd)?;
        let kept = instances.entry(watched).or_insert(fd);
        *kept = (*kept).min(fd);
    }
    let mut only = instances.into_values();
    match (only.next(), only.next()) {
        (Some(fd), None) => Some(fd),
        _ => None,
    }
}

/// The `tfd:` lines of an epoll descriptor's fdinfo: what its instance
/// watches, the same through every descriptor of it.
fn watched(fd: RawFd) -> Option<String> {
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).ok()?;
    Some(
        info.lines()
            .filter(|line| line.starts_with("tfd:"))
            .collect::<Vec<_>>()
            .join("\n"),
    )
}

/// This process's epoll descriptors; `None` without `/proc`.
fn epoll_fds() -> Option<HashSet<RawFd>> {
    let entries = std::fs::read_dir("/proc/self/fd").ok()?;
    Some(
        entries
            .flatten()
            .filter(|entry| {
                std::fs::read_link(entry.path())
                    .is_ok_and(|target| target.as_os_str() == "anon_inode:[eventpoll]")
            })
            .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::busy_poll::has_events;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    }

    /// Other tests build runtimes at the same time, which can leave a
    /// build unanswered, never answered wrongly: a few tries find one.
    #[test]
    fn finds_the_epoll_instance_a_runtime_sleeps_in() {
        let (runtime, fd) = (0..20)
            .map(|_| build_noting_epoll(runtime))
            .find(|(_, fd)| fd.is_some())
            .expect("a build whose instance was told");
        let fd = fd.expect("found");
        let target = std::fs::read_link(format!("/proc/self/fd/{fd}")).expect("open fd");
        assert_eq!(target.as_os_str(), "anon_inode:[eventpoll]");
        // A socket the runtime watches that receives bytes makes its
        // instance ready, before the runtime has looked.
        runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let addr = listener.local_addr().expect("address");
            let mut client = std::net::TcpStream::connect(addr).expect("connect");
            let (_server, _) = listener.accept().await.expect("accept");
            // Sleeping lets the runtime take the events so far.
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            assert!(!has_events(fd), "nothing new yet");
            std::io::Write::write_all(&mut client, b"x").expect("write");
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while !has_events(fd) {
                assert!(std::time::Instant::now() < deadline, "never ready");
                std::thread::yield_now();
            }
        });
    }

    #[test]
    fn anything_but_one_new_instance_is_no_answer() {
        let ((), none) = build_noting_epoll(|| ());
        assert_eq!(none, None);
        let (two, fd) = build_noting_epoll(|| (runtime(), runtime()));
        assert_eq!(fd, None);
        drop(two);
        assert_eq!(one_instance(Vec::new()), None);
        // Not an epoll descriptor, or not open: no answer either.
        assert_eq!(one_instance(vec![-1]), None);
    }
}
