//! Deploying modules while serving: compile and validate off the serving
//! threads, then publish a new mount table that every worker switches to on
//! its next request. Requests parked in an old version finish there; the old
//! instances go once they are drained.

mod module_file;
mod registry;
mod routes;
mod tier_up;
pub mod watch;

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::{anyhow, Context, Result};
use serde::Serialize;

use crate::kv::Stores;
use crate::runtime::module::Linked;
use crate::runtime::proxy::ProxyInstance;
use crate::runtime::{ArtifactCache, Engines, GuestLimits, Instance, LoadedModule};

pub use module_file::{read_module_file, ModuleFileError, MAX_MODULE_SIZE};
pub use registry::{Mount, MountTable, Registry};

/// Where a module's wasm comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    File(PathBuf),
    Embedded(&'static [u8]),
}

/// Everything that defines a mounted module except its code.
#[derive(Debug, Clone, PartialEq)]
pub struct ModuleConfig {
    pub name: String,
    pub prefix: String,
    pub source: Source,
    pub limits: GuestLimits,
    /// Reload when the source file changes.
    pub watch: bool,
}

/// What `GET /modules` reports of a mount.
#[derive(Debug, Serialize)]
pub struct ModuleInfo {
    pub name: String,
    pub prefix: String,
    pub hash: String,
    pub loaded_at: String,
    pub loaded_at_unix_ms: u128,
    /// `winch` until Cranelift's build replaces it, then `cranelift`.
    pub compiler: &'static str,
    /// `snow:http/module` or `wasi:http/proxy`.
    pub world: &'static str,
    pub in_flight: usize,
    pub source: Option<String>,
    pub routes: Vec<String>,
}

pub struct Deployer {
    engines: Engines,
    cache: Option<ArtifactCache>,
    registry: Arc<Registry>,
    /// The server's stores: a module version is granted some of them by
    /// name, and they outlive every version.
    stores: Arc<Stores>,
    /// One deployment at a time: each builds on the table the last one left.
    serial: tokio::sync::Mutex<()>,
}

impl Deployer {
    pub fn new(
        engines: Engines,
        cache: Option<ArtifactCache>,
        registry: Arc<Registry>,
        stores: Arc<Stores>,
    ) -> Arc<Self> {
        Arc::new(Self {
            engines,
            cache,
            registry,
            stores,
            serial: tokio::sync::Mutex::new(()),
        })
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    pub fn stores(&self) -> &Arc<Stores> {
        &self.stores
    }

    /// Compiles, links and starts one instance of `wasm`, reading its routes:
    /// what a module must pass before it serves anything.
    pub fn prepare(&self, config: ModuleConfig, wasm: &[u8]) -> Result<Mount> {
        let module = LoadedModule::load(
            &self.engines,
            &config.name,
            wasm,
            self.cache.as_ref(),
            config.limits.clone(),
            self.stores.grant(&config.limits.stores)?,
        )?;
        let routes = probe(&module)?;
        Ok(Mount {
            config,
            module,
            routes,
            loaded_at: SystemTime::now(),
            in_flight: Default::default(),
        })
    }

    /// Publishes `mounts` as the whole table, and starts compiling the
    /// optimised build of each one served from Winch's (`wasm` holds
    /// their code, by name).
    pub fn mount_all(self: &Arc<Self>, mounts: Vec<(Arc<Mount>, Vec<u8>)>) {
        let table = mounts.iter().map(|(mount, _)| mount.clone()).collect();
        self.registry.publish(MountTable::new(table));
        for (mount, wasm) in mounts {
            self.tier_up_later(mount, wasm);
        }
    }

    /// Prepares `config` (with `wasm`, or its source when `None`) on a
    /// blocking thread, then mounts it in place of any module of that name.
    pub async fn deploy(
        self: &Arc<Self>,
        config: ModuleConfig,
        wasm: Option<Vec<u8>>,
    ) -> Result<Arc<Mount>> {
        let _serial = self.serial.lock().await;
        let (mount, wasm) = self.prepare_off_thread(config, wasm).await?;
        let mut mounts = self.others(&mount.config.name);
        if let Some(clash) = mounts
            .iter()
            .find(|m| m.config.prefix == mount.config.prefix)
        {
            return Err(anyhow!(
                "prefix {} is already served by module {}",
                mount.config.prefix,
                clash.config.name
            ));
        }
        mounts.push(mount.clone());
        self.registry.publish(MountTable::new(mounts));
        tracing::info!(
            module = %mount.config.name,
            prefix = %mount.config.prefix,
            hash = %short(&mount.module.hash),
            compiler = mount.module.tier.compiler(),
            "module deployed"
        );
        self.tier_up_later(mount.clone(), wasm);
        Ok(mount)
    }

    /// Replaces the code of the mounted module `name`, keeping its settings.
    pub async fn replace(self: &Arc<Self>, name: &str, wasm: Vec<u8>) -> Result<Arc<Mount>> {
        let config = self
            .registry
            .current()
            .find(name)
            .map(|m| m.config.clone())
            .ok_or_else(|| anyhow!("no module named {name} is mounted"))?;
        self.deploy(config, Some(wasm)).await
    }

    /// Makes the mounted set exactly `configs`: new modules are added,
    /// changed ones redeployed, missing ones removed. A module that fails
    /// keeps its running version; the failures are returned.
    pub async fn apply(self: &Arc<Self>, configs: Vec<ModuleConfig>) -> Vec<anyhow::Error> {
        let mut errors = Vec::new();
        let wanted: Vec<String> = configs.iter().map(|c| c.name.clone()).collect();
        {
            let _serial = self.serial.lock().await;
            let current = self.registry.current();
            let kept: Vec<_> = current
                .mounts
                .iter()
                .filter(|m| wanted.contains(&m.config.name))
                .cloned()
                .collect();
            if kept.len() != current.mounts.len() {
                for gone in current
                    .mounts
                    .iter()
                    .filter(|m| !wanted.contains(&m.config.name))
                {
                    tracing::info!(module = %gone.config.name, "module removed");
                }
                self.registry.publish(MountTable::new(kept));
            }
        }
        for config in configs {
            let current = self.registry.current();
            if let Some(mounted) = current.find(&config.name) {
                let changed = match self.source_changed(mounted).await {
                    Ok(changed) => changed,
                    // Deploying reads it again and reports why it cannot.
                    Err(err) => err.is_refusal(),
                };
                if mounted.config == config && !changed {
                    continue;
                }
            }
            let name = config.name.clone();
            if let Err(err) = self.deploy(config, None).await {
                tracing::error!(module = %name, "deployment failed; the running version stays: {err:#}");
                errors.push(err.context(format!("module {name}")));
            }
        }
        errors
    }

    /// Re-reads the source file of `name` and redeploys it if its content
    /// changed.
    pub async fn reload(self: &Arc<Self>, name: &str) -> Result<()> {
        let Some(mounted) = self.registry.current().find(name).cloned() else {
            return Ok(());
        };
        match self.source_changed(&mounted).await {
            Ok(true) => {}
            Ok(false) => return Ok(()),
            // The file is there but may never be read: say so now.
            Err(err) if err.is_refusal() => return Err(err.into()),
            // Unreadable (e.g. mid-rename): a later event will tell.
            Err(_) => return Ok(()),
        }
        self.deploy(mounted.config.clone(), None).await.map(|_| ())
    }

    pub fn list(&self) -> Vec<ModuleInfo> {
        let table = self.registry.current();
        let mut infos: Vec<_> = table.mounts.iter().map(|m| info(m)).collect();
        infos.sort_by(|a, b| a.name.cmp(&b.name));
        infos
    }

    async fn source_changed(&self, mounted: &Mount) -> Result<bool, ModuleFileError> {
        let wasm = read_source(&mounted.config.source).await?;
        Ok(crate::runtime::cache::content_hash(&wasm) != mounted.module.hash)
    }

    async fn prepare_off_thread(
        self: &Arc<Self>,
        config: ModuleConfig,
        wasm: Option<Vec<u8>>,
    ) -> Result<(Arc<Mount>, Vec<u8>)> {
        let wasm = match wasm {
            Some(wasm) => wasm,
            None => read_source(&config.source).await?,
        };
        let this = self.clone();
        let name = config.name.clone();
        // A thread of its own rather than tokio's blocking pool, so that its
        // lowered priority stays with it.
        let (done, result) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("snow-deploy".into())
            .spawn(move || {
                crate::runtime::background::lower_this_thread();
                let _ = done.send(this.prepare(config, &wasm).map(|m| (Arc::new(m), wasm)));
            })
            .context("starting the deploy thread")?;
        result
            .await
            .context("the deploy thread failed")?
            .with_context(|| format!("preparing module {name}"))
    }

    fn others(&self, name: &str) -> Vec<Arc<Mount>> {
        self.registry
            .current()
            .mounts
            .iter()
            .filter(|m| m.config.name != name)
            .cloned()
            .collect()
    }
}

/// The module's wasm, read off the async threads: a file is checked and
/// capped by [`read_module_file`].
async fn read_source(source: &Source) -> Result<Vec<u8>, ModuleFileError> {
    match source {
        Source::Embedded(bytes) => Ok(bytes.to_vec()),
        Source::File(path) => {
            let owned = path.clone();
            tokio::task::spawn_blocking(move || read_module_file(&owned))
                .await
                .unwrap_or_else(|join| {
                    Err(ModuleFileError::Read {
                        path: path.clone(),
                        source: std::io::Error::other(join),
                    })
                })
        }
    }
}

/// Instantiates the module once, which proves it starts, and reads its
/// routes; a standard component has none to list.
pub fn probe(module: &Arc<LoadedModule>) -> Result<Vec<crate::runtime::bindings::Route>> {
    if let Linked::Proxy(pre) = &module.linked {
        ProxyInstance::probe(module, pre)
            .with_context(|| format!("starting component {}", module.name))?;
        return Ok(Vec::new());
    }
    let mut instance = Instance::new(module.clone())
        .with_context(|| format!("starting module {}", module.name))?;
    let routes = instance
        .routes()
        .map_err(|trap| anyhow!("module {} failed listing its routes: {trap}", module.name))?;
    routes::check(&module.name, &routes)?;
    Ok(routes)
}

fn info(mount: &Mount) -> ModuleInfo {
    let since = mount
        .loaded_at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    ModuleInfo {
        name: mount.config.name.clone(),
        prefix: mount.config.prefix.clone(),
        hash: mount.module.hash.clone(),
        loaded_at: httpdate::fmt_http_date(mount.loaded_at),
        loaded_at_unix_ms: since,
        compiler: mount.module.tier.compiler(),
        world: mount.module.linked.world().name(),
        in_flight: mount.in_flight.load(Ordering::Relaxed),
        source: match &mount.config.source {
            Source::File(path) => Some(path.display().to_string()),
            Source::Embedded(_) => None,
        },
        routes: mount.routes.iter().map(|r| r.pattern.clone()).collect(),
    }
}

fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}
