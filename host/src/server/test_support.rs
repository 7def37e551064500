//! What the server's unit tests share: the embedded `hello` module, compiled
//! once per test run, and mounts of it.

use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use super::dispatch::DispatchLimits;
use crate::config::{Isolation, DEFAULT_MAX_MEMORY, DEFAULT_MAX_STACK};
use crate::deploy::{ModuleConfig, Mount, Source};
use crate::outbound::{AllowList, Client, ClientConfig};
use crate::runtime::{GuestLimits, LoadedModule};

/// `hello`: `/home/` answers at once, `/async/?ms=N` parks for N ms.
const HELLO: &[u8] = include_bytes!(env!("SNOW_GUEST_HELLO"));

fn limits(isolation: Isolation) -> GuestLimits {
    GuestLimits {
        max_memory: DEFAULT_MAX_MEMORY,
        max_body: None,
        // No epoch ticker runs in these tests: the budget is never spent.
        call_ticks: 1,
        isolation: Some(isolation),
        env: Vec::new(),
        allow_outbound: AllowList::default(),
        stores: Vec::new(),
    }
}

/// `hello` with the given isolation; every call shares one compilation.
pub fn hello(isolation: Isolation) -> Arc<LoadedModule> {
    static COMPILED: OnceLock<Arc<LoadedModule>> = OnceLock::new();
    let compiled = COMPILED.get_or_init(|| {
        let engine = crate::runtime::new_engine(DEFAULT_MAX_STACK, None).expect("an engine");
        LoadedModule::load(
            &crate::runtime::Engines::cranelift(engine),
            "hello",
            HELLO,
            None,
            limits(Isolation::Instance),
            crate::kv::Grants::default(),
        )
        .expect("hello compiles")
    });
    Arc::new(LoadedModule {
        name: compiled.name.clone(),
        hash: compiled.hash.clone(),
        engine: compiled.engine.clone(),
        tier: compiled.tier,
        linked: compiled.linked.clone(),
        limits: limits(isolation),
        grants: compiled.grants.clone(),
    })
}

/// `module` mounted as `name` at `prefix`.
pub fn mount(name: &str, prefix: &str, module: Arc<LoadedModule>) -> Arc<Mount> {
    Arc::new(Mount {
        config: ModuleConfig {
            name: name.into(),
            prefix: prefix.into(),
            source: Source::Embedded(HELLO),
            limits: module.limits.clone(),
            watch: false,
        },
        module,
        routes: Vec::new(),
        loaded_at: SystemTime::now(),
        in_flight: AtomicUsize::new(0),
    })
}

pub fn dispatch_limits(max_parked: usize, request_timeout: Duration) -> DispatchLimits {
    DispatchLimits {
        workers: 1,
        max_parked,
        request_timeout,
        max_store_ops: crate::config::DEFAULT_MAX_STORE_OPS,
        stream_idle: crate::config::DEFAULT_STREAM_IDLE_TIMEOUT,
    }
}

pub fn client() -> Client {
    Client::new(ClientConfig::default()).expect("a client")
}
