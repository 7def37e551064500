//! Busy polling before a worker sleeps.
//!
//! Under load a worker often runs out of ready connections for only a few
//! microseconds before the next request arrives. Sleeping in `epoll_wait`
//! for that gap costs a context switch out and a wake-up back in, which on a
//! machine whose cores are shared with the clients (or with the other
//! workers) is most of the difference between one busy worker and two
//! half-idle ones: at 64 keep-alive connections on two cores, two workers
//! that always sleep served 30% fewer requests than one.
//!
//! So before the runtime parks, a worker that was woken soon after its last
//! few parks keeps its core for a short budget, yielding it to any other
//! runnable thread meanwhile. The poll ends as soon as the runtime's epoll
//! instance has an event (see `epoll_fd`), which the runtime's next
//! `epoll_wait` then takes without sleeping; a poll that ran its whole
//! budget each time, as it did before, made every request that arrived
//! during it wait for the end, and took 0.74–1.25 `sched_yield` calls per
//! `/home/` request where it now takes 0.11. A worker whose
//! parks are long (an idle or lightly loaded server) does not spin at all,
//! so the cost is bounded by the budget per park and vanishes at idle.

use std::cell::Cell;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

/// A park that ends within this counts as "woken soon": spinning would
/// probably have caught what woke it, or will catch the next one. With the
/// default budget it bounds the spinning to about 1.5% of a core.
const BUSY_WINDOW: Duration = Duration::from_millis(1);

/// How many recent parks decide whether to spin; any short one among them
/// is enough.
const HISTORY: u32 = 4;

thread_local! {
    static STATE: Cell<State> = const { Cell::new(State { parked_at: None, recent: 0 }) };
}

#[derive(Clone, Copy)]
struct State {
    parked_at: Option<Instant>,
    /// One bit per recent park, newest lowest: set when it was short.
    recent: u8,
}

/// Busy polling of up to a budget, driven by the runtime's park hooks; a zero
/// budget turns it off.
#[derive(Clone, Copy)]
pub struct BusyPoll {
    budget: Duration,
}

impl BusyPoll {
    pub fn new(budget: Duration) -> Self {
        Self { budget }
    }

    /// Whether there is a budget to poll for.
    pub fn is_on(self) -> bool {
        !self.budget.is_zero()
    }

    /// For `on_thread_park`: polls a while if recent parks were short,
    /// until epoll instance `ready` (the runtime's, when it is known) has
    /// an event.
    pub fn before_park(self, ready: Option<RawFd>) {
        if !self.is_on() {
            return;
        }
        let now = Instant::now();
        let state = STATE.with(|s| {
            let mut state = s.get();
            state.parked_at = Some(now);
            s.set(state);
            state
        });
        if state.recent & ((1 << HISTORY) - 1) == 0 {
            return;
        }
        let until = now + self.budget;
        // Yielding rather than spinning on the CPU: with more runnable threads
        // than cores, the client or the other worker gets the core meanwhile.
        // It yields before its first look: looking first ended half the polls
        // without a yield and halved the median latency at 64 connections,
        // but doubled p99, the other worker and the client waiting longer.
        loop {
            std::thread::yield_now();
            if ready.is_some_and(has_events) || Instant::now() >= until {
                break;
            }
        }
    }

    /// For `on_thread_unpark`: notes how long the park lasted.
    pub fn after_unpark(self) {
        if !self.is_on() {
            return;
        }
        STATE.with(|s| {
            let mut state = s.get();
            if let Some(at) = state.parked_at.take() {
                let short = at.elapsed() <= BUSY_WINDOW;
                state.recent = (state.recent << 1) | u8::from(short);
            }
            s.set(state);
        });
    }
}

/// Whether epoll instance `fd` has events ready: an epoll descriptor
/// polls readable then, without taking them. A descriptor that is not open
/// (`POLLNVAL`) has none, so the poll runs its budget.
pub(super) fn has_events(fd: RawFd) -> bool {
    let mut pollfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, not retained past the call.
    let polled = unsafe { libc::poll(&mut pollfd, 1, 0) };
    polled > 0 && pollfd.revents & libc::POLLIN != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recent() -> u8 {
        STATE.with(|s| s.get().recent)
    }

    #[test]
    fn idle_parks_turn_spinning_off() {
        STATE.with(|s| {
            s.set(State {
                parked_at: None,
                recent: 0b1,
            })
        });
        let poll = BusyPoll::new(Duration::from_micros(1));
        for _ in 0..HISTORY {
            poll.before_park(None);
            std::thread::sleep(BUSY_WINDOW * 2);
            poll.after_unpark();
        }
        assert_eq!(recent() & ((1 << HISTORY) - 1), 0);
        // Without a recent short park there is no spinning at all.
        let start = Instant::now();
        let long = BusyPoll::new(Duration::from_millis(200));
        long.before_park(None);
        assert!(start.elapsed() < Duration::from_millis(100));
        long.after_unpark();
    }

    #[test]
    fn a_short_park_turns_spinning_on_for_the_budget() {
        STATE.with(|s| {
            s.set(State {
                parked_at: None,
                recent: 0,
            })
        });
        let poll = BusyPoll::new(Duration::from_millis(20));
        poll.before_park(None);
        poll.after_unpark();
        assert_eq!(recent() & 1, 1);
        let start = Instant::now();
        poll.before_park(None);
        let spun = start.elapsed();
        poll.after_unpark();
        assert!(spun >= Duration::from_millis(20), "spun {spun:?}");
        assert!(spun < Duration::from_secs(2), "spun {spun:?}");
    }

    #[test]
    fn a_poll_ends_once_the_watched_descriptor_is_ready() {
        use std::io::Write;
        use std::os::fd::AsRawFd;
        let short = State {
            parked_at: None,
            recent: 1,
        };
        let (mut tx, rx) = std::os::unix::net::UnixStream::pair().expect("pair");
        let fd = Some(rx.as_raw_fd());
        // Nothing ready: the whole budget.
        STATE.with(|s| s.set(short));
        let start = Instant::now();
        BusyPoll::new(Duration::from_millis(20)).before_park(fd);
        assert!(start.elapsed() >= Duration::from_millis(20));
        // Ready: well before a budget of seconds.
        tx.write_all(b"x").expect("write");
        STATE.with(|s| s.set(short));
        let start = Instant::now();
        BusyPoll::new(Duration::from_secs(5)).before_park(fd);
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
        // A descriptor that is not open is never ready.
        drop((tx, rx));
        STATE.with(|s| s.set(short));
        let start = Instant::now();
        BusyPoll::new(Duration::from_millis(20)).before_park(Some(-1));
        assert!(start.elapsed() >= Duration::from_millis(20));
    }

    #[test]
    fn the_hooks_do_nothing_without_a_budget() {
        for (budget, active) in [(Duration::ZERO, false), (Duration::from_micros(5), true)] {
            // A park that never happened: hooks that run replace it, and
            // the last unpark leaves none. Whether the parks were short
            // depends on the machine's load, so that is not asserted here.
            let never = Instant::now();
            STATE.with(|s| {
                s.set(State {
                    parked_at: Some(never),
                    recent: 0,
                })
            });
            let poll = BusyPoll::new(budget);
            let runtime = tokio::runtime::Builder::new_current_thread()
                .on_thread_park(move || poll.before_park(None))
                .on_thread_unpark(move || poll.after_unpark())
                .build()
                .expect("runtime");
            runtime.block_on(async {
                for _ in 0..20 {
                    tokio::task::spawn_blocking(|| ())
                        .await
                        .expect("blocking task");
                }
            });
            let parked_at = STATE.with(|s| s.get().parked_at);
            assert_eq!(parked_at != Some(never), active, "budget {budget:?}");
            if !active {
                assert_eq!(recent(), 0, "budget {budget:?}");
            }
        }
    }
}
