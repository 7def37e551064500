//! Cancellation, logging, shutdown and start-up of `snow serve`.

use crate::common;

use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{broken_manifest, Server, TESTKIT};

fn stats(server: &Server) -> serde_json::Value {
    let resp = server.get("/stats/");
    assert_eq!(resp.status, 200);
    serde_json::from_slice(&resp.body).expect("stats json")
}

#[test]
fn a_client_that_leaves_while_parked_cancels_its_request() {
    let server = Server::testkit(&["--workers", "1"]);
    {
        let mut stream = server.connect();
        stream
            .write_all(b"GET /sleep/?ms=60000 HTTP/1.1\r\nHost: t\r\n\r\n")
            .expect("write");
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(stats(&server)["live_tasks"], 1);
    }
    let until = Instant::now() + common::PATIENCE;
    loop {
        let s = stats(&server);
        if s["live_tasks"] == 0 {
            assert_eq!(s["cancelled"], 1, "{s}");
            break;
        }
        assert!(Instant::now() < until, "never cancelled: {s}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(server.get("/sleep/?ms=10").text(), "slept");
}

#[test]
fn guest_output_is_logged_with_the_module_name() {
    let server = Server::testkit(&["--workers", "1"]);
    assert_eq!(server.get("/print/?n=2").text(), "printed");
    let line = server.wait_log("testkit stderr");
    assert!(line.contains("testkit"), "{line}");
    server.wait_log("stream=\"stdout\"");
}

#[test]
fn every_request_gets_an_access_line() {
    let server = Server::testkit(&["--workers", "1"]);
    assert_eq!(server.get("/counter/").status, 200);
    assert_eq!(server.get("/no/such/route/").status, 404);
    for (path, status) in [("/counter/", 200), ("/no/such/route/", 404)] {
        let needle = format!("method=GET path={path} status={status} us=");
        let line = server.wait_log(&needle);
        assert!(line.contains(" INFO snow::access: "), "{line}");
        assert!(line.ends_with("module=\"testkit\""), "{line}");
        let micros = line
            .split(" us=")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse::<u64>().ok());
        assert!(micros.is_some(), "{line}");
    }
}

#[test]
fn sigterm_lets_parked_requests_finish_then_exits_0() {
    let mut server = Server::start(&[]);
    let addr = server.addr;
    let inflight = std::thread::spawn(move || {
        let mut stream = std::net::TcpStream::connect(addr).expect("connect");
        stream
            .write_all(b"GET /async/?ms=1000 HTTP/1.1\r\nHost: t\r\n\r\n")
            .expect("write");
        let mut reader = std::io::BufReader::new(stream);
        common::read_response(&mut reader, false).expect("response")
    });
    std::thread::sleep(Duration::from_millis(300));
    server.signal(libc::SIGTERM);
    let resp = inflight.join().expect("thread");
    assert_eq!((resp.status, resp.text()), (200, "done".into()));
    assert_eq!(resp.header("connection"), Some("close"));
    assert!(server.wait_exit().success());
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "no longer listening"
    );
}

#[test]
fn requests_still_running_when_the_grace_runs_out_get_503() {
    let mut server = Server::testkit(&["--grace", "300ms"]);
    let addr = server.addr;
    let parked = std::thread::spawn(move || {
        let mut stream = std::net::TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(common::PATIENCE))
            .expect("timeout");
        stream
            .write_all(b"GET /sleep/?ms=20000 HTTP/1.1\r\nHost: t\r\n\r\n")
            .expect("write");
        let mut all = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stream, &mut all);
        all
    });
    server.wait_metric(r#"snow_parked_requests{module="testkit"}"#, 1.0);
    server.signal(libc::SIGTERM);
    let raw = parked.join().expect("thread");
    let responses = common::parse_all(&raw);
    let [resp] = responses.as_slice() else {
        panic!(
            "one answer, then close: {:?}",
            String::from_utf8_lossy(&raw)
        );
    };
    assert_eq!(resp.status, 503, "{}", resp.text());
    assert_eq!(resp.header("connection"), Some("close"));
    assert!(resp.text().contains("shutting down"), "{}", resp.text());
    assert!(server.wait_exit().success());
}

#[test]
fn a_warm_cache_starts_fast() {
    drop(Server::testkit(&[]));
    let started = Instant::now();
    let server = Server::testkit(&[]);
    let warm = started.elapsed();
    assert_eq!(server.get("/counter/").status, 200);
    // A sanity bound only; bench/ measures the real figure.
    assert!(warm < Duration::from_secs(5), "warm start took {warm:?}");
}

#[test]
fn check_validates_modules() {
    let ok = Command::new(env!("CARGO_BIN_EXE_snow"))
        .args(["check", TESTKIT, "--no-cache"])
        .output()
        .expect("run snow check");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let out = String::from_utf8_lossy(&ok.stdout);
    assert!(out.contains("^/panic/$"), "{out}");

    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    let junk = dir.join("not-a-module.wasm");
    std::fs::write(&junk, b"hello").expect("write junk");
    let bad = Command::new(env!("CARGO_BIN_EXE_snow"))
        .arg("check")
        .arg(&junk)
        .output()
        .expect("run snow check");
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("not a WebAssembly file"), "{err}");

    for (module, expected) in [
        (
            snow_test_guests::OTHERWORLD,
            "does not export the snow:http/handler",
        ),
        (snow_test_guests::BROKEN, "failed listing its routes"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_snow"))
            .args(["check", module, "--no-cache"])
            .output()
            .expect("run snow check");
        assert!(!out.status.success(), "{module} passed the check");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expected), "{module}: {err}");
    }
}

#[test]
fn busy_poll_is_bounded_and_can_be_turned_off() {
    let out = Command::new(env!("CARGO_BIN_EXE_snow"))
        .args(["serve", "--listen", "127.0.0.1:0", "--busy-poll", "5ms"])
        .output()
        .expect("run snow serve");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("`5ms` is longer than 1ms"), "{err}");

    let server = Server::start(&["--busy-poll", "0s"]);
    for _ in 0..3 {
        let resp = server.get("/home/");
        assert_eq!((resp.status, resp.text().as_str()), (200, "home"));
    }
}

#[test]
fn out_of_range_settings_stop_start_up_with_the_range() {
    for (flag, value, why) in [
        ("--workers", "100000", "above the most allowed, 256"),
        ("--workers", "5000", "above the most allowed, 256"),
        (
            "--max-call-time",
            "999999999999d",
            "above the most allowed, 1m",
        ),
        ("--max-connections", "0", "below the least allowed, 1"),
    ] {
        let started = std::time::Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_snow"))
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--admin",
                "off",
                flag,
                value,
            ])
            .output()
            .expect("run snow");
        assert_eq!(out.status.code(), Some(2), "{flag} {value}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(why), "{flag} {value}: {err}");
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
    }
}

#[test]
fn invalid_route_tables_are_refused_before_serving() {
    for (mode, why) in [
        (
            "bad-regex",
            "route `^/(unclosed/$` is not a valid regular expression",
        ),
        ("huge-regex", "exceeds size limit"),
        ("many-routes", "lists 10000 routes; at most 4096"),
        ("bad-method", "not an HTTP method name"),
    ] {
        let manifest = broken_manifest(mode, mode, snow_test_guests::BROKEN);
        for command in ["check", "serve"] {
            let out = Command::new(env!("CARGO_BIN_EXE_snow"))
                .arg(command)
                .arg(&manifest)
                .args(["--no-cache"])
                .args(if command == "serve" {
                    &["--listen", "127.0.0.1:0", "--admin", "off"][..]
                } else {
                    &[][..]
                })
                .output()
                .expect("run snow");
            assert!(!out.status.success(), "{command} {mode} passed");
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains(why), "{command} {mode}: {err}");
        }
    }
}

#[test]
fn check_takes_a_manifest() {
    let manifest = broken_manifest("check-ok", "unused", TESTKIT);
    let out = Command::new(env!("CARGO_BIN_EXE_snow"))
        .arg("check")
        .arg(&manifest)
        .output()
        .expect("run snow check");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("(module m at /): ok"), "{stdout}");
    assert!(stdout.contains("^/panic/$"), "{stdout}");
}

#[test]
fn a_deploy_with_an_invalid_route_is_refused() {
    // The module keeps its environment across deploys, so the upload below
    // lists the bad table.
    let manifest = broken_manifest("deploy", "bad-regex", TESTKIT);
    let server = Server::start(&[manifest.to_str().expect("utf-8 path")]);
    assert_eq!(server.get("/counter/").status, 200);
    let wasm = std::fs::read(snow_test_guests::BROKEN).expect("read module");
    let admin = server.admin.expect("admin enabled");
    let resp = common::request_at(admin, "PUT", "/modules/m", &wasm);
    assert_eq!(resp.status, 422, "{}", resp.text());
    assert!(
        resp.text().contains("is not a valid regular expression"),
        "{}",
        resp.text()
    );
    assert_eq!(server.get("/counter/").status, 200);
}
