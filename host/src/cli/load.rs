//! What serve and check both build: the engine, the compile cache, and
//! modules loaded from their source.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};

use super::flags::ModuleArgs;
use crate::config::{EngineConfig, Isolation, ModuleSettings, Settings};
use crate::deploy::{Deployer, ModuleConfig, Source};
use crate::runtime::{self, ArtifactCache};

/// The default app, built from `guest/hello` by the build script.
const DEFAULT_APP: &[u8] = include_bytes!(env!("SNOW_GUEST_HELLO"));
const DEFAULT_APP_NAME: &str = "hello";

/// `snow serve MODULE.wasm` (or the embedded app) as a one-module table
/// mounted at `/`, granted every store the server has.
pub(super) fn single_module(path: Option<&Path>, settings: &Settings) -> ModuleConfig {
    let (name, source) = match path {
        Some(path) => {
            let name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "module".into());
            (name, Source::File(path.to_path_buf()))
        }
        None => (DEFAULT_APP_NAME.to_string(), Source::Embedded(DEFAULT_APP)),
    };
    ModuleConfig {
        name,
        prefix: "/".into(),
        watch: path.is_some(),
        source,
        limits: ModuleSettings {
            stores: settings.stores.iter().map(|s| s.name.clone()).collect(),
            ..settings.module.clone()
        }
        .limits(Vec::new()),
    }
}

/// One set of engines serves every module, so the pooling allocator is on
/// if any module is isolated per request, with slots as large as the
/// largest memory.
pub(super) fn engine(
    config: &EngineConfig,
    modules: &[ModuleConfig],
) -> Result<(runtime::Engines, runtime::EpochTicker)> {
    let per_request = modules
        .iter()
        .any(|m| m.limits.isolation(world(&m.source)) == Isolation::Request);
    let largest = modules
        .iter()
        .map(|m| m.limits.max_memory)
        .max()
        .unwrap_or_default();
    let pool = per_request.then_some(runtime::Pool {
        instances: config.pool_size,
        max_memory: largest,
    });
    let engines = runtime::Engines::new(config.max_stack, pool, config.compiler)?;
    let ticker = runtime::EpochTicker::start(&engines)?;
    Ok((engines, ticker))
}

/// The world of a module's source as it is now; one that cannot be read
/// yet counts as a Snow module (its deploy reports the problem). Read as a
/// deploy reads it: a FIFO or a device is refused, not waited on.
fn world(source: &Source) -> runtime::World {
    let wasm = match source {
        Source::File(path) => crate::deploy::read_module_file(path).ok(),
        Source::Embedded(bytes) => Some(bytes.to_vec()),
    };
    wasm.and_then(|wasm| runtime::World::of(&wasm).ok())
        .unwrap_or(runtime::World::Snow)
}

pub(super) fn cache(args: &ModuleArgs) -> Option<ArtifactCache> {
    if args.no_cache {
        return None;
    }
    let dir = args.cache_dir.clone().or_else(ArtifactCache::default_dir)?;
    match ArtifactCache::open(&dir) {
        Ok(cache) => Some(cache),
        Err(err) => {
            tracing::warn!("compile cache disabled: {err:#}");
            None
        }
    }
}

/// Prepares every module before anything is served: at start-up a module
/// that does not load is an error, not a warning.
pub(super) fn mount_all(deployer: &Arc<Deployer>, modules: Vec<ModuleConfig>) -> Result<()> {
    let mut mounts = Vec::new();
    for module in modules {
        let name = module.name.clone();
        let wasm = read_source(&module.source)?;
        let mount = deployer
            .prepare(module, &wasm)
            .with_context(|| format!("loading module {name}"))?;
        mounts.push((Arc::new(mount), wasm));
    }
    deployer.mount_all(mounts);
    Ok(())
}

pub(super) fn read_source(source: &Source) -> Result<Vec<u8>> {
    match source {
        Source::Embedded(bytes) => Ok(bytes.to_vec()),
        Source::File(path) => Ok(crate::deploy::read_module_file(path)?),
    }
}
