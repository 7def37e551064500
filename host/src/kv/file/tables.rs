//! The store's tables and the operations on them, inside one redb
//! transaction: no threads, no channels, nothing async.
//!
//! Three tables, kept consistent by `put` and `remove`:
//! - `values`: key → value;
//! - `expires`: key → deadline, for keys with a TTL;
//! - `deadlines`: (deadline, key) → (), so a sweep finds expired keys
//!   without reading every key.
//!
//! Deadlines are wall-clock milliseconds since the Unix epoch: the file
//! outlives the process, so a monotonic clock would not do. A key is live
//! while its deadline is after now.

use std::ops::Bound;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redb::{ReadableTable, StorageError, Table, TableDefinition};

use crate::kv::op::{add, page_start, parse_counter, KvError, Op, Output, Page};

pub const VALUES: TableDefinition<&str, &[u8]> = TableDefinition::new("values");
pub const EXPIRES: TableDefinition<&str, u64> = TableDefinition::new("expires");
pub const DEADLINES: TableDefinition<(u64, &str), ()> = TableDefinition::new("deadlines");

/// Expired keys removed by one sweep transaction at most, so a sweep
/// never holds up writes for long.
pub const SWEEP_BATCH: usize = 1000;

/// Now, as deadlines count it.
pub fn now_ms() -> u64 {
    // A clock before 1970 is a broken clock; treating it as the epoch
    // keeps every TTL key live rather than failing every operation.
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        })
}

fn deadline(now: u64, ttl: Option<Duration>) -> Option<u64> {
    ttl.map(|ttl| now.saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX)))
}

/// A live key's value and deadline.
pub struct Live {
    pub value: Vec<u8>,
    pub deadline: Option<u64>,
}

/// The value of `key` and its deadline, if it is live.
pub fn live(
    values: &impl ReadableTable<&'static str, &'static [u8]>,
    expires: &impl ReadableTable<&'static str, u64>,
    key: &str,
    now: u64,
) -> Result<Option<Live>, StorageError> {
    let Some(value) = values.get(key)? else {
        return Ok(None);
    };
    let deadline = expires.get(key)?.map(|d| d.value());
    if deadline.is_some_and(|d| d <= now) {
        return Ok(None);
    }
    Ok(Some(Live {
        value: value.value().to_vec(),
        deadline,
    }))
}

/// The tables a write transaction opened.
pub struct Writer<'txn> {
    pub values: Table<'txn, &'static str, &'static [u8]>,
    pub expires: Table<'txn, &'static str, u64>,
    pub deadlines: Table<'txn, (u64, &'static str), ()>,
}

impl Writer<'_> {
    /// Runs a write operation. The outer error is the storage failing,
    /// which dooms the whole transaction; the inner one is the operation's
    /// own answer (a conflict, a value that is not a counter), which
    /// changed nothing and leaves the transaction good for the others.
    pub fn apply(&mut self, op: Op, now: u64) -> Result<Result<Output, KvError>, StorageError> {
        Ok(match op {
            Op::Set { key, value, ttl } => {
                self.put(&key, &value, deadline(now, ttl))?;
                Ok(Output::Done)
            }
            Op::Delete { key } => {
                self.remove(&key)?;
                Ok(Output::Done)
            }
            Op::Increment { key, delta } => {
                let (current, deadline) = match live(&self.values, &self.expires, &key, now)? {
                    Some(Live { value, deadline }) => (parse_counter(Some(&value)), deadline),
                    None => (Ok(0), None),
                };
                match current.and_then(|current| add(current, delta)) {
                    Ok(next) => {
                        self.put(&key, next.to_string().as_bytes(), deadline)?;
                        Ok(Output::Number(next))
                    }
                    Err(err) => Err(err),
                }
            }
            Op::CompareAndSwap {
                key,
                expected,
                value,
                ttl,
            } => {
                let current = live(&self.values, &self.expires, &key, now)?.map(|l| l.value);
                if current != expected {
                    Err(KvError::Conflict)
                } else {
                    self.put(&key, &value, deadline(now, ttl))?;
                    Ok(Output::Done)
                }
            }
            // Reads go to the reader, which does not wait on commits; one
            // arriving here is answered all the same.
            Op::Get { .. } | Op::Exists { .. } | Op::ListKeys { .. } => {
                read(&self.values, &self.expires, op, now)?
            }
        })
    }

    fn put(&mut self, key: &str, value: &[u8], deadline: Option<u64>) -> Result<(), StorageError> {
        self.values.insert(key, value)?;
        let old = self.expires.remove(key)?.map(|d| d.value());
        if let Some(old) = old {
            self.deadlines.remove((old, key))?;
        }
        if let Some(deadline) = deadline {
            self.expires.insert(key, deadline)?;
            self.deadlines.insert((deadline, key), ())?;
        }
        Ok(())
    }

    fn remove(&mut self, key: &str) -> Result<(), StorageError> {
        self.values.remove(key)?;
        let old = self.expires.remove(key)?.map(|d| d.value());
        if let Some(old) = old {
            self.deadlines.remove((old, key))?;
        }
        Ok(())
    }

    /// Removes up to [`SWEEP_BATCH`] expired keys; how many it removed.
    pub fn sweep(&mut self, now: u64) -> Result<usize, StorageError> {
        let due: Vec<(u64, String)> = self
            .deadlines
            .range::<(u64, &str)>(..(now.saturating_add(1), ""))?
            .take(SWEEP_BATCH)
            .map(|entry| entry.map(|(k, _)| (k.value().0, k.value().1.to_owned())))
            .collect::<Result<_, _>>()?;
        for (deadline, key) in &due {
            self.deadlines.remove((*deadline, key.as_str()))?;
            // The entry is only ever written with the key's deadline, but
            // a sweep must never drop a key that has a later one.
            let current = self.expires.get(key.as_str())?.map(|d| d.value());
            if current == Some(*deadline) {
                self.expires.remove(key.as_str())?;
                self.values.remove(key.as_str())?;
            }
        }
        Ok(due.len())
    }
}

/// Runs a read operation; `None` for a write, which readers do not take.
pub fn read(
    values: &impl ReadableTable<&'static str, &'static [u8]>,
    expires: &impl ReadableTable<&'static str, u64>,
    op: Op,
    now: u64,
) -> Result<Result<Output, KvError>, StorageError> {
    Ok(Ok(match op {
        Op::Get { key } => Output::Value(live(values, expires, &key, now)?.map(|l| l.value)),
        Op::Exists { key } => Output::Exists(live(values, expires, &key, now)?.is_some()),
        Op::ListKeys {
            prefix,
            cursor,
            limit,
        } => list(values, expires, &prefix, cursor.as_deref(), limit, now)?,
        Op::Set { .. } | Op::Delete { .. } | Op::Increment { .. } | Op::CompareAndSwap { .. } => {
            return Ok(Err(KvError::Invalid(
                "a write reached the file store's reader".into(),
            )))
        }
    }))
}

/// Keys after `cursor` (the last key of the previous page) that start with
/// `prefix`, in order, as the memory store pages them.
fn list(
    values: &impl ReadableTable<&'static str, &'static [u8]>,
    expires: &impl ReadableTable<&'static str, u64>,
    prefix: &str,
    cursor: Option<&str>,
    limit: usize,
    now: u64,
) -> Result<Output, StorageError> {
    let start = page_start(prefix, cursor);
    let mut page = Page::new(limit);
    for entry in values.range::<&str>((start, Bound::Unbounded))? {
        let (key, _) = entry?;
        let key = key.value();
        if !key.starts_with(prefix) {
            break;
        }
        if expires.get(key)?.is_some_and(|d| d.value() <= now) {
            continue;
        }
        if !page.push(key) {
            break;
        }
    }
    Ok(page.finish())
}
