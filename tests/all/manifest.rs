//! `snow serve snow.toml`: several modules side by side, configuration as
//! environment variables, SIGHUP reloads, clear errors for bad files, and
//! flags that win over the manifest.

use crate::common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{read_response, Server, PATIENCE, TESTKIT};

const ONE: &str = snow_test_guests::VERSION_ONE;
const TWO: &str = snow_test_guests::VERSION_TWO;
const FANOUT: &str = snow_test_guests::FANOUT;

fn scratch(test: &str) -> PathBuf {
    common::scratch("manifest", test)
}

fn manifest(dir: &Path, with_two: bool) -> PathBuf {
    let mut text = format!(
        r#"
workers = 1

[[module]]
name = "kit"
prefix = "/"
wasm = "{TESTKIT}"

[[module]]
name = "one"
prefix = "/one"
wasm = "{ONE}"
[module.env]
GREETING = "hello from the manifest"
"#
    );
    if with_two {
        text.push_str(&format!(
            r#"
[[module]]
name = "two"
prefix = "/two"
wasm = "{TWO}"
"#
        ));
    }
    let path = dir.join("snow.toml");
    std::fs::write(&path, text).expect("write manifest");
    path
}

#[test]
fn modules_are_mounted_by_longest_prefix_and_read_their_config() {
    let dir = scratch("mounts");
    let path = manifest(&dir, true);
    let server = Server::start_module(path.to_str(), &[]);
    assert_eq!(server.get("/one/version/").text(), "one");
    assert_eq!(server.get("/two/version/").text(), "two");
    assert_eq!(server.get("/counter/").status, 200, "the rest goes to /");
    // A prefix ends at a segment boundary: /oneish is not /one.
    assert_eq!(server.get("/oneish/version/").status, 404);
    assert_eq!(
        server.get("/one/env/GREETING/").text(),
        "hello from the manifest"
    );
    assert_eq!(server.get("/two/env/GREETING/").text(), "(unset)");
    assert_eq!(
        server.get("/one/env/HOME/").text(),
        "(unset)",
        "no host environment"
    );
}

#[test]
fn sighup_removes_a_module_once_its_requests_are_done() {
    let dir = scratch("sighup");
    let path = manifest(&dir, true);
    let server = Server::start_module(path.to_str(), &[]);
    let addr = server.addr;
    let parked = std::thread::spawn(move || {
        let mut stream = std::net::TcpStream::connect(addr).expect("connect");
        stream
            .write_all(b"GET /two/slow/?ms=1000 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            .expect("write");
        read_response(&mut BufReader::new(stream), false).expect("response")
    });
    std::thread::sleep(Duration::from_millis(300));
    manifest(&dir, false);
    server.signal(libc::SIGHUP);
    server.wait_log("module removed");
    assert_eq!(server.get("/two/version/").status, 404);
    assert_eq!(server.get("/one/version/").text(), "one");
    let finished = parked.join().expect("parked thread");
    assert_eq!((finished.status, finished.text()), (200, "two".into()));

    // Adding it back works the same way.
    manifest(&dir, true);
    server.signal(libc::SIGHUP);
    let until = Instant::now() + PATIENCE;
    while server.get("/two/version/").text() != "two" {
        assert!(Instant::now() < until, "module two never came back");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_broken_manifest_on_sighup_changes_nothing() {
    let dir = scratch("broken-hup");
    let path = manifest(&dir, true);
    let server = Server::start_module(path.to_str(), &[]);
    std::fs::write(
        &path,
        "workers = 1\n[[module]]\nname = \"x\"\nprefixx = \"/\"\n",
    )
    .expect("write");
    server.signal(libc::SIGHUP);
    server.wait_log("the manifest is not usable");
    assert_eq!(server.get("/two/version/").text(), "two");
}

#[test]
fn bad_manifests_are_rejected_at_start_naming_key_and_line() {
    let dir = scratch("bad");
    let cases = [
        (
            "workers = 1\n\n[[module]]\nname = \"a\"\nprefix = \"/\"\nwasm = \"a.wasm\"\nmax_memroy = \"1MiB\"\n",
            ":7:",
            "max_memroy",
        ),
        (
            "[[module]]\nname = \"a\"\nprefix = \"/\"\nwasm = \"a.wasm\"\nmax_call_time = \"soon\"\n",
            ":5:",
            "max_call_time",
        ),
        (
            "[[module]]\nname = \"a\"\nprefix = \"/\"\nwasm = \"a.wasm\"\nmax_stack = \"1MiB\"\n",
            ":5:",
            "set max_stack in [limits]",
        ),
        (
            "workers = 100000\n[[module]]\nname = \"a\"\nprefix = \"/\"\nwasm = \"a.wasm\"\n",
            ":1:",
            "workers: `100000` is above the most allowed, 256",
        ),
        (
            "[[module]]\nname = \"a\"\nprefix = \"/a/../b\"\nwasm = \"a.wasm\"\n",
            ":3:",
            "has a `..` segment",
        ),
        (
            "[[module]]\nname = \"a\"\nprefix = \"/a/\"\nwasm = \"a.wasm\"\n",
            ":3:",
            "ends with `/`",
        ),
    ];
    for (text, line, key) in cases {
        let path = dir.join("snow.toml");
        std::fs::write(&path, text).expect("write");
        let out = Command::new(env!("CARGO_BIN_EXE_snow"))
            .arg("serve")
            .arg(&path)
            .args(["--listen", "127.0.0.1:0", "--admin", "off"])
            .output()
            .expect("run snow");
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(line) && err.contains(key), "{key}: {err}");
    }
}

/// Writes a manifest serving `wasm` at `/` as module `m`, with `settings`
/// added to the module and `top` before it.
fn one_module(test: &str, wasm: &str, top: &str, settings: &str) -> PathBuf {
    let dir = scratch(test);
    let path = dir.join("snow.toml");
    let text = format!(
        "workers = 1\n{top}\n[[module]]\nname = \"m\"\nprefix = \"/\"\nwasm = \"{wasm}\"\n{settings}\n"
    );
    std::fs::write(&path, text).expect("write manifest");
    path
}

#[test]
fn isolation_memory_and_call_time_flags_win_over_the_manifest() {
    let path = one_module(
        "module-flags",
        TESTKIT,
        "[limits]\nrequest_timeout = \"120s\"",
        "isolation = \"instance\"\nmax_memory = \"1GiB\"\nmax_call_time = \"60s\"",
    );
    let flags = [
        "--isolation",
        "request",
        "--max-memory",
        "64MiB",
        "--max-call-time",
        "100ms",
    ];
    let server = Server::start_module(path.to_str(), &flags);
    for _ in 0..3 {
        assert_eq!(server.get("/counter/").text(), "1", "a fresh instance each");
    }
    // 100 MiB fits the manifest's 1 GiB, not the flag's 64 MiB.
    let alloc = server.get("/alloc/?mb=100");
    assert_eq!(alloc.status, 500, "{}", alloc.text());
    // The manifest's 60 s would let the loop run past this sanity bound.
    let started = Instant::now();
    assert_eq!(server.get("/loop/").status, 500);
    assert!(started.elapsed() < Duration::from_secs(20));
    server.wait_log("CPU time limit");
}

#[test]
fn allow_outbound_flags_replace_the_manifest_rules() {
    let upstream = upstream();
    let path = one_module(
        "outbound-flag",
        FANOUT,
        "",
        "allow_outbound = [\"http://127.0.0.1:1\"]",
    );
    let url = format!("/fanout/?url=http://{upstream}/");
    let server = Server::start_module(path.to_str(), &[]);
    let denied = server.get(&url).text();
    assert!(denied.contains("denied"), "{denied}");
    drop(server);
    let rule = format!("http://{upstream}");
    let server = Server::start_module(path.to_str(), &["--allow-outbound", &rule]);
    let result: serde_json::Value = serde_json::from_slice(&server.get(&url).body).expect("json");
    assert_eq!(result["results"][0]["status"], 200, "{result}");
}

/// Answers `ok` to every request, one connection at a time.
fn upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let Ok(read) = stream.try_clone() else {
                continue;
            };
            let mut reader = BufReader::new(read);
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                line.clear();
            }
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
        }
    });
    addr
}
