//! The command line: `snow serve`, `snow check` and `snow fetch` (whose
//! flags and work live in [`crate::fetch_cmd`]).
//!
//! - `flags` — the settings flags, shared by serve and check, read into a
//!   [`crate::config::Flags`] layer;
//! - `serve`, `check` — the commands;
//! - `load`  — the engine, the compile cache and loading modules.

mod check;
mod flags;
mod load;
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
    /// Boxed: the serve flags outweigh the other commands' many times over.
    Serve(Box<serve::ServeArgs>),
    /// Check that a module implements Snow's world and print its routes.
    Check(check::CheckArgs),
    /// Fetch URLs concurrently through the outbound client and report each.
    Fetch(crate::fetch_cmd::FetchArgs),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let _log = crate::logging::init();
    let result = match cli.command {
        Command::Serve(args) => serve::serve(*args),
        Command::Check(args) => check::check(args),
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
