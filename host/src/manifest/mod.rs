//! The deployment manifest, `snow.toml`: server settings plus the route
//! modules to serve, each mounted under its own path prefix.
//!
//! ```toml
//! listen = "127.0.0.1:8012"
//! admin = "127.0.0.1:8013"
//! admin_token_file = "admin.token"
//! health = "0.0.0.0:8014"
//!
//! [limits]
//! max_body = "10MiB"
//! request_timeout = "30s"
//! drain_delay = "10s"
//! max_stack = "1MiB"
//!
//! [[module]]
//! name = "hello"
//! prefix = "/"
//! wasm = "hello.wasm"
//! max_call_time = "100ms"
//! allow_outbound = ["https://api.example.com"]
//! [module.env]
//! GREETING = "hello"
//! ```
//!
//! Settings left out stay `None`: the manifest is one layer of
//! [`crate::config::resolve`], over the defaults and under the flags.
//!
//! Mistakes are reported as `FILE:LINE:COLUMN: message`, with the key named
//! as a dotted path such as `module[1].max_call_time`, where module indices
//! count from 0 in file order. One mistake is reported at a time: the one
//! nearest the top of the file, whatever order the checks run in.
//!
//! - `raw`   — the document as serde reads it;
//! - `value` — typed values (sizes, durations, addresses, rules, …);
//! - `check` — from the raw document to a [`Manifest`];
//! - `error` — [`ManifestError`] and positions.

mod check;
mod error;
mod raw;
mod stores;
mod value;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use crate::config::{ModuleLayer, ServerLayer};

pub use error::ManifestError;

/// A parsed and validated `snow.toml`.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// Where the manifest was read from, as given.
    pub path: PathBuf,
    /// The top-level settings and `[limits]`.
    pub server: ServerLayer,
    /// In file order; at least one.
    pub modules: Vec<ModuleSpec>,
}

/// One `[[module]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ModuleSpec {
    pub name: String,
    pub prefix: String,
    /// Relative paths are resolved against the manifest's directory.
    pub wasm: PathBuf,
    /// Reload the module when its file changes.
    pub watch: bool,
    /// Sorted by name.
    pub env: Vec<(String, String)>,
    pub settings: ModuleLayer,
}

impl Manifest {
    pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses `text` as if read from `path`, which names the file in errors
    /// and anchors relative `wasm` paths.
    pub fn parse(text: &str, path: &Path) -> Result<Manifest, ManifestError> {
        let raw: raw::RawManifest =
            toml::from_str(text).map_err(|err| error::from_toml(text, path, &err))?;
        let mut check = check::Checker {
            text,
            path,
            first: None,
        };
        let manifest = check.manifest(raw);
        match check.first {
            Some((_, err)) => Err(err),
            None => Ok(manifest),
        }
    }
}
