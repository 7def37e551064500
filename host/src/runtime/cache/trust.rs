//! Why the cache may load what it finds: a compiled entry is native code
//! that `deserialize` runs without checking, so each entry carries an
//! HMAC-SHA256 over its cache key and its bytes, made with a secret key only
//! this user can read. An entry copied from another module's file, cut short
//! or altered fails the check and is never loaded.
//!
//! The secret lives in the cache directory as [`KEY_FILE`], mode 0600; the
//! directory is created 0700. Both must belong to this user and be writable
//! by no one else (the key file readable by no one else), or the cache is
//! refused: whoever can write them could forge entries.

use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use subtle::ConstantTimeEq;

/// The secret's file name inside the cache directory. Eviction never
/// touches it: it removes only `<key>.cwasm` and its temporary files.
pub(super) const KEY_FILE: &str = "snow-cache.key";
/// 256 bits, HMAC-SHA256's block-size-independent recommendation.
pub(super) const KEY_LEN: usize = 32;

/// An entry starts with this, then the tag, then the serialized component.
const MAGIC: &[u8; 8] = b"snowmac1";
const TAG_LEN: usize = 32;
pub(super) const HEADER_LEN: usize = MAGIC.len() + TAG_LEN;

/// Creates `dir` (0700, parents too) if missing, then checks that it is a
/// directory this user owns and no one else can write.
pub(super) fn prepare_dir(dir: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating cache directory {}", dir.display()))?;
    let meta =
        fs::metadata(dir).with_context(|| format!("reading cache directory {}", dir.display()))?;
    if !meta.is_dir() {
        bail!("cache directory {} is not a directory", dir.display());
    }
    check_private(dir, &meta, 0o022, "cache directory")
}

/// Refuses a file this user does not own, or one whose mode has any of the
/// `forbidden` permission bits.
fn check_private(path: &Path, meta: &Metadata, forbidden: u32, what: &str) -> Result<()> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me {
        bail!(
            "{what} {} belongs to uid {}, not to this user (uid {me})",
            path.display(),
            meta.uid()
        );
    }
    let mode = meta.mode() & 0o7777;
    if mode & forbidden != 0 {
        bail!(
            "{what} {} has mode {mode:04o}; it must not be {} by group or others",
            path.display(),
            if forbidden & 0o044 != 0 {
                "readable or writable"
            } else {
                "writable"
            }
        );
    }
    Ok(())
}

/// The secret that seals and checks entries.
#[derive(Clone)]
pub(super) struct EntryKey(hmac::Key);

/// Why an entry was not trusted.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(super) enum Untrusted {
    #[error("too short to be a cache entry ({0} bytes)")]
    Short(usize),
    #[error("not a sealed cache entry (unknown header)")]
    Header,
    #[error("its seal does not match (altered, or written for another module or key)")]
    Seal,
}

impl EntryKey {
    /// Reads the key file in `dir`, creating it when missing and replacing
    /// it when it does not hold a whole key. A new key makes every older
    /// entry fail its check, so they are recompiled, never trusted.
    pub(super) fn load_or_create(dir: &Path) -> Result<Self> {
        let path = dir.join(KEY_FILE);
        match read_key(&path)? {
            Stored::Key(bytes) => return Ok(Self::new(&bytes)),
            Stored::Missing => {}
            Stored::Malformed(len) => {
                tracing::warn!(
                    "cache key file {} holds {len} bytes, not {KEY_LEN}; making a new key \
                     (entries sealed with the old one will be recompiled)",
                    path.display()
                );
                let bytes = write_new_key(dir, &path, Install::Replace)?;
                return Ok(Self::new(&bytes));
            }
        }
        match write_new_key(dir, &path, Install::IfAbsent) {
            Ok(bytes) => Ok(Self::new(&bytes)),
            // Another process sharing the directory made one first: use it.
            Err(err) if is_already_exists(&err) => match read_key(&path)? {
                Stored::Key(bytes) => Ok(Self::new(&bytes)),
                _ => bail!("cache key file {} vanished or changed", path.display()),
            },
            Err(err) => Err(err),
        }
    }

    fn new(bytes: &[u8]) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA256, bytes))
    }

    fn tag(&self, key: &str, artifact: &[u8]) -> hmac::Tag {
        let mut ctx = hmac::Context::with_key(&self.0);
        // The length first, so no (key, artifact) pair runs into another.
        ctx.update(&(key.len() as u64).to_be_bytes());
        ctx.update(key.as_bytes());
        ctx.update(artifact);
        ctx.sign()
    }

    /// The header to write before `artifact` in the entry for `key`.
    pub(super) fn seal(&self, key: &str, artifact: &[u8]) -> [u8; HEADER_LEN] {
        let mut header = [0u8; HEADER_LEN];
        header[..MAGIC.len()].copy_from_slice(MAGIC);
        header[MAGIC.len()..].copy_from_slice(self.tag(key, artifact).as_ref());
        header
    }

    /// The serialized component in `entry` if it was sealed for `key` with
    /// this secret. The comparison takes the same time however many bytes
    /// of the tag match.
    pub(super) fn open<'a>(&self, key: &str, entry: &'a [u8]) -> Result<&'a [u8], Untrusted> {
        if entry.len() < HEADER_LEN {
            return Err(Untrusted::Short(entry.len()));
        }
        let (header, artifact) = entry.split_at(HEADER_LEN);
        let (magic, tag) = header.split_at(MAGIC.len());
        if magic != MAGIC {
            return Err(Untrusted::Header);
        }
        let expected = self.tag(key, artifact);
        if !bool::from(expected.as_ref().ct_eq(tag)) {
            return Err(Untrusted::Seal);
        }
        Ok(artifact)
    }
}

enum Stored {
    Missing,
    /// A key file of the wrong length: cut short by a crash or a full disk.
    Malformed(usize),
    Key([u8; KEY_LEN]),
}

/// Reads the key file without following a symlink or blocking on a FIFO,
/// checking the opened file itself.
fn read_key(path: &Path) -> Result<Stored> {
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
    {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Stored::Missing),
        Err(err) if err.raw_os_error() == Some(libc::ELOOP) => {
            bail!("cache key file {} is a symlink", path.display())
        }
        Err(err) => {
            return Err(err).with_context(|| format!("opening cache key file {}", path.display()))
        }
    };
    let meta = file
        .metadata()
        .with_context(|| format!("reading cache key file {}", path.display()))?;
    if !meta.is_file() {
        bail!("cache key file {} is not a regular file", path.display());
    }
    check_private(path, &meta, 0o077, "cache key file")?;
    let mut bytes = Vec::with_capacity(KEY_LEN + 1);
    file.take(KEY_LEN as u64 + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading cache key file {}", path.display()))?;
    Ok(match <[u8; KEY_LEN]>::try_from(bytes.as_slice()) {
        Ok(key) => Stored::Key(key),
        Err(_) => Stored::Malformed(bytes.len()),
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Install {
    /// Fail with `AlreadyExists` if another process made one meanwhile.
    IfAbsent,
    Replace,
}

/// Writes a fresh random key aside (0600) and moves it into place, so no
/// reader ever sees part of a key.
fn write_new_key(dir: &Path, path: &Path, install: Install) -> Result<[u8; KEY_LEN]> {
    let mut key = [0u8; KEY_LEN];
    SystemRandom::new()
        .fill(&mut key)
        .map_err(|_| anyhow!("the system gave no random bytes for the cache key"))?;
    let tmp: PathBuf = dir.join(format!("{KEY_FILE}.{}.tmp", std::process::id()));
    // Left by a crashed run with the same pid; remove_file never follows a link.
    let _ = fs::remove_file(&tmp);
    let written = write_private(&tmp, &key).and_then(|()| match install {
        Install::IfAbsent => fs::hard_link(&tmp, path),
        Install::Replace => fs::rename(&tmp, path),
    });
    let _ = fs::remove_file(&tmp);
    match written {
        Ok(()) => {
            tracing::info!("created compile cache key {}", path.display());
            Ok(key)
        }
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => Err(err.into()),
        Err(err) => Err(err).with_context(|| format!("writing cache key file {}", path.display())),
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

fn is_already_exists(err: &anyhow::Error) -> bool {
    err.downcast_ref::<io::Error>()
        .is_some_and(|e| e.kind() == io::ErrorKind::AlreadyExists)
}

/// Opens an entry for reading without following a symlink or blocking,
/// and checks the opened file is a regular one. `Ok(None)` when absent.
pub(super) fn open_entry(path: &Path) -> Result<Option<File>> {
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
    {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) if err.raw_os_error() == Some(libc::ELOOP) => bail!("a symlink"),
        Err(err) => return Err(err).context("opening"),
    };
    let meta = file.metadata().context("reading its metadata")?;
    if !meta.is_file() {
        bail!("not a regular file");
    }
    Ok(Some(file))
}
