use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redb::{Database, ReadableDatabase, ReadableTableMetadata};

use super::tables::{now_ms, Writer, DEADLINES, EXPIRES, VALUES};
use super::FileStore;
use crate::kv::conformance::{conformance, serves_any_runtime, Leeway};
use crate::kv::op::{KvError, Op, Output};
use crate::kv::Backend;

/// A directory of its own, removed when the test ends.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        static COUNT: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "snow-kv-file-{name}-{}-{}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn get(store: &FileStore, key: &str) -> Option<Vec<u8>> {
    match store.run(Op::Get { key: key.into() }).await {
        Ok(Output::Value(value)) => value,
        other => panic!("get {key}: {other:?}"),
    }
}

async fn set(store: &FileStore, key: &str, value: &[u8], ttl: Option<Duration>) {
    let op = Op::Set {
        key: key.into(),
        value: value.to_vec(),
        ttl,
    };
    assert_eq!(store.run(op).await, Ok(Output::Done));
}

fn incr(key: &str) -> Op {
    Op::Increment {
        key: key.into(),
        delta: 1,
    }
}

#[tokio::test]
async fn passes_the_conformance_script() {
    let scratch = Scratch::new("conformance");
    let store = FileStore::open(&scratch.path("store.redb")).unwrap();
    conformance(&store, Leeway { exact_pages: true }).await;
}

#[tokio::test]
async fn what_was_written_is_there_after_reopening() {
    let scratch = Scratch::new("reopen");
    let path = scratch.path("store.redb");
    {
        let store = FileStore::open(&path).unwrap();
        set(&store, "kept", b"value", None).await;
        set(&store, "later", b"v", Some(Duration::from_secs(3600))).await;
        set(&store, "soon", b"v", Some(Duration::from_millis(300))).await;
        assert_eq!(store.run(incr("n")).await, Ok(Output::Number(1)));
        set(&store, "gone", b"v", None).await;
        let delete = Op::Delete { key: "gone".into() };
        assert_eq!(store.run(delete).await, Ok(Output::Done));
    }
    // Dropping the store closed the file: it opens again at once.
    let store = FileStore::open(&path).unwrap();
    assert_eq!(get(&store, "kept").await.as_deref(), Some(&b"value"[..]));
    assert_eq!(get(&store, "gone").await, None);
    assert_eq!(store.run(incr("n")).await, Ok(Output::Number(2)));
    // Deadlines are wall-clock: they run on while the store is closed.
    assert_eq!(get(&store, "later").await.as_deref(), Some(&b"v"[..]));
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(get(&store, "soon").await, None);
}

#[test]
fn a_file_that_is_not_a_database_is_refused_clearly() {
    let scratch = Scratch::new("garbage");
    let long = b"this is not a redb database, only some text\n".repeat(200);
    for (name, garbage) in [("short", &b"this is not"[..]), ("long", &long)] {
        let path = scratch.path(name);
        std::fs::write(&path, garbage).unwrap();
        let err = FileStore::open(&path).err().expect("a garbage file opened");
        let message = format!("{err:#}");
        assert!(message.contains(&*path.to_string_lossy()), "{message}");
        assert!(message.contains("not a redb database"), "{message}");
        // And it is left as it was.
        assert_eq!(std::fs::read(&path).unwrap(), garbage);
    }
}

#[test]
fn the_directory_must_exist_and_the_file_must_be_free() {
    let scratch = Scratch::new("paths");
    let missing = scratch.path("no-such-dir").join("store.redb");
    let message = format!("{:#}", FileStore::open(&missing).err().unwrap());
    assert!(message.contains("does not exist"), "{message}");
    assert!(message.contains(&*missing.to_string_lossy()), "{message}");
    assert!(!missing.parent().unwrap().exists());

    let message = format!("{:#}", FileStore::open(&scratch.0).err().unwrap());
    assert!(message.contains("is a directory"), "{message}");

    let path = scratch.path("store.redb");
    let _first = FileStore::open(&path).unwrap();
    let message = format!("{:#}", FileStore::open(&path).err().unwrap());
    assert!(message.contains("already open"), "{message}");
}

#[test]
fn serves_any_runtime_and_none() {
    let scratch = Scratch::new("runtimes");
    let store: Arc<dyn Backend> = Arc::new(FileStore::open(&scratch.path("store.redb")).unwrap());
    serves_any_runtime(&store);
}

#[tokio::test]
async fn concurrent_increments_all_count_and_share_commits() {
    let scratch = Scratch::new("concurrent");
    let store = Arc::new(FileStore::open(&scratch.path("store.redb")).unwrap());

    const SEQUENTIAL: u32 = 100;
    let started = Instant::now();
    for _ in 0..SEQUENTIAL {
        store.run(incr("seq")).await.unwrap();
    }
    let sequential = f64::from(SEQUENTIAL) / started.elapsed().as_secs_f64();

    const TASKS: i64 = 64;
    const EACH: i64 = 20;
    let started = Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                for _ in 0..EACH {
                    store.run(incr("shared")).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let concurrent = (TASKS * EACH) as f64 / started.elapsed().as_secs_f64();
    assert_eq!(
        get(&store, "shared").await,
        Some((TASKS * EACH).to_string().into_bytes())
    );
    // Numbers for the record, not asserted: they are the disk's.
    println!(
        "file store increments: {sequential:.0}/s one at a time, {concurrent:.0}/s from {TASKS} \
         concurrent tasks"
    );
}

#[tokio::test]
async fn a_conflict_in_a_batch_fails_only_itself() {
    let scratch = Scratch::new("batch");
    let store = Arc::new(FileStore::open(&scratch.path("store.redb")).unwrap());
    set(&store, "text", b"not a number", None).await;
    // Many at once so that they share transactions; the refused ones
    // must not undo the others.
    let ops = (0..200).map(|i| match i % 4 {
        0 => Op::CompareAndSwap {
            key: "claimed".into(),
            expected: None,
            value: i.to_string().into_bytes(),
            ttl: None,
        },
        1 => incr("text"),
        2 => incr("count"),
        _ => Op::Set {
            key: format!("k{i}"),
            value: b"v".to_vec(),
            ttl: None,
        },
    });
    let answers = futures_join(ops.map(|op| store.run(op)).collect()).await;
    let claims = answers.iter().step_by(4);
    assert_eq!(claims.clone().filter(|a| a.is_ok()).count(), 1);
    assert!(claims
        .filter(|a| a.is_err())
        .all(|a| *a == Err(KvError::Conflict)));
    assert!(answers
        .iter()
        .skip(1)
        .step_by(4)
        .all(|a| matches!(a, Err(KvError::Invalid(_)))));
    assert_eq!(get(&store, "count").await, Some(b"50".to_vec()));
    assert_eq!(get(&store, "k199").await, Some(b"v".to_vec()));
}

/// Awaits every future, in order, all of them in flight at once.
async fn futures_join<T: Send + 'static>(pending: Vec<crate::kv::Pending<T>>) -> Vec<T> {
    let tasks: Vec<_> = pending.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(tasks.len());
    for task in tasks {
        out.push(task.await.unwrap());
    }
    out
}

#[test]
fn a_sweep_drops_expired_keys_and_only_those() {
    let scratch = Scratch::new("sweep");
    let db = Database::create(scratch.path("store.redb")).unwrap();
    let now = now_ms();
    let write = |f: &dyn Fn(&mut Writer<'_>)| {
        let txn = db.begin_write().unwrap();
        {
            let mut writer = Writer {
                values: txn.open_table(VALUES).unwrap(),
                expires: txn.open_table(EXPIRES).unwrap(),
                deadlines: txn.open_table(DEADLINES).unwrap(),
            };
            f(&mut writer);
        }
        txn.commit().unwrap();
    };
    write(&|w| {
        for (key, ttl) in [("old", 1), ("older", 1), ("live", 60_000), ("forever", 0)] {
            let op = Op::Set {
                key: key.into(),
                value: b"v".to_vec(),
                ttl: (ttl > 0).then(|| Duration::from_millis(ttl)),
            };
            w.apply(op, now - 10).unwrap().unwrap();
        }
    });
    write(&|w| assert_eq!(w.sweep(now).unwrap(), 2));
    let txn = db.begin_read().unwrap();
    assert_eq!(txn.open_table(VALUES).unwrap().len().unwrap(), 2);
    assert_eq!(txn.open_table(EXPIRES).unwrap().len().unwrap(), 1);
    assert_eq!(txn.open_table(DEADLINES).unwrap().len().unwrap(), 1);
}
