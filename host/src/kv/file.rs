//! The file backend: one redb database file per store, surviving restarts.
//!
//! redb rather than SQLite: pure Rust (no C toolchain in builds or CI), one
//! file with nothing beside it, and MVCC, so readers never wait for a
//! commit. Every write is committed with `Durability::Immediate` (fsync)
//! before its operation is answered: a write the module saw succeed
//! survives `kill -9` and power loss.
//!
//! redb calls block, and the callers are async workers on runtimes of
//! their own, so the store owns two threads fed through channels and
//! answering through oneshots, which any runtime can await:
//! - the writer takes every queued write into one transaction and one
//!   fsync (group commit), each operation still getting its own answer,
//!   and sweeps expired keys out now and then;
//! - the reader answers reads from the latest commit, never behind an
//!   fsync.

mod tables;
#[cfg(test)]
mod tests;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use redb::{Database, DatabaseError, Durability, ReadableDatabase};
use tokio::sync::oneshot;

use super::op::{KvError, Op, Output};
use super::{Backend, Pending};
use tables::{now_ms, Writer, DEADLINES, EXPIRES, VALUES};

/// Writes committed together at most: enough to fold a burst of
/// concurrent writers into one fsync, few enough that one slow batch does
/// not hold the rest for long.
const MAX_BATCH: usize = 256;

/// How often the writer looks for expired keys to drop. Until then they
/// are invisible, only not yet reclaimed.
const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// redb's page cache, at most. Its default (1 GiB) is sized for a
/// database that is the whole program; a store is one of several tenants.
const CACHE_BYTES: usize = 64 << 20;

type Answer = oneshot::Sender<Result<Output, KvError>>;

enum Job {
    Op(Op, Answer),
    /// `ready()`: a read transaction can begin.
    Ping(oneshot::Sender<Result<(), String>>),
}

pub struct FileStore {
    path: PathBuf,
    /// `None` once dropping: closing the channels stops the threads.
    lanes: Option<Lanes>,
    threads: Vec<JoinHandle<()>>,
}

struct Lanes {
    writes: Sender<Job>,
    reads: Sender<Job>,
}

impl FileStore {
    /// Opens the database at `path`, creating the file if it is missing;
    /// its directory must exist.
    pub fn open(path: &Path) -> Result<Self> {
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        if !dir.is_dir() {
            bail!(
                "{}: the directory {} does not exist (the store creates its file, not \
                 directories)",
                path.display(),
                dir.display()
            );
        }
        if path.is_dir() {
            bail!("{}: is a directory, not a database file", path.display());
        }
        let db = open_database(path)?;
        let db = Arc::new(db);
        let (writes, write_queue) = mpsc::channel();
        let (reads, read_queue) = mpsc::channel();
        let spawn = |name: &str, body: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name.into())
                .spawn(body)
                .with_context(|| format!("{}: starting the store's {name} thread", path.display()))
        };
        let writer = {
            let (db, path) = (db.clone(), path.to_path_buf());
            spawn(
                "kv-file-writer",
                Box::new(move || write_loop(&db, &path, &write_queue)),
            )?
        };
        let reader = {
            let path = path.to_path_buf();
            spawn(
                "kv-file-reader",
                Box::new(move || read_loop(&db, &path, &read_queue)),
            )?
        };
        tracing::info!(path = %path.display(), "file store open");
        Ok(Self {
            path: path.to_path_buf(),
            lanes: Some(Lanes { writes, reads }),
            threads: vec![writer, reader],
        })
    }

    fn send(&self, job: Job) {
        let Some(lanes) = &self.lanes else { return };
        let lane = match &job {
            Job::Op(Op::Get { .. } | Op::Exists { .. } | Op::ListKeys { .. }, _) | Job::Ping(_) => {
                &lanes.reads
            }
            Job::Op(..) => &lanes.writes,
        };
        // A send fails only if the thread is gone; dropping the job drops
        // its oneshot, which its caller reads as unavailable.
        if lane.send(job).is_err() {
            tracing::error!(path = %self.path.display(), "a file store thread has stopped");
        }
    }
}

fn open_database(path: &Path) -> Result<Database> {
    let mut builder = Database::builder();
    builder.set_cache_size(CACHE_BYTES);
    // redb may panic on a file damaged outside it rather than report it;
    // at startup that must be an error naming the file, not a crash.
    let opened = catch_unwind(AssertUnwindSafe(|| builder.create(path)));
    let db = match opened {
        Ok(Ok(db)) => db,
        Ok(Err(DatabaseError::DatabaseAlreadyOpen)) => bail!(
            "{}: the database is already open, in another process or another store",
            path.display()
        ),
        Ok(Err(DatabaseError::Storage(err))) => {
            return Err(err).with_context(|| {
                format!(
                    "{}: not a redb database, or a damaged one (move it away to start empty)",
                    path.display()
                )
            })
        }
        Ok(Err(err)) => {
            return Err(err).with_context(|| format!("{}: opening the database", path.display()))
        }
        Err(_) => bail!(
            "{}: not a redb database, or a damaged one (move it away to start empty)",
            path.display()
        ),
    };
    // Every table exists from the start, so readers never meet a missing
    // one.
    let txn = db
        .begin_write()
        .with_context(|| format!("{}: preparing the database", path.display()))?;
    txn.open_table(VALUES)
        .and_then(|_| txn.open_table(EXPIRES))
        .and_then(|_| txn.open_table(DEADLINES))
        .with_context(|| {
            format!(
                "{}: opening the store's tables (a redb database of something else?)",
                path.display()
            )
        })?;
    txn.commit()
        .with_context(|| format!("{}: preparing the database", path.display()))?;
    Ok(db)
}

impl Drop for FileStore {
    fn drop(&mut self) {
        // Closing the channels ends the threads once they have answered
        // what they hold; waiting for them closes the database, so the
        // file can be opened again as soon as the store is gone.
        self.lanes = None;
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

impl Backend for FileStore {
    fn kind(&self) -> &'static str {
        "file"
    }

    fn run(&self, op: Op) -> Pending<Result<Output, KvError>> {
        let (answer, answered) = oneshot::channel();
        self.send(Job::Op(op, answer));
        Box::pin(async move {
            answered
                .await
                .unwrap_or_else(|_| Err(KvError::Unavailable("the file store has stopped".into())))
        })
    }

    fn ready(&self) -> Pending<Result<(), String>> {
        let (answer, answered) = oneshot::channel();
        self.send(Job::Ping(answer));
        Box::pin(async move {
            answered
                .await
                .unwrap_or_else(|_| Err("the file store has stopped".into()))
        })
    }
}

fn write_loop(db: &Database, path: &Path, queue: &Receiver<Job>) {
    let mut last_sweep = Instant::now();
    loop {
        let first = match queue.recv_timeout(SWEEP_EVERY) {
            Ok(job) => Some(job),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        if let Some(first) = first {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match queue.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            commit_batch(db, path, batch);
        }
        if last_sweep.elapsed() >= SWEEP_EVERY {
            // A full sweep leaves more to do: come back sooner.
            if sweep(db, path) < tables::SWEEP_BATCH {
                last_sweep = Instant::now();
            }
        }
    }
}

/// Runs `batch` in one transaction and answers each job once it is
/// durable, or all of them with the error if it is not.
fn commit_batch(db: &Database, path: &Path, batch: Vec<Job>) {
    let now = now_ms();
    let mut jobs = batch.into_iter();
    let mut answers = Vec::with_capacity(jobs.len());
    let outcome = (|| -> Result<(), redb::Error> {
        let mut txn = db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        {
            let mut writer = Writer {
                values: txn.open_table(VALUES)?,
                expires: txn.open_table(EXPIRES)?,
                deadlines: txn.open_table(DEADLINES)?,
            };
            for job in jobs.by_ref() {
                match job {
                    Job::Op(op, answer) => {
                        let result = writer.apply(op, now)?;
                        answers.push((answer, result));
                    }
                    Job::Ping(answer) => {
                        let _ = answer.send(Ok(()));
                    }
                }
            }
        }
        txn.commit()?;
        Ok(())
    })();
    match outcome {
        Ok(()) => {
            for (answer, result) in answers {
                let _ = answer.send(result);
            }
        }
        Err(err) => {
            // Nothing of the batch was committed: every job in it, run or
            // not yet, gets the failure.
            tracing::error!(path = %path.display(), error = %err, "file store commit failed");
            let message = format!("the file store could not commit: {err}");
            for (answer, _) in answers {
                let _ = answer.send(Err(KvError::Unavailable(message.clone())));
            }
            for job in jobs {
                fail(job, &message);
            }
        }
    }
}

/// Drops some expired keys; how many.
fn sweep(db: &Database, path: &Path) -> usize {
    let outcome = (|| -> Result<usize, redb::Error> {
        let txn = db.begin_write()?;
        let swept = {
            let mut writer = Writer {
                values: txn.open_table(VALUES)?,
                expires: txn.open_table(EXPIRES)?,
                deadlines: txn.open_table(DEADLINES)?,
            };
            writer.sweep(now_ms())?
        };
        txn.commit()?;
        Ok(swept)
    })();
    match outcome {
        Ok(swept) => {
            if swept > 0 {
                tracing::debug!(path = %path.display(), swept, "expired keys dropped");
            }
            swept
        }
        Err(err) => {
            tracing::warn!(path = %path.display(), error = %err, "sweeping expired keys failed");
            0
        }
    }
}

fn read_loop(db: &Database, path: &Path, queue: &Receiver<Job>) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while let Ok(job) = queue.try_recv() {
            batch.push(job);
        }
        // One snapshot answers all the reads queued together: each was
        // asked after every write it could have seen was answered.
        let now = now_ms();
        let snapshot = (|| -> Result<_, redb::Error> {
            let txn = db.begin_read()?;
            Ok((txn.open_table(VALUES)?, txn.open_table(EXPIRES)?))
        })();
        let (values, expires) = match snapshot {
            Ok(tables) => tables,
            Err(err) => {
                tracing::error!(path = %path.display(), error = %err, "file store read failed");
                for job in batch {
                    fail(job, &format!("the file store could not read: {err}"));
                }
                continue;
            }
        };
        for job in batch {
            match job {
                Job::Ping(answer) => {
                    let _ = answer.send(Ok(()));
                }
                Job::Op(op, answer) => {
                    let result = tables::read(&values, &expires, op, now).unwrap_or_else(|err| {
                        tracing::error!(path = %path.display(), error = %err, "file store read failed");
                        Err(KvError::Unavailable(format!(
                            "the file store could not read: {err}"
                        )))
                    });
                    let _ = answer.send(result);
                }
            }
        }
    }
}

fn fail(job: Job, message: &str) {
    match job {
        Job::Op(_, answer) => {
            let _ = answer.send(Err(KvError::Unavailable(message.to_owned())));
        }
        Job::Ping(answer) => {
            let _ = answer.send(Err(message.to_owned()));
        }
    }
}
