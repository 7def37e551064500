//! The shared wasmtime `Engine`, its epoch ticker, and compilation of modules
//! through the on-disk cache.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use anyhow::Result;
use wasmtime::component::Component;
use wasmtime::error::Context;
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig, Strategy,
};

use super::cache::ArtifactCache;
use super::module::GuestLimits;
use super::preinit;
use super::world::{Exports, World};
use crate::config::{Compiler, Isolation};

/// How often the epoch advances; per-call CPU limits are counted in ticks.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Dirty bytes of a pooled memory reset in place when its instance ends;
/// beyond them the rest is unmapped. A Rust module's request touches its
/// stack, a few heap pages and its statics: well under this.
const KEEP_RESIDENT_MEMORY: usize = 1 << 20;
/// The same for tables (a component's function tables are small).
const KEEP_RESIDENT_TABLE: usize = 64 << 10;

/// Sizes of the pooling allocator, for modules isolated per request.
#[derive(Debug, Clone, Copy)]
pub struct Pool {
    /// Component instances that can be alive at once.
    pub instances: u32,
    /// Linear memory of one instance, in bytes.
    pub max_memory: usize,
}

/// Which compiler built a module's code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// Winch: compiled in a fraction of Cranelift's time, runs slower.
    Baseline,
    /// Cranelift.
    Optimized,
}

impl Tier {
    /// The compiler's name, as `GET /modules` and the log give it.
    pub fn compiler(self) -> &'static str {
        match self {
            Tier::Baseline => "winch",
            Tier::Optimized => "cranelift",
        }
    }
}

/// The engines modules are compiled for: Cranelift's, and Winch's when the
/// [`Compiler`] setting uses it. Both have the same limits, epochs and
/// allocator; a module's instances run on the engine that compiled it.
#[derive(Clone)]
pub struct Engines {
    optimized: Engine,
    baseline: Option<Engine>,
    compiler: Compiler,
}

impl Engines {
    pub fn new(max_wasm_stack: usize, pool: Option<Pool>, compiler: Compiler) -> Result<Self> {
        let optimized = engine(max_wasm_stack, pool, Strategy::Cranelift)?;
        let baseline = match compiler {
            Compiler::Cranelift => None,
            Compiler::Tiered | Compiler::Winch => {
                Some(engine(max_wasm_stack, pool, Strategy::Winch)?)
            }
        };
        Ok(Self {
            optimized,
            baseline,
            compiler,
        })
    }

    /// Cranelift alone.
    pub fn cranelift(engine: Engine) -> Self {
        Self {
            optimized: engine,
            baseline: None,
            compiler: Compiler::Cranelift,
        }
    }

    pub fn compiler(&self) -> Compiler {
        self.compiler
    }

    /// Whether a module served from `tier` is to be replaced by
    /// Cranelift's build: Winch's builds under `tiered`.
    pub fn tiers_up(&self, tier: Tier) -> bool {
        tier == Tier::Baseline && self.compiler == Compiler::Tiered
    }

    fn all(&self) -> Vec<Engine> {
        std::iter::once(&self.optimized)
            .chain(&self.baseline)
            .cloned()
            .collect()
    }

    /// Compiles `wasm` as the [`Compiler`] setting says. Under `tiered`,
    /// a build from Winch (not cached: Cranelift's will be) unless the
    /// cache holds Cranelift's already; a module Winch cannot compile
    /// waits for Cranelift, and the log says why.
    pub fn compile(
        &self,
        name: &str,
        wasm: &[u8],
        cache: Option<&ArtifactCache>,
        limits: &GuestLimits,
        grants: &crate::kv::Grants,
    ) -> Result<(Engine, Component, Tier)> {
        let isolation = preinit_isolation(wasm, limits)?;
        let optimized = |cache| {
            self.optimized_build(name, wasm, cache, limits, grants, isolation)
                .map(|(engine, component)| (engine, component, Tier::Optimized))
        };
        let Some(baseline) = &self.baseline else {
            return optimized(cache);
        };
        if self.compiler == Compiler::Winch {
            let component = compile_module(baseline, name, wasm, cache, limits, grants, isolation)?;
            return Ok((baseline.clone(), component, Tier::Baseline));
        }
        if let Some(component) = cache.and_then(|cache| {
            let key = cache_key(&self.optimized, cache, wasm, limits, isolation);
            cache.load(&self.optimized, &key)
        }) {
            return Ok((self.optimized.clone(), component, Tier::Optimized));
        }
        let started = std::time::Instant::now();
        match compile_module(baseline, name, wasm, None, limits, grants, isolation) {
            Ok(component) => {
                tracing::info!(
                    module = name,
                    ms = started.elapsed().as_millis() as u64,
                    "compiled by winch, to serve until cranelift's build is ready"
                );
                Ok((baseline.clone(), component, Tier::Baseline))
            }
            Err(err) => {
                tracing::info!(
                    module = name,
                    "winch cannot compile the module, waiting for cranelift: {err:#}"
                );
                optimized(cache)
            }
        }
    }

    /// Cranelift's build of `wasm`, through the cache: what replaces a
    /// module served from Winch's.
    pub fn compile_optimized(
        &self,
        name: &str,
        wasm: &[u8],
        cache: Option<&ArtifactCache>,
        limits: &GuestLimits,
        grants: &crate::kv::Grants,
    ) -> Result<(Engine, Component)> {
        let isolation = preinit_isolation(wasm, limits)?;
        self.optimized_build(name, wasm, cache, limits, grants, isolation)
    }

    fn optimized_build(
        &self,
        name: &str,
        wasm: &[u8],
        cache: Option<&ArtifactCache>,
        limits: &GuestLimits,
        grants: &crate::kv::Grants,
        isolation: Isolation,
    ) -> Result<(Engine, Component)> {
        let component = compile_module(
            &self.optimized,
            name,
            wasm,
            cache,
            limits,
            grants,
            isolation,
        )?;
        Ok((self.optimized.clone(), component))
    }
}

/// The Cranelift engine, with the server's limits: what tests and tools
/// that need just one use.
pub fn new_engine(max_wasm_stack: usize, pool: Option<Pool>) -> Result<Engine> {
    engine(max_wasm_stack, pool, Strategy::Cranelift)
}

/// Builds an engine modules are compiled for. With `pool`, instances come
/// from wasmtime's pooling allocator: slots reserved once, so a fresh
/// instance per request costs microseconds and no mmap. Winch supports
/// epoch interruption in wasmtime 48 (its documentation says otherwise; a
/// test holds it to it), so a module's CPU limit is the same on either.
fn engine(max_wasm_stack: usize, pool: Option<Pool>, strategy: Strategy) -> Result<Engine> {
    let mut config = Config::new();
    config.strategy(strategy);
    if strategy == Strategy::Winch {
        // Winch hands the trampolines between host and wasm (one per
        // function a table or an export can reach) to Cranelift, and a
        // Rust module has thousands: compile those quickly too.
        config.cranelift_opt_level(OptLevel::None);
        // SAFETY: a documented Cranelift setting; it changes how registers
        // are allocated, not what the code does.
        unsafe {
            config.cranelift_flag_set("regalloc_algorithm", "single_pass");
        }
    }
    if let Some(pool) = pool {
        let mut pooling = PoolingAllocationConfig::default();
        // A Rust component holds a few core instances (the program and
        // wit-component's shims), each possibly with a memory and tables.
        pooling
            .total_component_instances(pool.instances)
            .total_core_instances(pool.instances.saturating_mul(8))
            .total_memories(pool.instances.saturating_mul(2))
            .total_tables(pool.instances.saturating_mul(8))
            .max_core_instances_per_component(16)
            .max_memories_per_component(4)
            .max_tables_per_component(16)
            .max_memory_size(pool.max_memory)
            // A finished instance's dirty pages are copied back from the
            // module's image (found with PAGEMAP_SCAN, Linux 6.7+) instead
            // of unmapped: the next instance in the slot then takes no page
            // faults and no cross-core TLB flushes.
            .pagemap_scan(wasmtime::Enabled::Auto)
            .linear_memory_keep_resident(KEEP_RESIDENT_MEMORY)
            .table_keep_resident(KEEP_RESIDENT_TABLE);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling));
    }
    config.wasm_component_model(true);
    // Epochs let a worker stop a guest that computes too long without the
    // per-instruction cost of fuel.
    config.epoch_interruption(true);
    config.max_wasm_stack(max_wasm_stack);
    // Only checked against the wasm stack here (no async calls run), but
    // it must hold it; worker threads get the same size.
    config.async_stack_size(crate::config::worker_stack(max_wasm_stack));
    config.parallel_compilation(true);
    Ok(Engine::new(&config).context("configuring the wasm engine")?)
}

/// Advances the engines' epochs every [`EPOCH_TICK`] until dropped.
pub struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl EpochTicker {
    pub fn start(engines: &Engines) -> Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let engines = engines.all();
        let flag = stop.clone();
        let thread = thread::Builder::new()
            .name("snow-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    thread::sleep(EPOCH_TICK);
                    for engine in &engines {
                        engine.increment_epoch();
                    }
                }
            })
            .context("starting the epoch thread")?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Compiles `wasm` for `engine`, or loads its compiled form from `cache`.
/// Under `isolation` per request (from [`preinit_isolation`], which has
/// read the module's header and exports), it is pre-initialised first.
fn compile_module(
    engine: &Engine,
    name: &str,
    wasm: &[u8],
    cache: Option<&ArtifactCache>,
    limits: &GuestLimits,
    grants: &crate::kv::Grants,
    isolation: Isolation,
) -> Result<Component> {
    let key = cache.map(|cache| cache_key(engine, cache, wasm, limits, isolation));
    match isolation {
        Isolation::Request => {
            compile_preinitialized(engine, name, wasm, cache, key, limits, grants)
        }
        Isolation::Instance => cached(engine, cache, key, "compiled module (cache miss)", || {
            Ok((as_it_is(engine, wasm)?, Keep::Store))
        }),
    }
}

/// The isolation that decides how `wasm` is compiled: a module isolated
/// per request is pre-initialised when it has a start-up to run, which a
/// Snow module always has (its `routes` export) and a standard component
/// has when it exports `wizer-initialize` (as the SDK's builds do). Any
/// other is compiled as it is.
fn preinit_isolation(wasm: &[u8], limits: &GuestLimits) -> Result<Isolation> {
    let exports = Exports::of(wasm)?;
    Ok(match exports.world {
        World::Snow => limits.isolation(World::Snow),
        World::Proxy if exports.initializer => limits.isolation(World::Proxy),
        World::Proxy => Isolation::Instance,
    })
}

/// Where `cache` keeps `wasm`'s build for `engine`.
fn cache_key(
    engine: &Engine,
    cache: &ArtifactCache,
    wasm: &[u8],
    limits: &GuestLimits,
    isolation: Isolation,
) -> String {
    match isolation {
        Isolation::Instance => cache.key(engine, wasm),
        Isolation::Request => preinitialized_key(engine, cache, wasm, limits),
    }
}

/// The start-up may read the module's environment and open its stores,
/// so both are part of what the snapshot depends on. Every name and
/// value is its own length-prefixed part after the count of its list,
/// so no two configurations hash alike whatever bytes they hold.
fn preinitialized_key(
    engine: &Engine,
    cache: &ArtifactCache,
    wasm: &[u8],
    limits: &GuestLimits,
) -> String {
    let env_count = (limits.env.len() as u64).to_le_bytes();
    let store_count = (limits.stores.len() as u64).to_le_bytes();
    let inputs: Vec<&[u8]> = std::iter::once(&env_count[..])
        .chain(
            limits
                .env
                .iter()
                .flat_map(|(k, v)| [k.as_bytes(), v.as_bytes()]),
        )
        .chain(std::iter::once(&store_count[..]))
        .chain(limits.stores.iter().map(|s| s.as_bytes()))
        .collect();
    cache.derived_key(engine, "preinit-1", wasm, &inputs)
}

/// A module isolated per request is pre-initialised ([`preinit`]), so
/// each fresh instance starts with its route table built. A module that
/// cannot be pre-initialised is compiled as it is, and says why in the log.
fn compile_preinitialized(
    engine: &Engine,
    name: &str,
    wasm: &[u8],
    cache: Option<&ArtifactCache>,
    key: Option<String>,
    limits: &GuestLimits,
    grants: &crate::kv::Grants,
) -> Result<Component> {
    cached(
        engine,
        cache,
        key,
        "pre-initialised and compiled module (cache miss)",
        || {
            match preinit::preinitialize(name, wasm, limits, grants) {
                Ok(snapshot) => Ok((
                    Component::new(engine, &snapshot.0)
                        .context("compiling the pre-initialised component")?,
                    Keep::Store,
                )),
                Err(err) => {
                    tracing::warn!(
                        module = name,
                        "not pre-initialised, fresh instances start from scratch: {err:#}"
                    );
                    // Not stored under the pre-initialised key: a fixed host
                    // tries the start-up again next time.
                    Ok((as_it_is(engine, wasm)?, Keep::Discard))
                }
            }
        },
    )
}

/// The module compiled as it is, without pre-initialisation.
fn as_it_is(engine: &Engine, wasm: &[u8]) -> Result<Component> {
    Ok(Component::new(engine, wasm).context("compiling the component")?)
}

/// Whether a built artifact belongs in the cache under its key.
enum Keep {
    Store,
    Discard,
}

/// Loads the artifact under `key` from `cache`, or builds it and stores it.
fn cached(
    engine: &Engine,
    cache: Option<&ArtifactCache>,
    key: Option<String>,
    what: &str,
    build: impl FnOnce() -> Result<(Component, Keep)>,
) -> Result<Component> {
    let (Some(cache), Some(key)) = (cache, key) else {
        return build().map(|(component, _)| component);
    };
    if let Some(component) = cache.load(engine, &key) {
        return Ok(component);
    }
    let started = std::time::Instant::now();
    let (component, keep) = build()?;
    tracing::info!(ms = started.elapsed().as_millis() as u64, "{what}");
    if matches!(keep, Keep::Discard) {
        return Ok(component);
    }
    if let Err(err) = cache.store(&key, &component) {
        tracing::warn!("could not write the compile cache: {err:#}");
    }
    Ok(component)
}

#[cfg(test)]
mod tests;
