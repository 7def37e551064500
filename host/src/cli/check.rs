//! `snow check`: the validation a deployment runs, without serving.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;
use clap::Args;

use super::flags::ModuleArgs;
use super::load::{cache, engine, read_source, single_module};
use crate::config::{resolve, Settings};
use crate::deploy::Deployer;

#[derive(Args)]
pub(super) struct CheckArgs {
    /// Module to check.
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
    let settings = resolve(&Settings::default(), None, &args.flags()).settings;
    let module = single_module(Some(args.module.as_path()), &settings.module);
    let (engine, _ticker) = engine(&settings.engine, std::slice::from_ref(&module))?;
    let deployer = Deployer::new(engine, cache(&args.module_args), Arc::default());
    let wasm = read_source(&module.source)?;
    let mount = deployer.prepare(module, &wasm)?;
    println!(
        "{}: ok, {} routes",
        args.module.display(),
        mount.routes.len()
    );
    for route in &mount.routes {
        let methods = if route.methods.is_empty() {
            "*".to_string()
        } else {
            route.methods.join(",")
        };
        println!("  {methods:<10} {}", route.pattern);
    }
    Ok(())
}
