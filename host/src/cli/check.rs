//! `snow check`: the validation a deployment runs, without serving.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;
use clap::Args;

use super::flags::ModuleArgs;
use super::load::{cache, engine, read_source, single_module};
use super::serve::is_manifest;
use crate::config::{resolve, Resolved, Settings};
use crate::deploy::Deployer;
use crate::manifest::Manifest;

#[derive(Args)]
pub(super) struct CheckArgs {
    /// Module to check, or a manifest (`snow.toml`): every module it
    /// mounts, each with its own settings and environment.
    module: PathBuf,
    #[command(flatten)]
    module_args: ModuleArgs,
}

impl CheckArgs {
    pub(super) fn flags(&self) -> crate::config::Flags {
        self.module_args.flags()
    }
}

pub(super) fn check(args: CheckArgs) -> Result<()> {
    let manifest = match is_manifest(&args.module) {
        true => Some(Manifest::load(&args.module)?),
        false => None,
    };
    let Resolved { settings, modules } =
        resolve(&Settings::default(), manifest.as_ref(), &args.flags());
    let modules = match manifest {
        Some(_) => modules,
        None => vec![single_module(Some(args.module.as_path()), &settings.module)],
    };
    let (engine, _ticker) = engine(&settings.engine, &modules)?;
    let deployer = Deployer::new(engine, cache(&args.module_args), Arc::default());
    for module in modules {
        let shown = match &manifest {
            Some(_) => format!(
                "{} (module {} at {})",
                args.module.display(),
                module.name,
                module.prefix
            ),
            None => args.module.display().to_string(),
        };
        let wasm = read_source(&module.source)?;
        let mount = deployer.prepare(module, &wasm)?;
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
