//! The memory backend: one ordered map behind a lock, shared by every worker
//! of the server. Operations finish under the lock in well under a
//! microsecond, so they run on the calling worker without a thread hop.
//!
//! Expired keys are dropped when met (read, listed, written over) and in one
//! sweep when the store is full, so a store of keys with TTLs never holds
//! more than its byte limit.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::op::{add, page_start, parse_counter, KvError, Op, Output, Page};
use super::{Backend, Pending};

/// What an entry costs besides its key and value: the map's node share and
/// the bookkeeping here, roughly; it keeps a store of empty values bounded.
const ENTRY_OVERHEAD: usize = 64;

struct Entry {
    value: Vec<u8>,
    expires: Option<Instant>,
}

impl Entry {
    fn live(&self, now: Instant) -> bool {
        self.expires.is_none_or(|at| at > now)
    }
}

#[derive(Default)]
struct Map {
    entries: BTreeMap<String, Entry>,
    bytes: usize,
}

pub struct MemoryStore {
    map: Mutex<Map>,
    max_bytes: usize,
}

fn cost(key: &str, value: &[u8]) -> usize {
    key.len() + value.len() + ENTRY_OVERHEAD
}

impl MemoryStore {
    pub fn new(max_bytes: usize) -> Self {
        Self {
            map: Mutex::new(Map::default()),
            max_bytes,
        }
    }

    /// Runs `op` to completion; the store's whole API.
    pub fn apply(&self, op: Op) -> Result<Output, KvError> {
        let now = Instant::now();
        // A panic cannot leave the map half-changed: every change below is
        // one insert or remove.
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        match op {
            Op::Get { key } => Ok(Output::Value(map.live(&key, now).map(|e| e.value.clone()))),
            Op::Exists { key } => Ok(Output::Exists(map.live(&key, now).is_some())),
            Op::Set { key, value, ttl } => {
                map.put(key, value, ttl, now, self.max_bytes)?;
                Ok(Output::Done)
            }
            Op::Delete { key } => {
                map.remove(&key);
                Ok(Output::Done)
            }
            Op::Increment { key, delta } => {
                let (current, expires) = match map.live(&key, now) {
                    Some(entry) => (parse_counter(Some(&entry.value))?, entry.expires),
                    None => (0, None),
                };
                let next = add(current, delta)?;
                let ttl = expires.map(|at| at.saturating_duration_since(now));
                map.put(key, next.to_string().into_bytes(), ttl, now, self.max_bytes)?;
                Ok(Output::Number(next))
            }
            Op::CompareAndSwap {
                key,
                expected,
                value,
                ttl,
            } => {
                let current = map.live(&key, now).map(|e| e.value.as_slice());
                if current != expected.as_deref() {
                    return Err(KvError::Conflict);
                }
                map.put(key, value, ttl, now, self.max_bytes)?;
                Ok(Output::Done)
            }
            Op::ListKeys {
                prefix,
                cursor,
                limit,
            } => Ok(map.list(&prefix, cursor, limit, now)),
        }
    }
}

impl Map {
    /// The entry for `key` if it has not expired; an expired one is dropped.
    fn live(&mut self, key: &str, now: Instant) -> Option<&Entry> {
        if self.entries.get(key).is_some_and(|e| !e.live(now)) {
            self.remove(key);
        }
        self.entries.get(key)
    }

    fn remove(&mut self, key: &str) {
        if let Some(old) = self.entries.remove(key) {
            self.bytes -= cost(key, &old.value);
        }
    }

    fn put(
        &mut self,
        key: String,
        value: Vec<u8>,
        ttl: Option<Duration>,
        now: Instant,
        max_bytes: usize,
    ) -> Result<(), KvError> {
        let old = self.entries.get(&key).map_or(0, |e| cost(&key, &e.value));
        let new = cost(&key, &value);
        if self.bytes - old + new > max_bytes {
            self.sweep(now);
            let old = self.entries.get(&key).map_or(0, |e| cost(&key, &e.value));
            if self.bytes - old + new > max_bytes {
                return Err(KvError::TooLarge(format!(
                    "the store is full ({max_bytes} bytes)"
                )));
            }
        }
        let expires = ttl.and_then(|ttl| now.checked_add(ttl));
        let key_len = key.len();
        let replaced = self.entries.insert(key, Entry { value, expires });
        let old = replaced.map_or(0, |e| key_len + e.value.len() + ENTRY_OVERHEAD);
        self.bytes = self.bytes - old + new;
        Ok(())
    }

    fn sweep(&mut self, now: Instant) {
        let mut freed = 0;
        self.entries.retain(|key, entry| {
            let live = entry.live(now);
            if !live {
                freed += cost(key, &entry.value);
            }
            live
        });
        self.bytes -= freed;
    }

    /// Keys after `cursor` (the last key of the previous page) that start
    /// with `prefix`, in order.
    fn list(&self, prefix: &str, cursor: Option<String>, limit: usize, now: Instant) -> Output {
        let start = page_start(prefix, cursor.as_deref());
        let mut page = Page::new(limit);
        let range = self.entries.range::<str, _>((start, Bound::Unbounded));
        for (key, entry) in range.take_while(|(key, _)| key.starts_with(prefix)) {
            if entry.live(now) && !page.push(key) {
                break;
            }
        }
        page.finish()
    }
}

impl Backend for MemoryStore {
    fn kind(&self) -> &'static str {
        "memory"
    }

    fn run(&self, op: Op) -> Pending<Result<Output, KvError>> {
        Box::pin(std::future::ready(self.apply(op)))
    }

    fn ready(&self) -> Pending<Result<(), String>> {
        Box::pin(std::future::ready(Ok(())))
    }
}
