//! The command line: `snow serve`, `snow check`, the module author's
//! `snow new`, `snow build` and `snow dev`, and `snow fetch` (whose flags
//! and work live in [`crate::fetch_cmd`]).
//!
//! - `flags` — the settings flags, shared by the commands, read into a
//!   [`crate::config::Flags`] layer;
//! - `serve`, `check`, `new`, `build`, `dev` — the commands;
//! - `cargo` — building a module crate with the user's cargo;
//! - `load`  — the engine, the compile cache and loading modules.

mod build;
mod cargo;
mod check;
mod dev;
mod flags;
mod load;
mod new;
mod serve;

#[cfg(test)]
mod tests;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "snow",
    version,
    about = "Serves sandboxed WebAssembly route modules over HTTP/1.1"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve a route module (the embedded default app when none is given).
    // Boxed: its flags make it several times the size of the others.
    Serve(Box<serve::ServeArgs>),
    /// Check that a module implements Snow's world and print its routes.
    Check(check::CheckArgs),
    /// Create a module crate in ./NAME that builds, tests and serves as is.
    New(new::NewArgs),
    /// Build the module in a folder for wasm32-wasip2, check it, and print
    /// the component's path and routes.
    Build(build::BuildArgs),
    /// Build and serve the module in a folder, rebuilding and hot-swapping
    /// it on every source change.
    Dev(Box<dev::DevArgs>),
    /// Fetch URLs concurrently through the outbound client and report each.
    Fetch(crate::fetch_cmd::FetchArgs),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let _log = crate::logging::init();
    let result = match cli.command {
        Command::Serve(args) => serve::serve(*args),
        Command::Check(args) => check::check(args),
        Command::New(args) => new::new(args),
        Command::Build(args) => build::build(args),
        Command::Dev(args) => dev::dev(*args),
        // Its own exit statuses: 1 when a URL failed, 2 for bad arguments.
        Command::Fetch(args) => return crate::fetch_cmd::main(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("snow: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
