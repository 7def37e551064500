//! Builds the guest modules under `guest/` for `wasm32-wasip2` as part of the
//! normal cargo build: `hello` is embedded as the default app, the others are
//! exposed to the integration tests by path.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Every guest crate the host embeds or the tests load. A module added to
/// `guest/` without an entry here is not built.
const GUESTS: &[&str] = &[
    "hello",
    "fanout",
    "testkit",
    "version-one",
    "version-two",
    "otherworld",
    "broken",
];

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest
        .parent()
        .expect("host/ sits in the workspace")
        .to_path_buf();
    let out = PathBuf::from(env::var("OUT_DIR").expect("set by cargo"));
    for watched in ["guest", "wit", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    println!("cargo:rerun-if-env-changed=SNOW_GUEST_PROFILE");

    let target_dir = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("wasm-guests");
    build_guests(&root, &target_dir);

    let built = target_dir.join("wasm32-wasip2").join("release");
    for name in GUESTS {
        // Cargo names a library's artifact after the crate, dashes made
        // underscores.
        let file = name.replace('-', "_");
        let from = built.join(format!("{file}.wasm"));
        let to = out.join(format!("{file}.wasm"));
        fs::copy(&from, &to)
            .unwrap_or_else(|e| panic!("copying {} to {}: {e}", from.display(), to.display()));
        let var = format!("SNOW_GUEST_{}", file.to_uppercase());
        println!("cargo:rustc-env={var}={}", to.display());
    }
}

/// rust-toolchain.toml lists the target, but rustup adds listed targets only
/// when it installs the toolchain; an existing toolchain may lack it.
fn ensure_wasm_target() {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let installed = sysroot
        .map(|root| root.join("lib/rustlib/wasm32-wasip2").is_dir())
        .unwrap_or(false);
    if installed {
        return;
    }
    let mut cmd = Command::new("rustup");
    cmd.args(["target", "add", "wasm32-wasip2"]);
    if let Ok(toolchain) = env::var("RUSTUP_TOOLCHAIN") {
        cmd.args(["--toolchain", &toolchain]);
    }
    match cmd.status() {
        Ok(status) if status.success() => {}
        other => println!(
            "cargo:warning=could not add the wasm32-wasip2 target with rustup ({other:?}); \
             run `rustup target add wasm32-wasip2`"
        ),
    }
}

fn build_guests(root: &Path, target_dir: &Path) {
    ensure_wasm_target();
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root)
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .arg("--target-dir")
        .arg(target_dir);
    for name in GUESTS {
        cmd.args(["-p", name]);
    }
    // The outer build's flags and wrappers (clippy, coverage, a host
    // target) are meant for the host, not for the guests.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_RUSTFLAGS",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("running cargo to build the guests: {e}"));
    if !status.success() {
        panic!("building the guest modules for wasm32-wasip2 failed ({status})");
    }
}
