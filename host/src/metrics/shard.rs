//! One holder's share of a module's metrics, and the shares added up.
//!
//! A request costs two or three relaxed atomic adds here: a status counter,
//! a latency bucket and the latency sum.

use std::fmt;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use crate::runtime::TrapReason;

/// Upper bounds of the latency histogram in nanoseconds, with their `le` labels.
///
/// Bounds are integers so that choosing a bucket never touches floating point.
pub(super) const BUCKETS: [(u64, &str); 16] = [
    (500_000, "0.0005"),
    (1_000_000, "0.001"),
    (2_500_000, "0.0025"),
    (5_000_000, "0.005"),
    (10_000_000, "0.01"),
    (25_000_000, "0.025"),
    (50_000_000, "0.05"),
    (100_000_000, "0.1"),
    (250_000_000, "0.25"),
    (500_000_000, "0.5"),
    (1_000_000_000, "1"),
    (2_500_000_000, "2.5"),
    (5_000_000_000, "5"),
    (10_000_000_000, "10"),
    (30_000_000_000, "30"),
    (60_000_000_000, "60"),
];

/// One slot per finite bucket, then the overflow slot behind `le="+Inf"`.
const HISTOGRAM_SLOTS: usize = BUCKETS.len() + 1;

pub(super) const FIRST_STATUS: u16 = 100;
const LAST_STATUS: u16 = 599;
/// A counter for every status in `FIRST_STATUS..=LAST_STATUS`, then one for the rest.
const STATUS_SLOTS: usize = (LAST_STATUS - FIRST_STATUS) as usize + 2;
pub(super) const OTHER_STATUS: usize = STATUS_SLOTS - 1;

/// The metrics of one module as recorded by one holder (typically a worker).
///
/// The alignment keeps shards of different workers off each other's cache
/// lines, including the pair the CPU prefetches together.
#[repr(align(128))]
pub struct ModuleMetrics {
    statuses: [AtomicU64; STATUS_SLOTS],
    /// Per-bucket counts, not cumulative: one add per request, and `_count`
    /// is derived from them when rendering.
    buckets: [AtomicU64; HISTOGRAM_SLOTS],
    sum_nanos: AtomicU64,
    parked: AtomicI64,
    traps: [AtomicU64; TrapReason::ALL.len()],
    rebuilds: [AtomicU64; TrapReason::ALL.len()],
}

impl ModuleMetrics {
    pub(super) fn new() -> Self {
        Self {
            statuses: [const { AtomicU64::new(0) }; STATUS_SLOTS],
            buckets: [const { AtomicU64::new(0) }; HISTOGRAM_SLOTS],
            sum_nanos: AtomicU64::new(0),
            parked: AtomicI64::new(0),
            traps: [const { AtomicU64::new(0) }; TrapReason::ALL.len()],
            rebuilds: [const { AtomicU64::new(0) }; TrapReason::ALL.len()],
        }
    }

    /// Counts an answered request with its status and how long it took.
    pub fn request(&self, status: u16, elapsed: Duration) {
        let slot = if (FIRST_STATUS..=LAST_STATUS).contains(&status) {
            usize::from(status - FIRST_STATUS)
        } else {
            OTHER_STATUS
        };
        if let Some(counter) = self.statuses.get(slot) {
            counter.fetch_add(1, Relaxed);
        }
        observe(&BUCKETS, &self.buckets, &self.sum_nanos, elapsed);
    }

    /// Adjusts the parked-request gauge: `+1` when a request parks, `-1`
    /// when it settles or is cancelled.
    pub fn parked(&self, delta: i64) {
        self.parked.fetch_add(delta, Relaxed);
    }

    pub fn trap(&self, reason: TrapReason) {
        if let Some(counter) = self.traps.get(reason.index()) {
            counter.fetch_add(1, Relaxed);
        }
    }

    pub fn rebuild(&self, reason: TrapReason) {
        if let Some(counter) = self.rebuilds.get(reason.index()) {
            counter.fetch_add(1, Relaxed);
        }
    }
}

impl fmt::Debug for ModuleMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModuleMetrics")
            .field("parked", &self.parked.load(Relaxed))
            .finish_non_exhaustive()
    }
}

/// One module's shards added up.
pub(super) struct Totals {
    pub(super) statuses: Box<[u64; STATUS_SLOTS]>,
    pub(super) buckets: [u64; HISTOGRAM_SLOTS],
    pub(super) sum_nanos: u64,
    pub(super) parked: i64,
    pub(super) traps: [u64; TrapReason::ALL.len()],
    pub(super) rebuilds: [u64; TrapReason::ALL.len()],
}

impl Totals {
    pub(super) fn sum(shards: &[Arc<ModuleMetrics>]) -> Self {
        let mut totals = Totals {
            statuses: Box::new([0; STATUS_SLOTS]),
            buckets: [0; HISTOGRAM_SLOTS],
            sum_nanos: 0,
            parked: 0,
            traps: [0; TrapReason::ALL.len()],
            rebuilds: [0; TrapReason::ALL.len()],
        };
        for shard in shards {
            add(&mut totals.statuses[..], &shard.statuses);
            add(&mut totals.buckets, &shard.buckets);
            add(&mut totals.traps, &shard.traps);
            add(&mut totals.rebuilds, &shard.rebuilds);
            totals.sum_nanos = totals
                .sum_nanos
                .saturating_add(shard.sum_nanos.load(Relaxed));
            totals.parked = totals.parked.saturating_add(shard.parked.load(Relaxed));
        }
        totals
    }
}

/// One observation of a histogram with upper `bounds` (nanoseconds):
/// a count in its bucket (`counts` has one more, for `+Inf`) and its time
/// in the sum.
pub(super) fn observe(
    bounds: &[(u64, &str)],
    counts: &[AtomicU64],
    sum_nanos: &AtomicU64,
    elapsed: Duration,
) {
    let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
    // `le` is inclusive: an observation equal to a bound belongs to it.
    let bucket = bounds.partition_point(|&(bound, _)| bound < nanos);
    if let Some(counter) = counts.get(bucket) {
        counter.fetch_add(1, Relaxed);
    }
    sum_nanos.fetch_add(nanos, Relaxed);
}

fn add(totals: &mut [u64], counters: &[AtomicU64]) {
    for (total, counter) in totals.iter_mut().zip(counters) {
        *total = total.saturating_add(counter.load(Relaxed));
    }
}
