//! The operations a module can ask of a store, what they produce, how they
//! fail, and the checks made before any backend sees them.

use std::time::Duration;

use super::StoreLimits;

/// The longest TTL: far beyond any cache's use, and within every backend's
/// range (Redis takes milliseconds as a signed 64-bit count).
pub const MAX_TTL: Duration = Duration::from_secs(10 * 365 * 24 * 60 * 60);

/// Keys per page when the module asks for 0, and at most.
pub const PAGE: usize = 1000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Get {
        key: String,
    },
    Set {
        key: String,
        value: Vec<u8>,
        ttl: Option<Duration>,
    },
    Delete {
        key: String,
    },
    Exists {
        key: String,
    },
    ListKeys {
        prefix: String,
        cursor: Option<String>,
        /// 1..=PAGE after `check`.
        limit: usize,
    },
    Increment {
        key: String,
        delta: i64,
    },
    CompareAndSwap {
        key: String,
        expected: Option<Vec<u8>>,
        value: Vec<u8>,
        ttl: Option<Duration>,
    },
}

impl Op {
    /// The bytes of keys and values it carries.
    pub fn bytes(&self) -> usize {
        match self {
            Op::Get { key } | Op::Delete { key } | Op::Exists { key } => key.len(),
            Op::Increment { key, .. } => key.len(),
            Op::Set { key, value, .. } => key.len() + value.len(),
            Op::ListKeys { prefix, cursor, .. } => {
                prefix.len() + cursor.as_ref().map_or(0, String::len)
            }
            Op::CompareAndSwap {
                key,
                expected,
                value,
                ..
            } => key.len() + expected.as_ref().map_or(0, Vec::len) + value.len(),
        }
    }

    /// The key the operation acts on; `ListKeys` has none.
    pub fn key(&self) -> Option<&str> {
        match self {
            Op::Get { key }
            | Op::Set { key, .. }
            | Op::Delete { key }
            | Op::Exists { key }
            | Op::Increment { key, .. }
            | Op::CompareAndSwap { key, .. } => Some(key),
            Op::ListKeys { .. } => None,
        }
    }

    /// The value written, if any.
    fn value(&self) -> Option<&[u8]> {
        match self {
            Op::Set { value, .. } | Op::CompareAndSwap { value, .. } => Some(value),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Value(Option<Vec<u8>>),
    Done,
    Exists(bool),
    Keys {
        keys: Vec<String>,
        cursor: Option<String>,
    },
    Number(i64),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KvError {
    #[error("no such store: {0}")]
    NoSuchStore(String),
    #[error("access denied: {0}")]
    AccessDenied(String),
    #[error("too large: {0}")]
    TooLarge(String),
    #[error("backend unavailable: {0}")]
    Unavailable(String),
    #[error("conflict: the value was not the expected one")]
    Conflict,
    #[error("invalid: {0}")]
    Invalid(String),
}

/// What every backend may rely on: a non-empty key within the size limit, a
/// value within its limit, a page size in range.
pub fn check(op: &Op, limits: &StoreLimits) -> Result<(), KvError> {
    if let Some(key) = op.key() {
        if key.is_empty() {
            return Err(KvError::Invalid("the key is empty".into()));
        }
        if key.len() > limits.max_key {
            return Err(KvError::TooLarge(format!(
                "a key of {} bytes; the store takes at most {}",
                key.len(),
                limits.max_key
            )));
        }
    }
    if let Op::ListKeys { prefix, .. } = op {
        if prefix.len() > limits.max_key {
            return Err(KvError::TooLarge(format!(
                "a prefix of {} bytes; keys are at most {}",
                prefix.len(),
                limits.max_key
            )));
        }
    }
    if let Some(value) = op.value() {
        if value.len() > limits.max_value {
            return Err(KvError::TooLarge(format!(
                "a value of {} bytes; the store takes at most {}",
                value.len(),
                limits.max_value
            )));
        }
    }
    if let Op::CompareAndSwap {
        expected: Some(expected),
        ..
    } = op
    {
        if expected.len() > limits.max_value {
            return Err(KvError::TooLarge(
                "the expected value is larger than any value the store holds".into(),
            ));
        }
    }
    Ok(())
}

/// A page size as the module gave it: 0 takes the default, more than the
/// most is cut to it.
pub fn page_size(limit: u32) -> usize {
    match usize::try_from(limit) {
        Ok(0) | Err(_) => PAGE,
        Ok(n) => n.min(PAGE),
    }
}

/// A TTL as the module gave it, in milliseconds; 0 expires at once, which
/// no backend agrees on, so it is refused.
pub fn ttl(ms: Option<u64>) -> Result<Option<Duration>, KvError> {
    match ms {
        None => Ok(None),
        Some(0) => Err(KvError::Invalid("a TTL of 0 ms".into())),
        Some(ms) => Ok(Some(Duration::from_millis(ms).min(MAX_TTL))),
    }
}

/// A value as `increment` reads it: an unset key is 0, anything but a
/// decimal integer is refused.
pub fn parse_counter(value: Option<&[u8]>) -> Result<i64, KvError> {
    let Some(value) = value else {
        return Ok(0);
    };
    std::str::from_utf8(value)
        .ok()
        .and_then(|text| text.parse::<i64>().ok())
        .ok_or_else(|| KvError::Invalid("increment of a value that is not an integer".into()))
}

/// `current + delta`, or why not.
pub fn add(current: i64, delta: i64) -> Result<i64, KvError> {
    current
        .checked_add(delta)
        .ok_or_else(|| KvError::Invalid("increment overflows a 64-bit integer".into()))
}

/// A name or key for a message: quoted, escaped, and cut short, so a
/// hostile one cannot forge log lines or flood them.
pub fn shown(text: &str) -> String {
    const MOST: usize = 64;
    let mut out: String = text.chars().take(MOST).collect::<String>();
    if out.len() < text.len() {
        out.push('…');
    }
    format!("{out:?}")
}

/// Where a page of keys by `prefix` starts in an ordered store: after the
/// cursor (the last key of the previous page), or at the prefix when the
/// cursor lies before it, so a hostile cursor never reaches other keys.
pub fn page_start<'a>(prefix: &'a str, cursor: Option<&'a str>) -> std::ops::Bound<&'a str> {
    match cursor {
        Some(after) if after >= prefix => std::ops::Bound::Excluded(after),
        _ => std::ops::Bound::Included(prefix),
    }
}

/// A page of `list-keys` in an ordered store, filled key by key.
pub struct Page {
    keys: Vec<String>,
    limit: usize,
    more: bool,
}

impl Page {
    pub fn new(limit: usize) -> Self {
        Self {
            keys: Vec::new(),
            limit,
            more: false,
        }
    }

    /// Takes `key`, or answers false once the page is full: there are more.
    pub fn push(&mut self, key: &str) -> bool {
        if self.keys.len() == self.limit {
            self.more = true;
            return false;
        }
        self.keys.push(key.to_owned());
        true
    }

    /// The page, with a cursor only when keys were left for the next one.
    pub fn finish(self) -> Output {
        let cursor = if self.more {
            self.keys.last().cloned()
        } else {
            None
        };
        Output::Keys {
            keys: self.keys,
            cursor,
        }
    }
}
