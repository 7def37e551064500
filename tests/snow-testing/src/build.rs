//! Building the module under test with `snow build`, once per test binary.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use crate::Error;

/// Builds the module crate in `dir` (usually `env!("CARGO_MANIFEST_DIR")`)
/// with `snow build`, which compiles it for `wasm32-wasip2` in release and
/// checks it as a deploy would, and returns the component's path.
///
/// The first call in a test binary builds; later calls for the same folder
/// return the same path, so every test can call it.
pub fn build_module(dir: impl AsRef<Path>) -> Result<PathBuf, Error> {
    static BUILT: OnceLock<Mutex<HashMap<PathBuf, PathBuf>>> = OnceLock::new();
    let dir = dir.as_ref().to_path_buf();
    // Held through the build: concurrent tests wait for one build.
    let mut built = BUILT
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(wasm) = built.get(&dir) {
        return Ok(wasm.clone());
    }
    let binary = crate::binary()?;
    let output = Command::new(&binary)
        .arg("build")
        .arg(&dir)
        .output()
        .map_err(|e| Error::io(format!("running {} build", binary.display()), e))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(Error::new(format!(
            "`snow build {}` failed ({}):\n{}{stdout}",
            dir.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    let wasm = wasm_path(&stdout)
        .ok_or_else(|| Error::new(format!("`snow build` printed no component path:\n{stdout}")))?;
    built.insert(dir, wasm.clone());
    Ok(wasm)
}

/// `snow build` prints the component's path on its first line.
fn wasm_path(stdout: &str) -> Option<PathBuf> {
    let first = stdout.lines().next()?.trim();
    first.ends_with(".wasm").then(|| PathBuf::from(first))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_path_is_the_first_line() {
        assert_eq!(
            wasm_path("/t/demo.wasm\nok, 3 routes\n"),
            Some(PathBuf::from("/t/demo.wasm"))
        );
        assert_eq!(wasm_path("error: nothing\n"), None);
        assert_eq!(wasm_path(""), None);
    }
}
