//! `snow check`: the validation a deployment runs, without serving.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Result;
use clap::{Args, ValueEnum};

use super::flags::ModuleArgs;
use super::load::{cache, engine, read_source, single_module};
use super::serve::is_manifest;
use crate::config::{resolve, Compiler, EngineConfig, Resolved, Settings};
use crate::deploy::Deployer;
use crate::kv::Stores;
use crate::manifest::Manifest;
use crate::runtime::World;

#[derive(Args)]
pub(super) struct CheckArgs {
    /// Module to check, or a manifest (`snow.toml`): every module it
    /// mounts, each with its own settings and environment.
    module: PathBuf,
    #[command(flatten)]
    module_args: ModuleArgs,
}

#[cfg(test)]
impl CheckArgs {
    pub(super) fn flags(&self) -> crate::config::Flags {
        self.module_args.flags()
    }
}

pub(super) fn check(args: CheckArgs) -> Result<()> {
    check_path(&args.module, &args.module_args)
}

/// Loads the module or manifest at `path` as a deploy would and prints
/// each module's routes.
pub(super) fn check_path(path: &Path, module_args: &ModuleArgs) -> Result<()> {
    let manifest = match is_manifest(path) {
        true => Some(Manifest::load(path)?),
        false => None,
    };
    let Resolved { settings, modules } = resolve(
        &Settings::default(),
        manifest.as_ref(),
        &module_args.flags(),
    );
    let modules = match manifest {
        Some(_) => modules,
        None => vec![single_module(Some(path), &settings)],
    };
    // Cranelift's build, as serving would end up with: a check fills the
    // cache for the deploy that follows.
    let engine_config = EngineConfig {
        compiler: Compiler::Cranelift,
        ..settings.engine.clone()
    };
    let (engine, _ticker) = engine(&engine_config, &modules)?;
    // Stand-ins: a check links against the declared stores without
    // creating files or reaching servers.
    let stores = Stores::stand_in(&settings.stores);
    let deployer = Deployer::new(engine, cache(module_args), Arc::default(), stores);
    for module in modules {
        let shown = match &manifest {
            Some(_) => format!(
                "{} (module {} at {})",
                path.display(),
                module.name,
                module.prefix
            ),
            None => path.display().to_string(),
        };
        let wasm = read_source(&module.source)?;
        let mount = deployer.prepare(module, &wasm)?;
        let world = mount.module.linked.world();
        if world == World::Proxy {
            let isolation = mount.module.limits.isolation(world);
            let isolation = isolation
                .to_possible_value()
                .map(|v| v.get_name().to_owned());
            let isolation = isolation.unwrap_or_default();
            println!(
                "{shown}: ok, a {} component, isolation {isolation}",
                world.name()
            );
            continue;
        }
        println!("{shown}: ok, {} routes", mount.routes.len());
        for route in &mount.routes {
            let methods = if route.methods.is_empty() {
                "*".to_string()
            } else {
                route.methods.join(",")
            };
            println!("  {methods:<10} {}", route.pattern);
        }
    }
    Ok(())
}
