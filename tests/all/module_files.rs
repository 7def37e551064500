//! What a module path may name: only a regular file of at most 64 MiB, for
//! `snow serve X.wasm`, `snow check`, a manifest's `wasm` and the file
//! watcher. A device, a FIFO or a huge file is refused fast with an error
//! naming the path, instead of filling memory or blocking start-up.

use crate::common;

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Server, PATIENCE};

const ONE: &str = snow_test_guests::VERSION_ONE;
const TWO: &str = snow_test_guests::VERSION_TWO;

/// The module size cap, as the admin API's PUT has it.
const CAP: u64 = 64 << 20;

/// A refusal must come this fast; a hang or a 64 MiB read would not.
const FAST: Duration = Duration::from_secs(10);

fn scratch(test: &str) -> PathBuf {
    common::scratch("module_files", test)
}

fn mkfifo(path: &Path) {
    let c = CString::new(path.as_os_str().as_bytes()).expect("no NUL in the path");
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
}

fn sparse(path: &Path, len: u64) {
    let file = std::fs::File::create(path).expect("create");
    file.set_len(len).expect("set_len");
}

fn manifest_for(dir: &Path, wasm: &Path) -> PathBuf {
    let path = dir.join("snow.toml");
    let text = format!(
        "[[module]]\nname = \"app\"\nprefix = \"/\"\nwasm = \"{}\"\n",
        wasm.display()
    );
    std::fs::write(&path, text).expect("write manifest");
    path
}

/// Runs `snow ARGS`, expecting it to fail within [`FAST`]; returns its
/// standard error and how long it took.
fn fails_fast(args: &[&str], cache: &Path) -> (String, Duration) {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_snow"))
        .args(args)
        .arg("--cache-dir")
        .arg(cache)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn snow");
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if started.elapsed() > FAST {
            let _ = child.kill();
            let _ = child.wait();
            panic!("snow {args:?} still running after {FAST:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let took = started.elapsed();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut err)
        .expect("read stderr");
    assert!(!status.success(), "snow {args:?} succeeded: {err}");
    (err, took)
}

/// `snow serve PATH`, `snow check PATH` and a manifest naming PATH all
/// fail fast with an error holding `expected` and the path.
fn refused_everywhere(test: &str, path: &Path, expected: &str) {
    let dir = scratch(test);
    let cache = dir.join("cache");
    let manifest = manifest_for(&dir, path);
    let path_text = path.to_str().expect("utf-8 path");
    let runs: [(&str, Vec<&str>); 3] = [
        ("serve", vec!["serve", path_text, "--listen", "127.0.0.1:0"]),
        ("check", vec!["check", path_text]),
        (
            "manifest",
            vec![
                "serve",
                manifest.to_str().expect("utf-8 path"),
                "--listen",
                "127.0.0.1:0",
            ],
        ),
    ];
    for (what, args) in runs {
        let (err, took) = fails_fast(&args, &cache);
        eprintln!("{test}: {what} refused in {took:?}");
        assert!(err.contains(expected), "{what}: {err}");
        assert!(err.contains(path_text), "{what}: {err}");
    }
}

#[test]
fn dev_zero_is_refused_fast() {
    refused_everywhere(
        "dev-zero",
        Path::new("/dev/zero"),
        "is a character device, not a regular file",
    );
}

#[test]
fn a_fifo_is_refused_without_blocking() {
    let dir = scratch("fifo-file");
    let fifo = dir.join("app.wasm");
    mkfifo(&fifo);
    refused_everywhere("fifo", &fifo, "is a FIFO, not a regular file");
}

#[test]
fn a_sparse_file_one_byte_over_the_cap_is_refused() {
    let dir = scratch("sparse-file");
    let big = dir.join("big.wasm");
    sparse(&big, CAP + 1);
    refused_everywhere("sparse", &big, "67108865 bytes or more, over the limit");
}

#[test]
fn a_directory_is_refused() {
    let dir = scratch("directory-file");
    let wasm_dir = dir.join("app.wasm");
    std::fs::create_dir(&wasm_dir).expect("mkdir");
    refused_everywhere("directory", &wasm_dir, "is a directory, not a regular file");
}

/// Waits until `/version/` answers `want`.
fn wait_version(server: &Server, want: &str) {
    let until = Instant::now() + PATIENCE;
    while server.get("/version/").text() != want {
        assert!(Instant::now() < until, "{want} never answered");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_watcher_refuses_a_fifo_or_an_oversized_file_and_keeps_serving() {
    let dir = scratch("watch");
    let file = dir.join("app.wasm");
    std::fs::copy(ONE, &file).expect("copy module");
    let server = Server::start_module(file.to_str(), &["--workers", "1"]);
    assert_eq!(server.get("/version/").text(), "one");

    // Each replacement is made aside and renamed over the module, as a
    // deployment would.
    let fifo = dir.join("fifo.tmp");
    mkfifo(&fifo);
    std::fs::rename(&fifo, &file).expect("rename the FIFO over the module");
    let line = server.wait_log("is a FIFO, not a regular file");
    assert!(line.contains("app.wasm"), "{line}");
    assert_eq!(server.get("/version/").text(), "one");

    let big = dir.join("big.tmp");
    sparse(&big, CAP + 1);
    std::fs::rename(&big, &file).expect("rename the big file over the module");
    let line = server.wait_log("over the limit of 67108864 bytes");
    assert!(line.contains("app.wasm"), "{line}");
    for _ in 0..5 {
        assert_eq!(server.get("/version/").text(), "one");
    }
    assert!(
        server.rss_kib() < 1024 * 1024,
        "RSS {} KiB after the refusals",
        server.rss_kib()
    );

    // The watcher still works: a good module replaces the running one.
    let good = dir.join("good.tmp");
    std::fs::copy(TWO, &good).expect("copy module");
    std::fs::rename(&good, &file).expect("rename the good module over");
    wait_version(&server, "two");
}
