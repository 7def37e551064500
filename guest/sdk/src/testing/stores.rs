//! The fake host's stores: every store name opens (unless a test denies
//! it), each an ordered map that behaves as the host's memory backend does,
//! TTLs aside (they are recorded in `kv_ops`, never applied).

use std::collections::BTreeMap;
use std::ops::Bound;

use crate::kv::{KeyPage, KvError, KvOutput, KvRequest};

/// The host's page size for `list_keys`.
const PAGE: usize = 1000;

#[derive(Default)]
pub(crate) struct FakeStores {
    /// Handles are indices here.
    opened: Vec<String>,
    data: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    denied: Vec<String>,
    failing: BTreeMap<String, KvError>,
}

impl FakeStores {
    pub(crate) fn open(&mut self, name: &str) -> Result<u32, KvError> {
        if self.denied.iter().any(|d| d == name) {
            return Err(KvError::AccessDenied(format!(
                "the store {name:?} is not granted to this module"
            )));
        }
        let index = match self.opened.iter().position(|n| n == name) {
            Some(index) => index,
            None => {
                self.opened.push(name.to_owned());
                self.opened.len() - 1
            }
        };
        Ok(u32::try_from(index).unwrap_or(u32::MAX))
    }

    pub(crate) fn name(&self, handle: u32) -> String {
        usize::try_from(handle)
            .ok()
            .and_then(|i| self.opened.get(i))
            .cloned()
            .unwrap_or_default()
    }

    pub(crate) fn deny(&mut self, name: &str) {
        self.denied.push(name.to_owned());
    }

    pub(crate) fn fail(&mut self, name: &str, err: Option<KvError>) {
        match err {
            Some(err) => self.failing.insert(name.to_owned(), err),
            None => self.failing.remove(name),
        };
    }

    pub(crate) fn contents(&self, name: &str) -> BTreeMap<String, Vec<u8>> {
        self.data.get(name).cloned().unwrap_or_default()
    }

    pub(crate) fn seed(&mut self, name: &str, key: &str, value: Vec<u8>) {
        self.data
            .entry(name.to_owned())
            .or_default()
            .insert(key.to_owned(), value);
    }

    /// Runs `req` on the store `name` as the host would.
    pub(crate) fn apply(&mut self, name: &str, req: &KvRequest) -> Result<KvOutput, KvError> {
        if let Some(err) = self.failing.get(name) {
            return Err(err.clone());
        }
        let map = self.data.entry(name.to_owned()).or_default();
        let key_of = |key: &str| -> Result<String, KvError> {
            if key.is_empty() {
                Err(KvError::Invalid("the key is empty".into()))
            } else {
                Ok(key.to_owned())
            }
        };
        match req {
            KvRequest::Get { key } => Ok(KvOutput::Value(map.get(&key_of(key)?).cloned())),
            KvRequest::Exists { key } => Ok(KvOutput::Exists(map.contains_key(&key_of(key)?))),
            KvRequest::Set { key, value, .. } => {
                map.insert(key_of(key)?, value.clone());
                Ok(KvOutput::Done)
            }
            KvRequest::Delete { key } => {
                map.remove(&key_of(key)?);
                Ok(KvOutput::Done)
            }
            KvRequest::Increment { key, delta } => {
                let key = key_of(key)?;
                let current = match map.get(&key) {
                    None => 0,
                    Some(value) => std::str::from_utf8(value)
                        .ok()
                        .and_then(|t| t.parse::<i64>().ok())
                        .ok_or_else(|| {
                            KvError::Invalid("increment of a value that is not an integer".into())
                        })?,
                };
                let next = current.checked_add(*delta).ok_or_else(|| {
                    KvError::Invalid("increment overflows a 64-bit integer".into())
                })?;
                map.insert(key, next.to_string().into_bytes());
                Ok(KvOutput::Number(next))
            }
            KvRequest::CompareAndSwap {
                key,
                expected,
                value,
                ..
            } => {
                let key = key_of(key)?;
                if map.get(&key) != expected.as_ref() {
                    return Err(KvError::Conflict);
                }
                map.insert(key, value.clone());
                Ok(KvOutput::Done)
            }
            KvRequest::ListKeys {
                prefix,
                cursor,
                limit,
            } => {
                let limit = match usize::try_from(*limit) {
                    Ok(0) | Err(_) => PAGE,
                    Ok(n) => n.min(PAGE),
                };
                let start = match cursor {
                    Some(after) if after >= prefix => Bound::Excluded(after.as_str()),
                    _ => Bound::Included(prefix.as_str()),
                };
                let mut keys: Vec<String> = map
                    .range::<str, _>((start, Bound::Unbounded))
                    .map(|(k, _)| k)
                    .take_while(|k| k.starts_with(prefix.as_str()))
                    .take(limit + 1)
                    .cloned()
                    .collect();
                let more = keys.len() > limit;
                keys.truncate(limit);
                let cursor = if more { keys.last().cloned() } else { None };
                Ok(KvOutput::Keys(KeyPage { keys, cursor }))
            }
        }
    }
}
