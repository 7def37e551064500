//! Probes for balancers: `/readyz` beside `/healthz`, the health listener
//! that serves them and nothing else, and the drain a SIGTERM starts.

use crate::common;

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{request_at, request_with, Server, ADMIN_TOKEN_ENV, PATIENCE};

const TOKEN: &str = "0f9e8d7c-health-token-for-tests";

/// The embedded default app is mounted as `hello`.
const DEFAULT_APP: &str = "hello";

/// `addr` as a client on this host reaches it, whatever it is bound to.
fn local(addr: SocketAddr) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], addr.port()))
}

fn health_addr(server: &Server) -> SocketAddr {
    local(server.health.expect("the health listener is on"))
}

/// `snow serve` with `args`, expected to exit without serving.
fn serve_refused(args: &[&str]) -> (Output, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_snow"))
        .arg("serve")
        .args(["--listen", "127.0.0.1:0", "--admin", "off"])
        .args(args)
        .env_remove(ADMIN_TOKEN_ENV)
        .stdin(Stdio::null())
        .output()
        .expect("running snow");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!output.status.success(), "snow started: {stderr}");
    assert!(output.stdout.is_empty(), "snow printed a banner: {stderr}");
    (output, stderr)
}

#[test]
fn readyz_answers_ok_without_a_token_once_up() {
    let server = Server::start_with(None, &[], &[(ADMIN_TOKEN_ENV, TOKEN)]);
    let admin = server.admin.expect("admin enabled");
    for path in ["/healthz", "/readyz"] {
        let resp = request_at(admin, "GET", path, b"");
        assert_eq!((resp.status, resp.text().as_str()), (200, "ok"), "{path}");
        let head = request_at(admin, "HEAD", path, b"");
        assert_eq!(head.status, 200, "HEAD {path}");
        assert_eq!(head.header("content-length"), Some("2"));
        assert!(head.body.is_empty());
        assert_eq!(request_at(admin, "POST", path, b"").status, 405, "{path}");
    }
    // The rest of the admin API still wants the token.
    assert_eq!(request_at(admin, "GET", "/metrics", b"").status, 401);
    assert_eq!(server.admin_request("GET", "/metrics", b"").status, 200);
}

#[test]
fn the_health_listener_serves_the_probes_and_nothing_else() {
    let server = Server::start_with(
        None,
        &["--health", "127.0.0.1:0"],
        &[(ADMIN_TOKEN_ENV, TOKEN)],
    );
    let health = health_addr(&server);
    assert_ne!(Some(health), server.admin);
    assert_eq!(
        server.health_url(),
        Some(format!("http://{}", server.health.expect("on")))
    );
    for path in ["/healthz", "/readyz"] {
        let resp = server.health_request("GET", path);
        assert_eq!((resp.status, resp.text().as_str()), (200, "ok"), "{path}");
        assert_eq!(server.health_request("HEAD", path).status, 200, "{path}");
    }
    // Nothing of the admin API is there, with the right token or without.
    let before = server.admin().modules();
    let auth = format!("Bearer {TOKEN}");
    let wasm = std::fs::read(snow_test_guests::VERSION_TWO).expect("read module");
    let cases: [(&str, &str, &[u8]); 6] = [
        ("GET", "/metrics", b""),
        ("GET", "/modules", b""),
        ("PUT", "/modules/hello", &wasm),
        ("PUT", "/modules/nope", b"x"),
        ("GET", "/", b""),
        ("GET", "/home/", b""),
    ];
    for (method, path, body) in cases {
        for headers in [&[][..], &[("authorization", auth.as_bytes())][..]] {
            let resp = request_with(health, method, path, headers, body);
            assert_eq!(resp.status, 404, "{method} {path} {headers:?}");
            assert!(
                resp.text().contains("serves /healthz and /readyz"),
                "{}",
                resp.text()
            );
        }
    }
    // The module is the one it started with: nothing was deployed.
    assert_eq!(server.get("/home/").text(), "home");
    let after = server.admin().modules();
    assert!(
        after.contains(&format!("\"name\": \"{DEFAULT_APP}\"")),
        "{after}"
    );
    assert_eq!(before, after);
}

#[test]
fn the_health_listener_needs_no_token_off_loopback() {
    // Unlike the admin API, which refuses to start there without a token.
    let server = Server::start(&["--health", "0.0.0.0:0", "--admin", "off"]);
    assert_eq!(server.admin, None);
    let resp = request_at(health_addr(&server), "GET", "/readyz", b"");
    assert_eq!((resp.status, resp.text().as_str()), (200, "ok"));
}

#[test]
fn sigterm_with_a_drain_delay_fails_readiness_but_keeps_serving() {
    let delay = Duration::from_secs(2);
    let mut server = Server::start(&["--drain-delay", "2s", "--health", "127.0.0.1:0"]);
    let (health, admin, public) = (
        health_addr(&server),
        server.admin.expect("admin"),
        server.addr,
    );
    assert_eq!(request_at(health, "GET", "/readyz", b"").status, 200);
    let signalled = Instant::now();
    server.signal(libc::SIGTERM);
    let draining = server.wait_probe("/readyz", 503);
    let seen = signalled.elapsed();
    // Checked before the delay runs out: the balancer is told at once...
    let home = request_at(public, "GET", "/home/", b"");
    let in_delay = signalled.elapsed();
    assert_eq!(draining.text(), "draining");
    assert!(seen < delay, "503 only after {seen:?}");
    // ...while new connections are still accepted and served.
    assert_eq!((home.status, home.text().as_str()), (200, "home"));
    assert!(in_delay < delay, "the request took until {in_delay:?}");
    let on_admin = request_at(admin, "GET", "/readyz", b"");
    assert_eq!(
        (on_admin.status, on_admin.text().as_str()),
        (503, "draining")
    );
    assert_eq!(request_at(health, "GET", "/healthz", b"").status, 200);
    server.wait_log("SIGTERM: draining");

    assert!(server.wait_exit().success());
    let took = signalled.elapsed();
    assert!(took >= delay, "exited after {took:?}, before the delay");
    let log = server.log_lines().join("\n");
    let over = log.find("drain delay over").expect("the delay ran out");
    let stopped = log.find("accepting stopped").expect("accepting stopped");
    assert!(over < stopped, "{log}");
    assert!(
        std::net::TcpStream::connect(public).is_err(),
        "no longer listening"
    );
}

#[test]
fn while_draining_each_answer_closes_its_connection() {
    use std::io::{BufReader, Read, Write};

    let mut server = Server::start(&["--drain-delay", "5s", "--health", "127.0.0.1:0"]);
    let stream = std::net::TcpStream::connect(server.addr).expect("connect");
    stream.set_read_timeout(Some(PATIENCE)).expect("timeout");
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut writer = stream;
    let get = b"GET /home/ HTTP/1.1\r\nHost: t\r\n\r\n";
    writer.write_all(get).expect("send");
    let before = common::read_response(&mut reader, false).expect("an answer");
    assert_eq!(before.status, 200);
    assert_eq!(
        before.header("connection"),
        None,
        "kept alive before the signal"
    );

    server.signal(libc::SIGTERM);
    server.wait_probe("/readyz", 503);
    // The same connection's next answer is its last: a balancer reconnects
    // instead of sending on a connection the host closes when it stops.
    writer.write_all(get).expect("send on the kept connection");
    let during = common::read_response(&mut reader, false).expect("an answer");
    assert_eq!((during.status, during.text().as_str()), (200, "home"));
    assert_eq!(during.header("connection"), Some("close"));
    let mut rest = Vec::new();
    let read = reader.read_to_end(&mut rest).expect("the host closes");
    assert_eq!((read, rest.len()), (0, 0), "nothing after the last answer");
    // New connections are still served while the delay runs, one answer each.
    let fresh = request_at(server.addr, "GET", "/home/", b"");
    assert_eq!(
        (fresh.status, fresh.header("connection")),
        (200, Some("close"))
    );
    assert!(server.wait_exit().success());
}

#[test]
fn a_second_signal_cuts_the_drain_delay_short() {
    for second in [libc::SIGTERM, libc::SIGINT] {
        let mut server = Server::start(&["--drain-delay", "10m"]);
        server.signal(libc::SIGTERM);
        server.wait_probe("/readyz", 503);
        assert_eq!(server.get("/home/").status, 200);
        let signalled = Instant::now();
        server.signal(second);
        // Ten minutes were left; the patience is half a minute.
        assert!(server.wait_exit().success(), "signal {second}");
        assert!(signalled.elapsed() < PATIENCE);
        server.wait_log("during the drain delay: stopping now");
    }
}

#[test]
fn sigint_skips_the_drain_delay() {
    let mut server = Server::start(&["--drain-delay", "10m"]);
    server.signal(libc::SIGINT);
    assert!(server.wait_exit().success());
    let log = server.log_lines().join("\n");
    assert!(!log.contains("draining"), "{log}");
    assert!(log.contains("accepting stopped"), "{log}");
}

#[test]
fn without_a_drain_delay_sigterm_stops_at_once() {
    let mut server = Server::start(&["--grace", "10s"]);
    let signalled = Instant::now();
    server.signal(libc::SIGTERM);
    assert!(server.wait_exit().success());
    // Nothing was in flight: neither the grace period nor a delay is waited.
    let took = signalled.elapsed();
    assert!(took < Duration::from_secs(8), "took {took:?}");
    let log = server.log_lines().join("\n");
    assert!(!log.contains("SIGTERM: draining"), "{log}");
}

#[test]
fn bad_health_and_drain_delay_values_stop_start_up() {
    for (flag, value, why) in [
        (
            "--health",
            "on",
            "`on` is not an address like 0.0.0.0:8014, or `off`",
        ),
        ("--health", "8014", "`8014` is not an address"),
        ("--health", "localhost:8014", "is not an address"),
        ("--health", "0.0.0.0:70000", "is not an address"),
        ("--health", "", "--health"),
        ("--drain-delay", "11m", "above the most allowed, 10m"),
        (
            "--drain-delay",
            "9999999999999d",
            "above the most allowed, 10m",
        ),
        ("--drain-delay", "5", "is not a duration like 30s or 100ms"),
        ("--drain-delay", "-1s", "is not a duration"),
        ("--drain-delay", "soon", "is not a duration"),
    ] {
        // As one argument, so that `-1s` reaches the value's parser.
        let (output, stderr) = serve_refused(&[&format!("{flag}={value}")]);
        assert_eq!(output.status.code(), Some(2), "{flag} {value}: {stderr}");
        assert!(stderr.contains(why), "{flag} {value}: {stderr}");
        assert!(stderr.contains(flag), "{flag} {value}: {stderr}");
    }
}

/// A manifest mounting the default test kit with `top` before it.
fn manifest(test: &str, top: &str) -> PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("health")
        .join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let path = dir.join("snow.toml");
    let text = format!(
        "workers = 1\n{top}\n[[module]]\nname = \"kit\"\nprefix = \"/\"\nwasm = \"{}\"\n",
        common::TESTKIT
    );
    std::fs::write(&path, text).expect("write manifest");
    path
}

#[test]
fn the_manifest_sets_health_and_drain_delay() {
    let path = manifest(
        "keys",
        "health = \"127.0.0.1:0\"\n[limits]\ndrain_delay = \"10m\"",
    );
    let mut server = Server::start(&[path.to_str().expect("utf-8 path")]);
    assert_eq!(server.health_request("GET", "/readyz").status, 200);
    server.signal(libc::SIGTERM);
    let resp = server.wait_probe("/readyz", 503);
    assert_eq!(resp.text(), "draining");
    let line = server.wait_log("SIGTERM: draining");
    assert!(line.contains("for 10m"), "{line}");
    assert_eq!(server.get("/counter/").status, 200);
    server.signal(libc::SIGTERM);
    assert!(server.wait_exit().success());

    // A flag wins: `off` turns the manifest's listener off.
    let server = Server::start(&[path.to_str().expect("utf-8 path"), "--health", "off"]);
    assert_eq!(server.health, None);
}

#[test]
fn bad_manifest_values_stop_start_up_naming_key_and_line() {
    for (top, at) in [
        (
            "health = \"on\"",
            ":2:10: health: `on` is not an address like 0.0.0.0:8014",
        ),
        (
            "health = 8014",
            ":2:10: health: expected a string, found an integer",
        ),
        (
            "[limits]\ndrain_delay = \"1h\"",
            ":3:15: limits.drain_delay: `1h` is above the most allowed, 10m",
        ),
        (
            "[limits]\ndrain_delay = 30",
            ":3:15: limits.drain_delay: `30` has no unit",
        ),
    ] {
        let path = manifest("bad", top);
        let out = Command::new(env!("CARGO_BIN_EXE_snow"))
            .arg("serve")
            .arg(&path)
            .args(["--listen", "127.0.0.1:0", "--admin", "off"])
            .output()
            .expect("run snow");
        assert!(!out.status.success(), "{top}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(at), "{top}: {err}");
    }
}

#[test]
fn a_taken_health_port_fails_start_up() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let (output, stderr) = serve_refused(&["--health", &addr]);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("the health listener"), "{stderr}");
    assert!(stderr.contains(&addr), "{stderr}");
}
