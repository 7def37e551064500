//! Redeploys a module when its file changes on disk. Writers rarely replace
//! a file in one step, so a module is reloaded only after its file has been
//! quiet for a moment; a half-written file that still fails to compile never
//! replaces the running version, and the next change tries again.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{Deployer, Source};

/// Quiet time after the last change before a file is read.
pub const DEBOUNCE: Duration = Duration::from_millis(250);

/// Watches the files of mounted modules that ask for it, for as long as the
/// returned future runs. Call `rewatch` on the handle after the mounted set
/// changes.
pub struct FileWatch {
    watcher: RecommendedWatcher,
    dirs: HashSet<PathBuf>,
}

impl FileWatch {
    pub fn start(deployer: Arc<Deployer>) -> Result<(Self, impl std::future::Future<Output = ()>)> {
        let (tx, rx) = mpsc::unbounded_channel();
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            if let Ok(event) = event {
                if changes_content(&event.kind) {
                    for path in event.paths {
                        let _ = tx.send(path);
                    }
                }
            }
        })
        .context("starting the file watcher")?;
        let mut watch = Self {
            watcher,
            dirs: HashSet::new(),
        };
        watch.rewatch(&deployer);
        Ok((watch, debounce(rx, deployer)))
    }

    /// Watches the directories of the files mounted now.
    pub fn rewatch(&mut self, deployer: &Deployer) {
        let wanted: HashSet<PathBuf> = watched_files(deployer)
            .into_iter()
            .filter_map(|(_, file)| file.parent().map(Path::to_path_buf))
            .collect();
        for gone in self.dirs.difference(&wanted) {
            let _ = self.watcher.unwatch(gone);
        }
        for dir in wanted.difference(&self.dirs) {
            if let Err(err) = self.watcher.watch(dir, RecursiveMode::NonRecursive) {
                tracing::warn!("cannot watch {}: {err}", dir.display());
            }
        }
        self.dirs = wanted;
    }
}

/// Only writes, creations, renames and removals count: reading the file to
/// deploy it (or anyone else reading it) must not look like a change.
pub(crate) fn changes_content(kind: &EventKind) -> bool {
    use notify::event::{AccessKind, AccessMode, ModifyKind};
    match kind {
        EventKind::Create(_) | EventKind::Remove(_) => true,
        EventKind::Modify(ModifyKind::Metadata(_)) => false,
        EventKind::Modify(_) => true,
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        _ => false,
    }
}

/// (module name, absolute file) of every mount with `watch` on.
fn watched_files(deployer: &Deployer) -> Vec<(String, PathBuf)> {
    deployer
        .registry()
        .current()
        .mounts
        .iter()
        .filter(|m| m.config.watch)
        .filter_map(|m| match &m.config.source {
            Source::File(path) => Some((m.config.name.clone(), absolute(path))),
            Source::Embedded(_) => None,
        })
        .collect()
}

fn absolute(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

async fn debounce(mut events: mpsc::UnboundedReceiver<PathBuf>, deployer: Arc<Deployer>) {
    let mut due: HashMap<String, Instant> = HashMap::new();
    loop {
        let next = due.values().min().copied();
        tokio::select! {
            event = events.recv() => {
                let Some(path) = event else { return };
                let path = absolute(&path);
                for (name, file) in watched_files(&deployer) {
                    if file == path {
                        due.insert(name, Instant::now() + DEBOUNCE);
                    }
                }
            }
            () = sleep_until_some(next) => {
                let now = Instant::now();
                let ready: Vec<String> = due
                    .iter()
                    .filter(|(_, at)| **at <= now)
                    .map(|(name, _)| name.clone())
                    .collect();
                for name in ready {
                    due.remove(&name);
                    tracing::info!(module = %name, "module file changed; redeploying");
                    if let Err(err) = deployer.reload(&name).await {
                        tracing::error!(module = %name, "redeploy failed; the running version stays: {err:#}");
                    }
                }
            }
        }
    }
}

async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
