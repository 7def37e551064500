//! A worker's view of the mount table: one dispatcher (and so one instance)
//! per mounted module version, refreshed when the table's generation moves.
//! A dispatcher dropped from the view lives on in the tickets and timers of
//! the requests still parked in it, and goes when they are done.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use super::dispatch::{DispatchLimits, Dispatcher};
use super::proxy_dispatch::ProxyDispatcher;
use crate::deploy::{Mount, Registry};
use crate::http;
use crate::metrics::Metrics;
use crate::metrics::ModuleMetrics;
use crate::outbound::Client;
use crate::runtime::bindings::Request;
use crate::runtime::module::Linked;

pub struct WorkerMounts {
    registry: Arc<Registry>,
    client: Client,
    metrics: Arc<Metrics>,
    limits: DispatchLimits,
    view: RefCell<View>,
}

struct View {
    generation: u64,
    entries: Vec<(Arc<Mount>, Handler)>,
}

impl WorkerMounts {
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
            view: RefCell::new(View {
                generation: u64::MAX,
                entries: Vec::new(),
            }),
        };
        this.refresh()?;
        Ok(this)
    }

    /// The mount serving `path` and this worker's dispatcher for it.
    pub fn route(&self, path: &str) -> Option<(Arc<Mount>, Handler)> {
        if self.view.borrow().generation != self.registry.generation() {
            if let Err(err) = self.refresh() {
                tracing::error!("switching to the new module table: {err:#}");
            }
        }
        let view = self.view.borrow();
        view.entries
            .iter()
            .find(|(mount, _)| mount.serves(path))
            .map(|(mount, dispatcher)| (mount.clone(), dispatcher.clone()))
    }

    /// Adopts the published table, keeping the dispatchers of versions that
    /// are still mounted. A version that fails to start here is left out
    /// (its prefix answers 404) and reported.
    fn refresh(&self) -> anyhow::Result<()> {
        let generation = self.registry.generation();
        let table = self.registry.current();
        let mut view = self.view.borrow_mut();
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
        *view = View {
            generation,
            entries,
        };
        match failures.into_iter().next() {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }
}

/// A worker's dispatcher for one module version, by the module's world.
#[derive(Clone)]
pub enum Handler {
    Snow(Rc<Dispatcher>),
    Proxy(Rc<ProxyDispatcher>),
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
            (Handler::Snow(a), Handler::Snow(b)) => Rc::ptr_eq(a, b),
            (Handler::Proxy(a), Handler::Proxy(b)) => Rc::ptr_eq(a, b),
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
