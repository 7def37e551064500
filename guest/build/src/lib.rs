//! Builds guest crates of this workspace for `wasm32-wasip2` from a build
//! script, with a nested cargo: the host's build script builds the default
//! app it embeds, the test-guests crate the modules the integration tests
//! load. Both share one target dir, and so do the SDK's two builds, so the
//! SDK's dependencies and the macros behind them compile once for wasm.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root: this crate lives at `guest/build`.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("guest/build sits two levels below the workspace root")
        .to_path_buf()
}

/// Reruns the calling build script when anything under these paths,
/// relative to the workspace root, changes.
pub fn rerun_if_changed(paths: &[&str]) {
    let root = workspace_root();
    for path in paths {
        println!("cargo:rerun-if-changed={}", root.join(path).display());
    }
}

/// Builds `packages` (release, `wasm32-wasip2`) and copies each one's
/// component into the calling build script's `OUT_DIR`, so a later guest
/// build cannot change what this build already points at. Returns the
/// copies' paths in the order of `packages`.
pub fn build(packages: &[&str]) -> Vec<PathBuf> {
    build_variant(packages, &Variant::SNOW)
}

/// Like [`build`], with the SDK's `wasi-http` feature: each module as a
/// standard `wasi:http/proxy` component, copied as `NAME_wasi_http.wasm`.
pub fn build_wasi_http(packages: &[&str]) -> Vec<PathBuf> {
    build_variant(packages, &Variant::WASI_HTTP)
}

/// One way of building the guests.
struct Variant {
    features: &'static [&'static str],
    suffix: &'static str,
}

impl Variant {
    const SNOW: Variant = Variant {
        features: &[],
        suffix: "",
    };
    const WASI_HTTP: Variant = Variant {
        features: &["snow-guest/wasi-http"],
        suffix: "_wasi_http",
    };
}

fn build_variant(packages: &[&str], variant: &Variant) -> Vec<PathBuf> {
    let root = workspace_root();
    let out = PathBuf::from(env::var("OUT_DIR").expect("set by cargo for build scripts"));
    let target_dir = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("wasm-guests");
    // Both variants leave a package's component at the same path, and the
    // host's and the tests' build scripts run at once: the file is copied
    // before the other build may overwrite it. Cargo's own lock on the
    // target dir ends with cargo, before the copy.
    let _lock = lock(&target_dir);
    run_cargo(&root, &target_dir, packages, variant.features);

    let built = target_dir.join("wasm32-wasip2").join("release");
    // Each variant's components under names of their own, for tools outside
    // cargo such as the benchmarks.
    let components = target_dir.join("components");
    fs::create_dir_all(&components)
        .unwrap_or_else(|e| panic!("creating {}: {e}", components.display()));
    packages
        .iter()
        .map(|name| {
            // Cargo names a library's artifact after the crate, dashes made
            // underscores.
            let stem = name.replace('-', "_");
            let from = built.join(format!("{stem}.wasm"));
            let file = format!("{stem}{}.wasm", variant.suffix);
            copy(&from, &components.join(&file));
            let to = out.join(file);
            copy(&from, &to);
            to
        })
        .collect()
}

fn copy(from: &Path, to: &Path) {
    fs::copy(from, to)
        .unwrap_or_else(|e| panic!("copying {} to {}: {e}", from.display(), to.display()));
}

/// Holds an exclusive lock on `target_dir` for as long as the file lives.
fn lock(target_dir: &Path) -> fs::File {
    fs::create_dir_all(target_dir)
        .unwrap_or_else(|e| panic!("creating {}: {e}", target_dir.display()));
    let path = target_dir.join(".snow-guest-build.lock");
    let file =
        fs::File::create(&path).unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
    file.lock()
        .unwrap_or_else(|e| panic!("locking {}: {e}", path.display()));
    file
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

fn run_cargo(root: &Path, target_dir: &Path, packages: &[&str], features: &[&str]) {
    ensure_wasm_target();
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root)
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .arg("--target-dir")
        .arg(target_dir)
        // The workspace keeps line tables in release builds for the host's
        // profiles; in a guest they would be most of the file (7.9 MB
        // against 1.4 MB for hello), which every deploy hashes and every
        // compile reads past.
        .env("CARGO_PROFILE_RELEASE_DEBUG", "false");
    for name in packages {
        cmd.args(["-p", name]);
    }
    for feature in features {
        cmd.args(["--features", feature]);
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
        panic!("building the guest modules {packages:?} for wasm32-wasip2 failed ({status})");
    }
}
