//! Redeploys a module when its file changes on disk. A write that is
//! known to be finished (the writer closed the file, or renamed a finished
//! file into place) is deployed at once. Other changes (a writer that keeps
//! the file open, a truncation, an attribute change) wait until the file
//! has been quiet for a moment, as writers rarely replace a file in one
//! step. A file written in pieces, each closed, may be tried half-written:
//! it fails to compile, never replaces the running version, and the next
//! piece's close tries again.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{Deployer, Source};

/// Quiet time after the last change before a file is read, when no event
/// said the write was finished.
pub const DEBOUNCE: Duration = Duration::from_millis(250);

/// After a finished write, how long other events of the same write (the
/// close that follows a rename, a second writer's close) may still come
/// and be handled by the one reload.
pub const SETTLE: Duration = Duration::from_millis(2);

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
                    let finished = finishes_write(&event.kind);
                    for path in event.paths {
                        let _ = tx.send((path, finished));
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

/// Whether the event says a write is complete: the writer closed the file,
/// or a file was renamed into place (which writers do once it is whole).
pub(crate) fn finishes_write(kind: &EventKind) -> bool {
    use notify::event::{AccessKind, AccessMode, ModifyKind, RenameMode};
    matches!(
        kind,
        EventKind::Access(AccessKind::Close(AccessMode::Write))
            | EventKind::Modify(ModifyKind::Name(RenameMode::To | RenameMode::Both))
    )
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

async fn debounce(mut events: mpsc::UnboundedReceiver<(PathBuf, bool)>, deployer: Arc<Deployer>) {
    let mut due: HashMap<String, Instant> = HashMap::new();
    loop {
        let next = due.values().min().copied();
        tokio::select! {
            event = events.recv() => {
                let Some((path, finished)) = event else { return };
                let path = absolute(&path);
                let wait = if finished { SETTLE } else { DEBOUNCE };
                for (name, file) in watched_files(&deployer) {
                    if file == path {
                        due.insert(name, Instant::now() + wait);
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

#[cfg(test)]
mod tests {
    use notify::event::{
        AccessKind, AccessMode, CreateKind, DataChange, MetadataKind, ModifyKind, RenameMode,
    };
    use notify::EventKind;

    use super::{changes_content, finishes_write};

    #[test]
    fn only_a_close_after_writing_or_a_rename_into_place_deploys_at_once() {
        let finished = [
            EventKind::Access(AccessKind::Close(AccessMode::Write)),
            EventKind::Modify(ModifyKind::Name(RenameMode::To)),
            EventKind::Modify(ModifyKind::Name(RenameMode::Both)),
        ];
        for kind in finished {
            assert!(changes_content(&kind) && finishes_write(&kind), "{kind:?}");
        }
        // A write still going on, a truncation or a new empty file waits
        // for the quiet time; the old name of a rename is not a new file.
        let unfinished = [
            EventKind::Modify(ModifyKind::Data(DataChange::Any)),
            EventKind::Modify(ModifyKind::Any),
            EventKind::Create(CreateKind::File),
            EventKind::Modify(ModifyKind::Name(RenameMode::From)),
        ];
        for kind in unfinished {
            assert!(changes_content(&kind) && !finishes_write(&kind), "{kind:?}");
        }
        for kind in [
            EventKind::Access(AccessKind::Close(AccessMode::Read)),
            EventKind::Modify(ModifyKind::Metadata(MetadataKind::Any)),
        ] {
            assert!(
                !changes_content(&kind) && !finishes_write(&kind),
                "{kind:?}"
            );
        }
    }
}
