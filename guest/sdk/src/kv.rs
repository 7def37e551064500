//! Key-value stores the host grants this module: shared by every worker
//! and instance of the host (and, with Redis, by every host), surviving hot
//! swaps and traps. Each operation parks the request on a host operation,
//! like `sleep` or `fetch`, so a slow store never blocks other requests.
//!
//! ```no_run
//! use snow_guest::{kv, Error, Request};
//!
//! async fn visit(_: Request) -> Result<String, Error> {
//!     let store = kv::open("default")?;
//!     let visits = store.increment("visits", 1).await?;
//!     Ok(format!("visit number {visits}"))
//! }
//! ```
//!
//! `snow serve MODULE.wasm` with no configuration gives a module one memory
//! store, `default`; a manifest declares stores and grants them by name.

use std::fmt;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::completion::Completion;
use crate::host;
use crate::op::HostOp;
use crate::time::whole_millis;

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvError {
    /// No store of this name is configured on the host.
    NoSuchStore(String),
    /// The store exists but this module is not granted it.
    AccessDenied(String),
    /// A key or value exceeds the store's limit, or the store is full.
    TooLarge(String),
    /// The backend could not be reached or did not answer in time.
    Unavailable(String),
    /// `compare_and_swap` found another value than the expected one.
    Conflict,
    /// Refused for what was asked: an empty key, `increment` of something
    /// that is not an integer, too many operations in one request, …
    Invalid(String),
}

impl fmt::Display for KvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KvError::NoSuchStore(m) => write!(f, "no such store: {m}"),
            KvError::AccessDenied(m) => write!(f, "store access denied: {m}"),
            KvError::TooLarge(m) => write!(f, "too large for the store: {m}"),
            KvError::Unavailable(m) => write!(f, "store unavailable: {m}"),
            KvError::Conflict => f.write_str("the value changed since it was read"),
            KvError::Invalid(m) => write!(f, "invalid store operation: {m}"),
        }
    }
}

impl std::error::Error for KvError {}

impl From<KvError> for crate::Error {
    /// `Conflict` answers 409, `TooLarge` 413, `Unavailable` 503; the rest
    /// are the module's own mistakes or its configuration's, 500.
    fn from(err: KvError) -> Self {
        let status = match err {
            KvError::Conflict => 409,
            KvError::TooLarge(_) => 413,
            KvError::Unavailable(_) => 503,
            _ => 500,
        };
        crate::Error::new(status, err.to_string())
    }
}

/// One page of [`Store::list_keys`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyPage {
    /// In the backend's order.
    pub keys: Vec<String>,
    /// Pass it to the next call; `None` when the listing is complete.
    pub cursor: Option<String>,
}

/// An operation as the host takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum KvRequest {
    Get {
        key: String,
    },
    Set {
        key: String,
        value: Vec<u8>,
        ttl_ms: Option<u64>,
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
        limit: u32,
    },
    Increment {
        key: String,
        delta: i64,
    },
    CompareAndSwap {
        key: String,
        expected: Option<Vec<u8>>,
        value: Vec<u8>,
        ttl_ms: Option<u64>,
    },
}

/// What a finished operation produced.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum KvOutput {
    Value(Option<Vec<u8>>),
    Done,
    Exists(bool),
    Keys(KeyPage),
    Number(i64),
}

/// A store this module opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Store {
    handle: u32,
}

/// Opens the store `name`; fails at once when it is not granted.
pub fn open(name: &str) -> Result<Store, KvError> {
    host::kv_open(name).map(|handle| Store { handle })
}

impl Store {
    async fn run(&self, req: KvRequest) -> Result<KvOutput, KvError> {
        let handle = self.handle;
        match HostOp::new(move || host::start_kv(handle, req)).await {
            Completion::Kv(result) => result,
            other => Err(KvError::Invalid(format!(
                "the host completed a store operation with {other:?}"
            ))),
        }
    }

    /// The value of `key`, or `None` when it is unset.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        match self.run(KvRequest::Get { key: key.into() }).await? {
            KvOutput::Value(value) => Ok(value),
            other => Err(unexpected("get", &other)),
        }
    }

    /// Sets `key` to `value`, kept until deleted or overwritten.
    pub async fn set(&self, key: &str, value: impl Into<Vec<u8>>) -> Result<(), KvError> {
        self.set_inner(key, value.into(), None).await
    }

    /// Sets `key` to `value` for `ttl` (rounded up to milliseconds).
    pub async fn set_with_ttl(
        &self,
        key: &str,
        value: impl Into<Vec<u8>>,
        ttl: Duration,
    ) -> Result<(), KvError> {
        self.set_inner(key, value.into(), Some(whole_millis(ttl)))
            .await
    }

    async fn set_inner(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl_ms: Option<u64>,
    ) -> Result<(), KvError> {
        let req = KvRequest::Set {
            key: key.into(),
            value,
            ttl_ms,
        };
        done("set", self.run(req).await?)
    }

    /// Deletes `key`; deleting an unset key is not an error.
    pub async fn delete(&self, key: &str) -> Result<(), KvError> {
        done(
            "delete",
            self.run(KvRequest::Delete { key: key.into() }).await?,
        )
    }

    /// Whether `key` is set.
    pub async fn exists(&self, key: &str) -> Result<bool, KvError> {
        match self.run(KvRequest::Exists { key: key.into() }).await? {
            KvOutput::Exists(exists) => Ok(exists),
            other => Err(unexpected("exists", &other)),
        }
    }

    /// One page of the keys starting with `prefix`; pass the page's cursor
    /// back for the next. The host picks the page size.
    pub async fn list_keys(&self, prefix: &str, cursor: Option<&str>) -> Result<KeyPage, KvError> {
        let req = KvRequest::ListKeys {
            prefix: prefix.into(),
            cursor: cursor.map(str::to_owned),
            limit: 0,
        };
        match self.run(req).await? {
            KvOutput::Keys(page) => Ok(page),
            other => Err(unexpected("list_keys", &other)),
        }
    }

    /// Adds `delta` to the integer at `key` (0 when unset) atomically, and
    /// returns the new value.
    pub async fn increment(&self, key: &str, delta: i64) -> Result<i64, KvError> {
        let req = KvRequest::Increment {
            key: key.into(),
            delta,
        };
        match self.run(req).await? {
            KvOutput::Number(n) => Ok(n),
            other => Err(unexpected("increment", &other)),
        }
    }

    /// Sets `key` to `value` only if it holds `expected` (`None`: only if
    /// it is unset); otherwise fails with [`KvError::Conflict`].
    pub async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: impl Into<Vec<u8>>,
    ) -> Result<(), KvError> {
        let req = KvRequest::CompareAndSwap {
            key: key.into(),
            expected: expected.map(<[u8]>::to_vec),
            value: value.into(),
            ttl_ms: None,
        };
        done("compare_and_swap", self.run(req).await?)
    }

    /// The value of `key` read as JSON; a value that does not parse is
    /// [`KvError::Invalid`].
    pub async fn get_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, KvError> {
        let Some(bytes) = self.get(key).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes).map(Some).map_err(|err| {
            KvError::Invalid(format!("the value of {key:?} is not such JSON: {err}"))
        })
    }

    /// Sets `key` to `value` as JSON.
    pub async fn set_json<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
    ) -> Result<(), KvError> {
        let bytes = serde_json::to_vec(value)
            .map_err(|err| KvError::Invalid(format!("the value does not serialize: {err}")))?;
        self.set(key, bytes).await
    }
}

fn done(what: &str, output: KvOutput) -> Result<(), KvError> {
    match output {
        KvOutput::Done => Ok(()),
        other => Err(unexpected(what, &other)),
    }
}

fn unexpected(what: &str, output: &KvOutput) -> KvError {
    KvError::Invalid(format!("the host answered {what} with {output:?}"))
}
