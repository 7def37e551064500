//! `snow dev`: build the module in a folder, serve it, and on every source
//! change rebuild it. A good build replaces the component file, which the
//! server's file watcher hot-swaps like any deploy: requests in flight
//! finish on the old version. A failed build changes nothing, so the last
//! good version keeps serving.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use notify::{RecommendedWatcher, RecursiveMode, Watcher};

use super::serve::{ServeArgs, ServeOptions};

#[derive(Args)]
pub(super) struct DevArgs {
    /// The module's folder, holding its Cargo.toml.
    #[arg(default_value = ".")]
    dir: PathBuf,
    #[command(flatten)]
    options: ServeOptions,
}

/// Editors write a file in several steps; build once they are done.
const QUIET: Duration = Duration::from_millis(200);

pub(super) fn dev(args: DevArgs) -> Result<()> {
    let dir = args
        .dir
        .canonicalize()
        .with_context(|| format!("opening the module folder {}", args.dir.display()))?;
    let wasm = super::cargo::build_module(&dir, false)?;
    let _watcher = watch_sources(&dir)?;
    super::serve::serve(ServeArgs {
        module: Some(wasm),
        options: args.options,
    })
}

/// Rebuilds on a thread for as long as the returned watcher lives.
fn watch_sources(dir: &Path) -> Result<RecommendedWatcher> {
    let (tx, rx) = mpsc::channel();
    let sources = dir.to_path_buf();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event {
            if crate::deploy::watch::changes_content(&event.kind)
                && event.paths.iter().any(|path| is_source(&sources, path))
            {
                let _ = tx.send(());
            }
        }
    })
    .context("starting the source watcher")?;
    // The folder itself only for its manifest and build script: a
    // recursive watch would also take in the target dir cargo writes.
    watcher
        .watch(dir, RecursiveMode::NonRecursive)
        .with_context(|| format!("watching {}", dir.display()))?;
    let src = dir.join("src");
    watcher
        .watch(&src, RecursiveMode::Recursive)
        .with_context(|| format!("watching {}", src.display()))?;
    let dir = dir.to_path_buf();
    std::thread::Builder::new()
        .name("snow-dev-build".into())
        .spawn(move || rebuild_on_change(&dir, &rx))
        .context("starting the rebuild thread")?;
    tracing::info!("watching {} for changes", src.display());
    Ok(watcher)
}

fn rebuild_on_change(dir: &Path, changes: &mpsc::Receiver<()>) {
    while changes.recv().is_ok() {
        while changes.recv_timeout(QUIET).is_ok() {}
        tracing::info!("source changed: rebuilding");
        let started = Instant::now();
        match super::cargo::build_module(dir, false) {
            Ok(wasm) => tracing::info!(
                "rebuilt {} in {:.1?}; it replaces the running version once it loads",
                wasm.display(),
                started.elapsed()
            ),
            Err(err) => {
                tracing::warn!("build failed, the last good version keeps serving: {err:#}")
            }
        }
    }
}

/// What the module is built from: `src/`, its manifest, its build script.
fn is_source(dir: &Path, path: &Path) -> bool {
    path.starts_with(dir.join("src"))
        || path.parent() == Some(dir)
            && path
                .file_name()
                .is_some_and(|name| name == "Cargo.toml" || name == "build.rs")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sources_trigger_a_build() {
        let dir = Path::new("/m/demo");
        for path in [
            "/m/demo/src/lib.rs",
            "/m/demo/src/a/b.rs",
            "/m/demo/Cargo.toml",
        ] {
            assert!(is_source(dir, Path::new(path)), "{path}");
        }
        for path in [
            "/m/demo/Cargo.lock",
            "/m/demo/target/release/demo.wasm",
            "/m/demo/tests/e2e.rs",
            "/m/demo/x/Cargo.toml",
            "/m/demo-src/lib.rs",
        ] {
            assert!(!is_source(dir, Path::new(path)), "{path}");
        }
    }
}
