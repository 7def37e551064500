//! A layer of settings: what one source (the manifest, the command line)
//! sets, each key `None` when that source leaves it out. Both sources fill
//! the same types, so a key cannot be honoured by one and dropped by the
//! other.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::{Compiler, Isolation, ModuleSettings, Settings};
use crate::kv::StoreConfig;
use crate::outbound::AllowList;

/// Server-wide settings, engine ones included.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServerLayer {
    pub listen: Option<SocketAddr>,
    pub workers: Option<usize>,
    pub busy_poll: Option<Duration>,
    pub sched_slice: Option<Duration>,
    /// `Some(None)`: the admin API is turned `off`.
    pub admin: Option<Option<SocketAddr>>,
    pub admin_token_file: Option<PathBuf>,
    /// `Some(None)`: the health listener is turned `off`.
    pub health: Option<Option<SocketAddr>>,
    pub max_body: Option<u64>,
    pub header_timeout: Option<Duration>,
    pub idle_timeout: Option<Duration>,
    pub send_timeout: Option<Duration>,
    pub stream_idle_timeout: Option<Duration>,
    pub request_timeout: Option<Duration>,
    pub grace: Option<Duration>,
    pub drain_delay: Option<Duration>,
    pub max_parked: Option<usize>,
    pub max_connections: Option<usize>,
    pub max_stack: Option<usize>,
    pub pool_size: Option<u32>,
    pub compiler: Option<Compiler>,
    pub max_store_ops: Option<usize>,
    /// Declared stores; `Some` replaces the implicit `default` store, and
    /// modules are then granted only the stores they name.
    pub stores: Option<Vec<StoreConfig>>,
}

/// Settings of a module.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModuleLayer {
    pub isolation: Option<Isolation>,
    pub max_memory: Option<usize>,
    pub max_call_time: Option<Duration>,
    /// The module's own request body limit, in place of the server's.
    pub max_body: Option<u64>,
    /// Replaces the rules of the layers below, not added to them.
    pub allow_outbound: Option<AllowList>,
    /// Store names granted.
    pub stores: Option<Vec<String>>,
}

fn set<T: Clone>(setting: &mut T, layer: &Option<T>) {
    if let Some(value) = layer {
        *setting = value.clone();
    }
}

impl ServerLayer {
    /// Overrides the settings this layer sets.
    pub fn apply(&self, to: &mut Settings) {
        let (server, engine) = (&mut to.server, &mut to.engine);
        set(&mut server.listen, &self.listen);
        set(&mut server.workers, &self.workers);
        set(&mut server.busy_poll, &self.busy_poll);
        set(&mut server.sched_slice, &self.sched_slice);
        set(&mut server.admin, &self.admin);
        if self.admin_token_file.is_some() {
            server.admin_token_file = self.admin_token_file.clone();
        }
        set(&mut server.health, &self.health);
        set(&mut server.http.max_body, &self.max_body);
        set(&mut server.header_timeout, &self.header_timeout);
        set(&mut server.idle_timeout, &self.idle_timeout);
        set(&mut server.send_timeout, &self.send_timeout);
        set(&mut server.stream_idle_timeout, &self.stream_idle_timeout);
        set(&mut server.request_timeout, &self.request_timeout);
        set(&mut server.grace, &self.grace);
        set(&mut server.drain_delay, &self.drain_delay);
        set(&mut server.max_parked, &self.max_parked);
        set(&mut server.max_connections, &self.max_connections);
        set(&mut engine.max_stack, &self.max_stack);
        set(&mut engine.pool_size, &self.pool_size);
        set(&mut engine.compiler, &self.compiler);
        set(&mut server.max_store_ops, &self.max_store_ops);
        if let Some(stores) = &self.stores {
            to.stores = stores.clone();
            // Declared stores are granted explicitly.
            to.module.stores = Vec::new();
        }
    }
}

impl ModuleLayer {
    /// Overrides the settings this layer sets.
    pub fn apply(&self, to: &mut ModuleSettings) {
        if self.isolation.is_some() {
            to.isolation = self.isolation;
        }
        set(&mut to.max_memory, &self.max_memory);
        set(&mut to.max_call_time, &self.max_call_time);
        if self.max_body.is_some() {
            to.max_body = self.max_body;
        }
        set(&mut to.allow_outbound, &self.allow_outbound);
        set(&mut to.stores, &self.stores);
    }
}
