//! The admin API's guards: a bearer token for everything but `/healthz`,
//! no start off loopback without one, and a bound on uploads at once.

use crate::common;

use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use common::{read_response, request_with, Response, Server, ADMIN_TOKEN_ENV, PATIENCE};

const ONE: &str = snow_test_guests::VERSION_ONE;
const TWO: &str = snow_test_guests::VERSION_TWO;

const TOKEN: &str = "f1c2e3d4-admin-token-for-tests";

/// A fresh directory for one test's files.
fn scratch(test: &str) -> PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("admin")
        .join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn read(path: &str) -> Vec<u8> {
    std::fs::read(path).expect("reading a guest module")
}

/// `module` copied to its own file, so uploads replace that copy's module.
fn module_file(test: &str, module: &str) -> String {
    let file = scratch(test).join("app.wasm");
    std::fs::write(&file, read(module)).expect("write module");
    file.to_str().expect("a UTF-8 path").to_string()
}

/// `snow serve` with `args` and `env`, expected to exit without serving.
fn serve_refused(args: &[&str], env: &[(&str, &str)]) -> (Output, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_snow"))
        .arg("serve")
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .env_remove(ADMIN_TOKEN_ENV)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("running snow");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!output.status.success(), "snow started: {stderr}");
    assert!(output.stdout.is_empty(), "snow printed a banner: {stderr}");
    (output, stderr)
}

/// The admin API as a client on this host reaches it, whatever it is bound to.
fn admin_addr(server: &Server) -> SocketAddr {
    let admin = server.admin.expect("admin enabled");
    SocketAddr::from(([127, 0, 0, 1], admin.port()))
}

fn put(server: &Server, auth: Option<&[u8]>, wasm: &[u8]) -> Response {
    let headers: Vec<(&str, &[u8])> = auth.map(|a| ("authorization", a)).into_iter().collect();
    request_with(admin_addr(server), "PUT", "/modules/app", &headers, wasm)
}

#[test]
fn off_loopback_without_a_token_snow_refuses_to_start() {
    for admin in ["0.0.0.0:0", "[::]:0", "192.0.2.1:0"] {
        let (output, stderr) = serve_refused(&["--admin", admin], &[]);
        assert_eq!(output.status.code(), Some(1), "{admin}: {stderr}");
        assert!(
            stderr.contains("not on loopback and has no token"),
            "{admin}: {stderr}"
        );
        assert!(stderr.contains(ADMIN_TOKEN_ENV), "{stderr}");
    }
}

#[test]
fn bad_tokens_refuse_start_and_no_flag_takes_a_token() {
    let dir = scratch("bad-tokens");
    let (_, stderr) = serve_refused(&[], &[(ADMIN_TOKEN_ENV, "short")]);
    assert!(stderr.contains("at least 16 are required"), "{stderr}");
    let (_, stderr) = serve_refused(&[], &[(ADMIN_TOKEN_ENV, "")]);
    assert!(stderr.contains("the admin token is empty"), "{stderr}");

    let readable = dir.join("readable.token");
    std::fs::write(&readable, TOKEN).expect("write token");
    std::fs::set_permissions(&readable, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let path = readable.to_str().expect("utf-8 path");
    let (_, stderr) = serve_refused(&["--admin-token-file", path], &[]);
    assert!(stderr.contains("can be read by other users"), "{stderr}");

    let missing = dir.join("missing.token");
    let (_, stderr) = serve_refused(&["--admin-token-file", missing.to_str().unwrap()], &[]);
    assert!(stderr.contains("missing.token"), "{stderr}");
    let (_, stderr) = serve_refused(&["--admin-token-file", "/dev/zero"], &[]);
    assert!(stderr.contains("not a regular file"), "{stderr}");

    std::fs::set_permissions(&readable, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let (_, stderr) = serve_refused(&["--admin-token-file", path], &[(ADMIN_TOKEN_ENV, TOKEN)]);
    assert!(stderr.contains("use one"), "{stderr}");

    // The token itself is never a command-line value: it would show in `ps`.
    let (output, stderr) = serve_refused(&["--admin-token", TOKEN], &[]);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("unexpected argument '--admin-token'"),
        "{stderr}"
    );
}

#[test]
fn a_token_from_the_environment_guards_every_request_but_healthz() {
    let file = module_file("env-token", ONE);
    let server = Server::start_with(
        Some(&file),
        &["--workers", "1", "--admin", "0.0.0.0:0"],
        &[(ADMIN_TOKEN_ENV, TOKEN)],
    );
    let admin = admin_addr(&server);
    let two = read(TWO);
    let right = format!("Bearer {TOKEN}");
    let spaced = format!("Bearer    {TOKEN}");
    let wrong = format!("Bearer {}x", &TOKEN[1..]);
    let shorter = format!("Bearer {}", &TOKEN[1..]);
    let basic = format!("Basic {TOKEN}");
    let huge = format!("Bearer {}", "x".repeat(48 * 1024));
    let mut non_utf8 = b"Bearer \xff\xfe".to_vec();
    non_utf8.extend_from_slice(TOKEN.as_bytes());
    let refused: [(&str, Option<&[u8]>); 7] = [
        ("no header", None),
        ("wrong token", Some(wrong.as_bytes())),
        ("shorter token", Some(shorter.as_bytes())),
        ("other scheme", Some(basic.as_bytes())),
        ("huge header", Some(huge.as_bytes())),
        ("non-UTF-8", Some(&non_utf8)),
        ("bare token", Some(TOKEN.as_bytes())),
    ];
    for (what, auth) in refused {
        let resp = put(&server, auth, &two);
        assert_eq!(resp.status, 401, "{what}: {}", resp.text());
        assert_eq!(
            resp.header("www-authenticate"),
            Some("Bearer realm=\"snow-admin\"")
        );
        assert!(
            resp.text().contains("Authorization: Bearer <token>"),
            "{what}"
        );
        assert_eq!(
            server.get("/version/").text(),
            "one",
            "replaced after {what}"
        );
    }
    for path in ["/metrics", "/modules", "/nope"] {
        let resp = request_with(admin, "GET", path, &[], b"");
        assert_eq!(resp.status, 401, "{path}");
    }
    assert_eq!(request_with(admin, "GET", "/healthz", &[], b"").status, 200);
    // Several spaces after the scheme are allowed (RFC 6750: 1*SP).
    let resp = put(&server, Some(spaced.as_bytes()), &two);
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(server.get("/version/").text(), "two");
    let resp = put(&server, Some(right.as_bytes()), &read(ONE));
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(server.get("/version/").text(), "one");
    // The helpers send the token the server was started with.
    assert!(server.metrics().contains("snow_requests_total"));
}

#[test]
fn a_token_from_a_file_is_required_on_loopback_too() {
    let dir = scratch("file-token");
    let token_file = dir.join("admin.token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).expect("write token");
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let file = module_file("file-token-module", ONE);
    let server = Server::start_module(
        Some(&file),
        &[
            "--workers",
            "1",
            "--admin-token-file",
            token_file.to_str().expect("utf-8 path"),
        ],
    );
    let two = read(TWO);
    let resp = put(&server, None, &two);
    assert_eq!(resp.status, 401);
    assert_eq!(server.get("/version/").text(), "one");
    let right = format!("Bearer {TOKEN}");
    let resp = put(&server, Some(right.as_bytes()), &two);
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(server.get("/version/").text(), "two");
    let server = server.with_admin_token(TOKEN);
    assert_eq!(server.admin_request("GET", "/modules", b"").status, 200);
}

/// Peak resident memory of `server` while `run` runs, sampled every 5 ms.
fn peak_rss_kib(server: &Server, run: impl FnOnce()) -> u64 {
    let peak = AtomicU64::new(server.rss_kib());
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(server.rss_kib(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        run();
        done.store(true, Ordering::Relaxed);
    });
    peak.into_inner()
}

#[test]
fn concurrent_uploads_are_bounded() {
    const UPLOADS: usize = 16;
    const SIZE: usize = 20 << 20;
    let file = module_file("bounded", ONE);
    let server = Server::start_module(Some(&file), &["--workers", "1"]);
    let admin = admin_addr(&server);
    let before = server.rss_kib();
    // Every head arrives before any body: which uploads are admitted
    // depends on no race.
    let heads_sent = Arc::new(Barrier::new(UPLOADS + 1));
    let bodies_go = Arc::new(Barrier::new(UPLOADS + 1));
    let mut statuses = Vec::new();
    let peak = peak_rss_kib(&server, || {
        let uploads: Vec<_> = (0..UPLOADS)
            .map(|i| {
                let (heads_sent, bodies_go) = (heads_sent.clone(), bodies_go.clone());
                std::thread::spawn(move || {
                    let mut stream = TcpStream::connect(admin).expect("connect");
                    stream.set_read_timeout(Some(PATIENCE)).expect("timeout");
                    let head = format!(
                        "PUT /modules/app HTTP/1.1\r\nHost: t\r\nContent-Length: {SIZE}\r\n\r\n"
                    );
                    stream.write_all(head.as_bytes()).expect("head");
                    heads_sent.wait();
                    bodies_go.wait();
                    // A refused upload may be closed before all of it is sent.
                    let _ = stream.write_all(&vec![i as u8; SIZE]);
                    let resp = read_response(&mut BufReader::new(stream), false)
                        .expect("an answer to every upload");
                    (resp.status, resp.header("retry-after").map(str::to_string))
                })
            })
            .collect();
        heads_sent.wait();
        std::thread::sleep(Duration::from_millis(300));
        // The admitted uploads hold their permits: the server still serves.
        assert_eq!(server.get("/version/").text(), "one");
        assert_eq!(request_with(admin, "GET", "/healthz", &[], b"").status, 200);
        bodies_go.wait();
        for upload in uploads {
            statuses.push(upload.join().expect("upload thread"));
        }
    });
    let refused = statuses.iter().filter(|(s, _)| *s == 503).count();
    let compiled = statuses.iter().filter(|(s, _)| *s == 422).count();
    eprintln!(
        "{UPLOADS} uploads of {} MiB: {compiled} received (422, not wasm), {refused} refused (503); \
         RSS {} MiB before, peak {} MiB (+{} MiB)",
        SIZE >> 20,
        before >> 10,
        peak >> 10,
        (peak.saturating_sub(before)) >> 10
    );
    assert_eq!(compiled, 2, "{statuses:?}");
    assert_eq!(refused, UPLOADS - 2, "{statuses:?}");
    assert!(statuses
        .iter()
        .all(|(s, retry)| *s != 503 || retry.as_deref() == Some("1")));
    // Two bodies buffered, plus their growth: far below 16 of them.
    let growth_mib = peak.saturating_sub(before) >> 10;
    assert!(growth_mib < 160, "RSS grew by {growth_mib} MiB");
    // The permits are back: a real deploy goes through.
    let resp = request_with(admin, "PUT", "/modules/app", &[], &read(TWO));
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(server.get("/version/").text(), "two");
}
