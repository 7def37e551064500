//! Key-value operations by store, backend and outcome, with their latency.
//!
//! One record per operation, from every worker: a few relaxed atomic adds
//! on the store's own counters.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use super::exposition::{escape_label, Exposition};
use crate::kv::KvError;

/// Upper bounds in nanoseconds, with their `le` labels: a memory store
/// answers in microseconds, a remote one in a millisecond or so.
const BUCKETS: [(u64, &str); 14] = [
    (10_000, "0.00001"),
    (50_000, "0.00005"),
    (100_000, "0.0001"),
    (250_000, "0.00025"),
    (500_000, "0.0005"),
    (1_000_000, "0.001"),
    (2_500_000, "0.0025"),
    (5_000_000, "0.005"),
    (10_000_000, "0.01"),
    (25_000_000, "0.025"),
    (100_000_000, "0.1"),
    (250_000_000, "0.25"),
    (1_000_000_000, "1"),
    (5_000_000_000, "5"),
];
const SLOTS: usize = BUCKETS.len() + 1;

/// How an operation ended: the `outcome` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KvOutcome {
    Ok,
    Conflict,
    TooLarge,
    Invalid,
    Unavailable,
    Denied,
}

impl KvOutcome {
    const ALL: [KvOutcome; 6] = [
        KvOutcome::Ok,
        KvOutcome::Conflict,
        KvOutcome::TooLarge,
        KvOutcome::Invalid,
        KvOutcome::Unavailable,
        KvOutcome::Denied,
    ];

    pub fn of<T>(result: &Result<T, KvError>) -> Self {
        match result {
            Ok(_) => KvOutcome::Ok,
            Err(KvError::Conflict) => KvOutcome::Conflict,
            Err(KvError::TooLarge(_)) => KvOutcome::TooLarge,
            Err(KvError::Invalid(_)) => KvOutcome::Invalid,
            Err(KvError::Unavailable(_)) => KvOutcome::Unavailable,
            Err(KvError::AccessDenied(_) | KvError::NoSuchStore(_)) => KvOutcome::Denied,
        }
    }

    fn label(self) -> &'static str {
        match self {
            KvOutcome::Ok => "ok",
            KvOutcome::Conflict => "conflict",
            KvOutcome::TooLarge => "too_large",
            KvOutcome::Invalid => "invalid",
            KvOutcome::Unavailable => "unavailable",
            KvOutcome::Denied => "denied",
        }
    }
}

/// The counters of one store.
#[repr(align(128))]
pub struct StoreMetrics {
    store: String,
    backend: &'static str,
    outcomes: [AtomicU64; KvOutcome::ALL.len()],
    buckets: [AtomicU64; SLOTS],
    sum_nanos: AtomicU64,
}

impl StoreMetrics {
    pub(super) fn new(store: &str, backend: &'static str) -> Self {
        Self {
            store: escape_label(store),
            backend,
            outcomes: [const { AtomicU64::new(0) }; KvOutcome::ALL.len()],
            buckets: [const { AtomicU64::new(0) }; SLOTS],
            sum_nanos: AtomicU64::new(0),
        }
    }

    pub fn record(&self, outcome: KvOutcome, elapsed: Duration) {
        if let Some(counter) = self.outcomes.get(outcome as usize) {
            counter.fetch_add(1, Relaxed);
        }
        super::shard::observe(&BUCKETS, &self.buckets, &self.sum_nanos, elapsed);
    }
}

/// Both families, every store; nothing when no store is declared.
pub(super) fn render(out: &mut Exposition, stores: &[std::sync::Arc<StoreMetrics>]) {
    if stores.is_empty() {
        return;
    }
    out.family(
        "snow_kv_operations_total",
        "counter",
        "Key-value operations finished, by store, backend and outcome.",
    );
    for store in stores {
        for (outcome, counter) in KvOutcome::ALL.iter().zip(&store.outcomes) {
            let labels = [
                ("store", store.store.as_str()),
                ("backend", store.backend),
                ("outcome", outcome.label()),
            ];
            out.sample("snow_kv_operations_total", &labels, counter.load(Relaxed));
        }
    }
    out.family(
        "snow_kv_operation_duration_seconds",
        "histogram",
        "Time a key-value operation took in its backend, in seconds, by store and backend.",
    );
    for store in stores {
        let mut cumulative = 0u64;
        for (slot, counter) in store.buckets.iter().enumerate() {
            cumulative = cumulative.saturating_add(counter.load(Relaxed));
            let le = BUCKETS.get(slot).map_or("+Inf", |&(_, label)| label);
            let labels = [
                ("store", store.store.as_str()),
                ("backend", store.backend),
                ("le", le),
            ];
            out.sample(
                "snow_kv_operation_duration_seconds_bucket",
                &labels,
                cumulative,
            );
        }
        let labels = [("store", store.store.as_str()), ("backend", store.backend)];
        let seconds = store.sum_nanos.load(Relaxed) as f64 / 1e9;
        out.sample("snow_kv_operation_duration_seconds_sum", &labels, seconds);
        out.sample(
            "snow_kv_operation_duration_seconds_count",
            &labels,
            cumulative,
        );
    }
}
