//! `snow new NAME`: a module crate in `./NAME` that builds, tests and
//! serves as generated.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;

#[derive(Args)]
pub(super) struct NewArgs {
    /// The module's name: its folder and its crate.
    name: String,
    /// A Snow checkout whose `snow-guest` and `snow-testing` the module
    /// uses [default: the one this `snow` was built from].
    #[arg(long, value_name = "DIR")]
    sdk: Option<PathBuf>,
}

/// Where `cargo install --path host` (or any build) of this binary found
/// its sources: the SDK crates sit beside them.
const BUILT_FROM: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

const SDK: &str = "guest/sdk";
const TESTING: &str = "tests/snow-testing";

pub(super) fn new(args: NewArgs) -> Result<()> {
    check_name(&args.name)?;
    let root = sdk_root(args.sdk.as_deref())?;
    let dir = Path::new(&args.name);
    std::fs::create_dir(dir).with_context(|| format!("creating ./{}", args.name))?;
    write_project(dir, &args.name, &root)
        .with_context(|| format!("writing the module into ./{}", args.name))?;
    println!("created module `{}` in ./{}", args.name, args.name);
    println!(
        "  cd {} && snow dev    serve it, rebuilt on every change",
        args.name
    );
    println!(
        "  cargo test{:<11}unit tests, and the end-to-end test through snow",
        ""
    );
    println!("  snow build{:<11}the .wasm to deploy", "");
    Ok(())
}

fn write_project(dir: &Path, name: &str, root: &Path) -> Result<()> {
    let manifest = include_str!("template/Cargo.toml.in")
        .replace("{name}", name)
        .replace("{sdk}", &toml_string(&root.join(SDK))?)
        .replace("{testing}", &toml_string(&root.join(TESTING))?);
    std::fs::create_dir(dir.join("src"))?;
    std::fs::create_dir(dir.join("tests"))?;
    let files: [(&str, &str); 5] = [
        ("Cargo.toml", &manifest),
        (
            "rust-toolchain.toml",
            include_str!("template/rust-toolchain.toml"),
        ),
        (".gitignore", include_str!("template/gitignore")),
        ("src/lib.rs", include_str!("template/lib.rs")),
        ("tests/e2e.rs", include_str!("template/e2e.rs")),
    ];
    for (file, text) in files {
        let path = dir.join(file);
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .and_then(|mut out| out.write_all(text.as_bytes()))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// A path as a TOML string: quotes, backslashes and control characters in
/// it cannot end the string early.
fn toml_string(path: &Path) -> Result<String> {
    let text = path
        .to_str()
        .with_context(|| format!("{} is not UTF-8, which Cargo.toml needs", path.display()))?;
    Ok(toml::Value::String(text.to_string()).to_string())
}

/// The Snow checkout to take the SDK from: `--sdk`, else the sources this
/// binary was built from, if they are still there.
fn sdk_root(given: Option<&Path>) -> Result<PathBuf> {
    let (root, from) = match given {
        Some(dir) => (dir.to_path_buf(), "--sdk"),
        None => (
            PathBuf::from(BUILT_FROM),
            "the checkout snow was built from",
        ),
    };
    let has_sdk = root.join(SDK).join("Cargo.toml").is_file()
        && root.join(TESTING).join("Cargo.toml").is_file();
    if !has_sdk {
        bail!(
            "{} ({from}) holds no Snow SDK ({SDK} and {TESTING}): pass --sdk with the \
             folder of a Snow clone",
            root.display()
        );
    }
    root.canonicalize()
        .with_context(|| format!("resolving {}", root.display()))
}

/// Cargo's rules for a package name, plus names that would clash with the
/// crates a module depends on.
fn check_name(name: &str) -> Result<()> {
    const TAKEN: &[&str] = &[
        "snow",
        "snow-guest",
        "snow_guest",
        "snow-guest-macros",
        "snow_guest_macros",
        "snow-testing",
        "snow_testing",
        "test",
        "std",
        "core",
        "alloc",
        "proc_macro",
        "self",
        "super",
        "crate",
        "Self",
    ];
    let valid = name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid {
        bail!(
            "{name:?} is not a module name: use letters, digits, `-` and `_`, starting with a \
             letter, at most 64 characters"
        );
    }
    if TAKEN.contains(&name) || is_keyword(name) {
        bail!("{name:?} is taken by Rust or by Snow's own crates: choose another name");
    }
    Ok(())
}

fn is_keyword(name: &str) -> bool {
    const KEYWORDS: &[&str] = &[
        "as", "async", "await", "break", "const", "continue", "dyn", "else", "enum", "extern",
        "false", "fn", "for", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut",
        "pub", "ref", "return", "static", "struct", "trait", "true", "type", "unsafe", "use",
        "where", "while", "abstract", "become", "box", "do", "final", "macro", "override", "priv",
        "typeof", "unsized", "virtual", "yield", "try", "gen",
    ];
    KEYWORDS.contains(&name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_are_refused() {
        for name in [
            "",
            "../evil",
            "a/b",
            "--sdk",
            "-x",
            "1st",
            "a b",
            "naïve",
            "snow-guest",
            "snow_testing",
            "snow-guest-macros",
            "fn",
            "test",
            "a\nb",
            "a\"b",
        ] {
            assert!(check_name(name).is_err(), "{name:?} accepted");
        }
        assert!(check_name(&"a".repeat(65)).is_err());
        for name in ["demo", "my-api", "v2_routes", &"a".repeat(64)] {
            assert!(check_name(name).is_ok(), "{name:?} refused");
        }
    }

    #[test]
    fn paths_are_quoted_for_toml() -> Result<()> {
        let quoted = toml_string(Path::new("/x/\"] evil = [\"\\\n"))?;
        let parsed: toml::Table = toml::from_str(&format!("path = {quoted}"))?;
        assert_eq!(parsed["path"].as_str(), Some("/x/\"] evil = [\"\\\n"));
        Ok(())
    }

    #[test]
    fn a_folder_without_the_sdk_is_refused() {
        let err = sdk_root(Some(Path::new("/"))).expect_err("/ has no SDK");
        assert!(err.to_string().contains("--sdk"), "{err}");
        assert!(sdk_root(None).is_ok(), "this checkout has the SDK");
    }
}
