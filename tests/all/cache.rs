//! The compile cache loads only entries it sealed itself: an entry copied
//! over another module's file is recompiled, not run, and a cache directory
//! others can write is not used at all.

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use common::Server;

const ONE: &str = snow_test_guests::VERSION_ONE;
const TWO: &str = snow_test_guests::VERSION_TWO;

fn scratch(test: &str) -> PathBuf {
    common::scratch("cache", test)
}

/// The SHA-256 of `module`'s file, hex.
fn module_hash(module: &str) -> String {
    let wasm = std::fs::read(module).expect("read module");
    Sha256::digest(&wasm)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The cache entry of `module`: its name starts with the module's SHA-256.
fn entry_for(cache: &Path, module: &str) -> PathBuf {
    let hash = module_hash(module);
    std::fs::read_dir(cache)
        .expect("list cache")
        .map(|e| e.expect("entry").path())
        .find(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            name.starts_with(&hash) && name.ends_with(".cwasm")
        })
        .unwrap_or_else(|| panic!("no cache entry for {module}"))
}

/// `snow serve MODULE --cache-dir CACHE`, checked to answer `want`.
fn serve(module: &str, cache: &Path, want: &str) -> Server {
    serve_with(module, cache, want, &[])
}

/// [`serve`] with more arguments. The cache holds Cranelift's builds, which
/// a tiered start writes a moment after it answers; these tests look at the
/// cache as soon as the server answers, so they wait for Cranelift.
fn serve_with(module: &str, cache: &Path, want: &str, args: &[&str]) -> Server {
    let mut all = vec![
        "--cache-dir",
        cache.to_str().expect("utf-8 path"),
        "--compiler",
        "cranelift",
    ];
    all.extend_from_slice(args);
    let server = Server::start_module(Some(module), &all);
    assert_eq!(server.get("/version/").text(), want);
    server.wait_log("/version/");
    server
}

#[test]
fn an_entry_copied_over_another_modules_is_recompiled_not_run() {
    let dir = scratch("swap");
    let cache = dir.join("compiled");
    drop(serve(ONE, &cache, "one"));
    drop(serve(TWO, &cache, "two"));
    let entry_one = entry_for(&cache, ONE);
    let entry_two = entry_for(&cache, TWO);
    std::fs::copy(&entry_one, &entry_two).expect("copy one's entry over two's");

    let server = serve(TWO, &cache, "two");
    let line = server.wait_log("untrusted cache entry");
    assert!(line.contains("WARN"), "{line}");
    assert!(
        line.contains(&*entry_two.to_string_lossy()),
        "names the entry: {line}"
    );
    server.wait_log("compiled module (cache miss)");
    drop(server);

    // The bad entry was overwritten by a good one: the next start loads it.
    assert_ne!(
        std::fs::read(&entry_two).expect("read"),
        std::fs::read(&entry_one).expect("read")
    );
    let server = serve(TWO, &cache, "two");
    let log = server.log_lines();
    assert!(
        !log.iter()
            .any(|l| l.contains("untrusted") || l.contains("cache miss")),
        "{log:#?}"
    );
}

#[test]
fn a_cache_directory_others_can_write_is_not_used() {
    let dir = scratch("open-dir");
    let cache = dir.join("compiled");
    std::fs::create_dir(&cache).expect("mkdir");
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let server = serve(ONE, &cache, "one");
    let line = server.wait_log("compile cache disabled");
    assert!(line.contains("0777"), "{line}");
    assert_eq!(
        std::fs::read_dir(&cache).expect("list").count(),
        0,
        "nothing written to a directory others can write"
    );
}

/// `snow serve MODULE --isolation request --cache-dir CACHE`, checked to
/// answer `want`.
fn serve_isolated(module: &str, cache: &Path, want: &str) -> Server {
    serve_with(module, cache, want, &["--isolation", "request"])
}

#[test]
fn a_pre_initialised_build_is_cached_and_a_damaged_one_is_rebuilt() {
    let dir = scratch("preinit");
    let cache = dir.join("compiled");
    let server = serve_isolated(ONE, &cache, "one");
    server.wait_log("pre-initialised and compiled module (cache miss)");
    drop(server);

    // Its one entry is not under the plain build's key (the module's hash)
    // but under one derived from the module and its configuration.
    let derived: Vec<PathBuf> = std::fs::read_dir(&cache)
        .expect("list cache")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .collect();
    assert_eq!(derived.len(), 1, "{derived:?}");
    let name = derived[0]
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    assert!(!name.starts_with(&module_hash(ONE)), "{name}");

    let server = serve_isolated(ONE, &cache, "one");
    let log = server.log_lines();
    assert!(!log.iter().any(|l| l.contains("cache miss")), "{log:#?}");
    drop(server);

    // A damaged entry is not run: the start-up runs again.
    let mut bytes = std::fs::read(&derived[0]).expect("read entry");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&derived[0], &bytes).expect("damage entry");
    let server = serve_isolated(ONE, &cache, "one");
    server.wait_log("pre-initialised and compiled module (cache miss)");
}
