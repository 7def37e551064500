//! Server metrics kept in atomics and rendered in the Prometheus text exposition format 0.0.4.
//!
//! Recording sits on the request path, so it is a few relaxed atomic adds and
//! nothing else: no lock, no allocation, no lookup by name. Each call to
//! [`Metrics::module`] (one per dispatcher, which every worker uses) hands
//! out a shard of its own; rendering sums the shards of each module. A
//! shard per worker measured no gain on `/home/` at 64 connections (six
//! alternating rounds), so the workers share their dispatcher's.
//!
//! The text is written here rather than by `prometheus-client`: that crate
//! writes OpenMetrics (`# TYPE snow_requests counter`, `le="1.0"`, `# EOF`),
//! which would change what scrapers and dashboards see, and its histogram
//! takes a mutex per observation. The README gives the figures.

mod exposition;
mod kv;
mod shard;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};

pub use crate::runtime::TrapReason;
pub use kv::{KvOutcome, StoreMetrics};
pub use shard::ModuleMetrics;

use exposition::{escape_label, Exposition};
use shard::{Totals, BUCKETS, FIRST_STATUS, OTHER_STATUS};

/// Why the server turned a connection or request away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The open-connection limit was reached.
    Connections,
    /// The instance already held its maximum of parked requests.
    Parked,
}

impl Refusal {
    /// Every variant, in the order they are rendered.
    pub const ALL: [Refusal; 2] = [Refusal::Connections, Refusal::Parked];

    /// The value of the `limit` label.
    pub fn label(&self) -> &'static str {
        match self {
            Refusal::Connections => "connections",
            Refusal::Parked => "parked",
        }
    }
}

/// Every metric of the process; share it as `Arc<Metrics>`.
pub struct Metrics {
    global: Global,
    /// Shards by module name; the map keeps rendering in name order.
    modules: Mutex<BTreeMap<String, Vec<Arc<ModuleMetrics>>>>,
    /// One entry per store, in the order they were declared.
    stores: Mutex<Vec<Arc<StoreMetrics>>>,
}

/// Kept apart from the registry lock so that locking it for a render does
/// not take the cache line the connection gauge lives on.
#[repr(align(128))]
struct Global {
    open_connections: AtomicI64,
    refused: [AtomicU64; Refusal::ALL.len()],
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            global: Global {
                open_connections: AtomicI64::new(0),
                refused: [const { AtomicU64::new(0) }; Refusal::ALL.len()],
            },
            modules: Mutex::new(BTreeMap::new()),
            stores: Mutex::new(Vec::new()),
        })
    }

    /// The recording handle of the store `name`, registered for rendering.
    pub fn store(&self, name: &str, backend: &'static str) -> Arc<StoreMetrics> {
        let store = Arc::new(StoreMetrics::new(name, backend));
        let mut stores = self.stores.lock().unwrap_or_else(PoisonError::into_inner);
        stores.push(store.clone());
        store
    }

    /// A recording handle for the module `name`. Call it once per dispatcher and
    /// module load, not per request: it locks the registry.
    ///
    /// Handles of the same name are rendered as one module. A handle that
    /// was dropped is handed out again rather than replaced, so reloading a
    /// module does not grow the registry and its counters carry on from where
    /// they were, as Prometheus counters must.
    pub fn module(&self, name: &str) -> Arc<ModuleMetrics> {
        let mut modules = self.modules.lock().unwrap_or_else(PoisonError::into_inner);
        let shards = match modules.get_mut(name) {
            Some(shards) => shards,
            None => modules.entry(name.to_owned()).or_default(),
        };
        // Under the lock only the registry can clone a shard nobody else
        // holds, so a count of one cannot rise while we look at it.
        if let Some(idle) = shards.iter().find(|s| Arc::strong_count(s) == 1) {
            return idle.clone();
        }
        let shard = Arc::new(ModuleMetrics::new());
        shards.push(shard.clone());
        shard
    }

    pub fn connection_opened(&self) {
        self.global.open_connections.fetch_add(1, Relaxed);
    }

    pub fn connection_closed(&self) {
        self.global.open_connections.fetch_sub(1, Relaxed);
    }

    pub fn refused(&self, limit: Refusal) {
        if let Some(counter) = self.global.refused.get(limit as usize) {
            counter.fetch_add(1, Relaxed);
        }
    }

    /// The whole registry in the text exposition format, version 0.0.4.
    ///
    /// Counters are read one by one without stopping writers, so a render may
    /// see a request in one family and not yet in another. Within a histogram
    /// `_count` is the sum of the buckets read, so the two always agree.
    pub fn render(&self) -> String {
        let modules: Vec<(String, Totals)> = {
            let registry = self.modules.lock().unwrap_or_else(PoisonError::into_inner);
            registry
                .iter()
                .map(|(name, shards)| (escape_label(name), Totals::sum(shards)))
                .collect()
        };
        let mut out = Exposition::default();

        out.family(
            "snow_open_connections",
            "gauge",
            "Client connections currently open.",
        );
        let open = self.global.open_connections.load(Relaxed);
        out.sample("snow_open_connections", &[], open);

        out.family(
            "snow_refused_total",
            "counter",
            "Connections and requests turned away because a limit was reached, by limit.",
        );
        for (limit, counter) in Refusal::ALL.iter().zip(&self.global.refused) {
            let value = counter.load(Relaxed);
            out.sample("snow_refused_total", &[("limit", limit.label())], value);
        }

        out.family(
            "snow_requests_total",
            "counter",
            "Requests answered, by module and response status.",
        );
        for (module, totals) in &modules {
            for (slot, &count) in totals.statuses.iter().enumerate() {
                if count == 0 {
                    continue;
                }
                let code;
                let status = if slot == OTHER_STATUS {
                    "other"
                } else {
                    code = (usize::from(FIRST_STATUS) + slot).to_string();
                    code.as_str()
                };
                let labels = [("module", module.as_str()), ("status", status)];
                out.sample("snow_requests_total", &labels, count);
            }
        }

        out.family(
            "snow_request_duration_seconds",
            "histogram",
            "Time taken to answer a request, in seconds, by module.",
        );
        for (module, totals) in &modules {
            let mut cumulative = 0u64;
            for (slot, &count) in totals.buckets.iter().enumerate() {
                cumulative = cumulative.saturating_add(count);
                let le = BUCKETS.get(slot).map_or("+Inf", |&(_, label)| label);
                let labels = [("module", module.as_str()), ("le", le)];
                out.sample("snow_request_duration_seconds_bucket", &labels, cumulative);
            }
            let labels = [("module", module.as_str())];
            let seconds = totals.sum_nanos as f64 / 1e9;
            out.sample("snow_request_duration_seconds_sum", &labels, seconds);
            out.sample("snow_request_duration_seconds_count", &labels, cumulative);
        }

        out.family(
            "snow_parked_requests",
            "gauge",
            "Requests parked while their handler awaits host operations, by module.",
        );
        for (module, totals) in &modules {
            let labels = [("module", module.as_str())];
            out.sample("snow_parked_requests", &labels, totals.parked);
        }

        out.family(
            "snow_traps_total",
            "counter",
            "Guest calls that trapped, by module and reason.",
        );
        for (module, totals) in &modules {
            out.by_reason("snow_traps_total", module, &totals.traps);
        }

        out.family(
            "snow_instance_rebuilds_total",
            "counter",
            "Instances replaced after a trap, by module and the trap's reason.",
        );
        for (module, totals) in &modules {
            out.by_reason("snow_instance_rebuilds_total", module, &totals.rebuilds);
        }

        let stores = self
            .stores
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        kv::render(&mut out, &stores);

        out.0
    }
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics")
            .field(
                "open_connections",
                &self.global.open_connections.load(Relaxed),
            )
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
