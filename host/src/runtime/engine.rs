//! The shared wasmtime `Engine`, its epoch ticker, and compilation of modules
//! through the on-disk cache.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use anyhow::Result;
use wasmtime::component::Component;
use wasmtime::error::Context;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::cache::ArtifactCache;
use super::module::GuestLimits;
use super::preinit;

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

/// Builds the engine every module is compiled for. With `pool`, instances
/// come from wasmtime's pooling allocator: slots reserved once, so a fresh
/// instance per request costs microseconds and no mmap.
pub fn new_engine(max_wasm_stack: usize, pool: Option<Pool>) -> Result<Engine> {
    let mut config = Config::new();
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

/// Advances the engine's epoch every [`EPOCH_TICK`] until dropped.
pub struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl EpochTicker {
    pub fn start(engine: &Engine) -> Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let engine = engine.clone();
        let flag = stop.clone();
        let thread = thread::Builder::new()
            .name("snow-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
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

/// Compiles `wasm`, or loads its compiled form from `cache` when present.
pub fn compile(engine: &Engine, wasm: &[u8], cache: Option<&ArtifactCache>) -> Result<Component> {
    check_header(wasm)?;
    let key = cache.map(|cache| cache.key(engine, wasm));
    cached(engine, cache, key, "compiled module (cache miss)", || {
        Ok((as_it_is(engine, wasm)?, Keep::Store))
    })
}

/// Like [`compile`], for a module isolated per request: the component is
/// pre-initialised first ([`preinit`]), so each fresh instance starts with
/// its route table built. A module that cannot be pre-initialised is
/// compiled as it is, and says why in the log.
pub fn compile_preinitialized(
    engine: &Engine,
    name: &str,
    wasm: &[u8],
    cache: Option<&ArtifactCache>,
    limits: &GuestLimits,
    grants: &crate::kv::Grants,
) -> Result<Component> {
    check_header(wasm)?;
    // The start-up may read the module's environment and open its stores,
    // so both are part of what the snapshot depends on. Every name and
    // value is its own length-prefixed part after the count of its list,
    // so no two configurations hash alike whatever bytes they hold.
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
    let key = cache.map(|cache| cache.derived_key(engine, "preinit-1", wasm, &inputs));
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

fn check_header(wasm: &[u8]) -> Result<()> {
    if !wasm.starts_with(b"\0asm") {
        anyhow::bail!("not a WebAssembly file (no \\0asm header)");
    }
    Ok(())
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
