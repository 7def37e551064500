//! On-disk cache of compiled components, keyed by the module's content hash
//! and the engine's compatibility hash, so a restart does not recompile.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use anyhow::Result;
use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::error::Context;
use wasmtime::Engine;

pub struct ArtifactCache {
    dir: PathBuf,
}

impl ArtifactCache {
    /// Opens (creating if needed) the cache directory.
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating cache directory {}", dir.display()))?;
        Ok(Self {
            dir: dir.to_path_buf(),
        })
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

    pub fn key(&self, engine: &Engine, wasm: &[u8]) -> String {
        // The engine hash covers the wasmtime version and every setting that
        // changes generated code; SipHash with fixed keys is stable for a
        // given build, which is all a cache needs.
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        format!("{}-{:016x}", content_hash(wasm), hasher.finish())
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.cwasm"))
    }

    /// Loads a compiled component; any failure is a miss.
    pub fn load(&self, engine: &Engine, key: &str) -> Option<Component> {
        let path = self.path(key);
        if !path.exists() {
            return None;
        }
        // SAFETY: the file was written by `store` below from
        // `Component::serialize` of this engine's configuration (the key
        // includes the compatibility hash) into a directory owned by the
        // operator; wasmtime still checks its header and version.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(component) => Some(component),
            Err(err) => {
                tracing::warn!("ignoring unusable cache entry {}: {err:#}", path.display());
                None
            }
        }
    }

    /// Stores a compiled component; written aside and renamed so a reader
    /// never sees a partial file.
    pub fn store(&self, key: &str, component: &Component) -> Result<()> {
        let bytes = component.serialize().context("serializing component")?;
        let path = self.path(key);
        let tmp = self.dir.join(format!("{key}.{}.tmp", std::process::id()));
        std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("renaming to {}", path.display()))?;
        Ok(())
    }
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
