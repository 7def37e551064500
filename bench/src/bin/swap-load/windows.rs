use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// What one request came to.
pub enum Outcome {
    /// A 200 from the version at this index of the expected names.
    Version(usize),
    /// An answer with another status.
    Status,
    /// No usable answer: a connection error, a timeout, an unexpected body.
    Failed,
}

/// Counts per fixed time window, by completion time. Connections on every
/// task add to them at once, so the counters are atomics, and the windows
/// are allocated up front so recording never takes a lock.
pub struct Windows {
    width: Duration,
    slots: Vec<Slot>,
}

struct Slot {
    per_version: Vec<AtomicU64>,
    non_200: AtomicU64,
    failed: AtomicU64,
    max_latency_us: AtomicU64,
}

/// One window's counts, read once the run is over.
#[derive(Clone)]
pub struct Counts {
    pub per_version: Vec<u64>,
    pub non_200: u64,
    pub failed: u64,
    pub max_latency_us: u64,
}

impl Counts {
    pub fn ok(&self) -> u64 {
        self.per_version.iter().sum()
    }
}

impl Windows {
    /// Room for `span` of windows of `width`; later completions are dropped.
    pub fn new(width: Duration, span: Duration, versions: usize) -> Self {
        let count = (span.as_secs_f64() / width.as_secs_f64()).ceil() as usize + 1;
        let slots = (0..count)
            .map(|_| Slot {
                per_version: (0..versions).map(|_| AtomicU64::new(0)).collect(),
                non_200: AtomicU64::new(0),
                failed: AtomicU64::new(0),
                max_latency_us: AtomicU64::new(0),
            })
            .collect();
        Self { width, slots }
    }

    pub fn width(&self) -> Duration {
        self.width
    }

    /// Counts a request that completed `since_start` into the run.
    pub fn record(&self, since_start: Duration, latency: Duration, outcome: Outcome) {
        let index = (since_start.as_nanos() / self.width.as_nanos()) as usize;
        let Some(slot) = self.slots.get(index) else {
            return;
        };
        let counter = match outcome {
            Outcome::Version(v) => &slot.per_version[v],
            Outcome::Status => &slot.non_200,
            Outcome::Failed => &slot.failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        slot.max_latency_us.fetch_max(us, Ordering::Relaxed);
    }

    /// The first `n` windows' counts.
    pub fn read(&self, n: usize) -> Vec<Counts> {
        self.slots
            .iter()
            .take(n)
            .map(|slot| Counts {
                per_version: slot
                    .per_version
                    .iter()
                    .map(|c| c.load(Ordering::Relaxed))
                    .collect(),
                non_200: slot.non_200.load(Ordering::Relaxed),
                failed: slot.failed.load(Ordering::Relaxed),
                max_latency_us: slot.max_latency_us.load(Ordering::Relaxed),
            })
            .collect()
    }
}
