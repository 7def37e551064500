//! The fault matrix: each hostile behaviour of a module hurts only its own
//! requests, the instance is rebuilt, and the event is logged with the
//! module's name and the reason.

use crate::common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::Server;

/// Runs `path`, expects `status`, a log line naming the module and `reason`,
/// and a working server afterwards.
fn fault(server: &Server, path: &str, status: u16, reason: &str) {
    let resp = server.get(path);
    assert_eq!(resp.status, status, "{path}: {}", resp.text());
    let line = server.wait_log(reason);
    assert!(line.contains("testkit"), "{line}");
    let after = server.get("/counter/");
    assert_eq!(after.status, 200, "serving after {path}");
}

#[test]
fn panic() {
    let server = Server::testkit(&["--workers", "1"]);
    assert_eq!(server.get("/counter/").text(), "1");
    assert_eq!(server.get("/counter/").text(), "2");
    fault(&server, "/panic/", 500, "module trapped");
    server.wait_log("testkit panic");
    // The rebuilt instance starts its state over.
    assert_eq!(server.get("/counter/").text(), "2");
}

#[test]
fn unreachable() {
    let server = Server::testkit(&["--workers", "1"]);
    fault(&server, "/unreachable/", 500, "unreachable");
}

#[test]
fn allocating_a_gibibyte() {
    let server = Server::testkit(&["--workers", "1", "--max-memory", "64MiB"]);
    fault(&server, "/alloc/?mb=1024", 500, "module trapped");
}

#[test]
fn endless_loop() {
    let server = Server::testkit(&["--workers", "1", "--max-call-time", "100ms"]);
    let started = Instant::now();
    fault(&server, "/loop/", 500, "CPU time limit");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn unbounded_recursion() {
    let server = Server::testkit(&["--workers", "1"]);
    fault(&server, "/recurse/", 500, "module trapped");
    // The module's own stack in linear memory runs out first.
    server.wait_log("the guest's own stack overflowed");
    server.wait_metric(
        r#"snow_traps_total{module="testkit",reason="stack_overflow"}"#,
        1.0,
    );
}

#[test]
fn max_stack_bounds_the_wasm_stack() {
    // Deep enough to need more than 256KiB of wasm stack, shallow enough
    // for 16MiB.
    let path = "/deep/?depth=200000";
    let small = Server::testkit(&["--workers", "1", "--max-stack", "256KiB"]);
    fault(&small, path, 500, "wasm stack overflow (max_stack)");
    small.wait_metric(
        r#"snow_traps_total{module="testkit",reason="stack_overflow"}"#,
        1.0,
    );
    let large = Server::testkit(&["--workers", "1", "--max-stack", "16MiB"]);
    let resp = large.get(path);
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert!(resp.text().starts_with("depth 200000: "), "{}", resp.text());
}

#[test]
fn allocations_past_the_memory_limit_count_as_memory() {
    let server = Server::testkit(&["--workers", "1", "--max-memory", "128MiB"]);
    for (mb, traps) in [(1024, 1.0), (200, 2.0)] {
        let path = format!("/alloc/?mb={mb}");
        fault(
            &server,
            &path,
            500,
            "past the module's limit of 134217728 bytes",
        );
        server.wait_metric(
            r#"snow_traps_total{module="testkit",reason="memory"}"#,
            traps,
        );
    }
    assert_eq!(
        server.metric(r#"snow_traps_total{module="testkit",reason="panic"}"#),
        0.0
    );
    // Within the limit, the same route answers.
    assert_eq!(server.get("/alloc/?mb=16").status, 200);
}

#[test]
fn small_blocks_past_the_memory_limit_trap_and_the_next_request_is_served() {
    // A call-time limit a loaded machine cannot reach first.
    let args = [
        "--workers",
        "1",
        "--max-memory",
        "16MiB",
        "--max-call-time",
        "10s",
    ];
    let server = Server::testkit(&args);
    fault(
        &server,
        "/alloc-small/?mb=64",
        500,
        "past the module's limit of 16777216 bytes",
    );
    server.wait_metric(r#"snow_traps_total{module="testkit",reason="memory"}"#, 1.0);
    // The rebuilt instance's allocator starts over, and blocks handed out
    // again keep their bytes.
    for _ in 0..3 {
        let resp = server.get("/alloc-small/?mb=4");
        assert_eq!(resp.status, 200, "{}", resp.text());
        assert_eq!(
            resp.text(),
            format!("{} blocks, intact: true", (4 << 20) / 48)
        );
    }
}

#[test]
fn invalid_status_and_header_injection_never_reach_the_wire() {
    let server = Server::testkit(&["--workers", "1"]);
    let raw = server.raw(b"GET /bad-header/ HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 500"), "{text}");
    assert!(!text.contains("x-injected"), "{text}");
    server.wait_log("invalid response");
    assert_eq!(server.get("/status/1000/").status, 500);
    assert_eq!(server.get("/status/42/").status, 500);
    assert_eq!(server.get("/status/418/").status, 418);
}

/// A module's header block is its own output: whatever it holds, only
/// well-formed fields reach the wire, and the framing stays the host's.
#[test]
fn a_module_header_block_that_is_not_fields_answers_500() {
    let manifest = common::broken_manifest("raw-headers", "raw-headers", snow_test_guests::BROKEN);
    let server = Server::start(&[manifest.to_str().expect("utf-8 path")]);
    let lenient = server.get("/lenient");
    assert_eq!((lenient.status, lenient.text()), (200, "raw".to_owned()));
    assert_eq!(lenient.header("x-a"), Some("1"));
    assert_eq!(lenient.header("x-b"), Some("two"));
    assert_eq!(lenient.header("x-c"), Some("3"));
    for (path, why) in [
        ("/no-colon", "\"not a field\" is not `name: value`"),
        ("/cr", "invalid value for response header \"x-a\""),
        ("/nul", "invalid value for response header \"x-a\""),
        ("/bad-name", "invalid response header name \"bad name\""),
        ("/not-utf8", "is not `name: value`"),
    ] {
        let raw = server
            .raw(format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes());
        let text = String::from_utf8_lossy(&raw);
        assert!(text.starts_with("HTTP/1.1 500"), "{path}: {text}");
        assert!(
            !text.contains("admin=1") && !text.contains("raw"),
            "{path}: {text}"
        );
        server.wait_log(why);
    }
    // The module's framing headers are dropped; the host's frame the body.
    let raw = server.raw(b"GET /framing HTTP/1.1\r\nHost: t\r\n\r\nGET /lenient HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    let text = String::from_utf8_lossy(&raw);
    assert_eq!(text.matches("HTTP/1.1 200").count(), 2, "{text}");
    assert!(text.contains("content-length: 3\r\n"), "{text}");
    assert!(
        !text.contains("chunked") && !text.contains("content-length: 0"),
        "{text}"
    );
    assert!(text.contains("x-ok: 1\r\n"), "{text}");
    assert_eq!(server.get("/lenient").status, 200);
}

#[test]
fn awaiting_forever_meets_the_deadline() {
    let server = Server::testkit(&["--workers", "1", "--request-timeout", "300ms"]);
    assert_eq!(server.get("/forever/").status, 504);
    let stats: serde_json::Value =
        serde_json::from_slice(&server.get("/stats/").body).expect("stats json");
    assert_eq!(stats["live_tasks"], 0, "{stats}");
    assert_eq!(stats["cancelled"], 1, "{stats}");
}

#[test]
fn flooding_stdout_loses_lines_not_the_server() {
    let server = Server::testkit(&["--workers", "1", "--max-call-time", "5s"]);
    let started = Instant::now();
    let resp = server.get("/print/?n=10000");
    assert_eq!((resp.status, resp.text()), (200, "printed".into()));
    assert!(started.elapsed() < Duration::from_secs(10));
    // Another flood later reports what the first one lost.
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(server.get("/print/?n=1").status, 200);
    let line = server.wait_log("lines dropped");
    assert!(line.contains("testkit"), "{line}");
    let logged = server
        .log_lines()
        .iter()
        .filter(|l| l.contains("stream=\"stdout\""))
        .count();
    assert!(
        logged < 5000,
        "{logged} lines of a 10000-line flood were logged"
    );
}

#[test]
fn requests_parked_in_a_trapping_instance_get_500() {
    let server = Server::testkit(&["--workers", "1"]);
    let addr = server.addr;
    let parked = std::thread::spawn(move || {
        let mut stream = std::net::TcpStream::connect(addr).expect("connect");
        stream
            .write_all(b"GET /sleep/?ms=20000 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            .expect("write");
        let started = Instant::now();
        let mut reader = std::io::BufReader::new(stream);
        let resp = common::read_response(&mut reader, false).expect("response");
        (resp.status, started.elapsed())
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(server.get("/panic/").status, 500);
    let (status, waited) = parked.join().expect("thread");
    assert_eq!(status, 500);
    assert!(
        waited < Duration::from_secs(10),
        "answered at once, not after the timer"
    );
    server.wait_log("parked_lost=1");
    assert_eq!(server.get("/counter/").status, 200);
}

/// While one worker keeps running handlers into the CPU limit, requests on
/// the other worker are served at their usual latency.
#[test]
fn other_workers_keep_their_latency() {
    let server = Server::testkit(&["--workers", "2", "--max-call-time", "100ms"]);
    let addr = server.addr;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let looping = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            // One keep-alive connection: it stays on one worker.
            let mut stream = std::net::TcpStream::connect(addr).expect("connect");
            let mut reader = std::io::BufReader::new(stream.try_clone().expect("clone"));
            let mut loops = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                stream
                    .write_all(b"GET /loop/ HTTP/1.1\r\nHost: t\r\n\r\n")
                    .expect("write");
                let resp = common::read_response(&mut reader, false).expect("response");
                assert_eq!(resp.status, 500);
                loops += 1;
            }
            loops
        })
    };
    std::thread::sleep(Duration::from_millis(250));
    let mut times = Vec::new();
    for _ in 0..40 {
        let t = Instant::now();
        assert_eq!(server.get("/captures/1/a/").status, 200);
        times.push(t.elapsed());
        std::thread::sleep(Duration::from_millis(10));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let loops = looping.join().expect("looping thread");
    assert!(loops >= 3, "the loop ran {loops} times");
    times.sort();
    let p90 = times[times.len() * 9 / 10];
    // A request stuck behind a looping handler would wait ~100 ms.
    assert!(
        p90 < Duration::from_millis(50),
        "p90 {p90:?}; all: {times:?}"
    );
}
