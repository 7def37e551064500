//! What stops a guest call that runs too long. The engine's epoch ticks
//! measure wall time, and on a host short of cores a call can wait for one
//! past its limit having run next to nothing: under a test suite's load a
//! counter's increment, a millisecond of work, was stopped after 164 ms and
//! its client got a 500. So a tick only wakes this check, and what stops
//! the call is the CPU time its thread spent in it. A call is also stopped
//! after twenty times its limit in wall time (two seconds at least),
//! whatever it ran, so that a starved one cannot hold its instance for ever.

use std::time::Duration;

use super::engine::EPOCH_TICK;

/// Wall time a call may take, as a multiple of its CPU-time limit, and at
/// least [`MIN_WALL`].
const WALL_FACTOR: u64 = 20;
const MIN_WALL: Duration = Duration::from_secs(2);

/// One instance's clock for the call it is running.
#[derive(Debug, Clone)]
pub struct CallClock {
    /// CPU time a call may run, in ticks.
    limit_ticks: u64,
    /// Ticks of wall time a call may take.
    wall_ticks: u64,
    /// Ticks seen since the call began.
    ticks: u64,
    /// The thread's CPU time at the first tick the call was seen running.
    first: Option<Duration>,
}

impl CallClock {
    /// A clock for calls of `call_ticks` epoch ticks (the configured
    /// limit plus the one tick a deadline counts from).
    pub fn new(call_ticks: u64) -> Self {
        let limit_ticks = call_ticks.saturating_sub(1).max(1);
        let min_wall = (MIN_WALL.as_millis() / EPOCH_TICK.as_millis()) as u64;
        CallClock {
            limit_ticks,
            wall_ticks: (limit_ticks.saturating_mul(WALL_FACTOR)).max(min_wall),
            ticks: 0,
            first: None,
        }
    }

    /// Called as a call begins.
    pub fn start(&mut self) {
        self.ticks = 0;
        self.first = None;
    }

    /// Called at each tick while the call runs: whether it may go on.
    pub fn tick(&mut self) -> bool {
        self.tick_at(thread_cpu_time())
    }

    fn tick_at(&mut self, cpu: Option<Duration>) -> bool {
        self.ticks += 1;
        if self.ticks >= self.wall_ticks {
            return false;
        }
        let Some(cpu) = cpu else {
            // Without the thread's clock, wall time is all there is.
            return self.ticks <= self.limit_ticks;
        };
        let Some(first) = self.first else {
            self.first = Some(cpu);
            return true;
        };
        // Before its first tick the call ran one tick at most: count it.
        let ran = cpu.saturating_sub(first) + EPOCH_TICK;
        ran < EPOCH_TICK * self.limit_ticks as u32
    }
}

/// The calling thread's CPU time; `None` if the system will not say.
fn thread_cpu_time() -> Option<Duration> {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid timespec for the call to fill.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    (rc == 0).then(|| Duration::new(now.tv_sec as u64, now.tv_nsec as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// A clock for the default 100 ms limit: 11 ticks.
    fn clock() -> CallClock {
        CallClock::new(crate::config::call_ticks(100 * MS))
    }

    /// Ticks `clock` with the thread's CPU time starting at `*cpu` and
    /// growing by `step` a tick until the call is stopped; the ticks it
    /// went on for.
    fn ticks_until_stopped(clock: &mut CallClock, cpu: &mut Duration, step: Duration) -> u32 {
        let mut ticks = 0;
        while clock.tick_at(Some(*cpu)) {
            *cpu += step;
            ticks += 1;
        }
        ticks
    }

    #[test]
    fn a_busy_call_stops_at_its_cpu_limit() {
        let mut clock = clock();
        clock.start();
        // The first tick samples, nine more of 10 ms each reach 100 ms
        // with the tick before the first.
        assert_eq!(
            ticks_until_stopped(&mut clock, &mut (5 * MS), EPOCH_TICK),
            9
        );
    }

    #[test]
    fn a_starved_call_goes_on_until_the_wall_limit() {
        let mut clock = clock();
        clock.start();
        // A quarter of a millisecond of CPU per 10 ms tick: a thread
        // waiting for a core.
        let mut cpu = 5 * MS;
        let ticks = ticks_until_stopped(&mut clock, &mut cpu, MS / 4);
        assert_eq!(ticks, 199, "twenty times the 100 ms limit, in ticks");
        // Once it gets its core again it stops at its CPU limit instead.
        clock.start();
        for _ in 0..30 {
            assert!(clock.tick_at(Some(cpu)), "still starved");
            cpu += MS;
        }
        let more = ticks_until_stopped(&mut clock, &mut cpu, EPOCH_TICK);
        assert!(more < 9, "{more} ticks after 30 starved ones");
    }

    #[test]
    fn each_call_starts_afresh_and_a_missing_clock_falls_back_to_ticks() {
        let mut clock = clock();
        clock.start();
        assert!(clock.tick_at(Some(MS)));
        assert!(clock.tick_at(Some(85 * MS)));
        assert!(!clock.tick_at(Some(200 * MS)));
        clock.start();
        assert!(
            clock.tick_at(Some(300 * MS)),
            "a new call's first tick samples"
        );
        clock.start();
        let went_on = (0..20).take_while(|_| clock.tick_at(None)).count();
        assert_eq!(went_on, 10);
    }

    #[test]
    fn a_tiny_limit_still_allows_a_tick() {
        let mut clock = CallClock::new(crate::config::call_ticks(MS));
        clock.start();
        assert!(clock.tick_at(Some(MS)));
        assert!(!clock.tick_at(Some(12 * MS)));
    }

    #[test]
    fn the_thread_clock_counts_this_threads_work() {
        let before = thread_cpu_time().expect("a thread CPU clock");
        let spin = std::time::Instant::now();
        let mut x = 0u64;
        while spin.elapsed() < 20 * MS {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(1));
        }
        let after = thread_cpu_time().expect("a thread CPU clock");
        assert!(after > before, "{before:?} then {after:?}");
    }
}
