//! What a store is declared with: a name, a backend, and limits. The
//! manifest's `[[store]]` tables and the `--store` flag both read into it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;

use super::Backend;

/// The store a module gets when nothing is configured.
pub const DEFAULT_STORE: &str = "default";

/// Keys longer than this are refused: far above any sane key, far below
/// what a backend would choke on.
pub const DEFAULT_MAX_KEY: usize = 1024;
/// Values larger than this are refused; one value travels whole through a
/// guest call and, for Redis, one network round trip.
pub const DEFAULT_MAX_VALUE: usize = 1 << 20;
/// What a memory store may hold in all (keys and values); beyond it `set`
/// is refused as too large.
pub const DEFAULT_MAX_BYTES: usize = 256 << 20;
/// A Redis operation not answered within this fails as unavailable.
pub const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_secs(1);

/// The limits every operation is checked against before its backend sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreLimits {
    pub max_key: usize,
    pub max_value: usize,
    /// Memory stores only: the bytes of keys and values held in all.
    pub max_bytes: usize,
}

impl Default for StoreLimits {
    fn default() -> Self {
        Self {
            max_key: DEFAULT_MAX_KEY,
            max_value: DEFAULT_MAX_VALUE,
            max_bytes: DEFAULT_MAX_BYTES,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendConfig {
    /// In the server's memory: shared by its workers, lost at exit.
    Memory,
    /// An embedded database file: survives restarts.
    File { path: PathBuf },
    /// A Redis server: shared by every host that names it.
    Redis {
        url: String,
        /// Prepended to every key, so stores (and other users of the same
        /// server) do not see each other's keys.
        key_prefix: String,
        timeout: Duration,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    pub name: String,
    pub backend: BackendConfig,
    pub limits: StoreLimits,
}

impl StoreConfig {
    /// What a module gets with no configuration at all.
    pub fn default_memory() -> Self {
        Self {
            name: DEFAULT_STORE.into(),
            backend: BackendConfig::Memory,
            limits: StoreLimits::default(),
        }
    }

    /// `--store NAME=SPEC`, SPEC being `memory`, `file:PATH` or a
    /// `redis://` / `rediss://` URL.
    pub fn parse_flag(text: &str) -> Result<Self, String> {
        let (name, spec) = text.split_once('=').ok_or_else(|| {
            format!(
                "{text:?}: expected NAME=memory, NAME=file:PATH or NAME=redis://HOST[:PORT][/DB]"
            )
        })?;
        check_name(name)?;
        let backend = if spec == "memory" {
            BackendConfig::Memory
        } else if let Some(path) = spec.strip_prefix("file:") {
            if path.is_empty() {
                return Err(format!("{text:?}: file: needs a path"));
            }
            BackendConfig::File { path: path.into() }
        } else if check_redis_url(spec).is_ok() {
            BackendConfig::Redis {
                url: spec.to_owned(),
                key_prefix: default_key_prefix(name),
                timeout: DEFAULT_REDIS_TIMEOUT,
            }
        } else {
            return Err(format!(
                "{text:?}: the backend must be memory, file:PATH or a redis:// URL"
            ));
        };
        Ok(Self {
            name: name.to_owned(),
            backend,
            limits: StoreLimits::default(),
        })
    }
}

/// Whether `url` names a Redis server as the `redis` crate reads URLs; the
/// message never repeats the URL, which may hold a password.
pub fn check_redis_url(url: &str) -> Result<(), String> {
    let parsed = url::Url::parse(url).map_err(|err| format!("not a URL ({err})"))?;
    match parsed.scheme() {
        "redis" | "rediss" if parsed.host_str().is_some_and(|h| !h.is_empty()) => Ok(()),
        "redis" | "rediss" => Err("the Redis URL has no host".into()),
        "redis+unix" | "unix" => Ok(()),
        other => Err(format!(
            "a Redis URL starts with redis://, rediss:// or unix://, not {other}://"
        )),
    }
}

/// Keys of store `name` in Redis start with this unless configured.
pub fn default_key_prefix(name: &str) -> String {
    format!("snow:{name}:")
}

/// Store names are what modules pass to `open`: short, printable, no
/// surprises in logs or metric labels.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a store name: 1 to 64 of A-Z, a-z, 0-9, '-', '_', '.'"
        ))
    }
}

impl BackendConfig {
    pub(super) fn open(&self, limits: &StoreLimits) -> Result<Arc<dyn Backend>> {
        Ok(match self {
            BackendConfig::Memory => Arc::new(super::memory::MemoryStore::new(limits.max_bytes)),
            BackendConfig::File { path } => Arc::new(super::file::FileStore::open(path)?),
            BackendConfig::Redis {
                url,
                key_prefix,
                timeout,
            } => Arc::new(super::redis::RedisStore::new(url, key_prefix, *timeout)?),
        })
    }
}
