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
    /// Build a standard `wasi:http/proxy` component (the SDK's `wasi-http`
    /// feature) instead of a Snow module: it runs on `wasmtime serve`,
    /// Spin and Snow alike. It replaces the Snow build at the same path.
    #[arg(long)]
    wasi_http: bool,
    #[command(flatten)]
    module_args: ModuleArgs,
}

/// Prints the component's path on the first line of stdout (tools read it
/// there), then what `snow check` prints.
pub(super) fn build(args: BuildArgs) -> Result<()> {
    let wasm = super::cargo::build_module(&args.dir, args.wasi_http)?;
    println!("{}", wasm.display());
    super::check::check_path(&wasm, &args.module_args)
}
