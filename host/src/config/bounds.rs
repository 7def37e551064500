//! The range each numeric setting may take, one table for the command line
//! and the manifest. Values outside it are refused with the range and why,
//! rather than aborting the process (a thousand workers), never answering
//! (a CPU limit of years) or quietly meaning something else (0 as 1).

use std::fmt;
use std::time::Duration;

/// Inclusive range of a setting, and what lies beyond it.
pub struct Bound<T> {
    pub min: T,
    pub max: T,
    /// Why the maximum, for the error.
    pub why: &'static str,
}

/// How a setting's values print in its errors.
pub trait Shown: Copy + PartialOrd {
    fn show(self) -> String;
}

impl Shown for usize {
    fn show(self) -> String {
        self.to_string()
    }
}

impl Shown for u32 {
    fn show(self) -> String {
        self.to_string()
    }
}

/// Sizes print in the largest binary unit that divides them.
impl Shown for u64 {
    fn show(self) -> String {
        for (unit, scale) in [
            ("TiB", 1u64 << 40),
            ("GiB", 1 << 30),
            ("MiB", 1 << 20),
            ("KiB", 1 << 10),
        ] {
            if self >= scale && self % scale == 0 {
                return format!("{}{unit}", self / scale);
            }
        }
        self.to_string()
    }
}

impl Shown for Duration {
    fn show(self) -> String {
        humantime::format_duration(self).to_string()
    }
}

impl<T: Shown> Bound<T> {
    pub fn check(&self, value: T) -> Result<T, String> {
        if value < self.min {
            return Err(format!(
                "`{}` is below the least allowed, {}",
                value.show(),
                self.min.show()
            ));
        }
        if value > self.max {
            return Err(format!(
                "`{}` is above the most allowed, {} ({})",
                value.show(),
                self.max.show(),
                self.why
            ));
        }
        Ok(value)
    }
}

impl<T: Shown> fmt::Display for Bound<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} to {}", self.min.show(), self.max.show())
    }
}

const DAY: Duration = Duration::from_secs(24 * 3600);

pub const WORKERS: Bound<usize> = Bound {
    min: 1,
    max: 256,
    why: "each worker is a thread, and each module has an instance per worker",
};
pub const MAX_CONNECTIONS: Bound<usize> = Bound {
    min: 1,
    max: 10_000_000,
    why: "each connection holds a descriptor and buffers",
};
pub const MAX_PARKED: Bound<usize> = Bound {
    min: 1,
    max: 10_000_000,
    why: "each parked request holds its state in memory",
};
pub const MAX_STORE_OPS: Bound<usize> = Bound {
    min: 1,
    max: 1_000_000,
    why: "each operation of a request is held until the request ends",
};
pub const MAX_KEY_SIZE: Bound<u64> = Bound {
    min: 1,
    max: 64 * 1024,
    why: "every key is held in memory with each operation",
};
pub const MAX_VALUE_SIZE: Bound<u64> = Bound {
    min: 1,
    max: 64 * 1024 * 1024,
    why: "a value travels whole through a guest call",
};
pub const MAX_STORE_BYTES: Bound<u64> = Bound {
    min: 1024,
    max: 1 << 40,
    why: "a memory store lives in the server's memory",
};
pub const STORE_TIMEOUT: Bound<Duration> = Bound {
    min: Duration::from_millis(1),
    max: Duration::from_secs(60),
    why: "a request waits for its store operations",
};
pub const POOL_SIZE: Bound<u32> = Bound {
    min: 1,
    max: 100_000,
    why: "each slot reserves address space for an instance's memory",
};
/// Bodies are held whole in host and guest memory; a wasm32 guest cannot
/// hold more than 4 GiB, and far less with its copies.
pub const MAX_BODY: Bound<u64> = Bound {
    min: 0,
    max: 1 << 40,
    why: "a body streams through, but past a TiB a typo is likelier than an upload",
};
/// Wasm32 linear memory ends at 4 GiB.
pub const MAX_MEMORY: Bound<u64> = Bound {
    min: 64 << 10,
    max: 4 << 30,
    why: "a wasm32 memory ends at 4GiB",
};
/// The least is what a Rust guest's entry needs; worker threads get this
/// much native stack on top of their own.
pub const MAX_STACK: Bound<u64> = Bound {
    min: 64 << 10,
    max: 64 << 20,
    why: "the wasm stack is reserved in every worker thread",
};
/// A guest call holds its worker: beyond a minute, a looping handler
/// starves every request on that worker for longer than any client waits.
pub const MAX_CALL_TIME: Bound<Duration> = Bound {
    min: Duration::from_millis(1),
    max: Duration::from_secs(60),
    why: "a guest call holds its worker while it runs",
};
pub const TIMEOUT: Bound<Duration> = Bound {
    min: Duration::from_millis(1),
    max: DAY,
    why: "a connection or request held longer is a leak, not a wait",
};
/// A client that accepts no byte for longer is gone, not slow; zero would
/// close every connection whose answer does not fit the socket at once.
pub const STREAM_IDLE_TIMEOUT: Bound<Duration> = Bound {
    min: Duration::from_millis(1),
    max: Duration::from_secs(24 * 3600),
    why: "a stream quiet for longer is dead; keep-alives belong in it",
};
pub const SEND_TIMEOUT: Bound<Duration> = Bound {
    min: Duration::from_millis(1),
    max: Duration::from_secs(3600),
    why: "a client that reads nothing for longer is gone",
};
pub const GRACE: Bound<Duration> = Bound {
    min: Duration::ZERO,
    max: Duration::from_secs(3600),
    why: "shutdown would hang for longer",
};
/// A balancer notices a failing probe within seconds; every host of a
/// rolling restart waits this long, so minutes already stall the rollout.
pub const DRAIN_DELAY: Bound<Duration> = Bound {
    min: Duration::ZERO,
    max: Duration::from_secs(600),
    why: "a rolling restart waits this long on every host",
};

/// Parsers for the command line, each checking its bound.
pub mod arg {
    use std::time::Duration;

    use super::{Bound, MAX_BODY, MAX_MEMORY, MAX_STACK};
    use crate::config::values::{parse_size, saturate};

    pub fn count(bound: &'static Bound<usize>) -> impl Fn(&str) -> Result<usize, String> + Clone {
        move |text| {
            let n = text
                .parse()
                .map_err(|_| format!("`{text}` is not a whole number from {bound}"))?;
            bound.check(n)
        }
    }

    pub fn slots(bound: &'static Bound<u32>) -> impl Fn(&str) -> Result<u32, String> + Clone {
        move |text| {
            let n = text
                .parse()
                .map_err(|_| format!("`{text}` is not a whole number from {bound}"))?;
            bound.check(n)
        }
    }

    pub fn time(
        bound: &'static Bound<Duration>,
    ) -> impl Fn(&str) -> Result<Duration, String> + Clone {
        move |text| {
            let d = humantime::parse_duration(text)
                .map_err(|err| format!("`{text}` is not a duration like 30s or 100ms ({err})"))?;
            bound.check(d)
        }
    }

    pub fn max_body(text: &str) -> Result<u64, String> {
        MAX_BODY.check(parse_size(text)?)
    }

    pub fn max_memory(text: &str) -> Result<usize, String> {
        MAX_MEMORY.check(parse_size(text)?).map(saturate)
    }

    pub fn max_stack(text: &str) -> Result<usize, String> {
        MAX_STACK.check(parse_size(text)?).map(saturate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_in_range_pass_and_others_say_why() {
        assert_eq!(WORKERS.check(4), Ok(4));
        assert_eq!(
            WORKERS.check(0),
            Err("`0` is below the least allowed, 1".to_string())
        );
        let err = WORKERS.check(100_000).unwrap_err();
        assert!(err.contains("above the most allowed, 256"), "{err}");
        let err = MAX_CALL_TIME
            .check(Duration::from_secs(999_999_999_999 * 86_400))
            .unwrap_err();
        assert!(err.contains("above the most allowed, 1m"), "{err}");
        assert_eq!(
            MAX_MEMORY.check(8 << 30),
            Err("`8GiB` is above the most allowed, 4GiB (a wasm32 memory ends at 4GiB)".into())
        );
        assert_eq!(GRACE.check(Duration::ZERO), Ok(Duration::ZERO));
        assert_eq!(DRAIN_DELAY.check(Duration::ZERO), Ok(Duration::ZERO));
        let err = DRAIN_DELAY.check(Duration::from_secs(601)).unwrap_err();
        assert!(err.contains("above the most allowed, 10m"), "{err}");
        assert!(TIMEOUT.check(Duration::ZERO).is_err());
    }

    #[test]
    fn command_line_parsers_check_the_bound() {
        assert_eq!(arg::count(&WORKERS)("8"), Ok(8));
        for bad in ["0", "100000", "-1", "many", "", "1e3"] {
            assert!(arg::count(&WORKERS)(bad).is_err(), "{bad}");
        }
        assert!(arg::time(&MAX_CALL_TIME)("999999999999d").is_err());
        assert!(arg::time(&MAX_CALL_TIME)("0s").is_err());
        assert_eq!(
            arg::time(&MAX_CALL_TIME)("250ms"),
            Ok(Duration::from_millis(250))
        );
        assert!(arg::max_stack("16KiB").is_err());
        assert_eq!(arg::max_stack("2MiB"), Ok(2 << 20));
        assert!(arg::max_body("2TiB").is_err());
        assert_eq!(arg::max_body("2GiB"), Ok(2 << 30));
        assert!(arg::slots(&POOL_SIZE)("0").is_err());
    }
}
