//! Reading a module's wasm from a path an operator gave: a manifest's
//! `wasm`, `snow serve X.wasm`, `snow check`, or a watched file. Only a
//! regular file of at most [`MAX_MODULE_SIZE`] bytes is read. `/dev/zero`
//! would otherwise fill memory, and a FIFO would block start-up forever.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Largest module accepted from a file or from `PUT /modules/NAME`.
pub const MAX_MODULE_SIZE: u64 = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ModuleFileError {
    #[error("cannot open module {}: {source}", path.display())]
    Open { path: PathBuf, source: io::Error },
    #[error("module {} is {kind}, not a regular file", path.display())]
    NotRegular { path: PathBuf, kind: &'static str },
    #[error(
        "module {} is {size} bytes or more, over the limit of {MAX_MODULE_SIZE} bytes (64 MiB)",
        path.display()
    )]
    TooLarge { path: PathBuf, size: u64 },
    #[error("cannot read module {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
}

impl ModuleFileError {
    /// The file is there but is not something a module may be read from,
    /// as opposed to missing or unreadable for now (mid-rename).
    pub fn is_refusal(&self) -> bool {
        matches!(self, Self::NotRegular { .. } | Self::TooLarge { .. })
    }
}

/// Reads the module at `path`: opens it without blocking (a FIFO with no
/// writer would otherwise wait forever), checks the opened file is regular
/// and within the cap, and reads at most one byte past the cap, so a file
/// swapped or grown after the check still cannot exceed it.
pub fn read_module_file(path: &Path) -> Result<Vec<u8>, ModuleFileError> {
    read_capped(path, MAX_MODULE_SIZE)
}

fn read_capped(path: &Path, cap: u64) -> Result<Vec<u8>, ModuleFileError> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|source| ModuleFileError::Open {
            path: path.to_path_buf(),
            source,
        })?;
    let read_err = |source| ModuleFileError::Read {
        path: path.to_path_buf(),
        source,
    };
    let meta = file.metadata().map_err(read_err)?;
    if !meta.is_file() {
        return Err(ModuleFileError::NotRegular {
            path: path.to_path_buf(),
            kind: kind_of(&meta.file_type()),
        });
    }
    let too_large = |size| ModuleFileError::TooLarge {
        path: path.to_path_buf(),
        size,
    };
    if meta.len() > cap {
        return Err(too_large(meta.len()));
    }
    let mut wasm = Vec::with_capacity(meta.len() as usize);
    read_up_to(&file, cap + 1, &mut wasm).map_err(read_err)?;
    if wasm.len() as u64 > cap {
        return Err(too_large(wasm.len() as u64));
    }
    Ok(wasm)
}

fn read_up_to(file: &File, limit: u64, into: &mut Vec<u8>) -> io::Result<()> {
    file.take(limit).read_to_end(into).map(drop)
}

fn kind_of(kind: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "not a file"
    }
}

#[cfg(test)]
mod tests;
