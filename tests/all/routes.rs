//! The default app's routes and the SDK's features, through the binary.

use crate::common;

use std::time::{Duration, Instant};

use common::{Server, PATIENCE};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[test]
fn default_app_routes() {
    let server = Server::start(&[]);
    let home = server.get("/home/");
    assert_eq!((home.status, home.text()), (200, "home".into()));
    let started = Instant::now();
    let done = server.get("/async/?ms=300");
    assert_eq!((done.status, done.text()), (200, "done".into()));
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "the timer was honoured"
    );
    let echo = server.request("POST", "/echo/", b"some \x00 bytes");
    assert_eq!((echo.status, echo.body), (200, b"some \x00 bytes".to_vec()));
    assert_eq!(server.get("/nowhere/").status, 404);
    assert_eq!(server.get("/async/?ms=soon").status, 400);
}

#[test]
fn handlers_join_and_race_host_timers_and_see_captures() {
    let server = Server::testkit(&["--workers", "1"]);
    let joined = server.get("/join/?a=200&b=300");
    assert_eq!(joined.status, 200);
    let json: serde_json::Value = serde_json::from_slice(&joined.body).expect("json");
    let elapsed = json["elapsed_ms"].as_u64().expect("elapsed_ms");
    // Joined timers run at once: about the longer one, not the sum.
    assert!((300..500).contains(&elapsed), "joined in {elapsed} ms");

    let raced = server.get("/race/?a=1000&b=50");
    assert_eq!((raced.status, raced.text()), (200, "b".into()));

    let captured = server.get("/captures/42/snow/");
    assert_eq!((captured.status, captured.text()), (200, "42:snow".into()));

    // The losing timer was forgotten and nothing is left parked.
    let stats: serde_json::Value =
        serde_json::from_slice(&server.get("/stats/").body).expect("stats json");
    assert_eq!(stats["live_tasks"], 0, "{stats}");
}

/// 2,000 requests parked on 1 s timers at once all answer, and `/home/`
/// stays prompt meanwhile.
#[test]
fn thousands_of_parked_requests_and_a_prompt_home() {
    let _ = rlimit::increase_nofile_limit(8192);
    let server = Server::start(&[]);
    let addr = server.addr;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let started = Instant::now();
        let mut parked = Vec::new();
        for _ in 0..2000 {
            parked.push(tokio::spawn(fetch(addr, "/async/?ms=1000")));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut slowest_home = Duration::ZERO;
        for _ in 0..20 {
            let t = Instant::now();
            let (status, body) = fetch(addr, "/home/").await.expect("home");
            assert_eq!((status, body.as_str()), (200, "home"));
            slowest_home = slowest_home.max(t.elapsed());
        }
        let mut ok = 0;
        for task in parked {
            let (status, body) = task.await.expect("join").expect("parked request");
            assert_eq!((status, body.as_str()), (200, "done"));
            ok += 1;
        }
        assert_eq!(ok, 2000);
        assert!(started.elapsed() < PATIENCE, "took {:?}", started.elapsed());
        assert!(
            slowest_home < Duration::from_secs(1),
            "home took {slowest_home:?}"
        );
    });
}

async fn fetch(addr: std::net::SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).await?;
    let mut raw = Vec::new();
    tokio::time::timeout(PATIENCE, stream.read_to_end(&mut raw))
        .await
        .map_err(|_| std::io::Error::other("timed out"))??;
    let all = common::parse_all(&raw);
    let first = all
        .first()
        .ok_or_else(|| std::io::Error::other(format!("no response: {raw:?}")))?;
    Ok((first.status, first.text()))
}

/// Every route of the default app, with what it must answer.
const DEFAULT_APP: [(&str, &str, &[u8], u16, &str); 3] = [
    ("GET", "/home/", b"", 200, "home"),
    ("GET", "/async/?ms=1", b"", 200, "done"),
    ("POST", "/echo/", b"moved", 200, "moved"),
];

#[test]
fn the_default_app_answers_alike_at_any_mount() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("mounted-hello");
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let manifest = dir.join("snow.toml");
    let text = format!(
        "workers = 1\n\
         [[module]]\nname = \"root\"\nprefix = \"/\"\nwasm = \"{hello}\"\n\
         [[module]]\nname = \"moved\"\nprefix = \"/x\"\nwasm = \"{hello}\"\n\
         [[module]]\nname = \"deep\"\nprefix = \"/a/b\"\nwasm = \"{hello}\"\n",
        hello = snow_test_guests::HELLO
    );
    std::fs::write(&manifest, text).expect("write manifest");
    let server = Server::start(&[manifest.to_str().expect("utf-8 path")]);
    for mount in ["", "/x", "/a/b"] {
        for (method, path, body, status, text) in DEFAULT_APP {
            let full = format!("{mount}{path}");
            let resp = server.request(method, &full, body);
            assert_eq!(
                (resp.status, resp.text().as_str()),
                (status, text),
                "{method} {full}"
            );
        }
        let missing = server.get(&format!("{mount}/nowhere/"));
        assert_eq!(missing.status, 404, "{mount}/nowhere/");
    }
    // The mount's own path is the module's `/`, which the app leaves to 404.
    assert_eq!(server.get("/x").status, 404);
    // `/xy` is not below `/x`: the root module answers it.
    assert_eq!(server.get("/xy/").status, 404);
    let log = server.wait_log("/a/b/home/");
    assert!(
        log.contains("deep"),
        "the access line shows the full path: {log}"
    );
}

/// A module built for another version of the contract, made by renaming
/// the versions in a current one: same length, so the component stays well
/// formed.
fn built_for(version: &str) -> std::path::PathBuf {
    let mut wasm = std::fs::read(snow_test_guests::HELLO).expect("read hello");
    let old = format!("@{version}");
    let new = b"@0.4.1";
    assert_eq!(old.len(), new.len(), "a version of the same length");
    let mut renamed = 0;
    let mut at = 0;
    while let Some(found) = find(&wasm[at..], b"snow:http/") {
        let start = at + found;
        let window = start..(start + 40).min(wasm.len());
        if let Some(version) = find(&wasm[window.clone()], new) {
            let v = window.start + version;
            wasm[v..v + old.len()].copy_from_slice(old.as_bytes());
            renamed += 1;
        }
        at = start + 1;
    }
    assert!(renamed > 0, "no versioned snow:http name found");
    let name = format!("contract-{version}.wasm");
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::write(&path, wasm).expect("write module");
    path
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn check(module: &std::path::Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_snow"))
        .arg("check")
        .arg(module)
        .arg("--no-cache")
        .output()
        .expect("run snow check")
}

#[test]
fn a_module_of_an_older_contract_is_refused_naming_both_versions() {
    let out = check(&built_for("0.3.0"));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("built for snow:http@0.3.0, and this host speaks snow:http@0.4.1"),
        "{err}"
    );
}

/// Wasmtime would link a 0.4.2 module's imports to 0.4.1's definitions:
/// a module of a contract newer than the host's is refused all the same.
#[test]
fn a_module_of_a_newer_contract_is_refused() {
    let out = check(&built_for("0.4.2"));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("built for snow:http@0.4.2"), "{err}");
}

/// 0.4.1 only added `outbound.relay`: a module built for 0.4.0 serves
/// unchanged.
#[test]
fn a_module_of_the_previous_contract_still_serves() {
    let old = built_for("0.4.0");
    assert!(check(&old).status.success());
    let server = Server::start_module(Some(old.to_str().expect("utf-8 path")), &[]);
    for (method, path, body, status, text) in DEFAULT_APP {
        let resp = server.request(method, path, body);
        assert_eq!(
            (resp.status, resp.text().as_str()),
            (status, text),
            "{method} {path}"
        );
    }
}
