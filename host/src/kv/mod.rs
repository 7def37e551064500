//! Key-value stores modules share: declared by the server (manifest or
//! flags), granted to modules by name, deny by default, and reached by a
//! module through the contract's `kv` interface as host operations.
//!
//! A store lives as long as the server, not as a module version or an
//! instance, so what a module wrote survives hot swaps and traps; every
//! worker and instance of the host reaches the same store.
//!
//! - `config`  — what a store is declared with, and its limits;
//! - `op`      — operations, their outputs and errors, and the checks every
//!   backend relies on (sizes, keys);
//! - `memory`  — the in-process backend;
//! - `file`    — the embedded persistent backend;
//! - `redis`   — a Redis server, shared by many hosts.

pub mod config;
#[cfg(test)]
mod conformance;
mod file;
mod memory;
pub mod op;
mod redis;

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};

pub use config::{BackendConfig, StoreConfig, StoreLimits, DEFAULT_STORE};
pub use op::{KvError, Op, Output};

use crate::metrics::{KvOutcome, StoreMetrics};

/// A backend's answer, boxed so that stores of every kind sit behind one
/// type. `Send`: backends may run their I/O on another thread.
pub type Pending<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// What every kind of store implements. Operations arrive checked against
/// the store's limits (`op::check`).
pub trait Backend: Send + Sync {
    /// The `backend` label of the store's metrics: `memory`, `file`, `redis`.
    fn kind(&self) -> &'static str;
    /// Runs one operation. Must answer `Unavailable` rather than hang when
    /// its backing service does not answer.
    fn run(&self, op: Op) -> Pending<Result<Output, KvError>>;
    /// Whether the store can serve operations now, for `/readyz`.
    fn ready(&self) -> Pending<Result<(), String>>;
}

/// One declared store.
pub struct Store {
    pub name: Arc<str>,
    pub limits: StoreLimits,
    backend: Arc<dyn Backend>,
    metrics: Arc<StoreMetrics>,
}

impl Store {
    /// Checks `op` against the limits, runs it, and records the outcome.
    pub fn run(&self, op: Op) -> Pending<Result<Output, KvError>> {
        let metrics = self.metrics.clone();
        if let Err(err) = op::check(&op, &self.limits) {
            metrics.record(
                KvOutcome::of::<()>(&Err(err.clone())),
                std::time::Duration::ZERO,
            );
            return Box::pin(std::future::ready(Err(err)));
        }
        let started = Instant::now();
        let pending = self.backend.run(op);
        Box::pin(async move {
            let result = pending.await;
            metrics.record(KvOutcome::of(&result), started.elapsed());
            result
        })
    }

    pub fn ready(&self) -> Pending<Result<(), String>> {
        self.backend.ready()
    }

    pub fn kind(&self) -> &'static str {
        self.backend.kind()
    }
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("name", &self.name)
            .field("backend", &self.backend.kind())
            .finish_non_exhaustive()
    }
}

/// Every store the server declared, by name.
#[derive(Debug, Default)]
pub struct Stores {
    by_name: BTreeMap<String, Arc<Store>>,
    /// What they were opened from: a reload must not change it.
    configs: Vec<StoreConfig>,
}

impl Stores {
    /// Opens every store: a file that cannot be opened is an error now, a
    /// Redis server that is down is not (operations report it, `/readyz`
    /// too, and the store reconnects when it is back).
    pub fn open(configs: &[StoreConfig], metrics: &crate::metrics::Metrics) -> Result<Arc<Self>> {
        Self::build(configs, metrics, |config| {
            config.backend.open(&config.limits)
        })
    }

    /// The same names and limits over memory backends: what `snow check`
    /// needs to link modules without touching files or servers.
    pub fn stand_in(configs: &[StoreConfig]) -> Arc<Self> {
        let metrics = crate::metrics::Metrics::new();
        Self::build(configs, &metrics, |config| {
            Ok(Arc::new(memory::MemoryStore::new(config.limits.max_bytes)))
        })
        .unwrap_or_default()
    }

    fn build(
        configs: &[StoreConfig],
        metrics: &crate::metrics::Metrics,
        open: impl Fn(&StoreConfig) -> Result<Arc<dyn Backend>>,
    ) -> Result<Arc<Self>> {
        let mut by_name = BTreeMap::new();
        for config in configs {
            let backend =
                open(config).with_context(|| format!("opening the store {}", config.name))?;
            let store = Store {
                name: Arc::from(config.name.as_str()),
                limits: config.limits,
                metrics: metrics.store(&config.name, backend.kind()),
                backend,
            };
            by_name.insert(config.name.clone(), Arc::new(store));
        }
        Ok(Arc::new(Self {
            by_name,
            configs: configs.to_vec(),
        }))
    }

    pub fn configs(&self) -> &[StoreConfig] {
        &self.configs
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Store>> {
        self.by_name.values()
    }

    /// The stores `names` grants, for a module; a name not declared is an
    /// error (the manifest checker reports it first, with its position).
    pub fn grant(self: &Arc<Self>, names: &[String]) -> Result<Grants> {
        let granted = names
            .iter()
            .map(|name| {
                self.by_name.get(name).cloned().with_context(|| {
                    format!("the module is granted the store {name}, which is not declared")
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Grants {
            granted: granted.into(),
            all: self.clone(),
        })
    }
}

/// The stores one module may open. A store handle in the contract is an
/// index into `granted`.
#[derive(Clone, Debug, Default)]
pub struct Grants {
    granted: Arc<[Arc<Store>]>,
    all: Arc<Stores>,
}

impl Grants {
    /// `open(name)`: the handle of a granted store, else why not.
    pub fn open(&self, name: &str) -> Result<u32, KvError> {
        if let Some(index) = self.granted.iter().position(|s| &*s.name == name) {
            return Ok(u32::try_from(index).unwrap_or(u32::MAX));
        }
        let shown = op::shown(name);
        if self.all.by_name.contains_key(name) {
            Err(KvError::AccessDenied(format!(
                "the store {shown} is not granted to this module"
            )))
        } else {
            Err(KvError::NoSuchStore(format!("no store is named {shown}")))
        }
    }

    /// The store behind a handle `open` gave.
    pub fn get(&self, handle: u32) -> Option<&Arc<Store>> {
        self.granted.get(usize::try_from(handle).ok()?)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.granted.iter().map(|s| &*s.name)
    }
}

impl PartialEq for Grants {
    fn eq(&self, other: &Self) -> bool {
        self.names().eq(other.names())
    }
}

#[cfg(test)]
mod tests;
