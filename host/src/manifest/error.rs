//! What is wrong with a manifest, and where: `FILE:LINE:COLUMN: message`.

use std::path::{Path, PathBuf};

use super::raw::{LIMITS_KEYS, MODULE_KEYS, STORE_KEYS, TOP_KEYS};

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{}: cannot read the manifest", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Not TOML, or a value where the manifest expects a table or an array
    /// (or the other way round).
    #[error("{}:{line}:{column}: {message}", path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error(
        "{}:{line}:{column}: unknown key `{key}` in {table} (expected one of {})",
        path.display(),
        expected.join(", ")
    )]
    UnknownKey {
        path: PathBuf,
        line: usize,
        column: usize,
        key: String,
        /// `the top-level table`, `[limits]` or `[[module]]`.
        table: String,
        expected: Vec<String>,
    },
    /// A value of the wrong type or form; `key` is its dotted path.
    #[error("{}:{line}:{column}: {key}: {message}", path.display())]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        key: String,
        message: String,
    },
    /// A `[[module]]` or `[[store]]` without one of its required keys; the
    /// position is the table's header.
    #[error("{}:{line}:{column}: {key} is missing ({needs})", path.display())]
    Missing {
        path: PathBuf,
        line: usize,
        column: usize,
        key: String,
        /// What the table needs, in words.
        needs: &'static str,
    },
    /// A module name or prefix used twice; the position is the second use.
    #[error(
        "{}:{line}:{column}: {key}: `{value}` is already used at line {first_line}",
        path.display()
    )]
    Duplicate {
        path: PathBuf,
        line: usize,
        column: usize,
        key: String,
        value: String,
        first_line: usize,
    },
    #[error("{}: no [[module]] table; at least one module is required", path.display())]
    NoModules { path: PathBuf },
}

impl ManifestError {
    /// The 1-based line the error points at, when it points at one.
    pub fn line(&self) -> Option<usize> {
        match self {
            Self::Syntax { line, .. }
            | Self::UnknownKey { line, .. }
            | Self::Invalid { line, .. }
            | Self::Missing { line, .. }
            | Self::Duplicate { line, .. } => Some(*line),
            Self::Read { .. } | Self::NoModules { .. } => None,
        }
    }
}

/// 1-based line and column (in characters) of a byte offset in `text`.
pub(super) fn position(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = before.matches('\n').count() + 1;
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// A document serde could not read: not TOML, a misspelt key, or a table
/// where a value belongs (or the other way round).
pub(super) fn from_toml(text: &str, path: &Path, err: &toml::de::Error) -> ManifestError {
    let (line, column) = position(text, err.span().map_or(0, |span| span.start));
    let path = path.to_path_buf();
    // toml hands a date or time to serde as a table with one private
    // key, so one where a table belongs reads as that key's error.
    if err.message().contains("$__toml_private_datetime") {
        return ManifestError::Syntax {
            path,
            line,
            column,
            message: "a date or time is not valid here".into(),
        };
    }
    match unknown_key(err.message()) {
        Some((key, table, expected)) => ManifestError::UnknownKey {
            path,
            line,
            column,
            key,
            table: table.to_string(),
            expected,
        },
        None => ManifestError::Syntax {
            path,
            line,
            column,
            message: err.message().to_string(),
        },
    }
}

/// Recognises serde's unknown-field message (``unknown field `k`, expected
/// one of `a`, `b` ``) and names the table from the keys it lists.
fn unknown_key(message: &str) -> Option<(String, &'static str, Vec<String>)> {
    let rest = message.strip_prefix("unknown field `")?;
    let (key, expected) = rest.split_once('`')?;
    // The listed keys are the odd pieces between backticks.
    let expected: Vec<String> = expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    let table = [
        ("the top-level table", TOP_KEYS),
        ("[limits]", LIMITS_KEYS),
        ("[[module]]", MODULE_KEYS),
        ("[[store]]", STORE_KEYS),
    ]
    .into_iter()
    .find(|(_, keys)| keys.iter().eq(expected.iter()))?
    .0;
    Some((key.to_string(), table, expected))
}
