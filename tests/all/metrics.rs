//! The admin API's `/metrics`: each series moves when its event happens, and
//! the admin API is not reachable through the public listener.

use crate::common;

use std::io::Write;

use common::Server;

#[test]
fn requests_by_status_and_latency() {
    let server = Server::testkit(&["--workers", "1"]);
    for _ in 0..3 {
        assert_eq!(server.get("/counter/").status, 200);
    }
    assert_eq!(server.get("/status/418/").status, 418);
    server.wait_metric(r#"snow_requests_total{module="testkit",status="200"}"#, 3.0);
    server.wait_metric(r#"snow_requests_total{module="testkit",status="418"}"#, 1.0);
    server.wait_metric(
        r#"snow_request_duration_seconds_count{module="testkit"}"#,
        4.0,
    );
    let slow = r#"snow_request_duration_seconds_bucket{module="testkit",le="0.1"}"#;
    let fast_before = server.metric(slow);
    assert_eq!(server.get("/sleep/?ms=300").status, 200);
    server.wait_metric(
        r#"snow_request_duration_seconds_count{module="testkit"}"#,
        5.0,
    );
    // The 300 ms request lands above the 0.1 s bucket.
    assert_eq!(server.metric(slow), fast_before);
}

#[test]
fn parked_requests_and_open_connections() {
    let server = Server::testkit(&["--workers", "1"]);
    server.wait_metric("snow_open_connections", 0.0);
    let mut stream = server.connect();
    stream
        .write_all(b"GET /sleep/?ms=60000 HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("write");
    server.wait_metric(r#"snow_parked_requests{module="testkit"}"#, 1.0);
    server.wait_metric("snow_open_connections", 1.0);
    drop(stream);
    server.wait_metric(r#"snow_parked_requests{module="testkit"}"#, 0.0);
    server.wait_metric("snow_open_connections", 0.0);
}

#[test]
fn traps_and_rebuilds_by_reason() {
    let server = Server::testkit(&["--workers", "1", "--max-call-time", "100ms"]);
    assert_eq!(server.get("/panic/").status, 500);
    server.wait_metric(r#"snow_traps_total{module="testkit",reason="panic"}"#, 1.0);
    server.wait_metric(
        r#"snow_instance_rebuilds_total{module="testkit",reason="panic"}"#,
        1.0,
    );
    assert_eq!(server.get("/loop/").status, 500);
    server.wait_metric(
        r#"snow_traps_total{module="testkit",reason="cpu_time"}"#,
        1.0,
    );
    server.wait_metric(
        r#"snow_instance_rebuilds_total{module="testkit",reason="cpu_time"}"#,
        1.0,
    );
    server.wait_metric(r#"snow_requests_total{module="testkit",status="500"}"#, 2.0);
}

#[test]
fn refusals_by_limit() {
    let server = Server::testkit(&[
        "--workers",
        "1",
        "--max-parked",
        "1",
        "--max-connections",
        "2",
    ]);
    let mut parked = server.connect();
    parked
        .write_all(b"GET /sleep/?ms=2000 HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("write");
    server.wait_metric(r#"snow_parked_requests{module="testkit"}"#, 1.0);
    assert_eq!(server.get("/sleep/?ms=2000").status, 503);
    server.wait_metric(r#"snow_refused_total{limit="parked"}"#, 1.0);
    // The refused request's connection must be gone before the next one
    // comes, or that one is the connection over the limit.
    server.wait_metric("snow_open_connections", 1.0);
    let second = server.connect();
    server.wait_metric("snow_open_connections", 2.0);
    let raw = server.raw(b"GET /counter/ HTTP/1.1\r\nHost: t\r\n\r\n");
    assert!(String::from_utf8_lossy(&raw).starts_with("HTTP/1.1 503"));
    server.wait_metric(r#"snow_refused_total{limit="connections"}"#, 1.0);
    drop((parked, second));
}

#[test]
fn the_admin_api_is_not_on_the_public_listener() {
    let server = Server::start(&[]);
    assert_eq!(server.get("/metrics").status, 404);
    assert_eq!(server.get("/healthz").status, 404);
    let admin = server.admin.expect("admin address");
    assert!(admin.ip().is_loopback());
    assert_ne!(admin.port(), server.addr.port());
    assert!(server
        .metrics()
        .contains("# TYPE snow_requests_total counter"));
}
