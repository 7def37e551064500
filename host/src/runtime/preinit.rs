//! Pre-initialisation for modules isolated per request.
//!
//! A fresh instance starts from the component's data segments: every
//! request would build the route table and compile each route's regex
//! again. Instead, at deploy time, the module runs its start-up once (its
//! `routes` export, which the SDK uses to build the table and compile the
//! regexes), and wasmtime's Wizer rewrites the component with the resulting
//! memory and globals as its initial state. Fresh instances then map that
//! image copy-on-write and begin where a warmed instance would be.

use std::sync::{Arc, OnceLock};

use anyhow::Result;
use wasmtime::component::{Component, Instance, Lift, WasmList};
use wasmtime::error::Context;
use wasmtime::{Config, Engine, OptLevel, Store, Strategy};
use wasmtime_wizer::{ComponentInstanceState, Wizer};

use super::bindings::ModuleBindings;
use super::module::GuestLimits;
use super::proxy::{self, Outbound, ProxyState};
use super::sandbox;
use super::state::HostState;
use super::world::{World, INITIALIZER};

/// Instructions the start-up may run: far beyond building a route table,
/// short of a module that never returns (about a second of work).
const START_UP_FUEL: u64 = 2_000_000_000;

/// What [`preinitialize`] produces: the rewritten component's bytes.
pub struct Snapshot(pub Vec<u8>);

/// Runs `wasm`'s start-up once and returns the component rewritten to begin
/// in the state it left. Fails when the module's start-up traps, runs out
/// of fuel, or keeps a host resource open (its handle would not exist in a
/// fresh instance).
pub fn preinitialize(
    name: &str,
    wasm: &[u8],
    limits: &GuestLimits,
    grants: &crate::kv::Grants,
) -> Result<Snapshot> {
    // Wizer panics on some inputs it cannot rewrite; whatever a module's
    // bytes do to it, the deploy goes on without a snapshot.
    let attempt = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run_start_up(name, wasm, limits, grants)
    }));
    attempt.unwrap_or_else(|panic| {
        let why = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("no message");
        Err(anyhow::anyhow!(
            "the snapshot failed: {}",
            why.lines().next().unwrap_or(why)
        ))
    })
}

fn run_start_up(
    name: &str,
    wasm: &[u8],
    limits: &GuestLimits,
    grants: &crate::kv::Grants,
) -> Result<Snapshot> {
    let started = std::time::Instant::now();
    let mut wizer = Wizer::new();
    // A component's lift of the start-up export still names the core
    // export; removing it would leave the rewritten component invalid.
    wizer.keep_init_func(true);
    let (cx, instrumented) = wizer
        .instrument_component(wasm)
        .context("instrumenting the component")?;
    let (engine, component) = compile_for_start_up(name, &instrumented)?;
    let compiled = started.elapsed();
    let module: Arc<str> = Arc::from(name);
    let bytes = match World::of(wasm)? {
        World::Snow => {
            let state = HostState::new(&module, limits, 0, grants.clone());
            let mut store = Store::new(engine, state);
            store.limiter(|s| &mut s.limits);
            store.set_fuel(START_UP_FUEL)?;
            let instance = sandbox::linker(engine)?
                .instantiate(&mut store, &component)
                .context("instantiating the module")?;
            ModuleBindings::new(&mut store, &instance)
                .context("the component does not export the snow:http/handler interface")?
                .snow_http_handler()
                .call_routes(&mut store)
                .context("the module's start-up (its routes export) failed")?;
            let open = !store.data().resources_empty();
            snapshot(&wizer, &cx, store, instance, open)?
        }
        World::Proxy => {
            let state = ProxyState::new(&module, limits, Outbound::denied(module.clone()));
            let mut store = Store::new(engine, state);
            store.limiter(|s| s.limiter());
            store.set_fuel(START_UP_FUEL)?;
            let instance = proxy::sync_linker(engine)?
                .instantiate(&mut store, &component)
                .context("instantiating the component")?;
            instance
                .get_typed_func::<(), ()>(&mut store, INITIALIZER)
                .with_context(|| format!("the component has no {INITIALIZER} export"))?
                .call(&mut store, ())
                .with_context(|| format!("the component's start-up ({INITIALIZER}) failed"))?;
            let open = !store.data().resources_empty();
            snapshot(&wizer, &cx, store, instance, open)?
        }
    };
    tracing::debug!(
        module = name,
        instrument_and_compile_ms = compiled.as_millis() as u64,
        total_ms = started.elapsed().as_millis() as u64,
        "ran the module's start-up for its snapshot"
    );
    Ok(Snapshot(bytes))
}

/// The engines that run start-ups: compiled once and run once, so compile
/// time is what counts. Winch, wasmtime's baseline compiler, compiles a
/// module in a fraction of Cranelift's time; Cranelift without optimisation
/// takes over for a module Winch cannot compile. Both count fuel instead of
/// epochs, as nothing ticks them.
fn start_up_engine(strategy: Strategy) -> Result<&'static Engine> {
    static WINCH: OnceLock<Engine> = OnceLock::new();
    static CRANELIFT: OnceLock<Engine> = OnceLock::new();
    let cell = match strategy {
        Strategy::Winch => &WINCH,
        _ => &CRANELIFT,
    };
    if let Some(engine) = cell.get() {
        return Ok(engine);
    }
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.strategy(strategy);
    config.cranelift_opt_level(OptLevel::None);
    config.consume_fuel(true);
    config.parallel_compilation(true);
    let engine = Engine::new(&config).context("configuring the start-up engine")?;
    Ok(cell.get_or_init(|| engine))
}

/// The instrumented component, compiled by Winch or else by Cranelift.
fn compile_for_start_up(name: &str, instrumented: &[u8]) -> Result<(&'static Engine, Component)> {
    let winch = start_up_engine(Strategy::Winch)?;
    match Component::new(winch, instrumented) {
        Ok(component) => return Ok((winch, component)),
        Err(err) => tracing::info!(
            module = name,
            "winch cannot compile the module for its start-up, using cranelift: {err:#}"
        ),
    }
    let cranelift = start_up_engine(Strategy::Cranelift)?;
    let component =
        Component::new(cranelift, instrumented).context("compiling the instrumented component")?;
    Ok((cranelift, component))
}

/// Drives a future that never waits: every call below is synchronous, so
/// it completes on its first poll or something is wrong.
fn run_ready<F: std::future::Future>(future: F) -> Result<F::Output> {
    super::ready::now_or_never(future)
        .ok_or_else(|| anyhow::anyhow!("the snapshot waited, which its synchronous calls never do"))
}

/// The rewritten component, unless the start-up left a host resource
/// `open` (its handle would not exist in a fresh instance).
fn snapshot<T: Send + 'static>(
    wizer: &Wizer,
    cx: &wasmtime_wizer::ComponentContext,
    mut store: Store<T>,
    instance: Instance,
    open: bool,
) -> Result<Vec<u8>> {
    if open {
        anyhow::bail!(
            "the module's start-up kept a host resource open (a stream, say), \
             which a fresh instance would not have"
        );
    }
    let mut access = Access {
        store: &mut store,
        instance,
    };
    Ok(run_ready(wizer.snapshot_component(cx, &mut access))?
        .context("snapshotting the initialised module")?)
}

/// Wizer reads each core instance's memories and globals through exports
/// its instrumentation added; these are the calls.
struct Access<'a, T: 'static> {
    store: &'a mut Store<T>,
    instance: Instance,
}

impl<T> Access<'_, T> {
    fn call<R: Lift + Send + Sync + 'static>(&mut self, instance: &str, func: &str) -> R {
        self.try_call(instance, func)
            .unwrap_or_else(|err| panic!("reading {instance}#{func} for the snapshot: {err:#}"))
    }

    fn try_call<R: Lift + Send + Sync + 'static>(
        &mut self,
        instance: &str,
        func: &str,
    ) -> wasmtime::Result<R> {
        let (_, outer) = self
            .instance
            .get_export(&mut *self.store, None, instance)
            .with_context(|| format!("no export {instance}"))?;
        let (_, inner) = self
            .instance
            .get_export(&mut *self.store, Some(&outer), func)
            .with_context(|| format!("no export {func}"))?;
        let typed = self
            .instance
            .get_typed_func::<(), (R,)>(&mut *self.store, inner)?;
        let (value,) = typed.call(&mut *self.store, ())?;
        Ok(value)
    }
}

impl<T: Send> ComponentInstanceState for Access<'_, T> {
    async fn call_func_ret_list_u8(
        &mut self,
        instance: &str,
        func: &str,
        contents: impl FnOnce(&[u8]) + Send,
    ) {
        let list: WasmList<u8> = self.call(instance, func);
        contents(list.as_le_slice(&*self.store));
    }

    async fn call_func_ret_s32(&mut self, instance: &str, func: &str) -> i32 {
        self.call(instance, func)
    }

    async fn call_func_ret_s64(&mut self, instance: &str, func: &str) -> i64 {
        self.call(instance, func)
    }

    async fn call_func_ret_f32(&mut self, instance: &str, func: &str) -> u32 {
        self.call::<f32>(instance, func).to_bits()
    }

    async fn call_func_ret_f64(&mut self, instance: &str, func: &str) -> u64 {
        self.call::<f64>(instance, func).to_bits()
    }
}

#[cfg(test)]
mod tests;
