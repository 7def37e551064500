//! Deploying without a restart: swaps through the admin API and the file
//! watcher, under load, with zero failed requests; bad modules never replace
//! a running one.

use crate::common;

use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{read_response, request_at, Response, Server, PATIENCE};

const ONE: &str = snow_test_guests::VERSION_ONE;
const TWO: &str = snow_test_guests::VERSION_TWO;
const OTHER_WORLD: &str = snow_test_guests::OTHERWORLD;
const BROKEN: &str = snow_test_guests::BROKEN;

/// A fresh directory for one test's module files.
fn scratch(test: &str) -> PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("deploy")
        .join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn put_module(server: &Server, name: &str, wasm: &[u8]) -> Response {
    let admin = server.admin.expect("admin enabled");
    request_at(admin, "PUT", &format!("/modules/{name}"), wasm)
}

fn read(path: &str) -> Vec<u8> {
    std::fs::read(path).expect("reading a guest module")
}

/// Keep-alive clients hammering `path` until stopped; every response is kept.
fn load(
    addr: SocketAddr,
    path: &'static str,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Vec<(u16, String)>> {
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(PATIENCE)).expect("timeout");
        let mut reader = BufReader::new(stream.try_clone().expect("clone"));
        while !stop.load(Ordering::Relaxed) {
            let req = format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n");
            stream.write_all(req.as_bytes()).expect("write");
            let resp = read_response(&mut reader, false).expect("a response for every request");
            seen.push((resp.status, resp.text()));
        }
        seen
    })
}

#[test]
fn fifty_swaps_under_load_drop_nothing() {
    let _ = rlimit::increase_nofile_limit(4096);
    let dir = scratch("fifty");
    let file = dir.join("app.wasm");
    std::fs::write(&file, read(ONE)).expect("write module");
    let server = Server::start_module(file.to_str(), &["--workers", "2"]);
    let (one, two) = (read(ONE), read(TWO));
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(load(server.addr, "/version/", stop.clone()));
    }
    for _ in 0..2 {
        clients.push(load(server.addr, "/slow/?ms=150", stop.clone()));
    }
    let mut last = "one";
    for swap in 0..50 {
        let (wasm, name) = if swap % 2 == 0 {
            (&two, "two")
        } else {
            (&one, "one")
        };
        let resp = put_module(&server, "app", wasm);
        assert_eq!(resp.status, 200, "swap {swap}: {}", resp.text());
        last = name;
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    let mut by_version = std::collections::HashMap::new();
    for client in clients {
        for (status, body) in client.join().expect("client thread") {
            assert_eq!(status, 200, "a failed request: {body}");
            assert!(
                body == "one" || body == "two",
                "not from exactly one version: {body:?}"
            );
            *by_version.entry(body).or_insert(0) += 1;
            total += 1;
        }
    }
    assert!(
        by_version.len() == 2,
        "both versions served: {by_version:?}"
    );
    assert!(total > 100, "only {total} requests under load");
    // After the last swap only the last version answers.
    for _ in 0..20 {
        assert_eq!(server.get("/version/").text(), last);
    }
    let modules: serde_json::Value = serde_json::from_slice(
        &request_at(server.admin.expect("admin"), "GET", "/modules", b"").body,
    )
    .expect("modules json");
    let app = &modules[0];
    assert_eq!(app["name"], "app");
    assert_eq!(app["prefix"], "/");
    assert_eq!(app["in_flight"], 0);
    assert_eq!(app["hash"].as_str().map(str::len), Some(64));
    assert!(app["loaded_at"].is_string());
}

#[test]
fn bad_modules_never_replace_the_running_one() {
    let dir = scratch("bad");
    let file = dir.join("app.wasm");
    std::fs::write(&file, read(ONE)).expect("write module");
    let server = Server::start_module(file.to_str(), &["--workers", "1"]);
    let one = read(ONE);
    let cases: [(&str, Vec<u8>); 4] = [
        ("truncated", one[..one.len() / 2].to_vec()),
        ("not wasm", b"#!/bin/sh\necho hi\n".to_vec()),
        ("another world", read(OTHER_WORLD)),
        ("traps on start", read(BROKEN)),
    ];
    for (what, wasm) in cases {
        let resp = put_module(&server, "app", &wasm);
        assert_eq!(resp.status, 422, "{what}: {}", resp.text());
        let error: serde_json::Value = serde_json::from_slice(&resp.body).expect("json error");
        assert!(
            error["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{what}: {error}"
        );
        assert_eq!(server.get("/version/").text(), "one", "after {what}");
    }
    assert_eq!(put_module(&server, "nope", &one).status, 404);
    // The same through the file watcher: a truncated file is refused too.
    std::fs::write(&file, &one[..100]).expect("truncate");
    server.wait_log("redeploy failed");
    assert_eq!(server.get("/version/").text(), "one");
}

#[test]
fn a_changed_file_is_redeployed() {
    let dir = scratch("watch");
    let file = dir.join("app.wasm");
    std::fs::write(&file, read(ONE)).expect("write module");
    let server = Server::start_module(file.to_str(), &["--workers", "2"]);
    assert_eq!(server.get("/version/").text(), "one");
    // Written in pieces, as a copy does: only the whole file is deployed.
    let two = read(TWO);
    let changed = Instant::now();
    {
        let mut out = std::fs::File::create(&file).expect("rewrite");
        for piece in two.chunks(64 * 1024) {
            out.write_all(piece).expect("piece");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let until = Instant::now() + PATIENCE;
    while server.get("/version/").text() != "two" {
        assert!(Instant::now() < until, "the new version never answered");
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!("file change to new version: {:?}", changed.elapsed());
    for _ in 0..10 {
        assert_eq!(server.get("/version/").text(), "two");
    }
}

#[test]
fn requests_parked_in_the_old_version_finish_there() {
    let dir = scratch("parked");
    let file = dir.join("app.wasm");
    std::fs::write(&file, read(ONE)).expect("write module");
    let server = Server::start_module(file.to_str(), &["--workers", "1"]);
    let answers = Arc::new(Mutex::new(Vec::new()));
    let mut parked = Vec::new();
    for _ in 0..5 {
        let addr = server.addr;
        let answers = answers.clone();
        parked.push(std::thread::spawn(move || {
            let mut stream = TcpStream::connect(addr).expect("connect");
            stream
                .write_all(b"GET /slow/?ms=800 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                .expect("write");
            let resp = read_response(&mut BufReader::new(stream), false).expect("response");
            answers
                .lock()
                .expect("lock")
                .push((resp.status, resp.text()));
        }));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(put_module(&server, "app", &read(TWO)).status, 200);
    assert_eq!(server.get("/version/").text(), "two");
    for thread in parked {
        thread.join().expect("parked thread");
    }
    let answers = answers.lock().expect("lock").clone();
    assert_eq!(answers, vec![(200, "one".to_string()); 5]);
}
