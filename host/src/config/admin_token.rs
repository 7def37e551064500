//! The admin API's bearer token: read from a file or from the environment,
//! never from the command line, where every local user can read it in the
//! process list.
//!
//! Only the token's SHA-256 digest is kept. A presented token is hashed too
//! and the two digests, always 32 bytes, are compared in constant time, so
//! how long a comparison takes says nothing about the token, not even its
//! length.

use std::fmt;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The environment variable holding the token, when no file is configured.
pub const ADMIN_TOKEN_ENV: &str = "SNOW_ADMIN_TOKEN";

/// Shortest token accepted: 16 characters, guessable by nobody when random.
pub const MIN_ADMIN_TOKEN_LEN: usize = 16;

/// Longest token accepted, and so the largest token file read.
pub const MAX_ADMIN_TOKEN_LEN: usize = 1024;

/// A configured admin token. Its `Debug` shows nothing of it.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminToken {
    digest: [u8; 32],
}

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminToken(..)")
    }
}

impl AdminToken {
    /// A token from its text: visible ASCII (what an `Authorization` header
    /// carries unchanged), [`MIN_ADMIN_TOKEN_LEN`] to [`MAX_ADMIN_TOKEN_LEN`]
    /// long. One trailing line ending is dropped, as files and `echo` add it.
    pub fn new(text: &[u8]) -> Result<Self, String> {
        let text = text.strip_suffix(b"\n").unwrap_or(text);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        if text.is_empty() {
            return Err("the admin token is empty".into());
        }
        if let Some(bad) = text.iter().find(|b| !b.is_ascii_graphic()) {
            return Err(format!(
                "the admin token may hold only visible ASCII characters, not byte {bad:#04x} \
                 (spaces and line breaks included)"
            ));
        }
        if text.len() < MIN_ADMIN_TOKEN_LEN {
            return Err(format!(
                "the admin token is {} characters; at least {MIN_ADMIN_TOKEN_LEN} are required \
                 (e.g. `openssl rand -hex 32`)",
                text.len()
            ));
        }
        if text.len() > MAX_ADMIN_TOKEN_LEN {
            return Err(format!(
                "the admin token is longer than {MAX_ADMIN_TOKEN_LEN} characters"
            ));
        }
        Ok(Self {
            digest: Sha256::digest(text).into(),
        })
    }

    /// Reads the token from `path`: a regular file (a symlink to one is
    /// followed) that neither its group nor other users can read.
    pub fn from_file(path: &Path) -> Result<Self, String> {
        let shown = path.display();
        let file =
            std::fs::File::open(path).map_err(|err| format!("admin token file {shown}: {err}"))?;
        let meta = file
            .metadata()
            .map_err(|err| format!("admin token file {shown}: {err}"))?;
        if !meta.is_file() {
            return Err(format!("admin token file {shown} is not a regular file"));
        }
        let mode = meta.permissions().mode();
        if mode & 0o044 != 0 {
            return Err(format!(
                "admin token file {shown} can be read by other users (mode {:o}); \
                 run `chmod 600 {shown}`",
                mode & 0o777
            ));
        }
        // One byte more than a token and its line ending tells "too long"
        // apart without reading an arbitrarily large file.
        let mut text = Vec::new();
        file.take(MAX_ADMIN_TOKEN_LEN as u64 + 3)
            .read_to_end(&mut text)
            .map_err(|err| format!("admin token file {shown}: {err}"))?;
        Self::new(&text).map_err(|err| format!("admin token file {shown}: {err}"))
    }

    /// The token set in [`ADMIN_TOKEN_ENV`], if that variable is set.
    pub fn from_env() -> Result<Option<Self>, String> {
        match std::env::var_os(ADMIN_TOKEN_ENV) {
            None => Ok(None),
            Some(value) => Self::new(value.as_encoded_bytes())
                .map(Some)
                .map_err(|err| format!("{ADMIN_TOKEN_ENV}: {err}")),
        }
    }

    /// The token configured for a run: the file when one is named, else
    /// the environment variable; both at once is refused as ambiguous.
    pub fn configured(file: Option<&Path>) -> Result<Option<Self>, String> {
        let from_env = Self::from_env()?;
        match (file, from_env) {
            (Some(path), None) => Self::from_file(path).map(Some),
            (None, token) => Ok(token),
            (Some(path), Some(_)) => Err(format!(
                "both {ADMIN_TOKEN_ENV} and an admin token file ({}) are set; use one",
                path.display()
            )),
        }
    }

    /// Whether `presented` is this token, in time independent of both.
    pub fn matches(&self, presented: &[u8]) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented).into();
        self.digest.ct_eq(&digest).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "0123456789abcdef-token";

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("snow-admin-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(name)
    }

    fn write(name: &str, text: &[u8], mode: u32) -> std::path::PathBuf {
        let path = scratch(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn a_token_matches_only_itself() {
        let token = AdminToken::new(GOOD.as_bytes()).unwrap();
        assert!(token.matches(GOOD.as_bytes()));
        assert!(!token.matches(b"0123456789abcdef-tokeN"));
        assert!(!token.matches(b"0123456789abcdef-token "));
        assert!(!token.matches(b"0123456789abcdef"));
        assert!(!token.matches(b""));
        assert!(!token.matches(&[0xff; 4096]));
        assert_eq!(format!("{token:?}"), "AdminToken(..)");
    }

    #[test]
    fn one_trailing_line_ending_is_dropped() {
        let token = AdminToken::new(GOOD.as_bytes()).unwrap();
        assert_eq!(
            AdminToken::new(format!("{GOOD}\n").as_bytes()),
            Ok(token.clone())
        );
        assert_eq!(AdminToken::new(format!("{GOOD}\r\n").as_bytes()), Ok(token));
        assert!(AdminToken::new(format!("{GOOD}\n\n").as_bytes()).is_err());
    }

    #[test]
    fn bad_tokens_are_refused() {
        let cases: [(&[u8], &str); 7] = [
            (b"", "empty"),
            (b"\n", "empty"),
            (b"short", "5 characters; at least 16"),
            (b"0123456789abcdef 0123", "byte 0x20"),
            (b" 0123456789abcdef", "byte 0x20"),
            (b"0123456789abcdef\xff", "byte 0xff"),
            (b"0123456789abcdef\t", "byte 0x09"),
        ];
        for (text, expected) in cases {
            let err = AdminToken::new(text).unwrap_err();
            assert!(err.contains(expected), "{text:?}: {err}");
        }
        let long = vec![b'a'; MAX_ADMIN_TOKEN_LEN + 1];
        assert!(AdminToken::new(&long)
            .unwrap_err()
            .contains("longer than 1024"));
        assert!(AdminToken::new(&long[1..]).is_ok());
    }

    #[test]
    fn a_token_file_must_be_private_regular_and_small() {
        let good = write("good", format!("{GOOD}\n").as_bytes(), 0o600);
        let token = AdminToken::from_file(&good).unwrap();
        assert!(token.matches(GOOD.as_bytes()));
        let readable = write("readable", GOOD.as_bytes(), 0o644);
        let err = AdminToken::from_file(&readable).unwrap_err();
        assert!(
            err.contains("can be read by other users (mode 644)"),
            "{err}"
        );
        assert!(err.contains("chmod 600"), "{err}");
        let group = write("group", GOOD.as_bytes(), 0o640);
        assert!(AdminToken::from_file(&group).is_err());
        let dir = scratch("a-dir");
        std::fs::create_dir_all(&dir).unwrap();
        let err = AdminToken::from_file(&dir).unwrap_err();
        assert!(err.contains("not a regular file"), "{err}");
        let err = AdminToken::from_file(Path::new("/dev/zero")).unwrap_err();
        assert!(err.contains("not a regular file"), "{err}");
        let huge = write("huge", &vec![b'a'; 1 << 20], 0o600);
        let err = AdminToken::from_file(&huge).unwrap_err();
        assert!(err.contains("longer than"), "{err}");
        let empty = write("empty", b"", 0o600);
        assert!(AdminToken::from_file(&empty).unwrap_err().contains("empty"));
        let err = AdminToken::from_file(&scratch("missing")).unwrap_err();
        assert!(err.contains("missing"), "{err}");
    }
}
