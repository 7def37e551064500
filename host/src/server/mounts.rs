//! The workers' view of the mount table: one dispatcher (and so one
//! instance per worker) per mounted module version, refreshed when the
//! table's generation moves. A dispatcher dropped from the view lives on
//! in the tickets and timers of the requests still parked in it, and goes
//! when they are done.
//!
//! Every request reads the view; it is swapped whole, so that a read takes
//! no lock that the workers would pass between their cores.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};

use arc_swap::ArcSwap;

use super::dispatch::{DispatchLimits, Dispatcher};
use super::proxy_dispatch::ProxyDispatcher;
use crate::deploy::{Mount, Registry};
use crate::http;
use crate::metrics::Metrics;
use crate::metrics::ModuleMetrics;
use crate::outbound::Client;
use crate::runtime::bindings::Request;
use crate::runtime::module::Linked;

pub struct Mounts {
    registry: Arc<Registry>,
    client: Client,
    metrics: Arc<Metrics>,
    limits: DispatchLimits,
    view: ArcSwap<View>,
    /// Held by the worker building a new view; the others serve from the
    /// old one meanwhile rather than wait for its instances.
    refreshing: Mutex<()>,
}

struct View {
    generation: u64,
    entries: Vec<(Arc<Mount>, Handler)>,
}

impl Mounts {
    /// Builds the view of the current table, instantiating every module.
    pub fn new(
        registry: Arc<Registry>,
        metrics: Arc<Metrics>,
        limits: DispatchLimits,
        client: Client,
    ) -> anyhow::Result<Self> {
        let this = Self {
            registry,
            client,
            metrics,
            limits,
            view: ArcSwap::from_pointee(View {
                generation: u64::MAX,
                entries: Vec::new(),
            }),
            refreshing: Mutex::new(()),
        };
        let turn = this
            .refreshing
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        this.refresh(&turn)?;
        drop(turn);
        Ok(this)
    }

    /// The mount serving `path` and its dispatcher.
    pub fn route(&self, path: &str) -> Option<(Arc<Mount>, Handler)> {
        let mut view = self.view.load();
        if view.generation != self.registry.generation() {
            let turn = match self.refreshing.try_lock() {
                Ok(turn) => Some(turn),
                Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
                Err(TryLockError::WouldBlock) => None,
            };
            if let Some(turn) = turn {
                if let Err(err) = self.refresh(&turn) {
                    tracing::error!("switching to the new module table: {err:#}");
                }
                view = self.view.load();
            }
        }
        view.entries
            .iter()
            .find(|(mount, _)| mount.serves(path))
            .map(|(mount, dispatcher)| (mount.clone(), dispatcher.clone()))
    }

    /// Adopts the published table, keeping the dispatchers of versions that
    /// are still mounted. A version that fails to start here is left out
    /// (its prefix answers 404) and reported.
    fn refresh(&self, _turn: &MutexGuard<'_, ()>) -> anyhow::Result<()> {
        let generation = self.registry.generation();
        let view = self.view.load();
        if view.generation == generation {
            // Another worker built it meanwhile.
            return Ok(());
        }
        let table = self.registry.current();
        let mut entries = Vec::with_capacity(table.mounts.len());
        let mut failures = Vec::new();
        for mount in &table.mounts {
            let kept = view
                .entries
                .iter()
                .find(|(old, _)| Arc::ptr_eq(&old.module, &mount.module))
                .map(|(_, d)| d.clone());
            let dispatcher = match kept {
                Some(d) => d,
                None => match Handler::new(
                    mount.module.clone(),
                    self.limits,
                    self.metrics.clone(),
                    self.client.clone(),
                ) {
                    Ok(d) => d,
                    Err(err) => {
                        failures.push(err.context(format!("module {}", mount.config.name)));
                        continue;
                    }
                },
            };
            entries.push((mount.clone(), dispatcher));
        }
        self.view.store(Arc::new(View {
            generation,
            entries,
        }));
        match failures.into_iter().next() {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }
}

/// The dispatcher for one module version, by the module's world.
#[derive(Clone)]
pub enum Handler {
    Snow(Arc<Dispatcher>),
    Proxy(Arc<ProxyDispatcher>),
}

impl Handler {
    fn new(
        module: Arc<crate::runtime::LoadedModule>,
        limits: DispatchLimits,
        metrics: Arc<Metrics>,
        client: Client,
    ) -> anyhow::Result<Self> {
        Ok(match module.linked {
            Linked::Snow(_) => Handler::Snow(Dispatcher::new(module, limits, metrics, client)?),
            Linked::Proxy(_) => {
                Handler::Proxy(ProxyDispatcher::new(module, limits, metrics, client))
            }
        })
    }

    /// Answers `req`; `rest` is the part of its body still streaming in.
    pub async fn call(&self, req: &Request, rest: Option<http::BodyIn>) -> http::Response {
        match self {
            Handler::Snow(d) => d.call(req, rest).await,
            Handler::Proxy(d) => d.call(req, rest).await,
        }
    }

    pub fn module_name(&self) -> &Arc<str> {
        match self {
            Handler::Snow(d) => d.module_name(),
            Handler::Proxy(d) => d.module_name(),
        }
    }

    /// Whether both are the same dispatcher (and so the same instances).
    #[cfg(test)]
    pub fn same(&self, other: &Handler) -> bool {
        match (self, other) {
            (Handler::Snow(a), Handler::Snow(b)) => Arc::ptr_eq(a, b),
            (Handler::Proxy(a), Handler::Proxy(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }

    pub fn stats(&self) -> &ModuleMetrics {
        match self {
            Handler::Snow(d) => d.stats(),
            Handler::Proxy(d) => d.stats(),
        }
    }
}

#[cfg(test)]
mod tests;
