//! Standard `wasi:http/proxy` components (`guest/standard`, built with the
//! `wasip2` bindings only) served through `snow`: their routes, blocking
//! WASI calls, outbound requests through the allow-list, the limits, the
//! isolation modes, hot swaps between worlds, and hostile input.

use std::time::{Duration, Instant};

use crate::common::{parse_all, request_at, scratch, Server};

const STANDARD: &str = snow_test_guests::STANDARD;
const HELLO: &str = snow_test_guests::HELLO;

fn start(args: &[&str]) -> Server {
    Server::start_module(Some(STANDARD), args)
}

#[test]
fn a_standard_component_serves_its_routes() {
    let server = start(&["--workers", "1"]);
    let home = server.get("/home/");
    assert_eq!(
        (home.status, home.text().as_str()),
        (200, "hello from /home/")
    );
    let query = server.get("/home/?x=1");
    assert_eq!(
        query.text(),
        "hello from /home/",
        "the query is not the path"
    );
    let missing = server.get("/nowhere/");
    assert_eq!(
        (missing.status, missing.text().as_str()),
        (404, "no such route")
    );

    let body: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let echo = server.request_with(
        "POST",
        "/echo/",
        &[("content-type", b"application/x-test")],
        &body,
    );
    assert_eq!(echo.status, 200, "{}", echo.text());
    assert_eq!(echo.body, body, "the body comes back unchanged");
    assert_eq!(echo.header("x-body-length"), Some("200000"));
    assert_eq!(echo.header("content-type"), Some("application/x-test"));

    // No preopens: the component's filesystem is empty.
    let file = server.get("/file/");
    assert_eq!(file.status, 403, "{}", file.text());
    assert!(file.text().starts_with("no file"), "{}", file.text());

    // A fresh instance per request unless configured otherwise.
    for _ in 0..3 {
        assert_eq!(server.get("/served/").text(), "1");
    }
    let modules = server.admin_request("GET", "/modules", b"");
    assert!(
        modules.text().contains(r#""world": "wasi:http/proxy""#),
        "{}",
        modules.text()
    );
}

/// A pollable's `block` suspends the component's fiber: one worker runs
/// many sleeping requests at once instead of one after another.
#[test]
fn blocking_waits_do_not_hold_the_worker() {
    let server = start(&["--workers", "1"]);
    let addr = server.addr;
    let started = Instant::now();
    let sleepers: Vec<_> = (0..20)
        .map(|_| std::thread::spawn(move || request_at(addr, "GET", "/sleep/?ms=400", b"")))
        .collect();
    for sleeper in sleepers {
        let resp = sleeper.join().expect("client thread");
        assert_eq!((resp.status, resp.text().as_str()), (200, "slept 400 ms"));
    }
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(400), "{took:?}");
    // Serially, 20 × 400 ms = 8 s; a generous bound for a busy machine.
    assert!(
        took < Duration::from_secs(4),
        "the sleeps ran one by one: {took:?}"
    );
}

#[test]
fn outbound_requests_go_through_the_allow_list() {
    let upstream = Server::start(&["--workers", "1"]);
    let allowed = format!("http://{}", upstream.addr);
    let server = start(&["--workers", "1", "--allow-outbound", &allowed]);

    let ok = server.get(&format!("/fetch/?url={allowed}/home/"));
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(ok.text(), "home", "the upstream's body");
    assert_eq!(ok.header("x-upstream-status"), Some("200"));

    // Not on the list: refused before any connection, with the standard's
    // error code.
    let denied = server.get("/fetch/?url=http://127.0.0.1:9/");
    assert_eq!(denied.status, 502);
    assert!(
        denied.text().contains("HttpRequestDenied"),
        "{}",
        denied.text()
    );
    server.wait_log("outbound request denied");
}

#[test]
fn limits_hold_and_the_server_keeps_serving() {
    let server = start(&["--workers", "1", "--request-timeout", "1s"]);
    let cases = [
        ("/panic/", 500, "the module failed"),
        ("/loop/", 500, "the module failed"),
        ("/alloc/?mb=512", 500, "the module failed"),
        ("/silent/", 500, "the module returned an invalid response"),
        ("/sleep/?ms=5000", 504, "the handler did not answer in time"),
    ];
    for (path, status, text) in cases {
        let started = Instant::now();
        let resp = server.get(path);
        assert_eq!(resp.status, status, "{path}: {}", resp.text());
        assert!(resp.text().contains(text), "{path}: {}", resp.text());
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{path} took {:?}",
            started.elapsed()
        );
        let home = server.get("/home/");
        assert_eq!(home.status, 200, "after {path}: {}", home.text());
    }
    server.wait_log("the call ran past its CPU time limit");
    server.wait_log("past the module's limit");
    server.wait_log("the component returned without setting a response");
    assert!(server.metric(r#"snow_traps_total{module="standard",reason="cpu_time"}"#) >= 1.0);
    assert!(server.metric(r#"snow_traps_total{module="standard",reason="memory"}"#) >= 1.0);
    assert!(server.metric(r#"snow_traps_total{module="standard",reason="panic"}"#) >= 1.0);
}

/// What a component answers is checked like a Snow module's answer.
#[test]
fn hostile_answers_are_refused() {
    // CPU time enough to write past the limit, even in a debug build.
    let args = [
        "--workers",
        "1",
        "--max-memory",
        "16MiB",
        "--max-call-time",
        "20s",
    ];
    let server = start(&args);
    // A body past the module's memory limit streams: the host never holds
    // it whole.
    let huge = server.get("/huge/?mb=64");
    assert_eq!((huge.status, huge.body.len()), (200, 64 << 20));
    assert!(huge.body.iter().all(|&b| b == 0));
    let small = server.get("/huge/?mb=1");
    assert_eq!((small.status, small.body.len()), (200, 1 << 20));
    // Statuses wasi:http takes but an HTTP/1.1 answer has no place for.
    for code in ["600", "999", "101"] {
        let resp = server.get(&format!("/status/?code={code}"));
        assert_eq!(resp.status, 500, "status {code}: {}", resp.text());
    }
    server.wait_log("the component's response");
    assert_eq!(server.get("/status/?code=418").status, 418);
    // Host resources held at once are capped.
    let few = server.get("/hoard/?n=100");
    assert_eq!((few.status, few.text().as_str()), (200, "held 100"));
    let many = server.get("/hoard/?n=1000000");
    assert_eq!(many.status, 500, "{}", many.text());
    assert_eq!(server.get("/home/").status, 200);
}

#[test]
fn hostile_hosts_are_answered_not_passed_on() {
    let server = start(&["--workers", "1"]);
    for host in [&b"a b"[..], b"x/y", b"[::1", b"\xff\xfe", b"h@st"] {
        let mut req = b"GET /home/ HTTP/1.1\r\nhost: ".to_vec();
        req.extend_from_slice(host);
        req.extend_from_slice(b"\r\nconnection: close\r\n\r\n");
        let answers = parse_all(&server.raw(&req));
        assert_eq!(answers.len(), 1, "Host {host:?}");
        assert_eq!(
            answers[0].status,
            400,
            "Host {host:?}: {}",
            answers[0].text()
        );
        assert!(
            answers[0].text().contains("invalid Host header"),
            "Host {host:?}: {}",
            answers[0].text()
        );
    }
    // No Host at all (HTTP/1.0): the component still gets an authority.
    let answers = parse_all(&server.raw(b"GET /home/ HTTP/1.0\r\n\r\n"));
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].status, 200, "{}", answers[0].text());
}

fn manifest(dir: &std::path::Path, isolation: Option<&str>) -> std::path::PathBuf {
    let isolation = isolation.map_or(String::new(), |mode| format!("isolation = \"{mode}\"\n"));
    let text = format!(
        r#"
workers = 1

[[module]]
name = "standard"
prefix = "/"
wasm = "{STANDARD}"
{isolation}
[module.env]
GREETING = "from the manifest"

[[module]]
name = "hello"
prefix = "/snow"
wasm = "{HELLO}"
"#
    );
    let path = dir.join("snow.toml");
    std::fs::write(&path, text).expect("write manifest");
    path
}

/// Both worlds mounted side by side; `isolation = "instance"` lets a
/// worker reuse a finished instance, so its state carries over.
#[test]
fn mounted_beside_snow_modules_with_instance_reuse() {
    let dir = scratch("standard", "beside");
    // Cranelift's build from the start: a tier-up would swap in a new
    // version, with instances of its own, in the middle of the count.
    let args = ["--compiler", "cranelift"];
    let server = Server::start_module(manifest(&dir, Some("instance")).to_str(), &args);
    assert_eq!(server.get("/snow/home/").text(), "home");
    assert_eq!(
        server.get("/env/?name=GREETING").text(),
        "from the manifest"
    );
    let counts: Vec<u64> = (0..3)
        .map(|_| server.get("/served/").text().parse().expect("a count"))
        .collect();
    assert!(
        counts.windows(2).all(|w| w[1] == w[0] + 1),
        "one reused instance counts on: {counts:?}"
    );
    // A trap drops the instance; the next request starts afresh.
    assert_eq!(server.get("/panic/").status, 500);
    assert_eq!(server.get("/served/").text(), "1");
}

#[test]
fn swaps_between_a_standard_component_and_a_snow_module() {
    let dir = scratch("standard", "swap");
    let server = Server::start_module(manifest(&dir, None).to_str(), &[]);
    let admin = server.admin.expect("admin enabled");
    let hello = std::fs::read(HELLO).expect("hello module");
    let standard = std::fs::read(STANDARD).expect("standard component");
    for round in 0..3 {
        let put = request_at(admin, "PUT", "/modules/standard", &hello);
        assert_eq!(put.status, 200, "round {round}: {}", put.text());
        assert_eq!(server.get("/home/").text(), "home", "round {round}");
        let put = request_at(admin, "PUT", "/modules/standard", &standard);
        assert_eq!(put.status, 200, "round {round}: {}", put.text());
        assert_eq!(
            server.get("/home/").text(),
            "hello from /home/",
            "round {round}"
        );
    }
    assert_eq!(server.get("/snow/home/").text(), "home");
}

#[test]
fn check_names_the_world() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_snow"))
        .args(["check", STANDARD])
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("run snow check");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(
        stdout.contains("a wasi:http/proxy component, isolation request"),
        "{stdout}"
    );
}
