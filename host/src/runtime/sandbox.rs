//! The linker: exactly the capabilities a route module gets.

use anyhow::Result;
use wasmtime::component::{HasSelf, Linker};
use wasmtime::error::Context;
use wasmtime::Engine;
use wasmtime_wasi::cli::{WasiCli, WasiCliView};
use wasmtime_wasi::clocks::{WasiClocks, WasiClocksView};
use wasmtime_wasi::filesystem::{WasiFilesystem, WasiFilesystemView};
use wasmtime_wasi::p2::bindings::{cli, clocks, filesystem, random, sync};
use wasmtime_wasi::random::{WasiRandom, WasiRandomView};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder};

use super::bindings::ModuleBindings;
use super::guest_log::{GuestLog, LogBudget};
use super::state::HostState;
use super::wasi_nonblocking;

/// WASI as Rust's standard library needs it (clocks, random, stdio, an empty
/// environment and filesystem), without sockets, and with io that never
/// blocks the worker; plus Snow's own imports.
pub fn linker(engine: &Engine) -> Result<Linker<HostState>> {
    let mut l = Linker::new(engine);
    add_wasi(&mut l).context("linking WASI")?;
    ModuleBindings::add_to_linker::<HostState, HasSelf<HostState>>(&mut l, |s| s)
        .context("linking snow:http")?;
    Ok(l)
}

fn add_wasi(l: &mut Linker<HostState>) -> wasmtime::Result<()> {
    type T = HostState;
    clocks::wall_clock::add_to_linker::<T, WasiClocks>(l, T::clocks)?;
    clocks::monotonic_clock::add_to_linker::<T, WasiClocks>(l, T::clocks)?;
    random::random::add_to_linker::<T, WasiRandom>(l, T::random)?;
    random::insecure::add_to_linker::<T, WasiRandom>(l, T::random)?;
    random::insecure_seed::add_to_linker::<T, WasiRandom>(l, T::random)?;
    cli::exit::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::environment::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::stdin::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::stdout::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::stderr::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::terminal_input::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::terminal_output::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::terminal_stdin::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::terminal_stdout::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::terminal_stderr::add_to_linker::<T, WasiCli>(l, T::cli)?;
    filesystem::preopens::add_to_linker::<T, WasiFilesystem>(l, T::filesystem)?;
    sync::filesystem::types::add_to_linker::<T, WasiFilesystem>(l, T::filesystem)?;
    wasmtime_wasi_io::bindings::wasi::io::error::add_to_linker::<T, wasi_nonblocking::Table>(
        l,
        <T as wasi_nonblocking::HasTable>::table,
    )?;
    wasi_nonblocking::add_to_linker(l)?;
    Ok(())
}

/// The WASI context of every instance, Snow module or standard component:
/// no preopens, no arguments, no network, and only the environment its
/// configuration gives. A module sees clocks, randomness, its settings and
/// a log, nothing of the host.
pub fn wasi_ctx(module: &std::sync::Arc<str>, env: &[(String, String)]) -> WasiCtx {
    let budget = LogBudget::new(module.clone());
    WasiCtxBuilder::new()
        .envs(env)
        .stdout(GuestLog::new(budget.clone(), "stdout"))
        .stderr(GuestLog::new(budget, "stderr"))
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .build()
}

/// Host resources (streams, pollables, header fields, bodies) one instance
/// may hold at once. Each lives in host memory, and a handler needs a few
/// dozen; past this the call that would add one traps, so a module cannot
/// grow the host by holding handles.
pub const MAX_RESOURCES: usize = 1_000;

/// An empty resource table capped at [`MAX_RESOURCES`].
pub fn resource_table() -> wasmtime::component::ResourceTable {
    let mut table = wasmtime::component::ResourceTable::new();
    table.set_max_capacity(MAX_RESOURCES);
    table
}
