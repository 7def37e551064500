//! A compiled, pre-linked route module, shared by every worker.

use std::sync::Arc;

use anyhow::Result;
use wasmtime::error::Context;
use wasmtime::Engine;

use super::bindings::ModuleBindingsPre;
use super::cache::ArtifactCache;
use super::engine::compile;
use super::sandbox;
use super::state::HostState;

/// Per-instance resource limits.
#[derive(Debug, Clone, PartialEq)]
pub struct GuestLimits {
    /// Linear memory an instance may grow to, in bytes.
    pub max_memory: usize,
    /// Epoch ticks one guest call may run before it is stopped.
    pub call_ticks: u64,
    /// Whether requests share an instance per worker or get their own.
    pub isolation: crate::config::Isolation,
    /// Configuration the module reads as environment variables.
    pub env: Vec<(String, String)>,
    /// Where the module may send outbound requests; empty denies
    /// everything.
    pub allow_outbound: crate::outbound::AllowList,
}

pub struct LoadedModule {
    pub name: Arc<str>,
    /// SHA-256 of the wasm, hex: what `GET /modules` reports.
    pub hash: String,
    pub engine: Engine,
    pub pre: ModuleBindingsPre<HostState>,
    pub limits: GuestLimits,
}

impl LoadedModule {
    /// Compiles (or loads from cache) and links `wasm`, checking that it is a
    /// component of Snow's world.
    pub fn load(
        engine: &Engine,
        name: &str,
        wasm: &[u8],
        cache: Option<&ArtifactCache>,
        limits: GuestLimits,
    ) -> Result<Arc<Self>> {
        let component = compile(engine, wasm, cache)?;
        let linker = sandbox::linker(engine)?;
        let pre = linker
            .instantiate_pre(&component)
            .context("the module needs imports Snow does not provide")?;
        let pre = ModuleBindingsPre::new(pre)
            .context("the component does not export the snow:http/handler interface")?;
        Ok(Arc::new(Self {
            name: Arc::from(name),
            hash: super::cache::content_hash(wasm),
            engine: engine.clone(),
            pre,
            limits,
        }))
    }
}
