//! A compiled, pre-linked route module, shared by every worker.

use std::sync::Arc;

use anyhow::Result;
use wasmtime::component::Component;
use wasmtime::error::Context;
use wasmtime::Engine;

use super::bindings::ModuleBindingsPre;
use super::cache::ArtifactCache;
use super::engine::{Engines, Tier};
use super::proxy::{self, ProxyState};
use super::sandbox;
use super::state::HostState;
use super::world::World;
use crate::config::Isolation;
use wasmtime_wasi_http::p2::bindings::ProxyPre;

/// The version of `snow:http` this host speaks (`wit/snow.wit`).
pub const CONTRACT: &str = "0.4.1";

/// Versions whose modules this host runs: its own, and the earlier ones
/// it only added imports to. Wasmtime links a 0.4.0 module's imports to
/// the 0.4.1 definitions (same minor: semver-compatible), and the types
/// they share are unchanged.
pub const RUNS: [&str; 2] = ["0.4.0", CONTRACT];

/// Per-instance resource limits.
#[derive(Debug, Clone, PartialEq)]
pub struct GuestLimits {
    /// Linear memory an instance may grow to, in bytes.
    pub max_memory: usize,
    /// The longest request body, streamed or whole; `None`: the server's.
    pub max_body: Option<u64>,
    /// Epoch ticks one guest call may run before it is stopped.
    pub call_ticks: u64,
    /// Whether requests share an instance per worker or get their own, as
    /// configured; see [`GuestLimits::isolation`].
    pub isolation: Option<Isolation>,
    /// Configuration the module reads as environment variables.
    pub env: Vec<(String, String)>,
    /// Where the module may send outbound requests; empty denies
    /// everything.
    pub allow_outbound: crate::outbound::AllowList,
    /// The stores the module may open, by name; empty denies every one.
    pub stores: Vec<String>,
}

/// A component linked for the world it implements.
#[derive(Clone)]
pub enum Linked {
    Snow(ModuleBindingsPre<HostState>),
    Proxy(ProxyPre<ProxyState>),
}

impl Linked {
    pub fn world(&self) -> World {
        match self {
            Linked::Snow(_) => World::Snow,
            Linked::Proxy(_) => World::Proxy,
        }
    }
}

impl GuestLimits {
    /// How a module of `world` is isolated. Unless configured, a Snow
    /// module keeps one instance per worker, its requests parked in it;
    /// a standard component gets a fresh instance per request, which is
    /// what components written for `wasmtime serve` and Spin expect.
    pub fn isolation(&self, world: World) -> Isolation {
        self.isolation.unwrap_or(match world {
            World::Snow => Isolation::Instance,
            World::Proxy => Isolation::Request,
        })
    }
}

pub struct LoadedModule {
    pub name: Arc<str>,
    /// SHA-256 of the wasm, hex: what `GET /modules` reports.
    pub hash: String,
    /// The engine that compiled it, which its instances run on.
    pub engine: Engine,
    pub tier: Tier,
    pub linked: Linked,
    pub limits: GuestLimits,
    /// The stores of `limits.stores`, opened.
    pub grants: crate::kv::Grants,
}

impl LoadedModule {
    /// Compiles (or loads from cache) and links `wasm`, checking that it is a
    /// component of Snow's world. Which compiler builds it is the engines'
    /// setting: see [`Engines::compile`].
    pub fn load(
        engines: &Engines,
        name: &str,
        wasm: &[u8],
        cache: Option<&ArtifactCache>,
        limits: GuestLimits,
        grants: crate::kv::Grants,
    ) -> Result<Arc<Self>> {
        let (engine, component, tier) = engines.compile(name, wasm, cache, &limits, &grants)?;
        Self::link(engine, component, tier, name, wasm, limits, grants)
    }

    /// Cranelift's build of a module: what replaces the one Winch built.
    pub fn load_optimized(
        engines: &Engines,
        name: &str,
        wasm: &[u8],
        cache: Option<&ArtifactCache>,
        limits: GuestLimits,
        grants: crate::kv::Grants,
    ) -> Result<Arc<Self>> {
        let (engine, component) = engines.compile_optimized(name, wasm, cache, &limits, &grants)?;
        Self::link(
            engine,
            component,
            Tier::Optimized,
            name,
            wasm,
            limits,
            grants,
        )
    }

    fn link(
        engine: Engine,
        component: Component,
        tier: Tier,
        name: &str,
        wasm: &[u8],
        limits: GuestLimits,
        grants: crate::kv::Grants,
    ) -> Result<Arc<Self>> {
        let engine = &engine;
        let linked = match World::of(wasm)? {
            World::Snow => {
                check_contract(engine, &component)?;
                let pre = sandbox::linker(engine)?
                    .instantiate_pre(&component)
                    .context("the module needs imports Snow does not provide")?;
                Linked::Snow(
                    ModuleBindingsPre::new(pre)
                        .context("the component does not export the snow:http/handler interface")?,
                )
            }
            World::Proxy => {
                let pre = proxy::linker(engine)?
                    .instantiate_pre(&component)
                    .context("the component needs imports Snow does not provide")?;
                Linked::Proxy(ProxyPre::new(pre).context(
                    "the component does not export wasi:http/incoming-handler as wasmtime 48 \
                     serves it",
                )?)
            }
        };
        Ok(Arc::new(Self {
            name: Arc::from(name),
            hash: super::cache::content_hash(wasm),
            engine: engine.clone(),
            tier,
            linked,
            limits,
            grants,
        }))
    }
}

/// A module built against another version of the contract would fail to
/// link with a message about missing names; say which versions differ.
fn check_contract(engine: &Engine, component: &Component) -> Result<()> {
    let ty = component.component_type();
    let names = ty
        .exports(engine)
        .map(|(name, _)| name)
        .chain(ty.imports(engine).map(|(name, _)| name));
    for name in names {
        let Some(version) = name
            .strip_prefix("snow:http/")
            .and_then(|rest| rest.split_once('@'))
            .map(|(_, version)| version)
        else {
            continue;
        };
        if !RUNS.contains(&version) {
            anyhow::bail!(
                "the module was built for snow:http@{version}, and this host speaks \
                 snow:http@{CONTRACT} (and runs modules of {}): rebuild it with the \
                 snow-guest SDK of this host",
                RUNS.join(", ")
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::CONTRACT;

    #[test]
    fn the_contract_version_is_the_wit_package_version() {
        let wit = include_str!("../../../wit/snow.wit");
        let package = format!("package snow:http@{CONTRACT};");
        assert!(wit.lines().any(|line| line.trim() == package), "{package}");
    }

    /// The SDK carries its own copy of the contract so that it can be
    /// packaged; the copy must be the contract, byte for byte.
    #[test]
    fn the_sdk_carries_the_contract_unchanged() {
        let contract = include_str!("../../../wit/snow.wit");
        let carried = include_str!("../../../guest/sdk/wit/snow.wit");
        assert!(
            contract == carried,
            "guest/sdk/wit/snow.wit differs from wit/snow.wit: copy wit/snow.wit over it"
        );
    }
}
