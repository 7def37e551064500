//! `snow build`: the module in a folder, built for `wasm32-wasip2` in
//! release and checked as a deploy would check it.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use super::flags::ModuleArgs;

#[derive(Args)]
pub(super) struct BuildArgs {
    /// The module's folder, holding its Cargo.toml.
    #[arg(default_value = ".")]
    dir: PathBuf,
    #[command(flatten)]
    module_args: ModuleArgs,
}

/// Prints the component's path on the first line of stdout (tools read it
/// there), then what `snow check` prints.
pub(super) fn build(args: BuildArgs) -> Result<()> {
    let wasm = super::cargo::build_module(&args.dir)?;
    println!("{}", wasm.display());
    super::check::check_path(&wasm, &args.module_args)
}
