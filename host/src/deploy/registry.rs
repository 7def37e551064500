//! The mount table: which module version serves which path prefix. Workers
//! read it on every request through a generation counter and switch to a new
//! table at once; a published table is never changed.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use crate::runtime::bindings::Route;
use crate::runtime::LoadedModule;

use super::ModuleConfig;

/// One module version mounted at a prefix.
pub struct Mount {
    pub config: ModuleConfig,
    pub module: Arc<LoadedModule>,
    pub routes: Vec<Route>,
    pub loaded_at: SystemTime,
    /// Requests started on this version and not yet answered.
    pub in_flight: AtomicUsize,
}

impl Mount {
    /// Whether this mount serves `path`: the prefix must end at a segment
    /// boundary, so `/api` serves `/api` and `/api/x` but not `/apix`.
    pub fn serves(&self, path: &str) -> bool {
        let prefix = self.config.prefix.as_str();
        match path.strip_prefix(prefix) {
            Some(rest) => prefix.ends_with('/') || rest.is_empty() || rest.starts_with('/'),
            None => false,
        }
    }
}

/// Mounts ordered longest prefix first, so the first that serves a path is
/// the most specific.
#[derive(Default)]
pub struct MountTable {
    pub mounts: Vec<Arc<Mount>>,
}

impl MountTable {
    pub fn new(mut mounts: Vec<Arc<Mount>>) -> Self {
        mounts.sort_by(|a, b| {
            b.config
                .prefix
                .len()
                .cmp(&a.config.prefix.len())
                .then_with(|| a.config.name.cmp(&b.config.name))
        });
        Self { mounts }
    }

    pub fn find(&self, name: &str) -> Option<&Arc<Mount>> {
        self.mounts.iter().find(|m| m.config.name == name)
    }
}

#[derive(Default)]
pub struct Registry {
    table: RwLock<Arc<MountTable>>,
    generation: AtomicU64,
}

impl Registry {
    pub fn current(&self) -> Arc<MountTable> {
        match self.table.read() {
            Ok(table) => table.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Changes whenever a new table is published.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn publish(&self, table: MountTable) {
        let table = Arc::new(table);
        match self.table.write() {
            Ok(mut current) => *current = table,
            Err(poisoned) => *poisoned.into_inner() = table,
        }
        self.generation.fetch_add(1, Ordering::AcqRel);
    }
}
