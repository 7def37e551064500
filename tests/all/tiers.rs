//! Tiered compilation through the binary: with nothing in the cache a
//! module serves from Winch's build at once, Cranelift's replaces it as a
//! hot swap would (no failed request, parked requests finish), and a warm
//! cache starts on Cranelift's. `--compiler` picks either alone.

use crate::common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{read_response, Server, PATIENCE};

fn scratch(test: &str) -> PathBuf {
    common::scratch("tiers", test)
}

/// The default app on a cache of its own, with `args`.
fn serve(cache: &Path, args: &[&str]) -> Server {
    let mut all = vec!["--cache-dir", cache.to_str().expect("utf-8 path")];
    all.extend_from_slice(args);
    Server::start(&all)
}

/// `GET /modules`: (compiler, hash) of the one module.
fn compiler(server: &Server) -> (String, String) {
    let modules: serde_json::Value =
        serde_json::from_slice(&server.admin_request("GET", "/modules", b"").body)
            .expect("modules json");
    let module = &modules[0];
    (
        module["compiler"].as_str().expect("compiler").to_string(),
        module["hash"].as_str().expect("hash").to_string(),
    )
}

fn line_index(lines: &[String], needle: &str) -> usize {
    lines
        .iter()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no log line has {needle:?}: {lines:#?}"))
}

const WINCH_BUILT: &str = "compiled by winch";
const REPLACED: &str = "cranelift's build replaced winch's";

#[test]
fn a_cold_start_serves_winch_then_cranelift_without_a_failed_request() {
    let cache = scratch("cold");
    let server = serve(&cache, &[]);
    // A request parked on the first build, answered after the swap.
    let mut parked = server.connect();
    parked
        .write_all(b"GET /async/?ms=1500 HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("send");
    let (_, hash) = compiler(&server);
    let mut load = server.connect();
    let mut reader = std::io::BufReader::new(load.try_clone().expect("clone"));
    let started = Instant::now();
    let mut answered = 0;
    loop {
        load.write_all(b"GET /home/ HTTP/1.1\r\nHost: t\r\n\r\n")
            .expect("send");
        let response = read_response(&mut reader, false).expect("an answer through the swap");
        assert_eq!(response.status, 200, "{}", response.text());
        answered += 1;
        if answered % 50 == 0 && compiler(&server).0 == "cranelift" {
            break;
        }
        assert!(started.elapsed() < PATIENCE, "cranelift's build never came");
    }
    let waited = read_response(&mut std::io::BufReader::new(parked), false).expect("parked answer");
    assert_eq!(waited.status, 200, "{}", waited.text());
    assert_eq!(compiler(&server).1, hash, "the same module, recompiled");
    // The log is written in batches: wait for the line before the order.
    server.wait_log(REPLACED);
    let lines = server.log_lines();
    assert!(
        line_index(&lines, WINCH_BUILT) < line_index(&lines, REPLACED),
        "{lines:#?}"
    );
    drop(server);

    // Cranelift's build is in the cache now: the next start uses it.
    let warm = serve(&cache, &[]);
    assert_eq!(warm.get("/home/").status, 200);
    assert_eq!(compiler(&warm), ("cranelift".to_string(), hash));
    assert!(
        !warm.log_lines().iter().any(|l| l.contains(WINCH_BUILT)),
        "{:#?}",
        warm.log_lines()
    );
}

#[test]
fn compiler_cranelift_waits_and_compiler_winch_stays() {
    let cache = scratch("alone");
    let cranelift = serve(&cache, &["--compiler", "cranelift"]);
    assert_eq!(compiler(&cranelift).0, "cranelift");
    drop(cranelift);

    // Winch alone, even with Cranelift's build in the cache.
    let winch = serve(&cache, &["--compiler", "winch"]);
    assert_eq!(winch.get("/home/").status, 200);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(compiler(&winch).0, "winch");
    assert!(
        !winch.log_lines().iter().any(|l| l.contains(REPLACED)),
        "{:#?}",
        winch.log_lines()
    );
}

#[test]
fn a_guest_that_spins_on_winch_is_stopped_and_the_server_keeps_serving() {
    let cache = scratch("spin");
    let server = Server::start_module(
        Some(common::TESTKIT),
        &[
            "--cache-dir",
            cache.to_str().expect("utf-8 path"),
            "--compiler",
            "winch",
            "--max-call-time",
            "100ms",
        ],
    );
    let started = Instant::now();
    let spun = server.get("/loop/");
    assert_eq!(spun.status, 500, "{}", spun.text());
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(server.get("/status/201/").status, 201);
    server.wait_log("CPU time limit");
}

#[test]
fn an_unknown_compiler_is_refused() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_snow"))
        .args(["serve", "--compiler", "llvm"])
        .output()
        .expect("run snow");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("llvm") && stderr.contains("tiered"),
        "{stderr}"
    );
}

#[test]
fn a_redeploy_before_cranelift_is_done_is_not_undone_by_it() {
    let cache = scratch("redeploy");
    let app = cache.join("app.wasm");
    std::fs::copy(snow_test_guests::VERSION_ONE, &app).expect("copy version one");
    let server = Server::start_module(
        Some(app.to_str().expect("utf-8 path")),
        &["--cache-dir", cache.to_str().expect("utf-8 path")],
    );
    assert_eq!(server.get("/version/").text(), "one");
    // Version two arrives while version one's Cranelift build compiles.
    let two = std::fs::read(snow_test_guests::VERSION_TWO).expect("read version two");
    let put = server.admin_request("PUT", "/modules/app", &two);
    assert_eq!(put.status, 200, "{}", put.text());
    let answer: serde_json::Value = serde_json::from_slice(&put.body).expect("put json");
    assert_eq!(
        answer["compiler"], "winch",
        "nothing of version two is cached"
    );
    let started = Instant::now();
    loop {
        assert_eq!(server.get("/version/").text(), "two");
        let (compiler, hash) = compiler(&server);
        if compiler == "cranelift" {
            assert_eq!(answer["hash"].as_str(), Some(hash.as_str()));
            break;
        }
        assert!(started.elapsed() < PATIENCE, "cranelift's build never came");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Version one's Cranelift build, done after version two came, is dropped.
    server.wait_log("cranelift's build dropped");
    assert_eq!(server.get("/version/").text(), "two");
}

/// Compiling shares the cores with serving: its threads (rayon's pool, on
/// which wasmtime compiles, the deploy threads, and the pool that compiles
/// Cranelift's replacement of a Winch build) run at lower priorities than
/// the workers.
#[test]
fn compile_threads_run_below_the_workers() {
    let cache = scratch("nice");
    let server = serve(&cache, &[]);
    assert_eq!(server.get("/home/").status, 200);
    server.wait_log(REPLACED);
    let tasks = format!("/proc/{}/task", server.pid());
    let mut seen = std::collections::BTreeMap::new();
    for task in std::fs::read_dir(&tasks).expect("list threads") {
        let stat =
            std::fs::read_to_string(task.expect("thread").path().join("stat")).unwrap_or_default();
        // pid (comm) state ppid ... : fields after the comm's closing paren.
        let Some((comm, rest)) = stat.split_once(") ") else {
            continue;
        };
        let name = comm
            .split_once(" (")
            .map_or("", |(_, name)| name)
            .to_string();
        let nice: i32 = rest
            .split_whitespace()
            .nth(16)
            .and_then(|n| n.parse().ok())
            .expect("a nice value");
        seen.insert(name, nice);
    }
    let compile: Vec<_> = seen
        .iter()
        .filter(|(name, _)| name.starts_with("snow-compile"))
        .collect();
    // Relative to the process's own priority, whatever the test runs at.
    let main = *seen.get("snow").expect("the main thread");
    assert!(!compile.is_empty(), "{seen:?}");
    assert!(
        compile.iter().all(|(_, nice)| **nice == main.max(10)),
        "{seen:?}"
    );
    assert!(
        seen.iter()
            .filter(|(name, _)| name.starts_with("snow-worker"))
            .all(|(_, nice)| *nice == main),
        "{seen:?}"
    );
    // Cranelift's replacement of a Winch build, lower still.
    let tier_up: Vec<_> = seen
        .iter()
        .filter(|(name, _)| name.starts_with("snow-tier-up"))
        .collect();
    assert!(!tier_up.is_empty(), "{seen:?}");
    assert!(
        tier_up.iter().all(|(_, nice)| **nice == main.max(15)),
        "{seen:?}"
    );
}
