//! Building a module crate for `wasm32-wasip2` with the user's own cargo,
//! as `snow build` and `snow dev` do.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

pub(super) const TARGET: &str = "wasm32-wasip2";

/// Builds the package whose `Cargo.toml` is in `dir`, in release, and
/// returns its component's path. Cargo's own messages go to stderr. With
/// `wasi_http`, the SDK's `wasi-http` feature makes it a standard
/// `wasi:http/proxy` component.
pub(super) fn build_module(dir: &Path, wasi_http: bool) -> Result<PathBuf> {
    let manifest = dir.join("Cargo.toml");
    if !manifest.is_file() {
        bail!(
            "no Cargo.toml in {}: run this in a module's folder (`snow new NAME` makes one)",
            dir.display()
        );
    }
    let manifest = manifest
        .canonicalize()
        .with_context(|| format!("resolving {}", manifest.display()))?;
    ensure_target(dir);
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let features: &[&str] = match wasi_http {
        true => &["--features", "snow-guest/wasi-http"],
        false => &[],
    };
    let mut child = Command::new(cargo)
        .current_dir(dir)
        .args(["build", "--release", "--target", TARGET])
        .args(features)
        .args(["--message-format", "json-render-diagnostics"])
        .arg("--manifest-path")
        .arg(&manifest)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("running cargo (is Rust installed? https://rustup.rs)")?;
    let stdout = child
        .stdout
        .take()
        .context("cargo's output was not captured")?;
    let mut component = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.context("reading cargo's messages")?;
        if let Some(wasm) = component_in(&line, &manifest) {
            component = Some(wasm);
        }
    }
    let status = child.wait().context("waiting for cargo")?;
    if !status.success() {
        bail!("cargo build failed ({status})");
    }
    component.with_context(|| {
        format!(
            "{} builds no cdylib: a Snow module needs `[lib] crate-type = [\"cdylib\"]`",
            manifest.display()
        )
    })
}

/// The `.wasm` of a `compiler-artifact` message for the package of
/// `manifest`, if `line` is one.
fn component_in(line: &str, manifest: &Path) -> Option<PathBuf> {
    let message: serde_json::Value = serde_json::from_str(line).ok()?;
    if message["reason"] != "compiler-artifact"
        || message["manifest_path"].as_str().map(Path::new) != Some(manifest)
    {
        return None;
    }
    let kinds = message["target"]["kind"].as_array()?;
    if !kinds.iter().any(|kind| kind == "cdylib") {
        return None;
    }
    message["filenames"]
        .as_array()?
        .iter()
        .filter_map(|name| name.as_str())
        .find(|name| name.ends_with(".wasm"))
        .map(PathBuf::from)
}

/// rustup adds a `rust-toolchain.toml`'s targets only when it installs the
/// toolchain; one installed before may lack ours.
fn ensure_target(dir: &Path) {
    let sysroot = Command::new("rustc")
        .current_dir(dir)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    match sysroot {
        Some(root) if root.join("lib/rustlib").join(TARGET).is_dir() => {}
        // Without rustup, cargo's own error says what is missing.
        _ => {
            tracing::info!("adding the {TARGET} target with rustup");
            let added = Command::new("rustup")
                .current_dir(dir)
                .args(["target", "add", TARGET])
                .status();
            if !added.is_ok_and(|status| status.success()) {
                tracing::warn!(
                    "could not add {TARGET} with rustup; run `rustup target add {TARGET}`"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_component_is_the_cdylib_of_this_package() {
        let manifest = Path::new("/m/demo/Cargo.toml");
        let artifact = |path: &str, kind: &str, file: &str| {
            serde_json::json!({
                "reason": "compiler-artifact",
                "manifest_path": path,
                "target": {"kind": [kind]},
                "filenames": [file],
            })
            .to_string()
        };
        let ours = artifact("/m/demo/Cargo.toml", "cdylib", "/t/demo.wasm");
        assert_eq!(
            component_in(&ours, manifest),
            Some(PathBuf::from("/t/demo.wasm"))
        );
        let dependency = artifact("/r/regex/Cargo.toml", "cdylib", "/t/regex.wasm");
        assert_eq!(component_in(&dependency, manifest), None);
        let rlib = artifact("/m/demo/Cargo.toml", "lib", "/t/libdemo.rlib");
        assert_eq!(component_in(&rlib, manifest), None);
        assert_eq!(component_in("not json", manifest), None);
        assert_eq!(
            component_in(r#"{"reason":"build-finished"}"#, manifest),
            None
        );
    }
}
