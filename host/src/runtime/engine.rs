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

/// How often the epoch advances; per-call CPU limits are counted in ticks.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

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
            .max_memory_size(pool.max_memory);
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
    if !wasm.starts_with(b"\0asm") {
        anyhow::bail!("not a WebAssembly file (no \\0asm header)");
    }
    let Some(cache) = cache else {
        return Ok(Component::new(engine, wasm).context("compiling the component")?);
    };
    let key = cache.key(engine, wasm);
    if let Some(component) = cache.load(engine, &key) {
        return Ok(component);
    }
    let started = std::time::Instant::now();
    let component = Component::new(engine, wasm).context("compiling the component")?;
    tracing::info!(
        ms = started.elapsed().as_millis() as u64,
        "compiled module (cache miss)"
    );
    if let Err(err) = cache.store(&key, &component) {
        tracing::warn!("could not write the compile cache: {err:#}");
    }
    Ok(component)
}
