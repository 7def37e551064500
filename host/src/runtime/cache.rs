//! On-disk cache of compiled components, keyed by the module's content hash
//! and the engine's compatibility hash, so a restart does not recompile.
//!
//! The cache is bounded by [`CacheLimits`]: entries past the age bound go
//! first, then the least recently used until the total fits the size bound.
//! A load marks its entry as used by setting its modification time.
//!
//! The directory is shared and may hold anything: eviction only ever removes
//! regular files whose names this cache writes (`<key>.cwasm` and its
//! temporary files), read from the directory itself, never through a
//! symlink and never in a subdirectory.
//!
//! An entry is loaded only if its seal checks out ([`trust`]): the cache
//! key and the bytes must be the ones this host wrote with its secret.

use std::fs;
use std::hash::{Hash, Hasher};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::Result;
use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::error::Context;
use wasmtime::Engine;

use trust::EntryKey;

/// How much the compile cache may keep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheLimits {
    /// Total size of the entries, in bytes.
    pub max_bytes: u64,
    /// Entries not used for this long are removed whatever the total.
    pub max_age: Duration,
}

impl CacheLimits {
    /// 512 MiB: a compiled module is a few MiB, so this holds a few hundred.
    pub const DEFAULT_MAX_BYTES: u64 = 512 * 1024 * 1024;
    /// 30 days: a module not loaded for a month is likely gone.
    pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(30 * 24 * 3600);
}

impl Default for CacheLimits {
    fn default() -> Self {
        Self {
            max_bytes: Self::DEFAULT_MAX_BYTES,
            max_age: Self::DEFAULT_MAX_AGE,
        }
    }
}

/// A temporary file older than this belongs to a write that never finished.
const STALE_TEMPORARY: Duration = Duration::from_secs(3600);

pub struct ArtifactCache {
    dir: PathBuf,
    limits: CacheLimits,
    secret: EntryKey,
}

/// What one eviction pass removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Evicted {
    pub files: usize,
    pub bytes: u64,
}

impl ArtifactCache {
    /// Opens (creating if needed) the cache directory with the default
    /// limits, and trims it to them.
    pub fn open(dir: &Path) -> Result<Self> {
        Self::open_with(dir, CacheLimits::default())
    }

    /// Opens (creating if needed, 0700) the cache directory and its key,
    /// and trims it to `limits`. Refused when the directory or the key is
    /// not this user's alone: whoever could write them could forge entries.
    pub fn open_with(dir: &Path, limits: CacheLimits) -> Result<Self> {
        trust::prepare_dir(dir)?;
        let secret = EntryKey::load_or_create(dir)?;
        let cache = Self {
            dir: dir.to_path_buf(),
            limits,
            secret,
        };
        cache.evict_and_log();
        Ok(cache)
    }

    /// The default location: `$SNOW_CACHE_DIR`, else `$XDG_CACHE_HOME/snow`,
    /// else `~/.cache/snow`.
    pub fn default_dir() -> Option<PathBuf> {
        if let Some(dir) = std::env::var_os("SNOW_CACHE_DIR") {
            return Some(PathBuf::from(dir));
        }
        if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
            return Some(PathBuf::from(dir).join("snow"));
        }
        std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache").join("snow"))
    }

    pub fn limits(&self) -> CacheLimits {
        self.limits
    }

    pub fn key(&self, engine: &Engine, wasm: &[u8]) -> String {
        keyed(engine, &content_hash(wasm))
    }

    /// The key of an artifact derived from `wasm` and `inputs` (a
    /// pre-initialised build, whose state depends on the module's
    /// environment): each part is length-prefixed, so no two different
    /// sets of inputs hash alike, and `kind` keeps derivations apart.
    pub fn derived_key(
        &self,
        engine: &Engine,
        kind: &str,
        wasm: &[u8],
        inputs: &[&[u8]],
    ) -> String {
        let mut hasher = Sha256::new();
        for part in [kind.as_bytes(), wasm]
            .into_iter()
            .chain(inputs.iter().copied())
        {
            hasher.update((part.len() as u64).to_le_bytes());
            hasher.update(part);
        }
        keyed(engine, &hex(&hasher.finalize()))
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.cwasm"))
    }

    /// Loads a compiled component; any failure is a miss. An entry that is
    /// there but not trusted is logged, and the compile that follows the
    /// miss overwrites it.
    pub fn load(&self, engine: &Engine, key: &str) -> Option<Component> {
        let path = self.path(key);
        let entry = match self.read_entry(&path) {
            Ok(Some(entry)) => entry,
            Ok(None) => return None,
            Err(err) => {
                tracing::warn!("ignoring cache entry {}: {err:#}", path.display());
                return None;
            }
        };
        let artifact = match self.secret.open(key, &entry) {
            Ok(artifact) => artifact,
            Err(why) => {
                tracing::warn!(
                    "untrusted cache entry {}: {why}; recompiling",
                    path.display()
                );
                return None;
            }
        };
        // SAFETY: the bytes are the ones `store` serialized for this key:
        // the seal over (key, bytes) was made with a secret only this user
        // can read, and they are checked in memory, so the file cannot
        // change in between. The key includes the engine's compatibility
        // hash, and wasmtime still checks the header and version.
        match unsafe { Component::deserialize(engine, artifact) } {
            Ok(component) => Some(component),
            Err(err) => {
                tracing::warn!("ignoring unusable cache entry {}: {err:#}", path.display());
                None
            }
        }
    }

    /// The whole entry at `path`, read from a regular file opened without
    /// following a symlink, and marked as used. `Ok(None)` when absent.
    fn read_entry(&self, path: &Path) -> Result<Option<Vec<u8>>> {
        let Some(file) = trust::open_entry(path)? else {
            return Ok(None);
        };
        mark_used(&file, path);
        // An entry bigger than the whole cache would be evicted anyway.
        let cap = self.limits.max_bytes.saturating_add(1);
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let mut entry = Vec::with_capacity(len.min(cap) as usize);
        (&file)
            .take(cap)
            .read_to_end(&mut entry)
            .context("reading")?;
        if entry.len() as u64 >= cap {
            anyhow::bail!("larger than the cache's size bound");
        }
        Ok(Some(entry))
    }

    /// Stores a compiled component, sealed for `key`, then trims the cache
    /// to its limits. Written aside and renamed so that a reader never sees
    /// a partial file.
    pub fn store(&self, key: &str, component: &Component) -> Result<()> {
        let bytes = component.serialize().context("serializing component")?;
        let header = self.secret.seal(key, &bytes);
        let path = self.path(key);
        let tmp = self.dir.join(format!("{key}.{}.tmp", std::process::id()));
        write_entry(&tmp, &header, &bytes).with_context(|| format!("writing {}", tmp.display()))?;
        fs::rename(&tmp, &path).with_context(|| format!("renaming to {}", path.display()))?;
        self.evict_and_log();
        Ok(())
    }

    fn evict_and_log(&self) {
        match self.evict() {
            Ok(evicted) if evicted.files > 0 => tracing::info!(
                files = evicted.files,
                bytes = evicted.bytes,
                "evicted from the compile cache"
            ),
            Ok(_) => {}
            Err(err) => tracing::warn!("could not trim the compile cache: {err:#}"),
        }
    }

    /// Removes entries past the age bound, stale temporary files, then the
    /// least recently used entries until the rest fit the size bound.
    pub fn evict(&self) -> Result<Evicted> {
        let now = SystemTime::now();
        let mut entries = Vec::new();
        let mut evicted = Evicted::default();
        let listing =
            fs::read_dir(&self.dir).with_context(|| format!("listing {}", self.dir.display()))?;
        for item in listing {
            let Ok(item) = item else { continue };
            let name = item.file_name();
            let Some(kind) = name.to_str().and_then(kind_of) else {
                continue;
            };
            // `DirEntry::metadata` does not follow symlinks.
            let Ok(meta) = item.metadata() else { continue };
            if !meta.file_type().is_file() {
                continue;
            }
            let used = meta.modified().unwrap_or(now);
            let idle = now.duration_since(used).unwrap_or_default();
            let stale = match kind {
                Kind::Entry => idle > self.limits.max_age,
                Kind::Temporary => idle > STALE_TEMPORARY,
            };
            if stale {
                remove(&self.dir, &name, meta.len(), &mut evicted);
            } else if kind == Kind::Entry {
                entries.push((used, name, meta.len()));
            }
        }
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
        let mut total: u64 = entries.iter().map(|(_, _, len)| len).sum();
        for (_, name, len) in entries {
            if total <= self.limits.max_bytes {
                break;
            }
            total = total.saturating_sub(len);
            remove(&self.dir, &name, len, &mut evicted);
        }
        Ok(evicted)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Entry,
    Temporary,
}

/// Which of this cache's files `name` is, if any: `<key>.cwasm` or
/// `<key>.<pid>.tmp`, with a key as [`ArtifactCache::key`] makes it.
fn kind_of(name: &str) -> Option<Kind> {
    if let Some(key) = name.strip_suffix(".cwasm") {
        return is_key(key).then_some(Kind::Entry);
    }
    let (key, pid) = name.strip_suffix(".tmp")?.split_once('.')?;
    let pid_ok = !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit());
    (is_key(key) && pid_ok).then_some(Kind::Temporary)
}

/// 64 lowercase hex digits of content hash, a dash, 16 of engine hash.
fn is_key(key: &str) -> bool {
    let hex = |s: &str, len: usize| {
        s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    };
    key.split_once('-')
        .is_some_and(|(content, engine)| hex(content, 64) && hex(engine, 16))
}

/// Removes `name` from `dir`. `name` is one component read from `dir`, so
/// the path stays inside it, and removing a path never follows a symlink.
fn remove(dir: &Path, name: &std::ffi::OsStr, len: u64, evicted: &mut Evicted) {
    let path = dir.join(name);
    match fs::remove_file(&path) {
        Ok(()) => {
            evicted.files += 1;
            evicted.bytes = evicted.bytes.saturating_add(len);
        }
        // Another process sharing the cache may have removed it first.
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => tracing::warn!("could not evict {}: {err}", path.display()),
    }
}

/// Sets the entry's modification time to now, which is what eviction reads
/// as its last use. A failure only makes the entry look older.
fn mark_used(file: &fs::File, path: &Path) {
    if let Err(err) = file.set_modified(SystemTime::now()) {
        tracing::debug!("could not mark {} as used: {err}", path.display());
    }
}

/// Writes an entry readable by this user only.
fn write_entry(path: &Path, header: &[u8], artifact: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    // A temporary file of a crashed run with the same pid.
    let _ = fs::remove_file(path);
    let mut file = fs::File::options()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(header)?;
    file.write_all(artifact)
}

/// `content` (64 hex digits) with the engine's hash: the engine hash covers
/// the wasmtime version and every setting that changes generated code;
/// SipHash with fixed keys is stable for a given build, which is all a
/// cache needs.
fn keyed(engine: &Engine, content: &str) -> String {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    format!("{content}-{:016x}", hasher.finish())
}

/// SHA-256 of a module, hex.
pub fn content_hash(wasm: &[u8]) -> String {
    hex(&Sha256::digest(wasm))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

mod trust;

#[cfg(test)]
mod tests;
