use std::path::{Path, PathBuf};

use crate::Error;

/// The environment variable naming the `snow` binary to test with.
pub const BINARY_ENV: &str = "SNOW_BIN";

/// The `snow` binary: `SNOW_BIN` when set, else `snow` on the `PATH`. The
/// error says how to get one.
pub fn binary() -> Result<PathBuf, Error> {
    if let Some(path) = std::env::var_os(BINARY_ENV) {
        let path = PathBuf::from(path);
        return match path.is_file() {
            true => Ok(path),
            false => Err(Error::new(format!(
                "{BINARY_ENV} is {}, which is not a file",
                path.display()
            ))),
        };
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("snow"))
        .find(|candidate| is_executable(candidate))
        .ok_or_else(|| {
            Error::new(format!(
                "no `snow` binary: none on the PATH and {BINARY_ENV} is not set. Install it \
                 from a clone of Snow with `cargo install --path host`, or set {BINARY_ENV} \
                 to its path"
            ))
        })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}
