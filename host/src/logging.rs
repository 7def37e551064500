//! Logs go to stderr through a background writer, so a slow terminal never
//! stalls a worker; stdout carries only the start-up banner.

use std::io::IsTerminal;

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;

/// Installs the subscriber; keep the guard alive until exit so buffered
/// lines are written.
pub fn init() -> WorkerGuard {
    let (writer, guard) = tracing_appender::non_blocking(std::io::BufWriter::with_capacity(
        64 * 1024,
        std::io::stderr(),
    ));
    let filter = EnvFilter::try_from_env("SNOW_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_target(true)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    guard
}
