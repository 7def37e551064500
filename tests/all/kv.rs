//! Key-value stores through the `snow` binary: one counter exact across
//! workers, state that outlives traps and hot swaps, grants that deny by
//! default, and the limits on what a module may ask of a store.

use crate::common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Server, TESTKIT};

const COUNTER: &str = snow_test_guests::COUNTER;

fn scratch(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("kv").join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

#[test]
fn a_counter_is_exact_across_workers() {
    let server = Server::start_module(Some(COUNTER), &["--workers", "2"]);
    let (threads, each) = (8, 25);
    let values: Vec<i64> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    (0..each)
                        .map(|_| {
                            let resp = server.post("/counter/hits/incr", "");
                            assert_eq!(resp.status, 200, "{}", resp.text());
                            resp.text().parse::<i64>().expect("a number")
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("client thread"))
            .collect()
    });
    let total = threads * each;
    // Every increment saw its own value: none lost, none counted twice.
    let distinct: BTreeSet<i64> = values.iter().copied().collect();
    assert_eq!(distinct, (1..=total as i64).collect());
    assert_eq!(server.get("/counter/hits").text(), total.to_string());
    assert_eq!(server.get("/counter/never").text(), "0");
    let ok = server
        .metric("snow_kv_operations_total{store=\"default\",backend=\"memory\",outcome=\"ok\"}");
    assert!(ok >= (total + 2) as f64, "{ok}");
}

#[test]
fn bytes_round_trip_and_unset_keys_are_404() {
    let server = Server::start_module(Some(COUNTER), &[]);
    let body: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    assert_eq!(server.request("PUT", "/kv/blob", &body).status, 201);
    let got = server.get("/kv/blob");
    assert_eq!((got.status, got.body.len()), (200, body.len()));
    assert_eq!(got.body, body);
    assert_eq!(server.get("/kv/missing").status, 404);
    assert_eq!(server.request("DELETE", "/kv/blob", b"").status, 200);
    assert_eq!(server.get("/kv/blob").status, 404);
}

#[test]
fn state_outlives_a_trap_and_a_hot_swap() {
    let server = Server::start_module(Some(TESTKIT), &["--workers", "1"]);
    for want in 1..=3 {
        assert_eq!(server.get("/kv/incr/").text(), want.to_string());
    }
    // The instance traps and is rebuilt; the store is the server's.
    assert_eq!(server.get("/panic/").status, 500);
    assert_eq!(server.get("/kv/incr/").text(), "4");
    let wasm = std::fs::read(TESTKIT).expect("testkit wasm");
    let deployed = server.admin().deploy("testkit", &wasm);
    assert_eq!(deployed.status, 200, "{}", deployed.text());
    assert_eq!(server.get("/kv/incr/").text(), "5");
}

#[test]
fn a_manifest_grants_stores_by_name_and_denies_the_rest() {
    let dir = scratch("grants");
    let manifest = dir.join("snow.toml");
    std::fs::write(
        &manifest,
        format!(
            "workers = 1\n\n[[store]]\nname = \"mine\"\nbackend = \"memory\"\n\n\
             [[store]]\nname = \"theirs\"\nbackend = \"memory\"\n\n\
             [[module]]\nname = \"kit\"\nprefix = \"/\"\nwasm = \"{TESTKIT}\"\nstores = [\"mine\"]\n"
        ),
    )
    .expect("manifest");
    let server = Server::start_module(Some(manifest.to_str().expect("utf-8")), &[]);
    assert_eq!(server.get("/kv/open/?name=mine").text(), "opened");
    assert_eq!(server.get("/kv/incr/?store=mine").text(), "1");
    let denied = server.get("/kv/open/?name=theirs");
    assert_eq!(denied.status, 403);
    assert!(
        denied.text().starts_with("AccessDenied"),
        "{}",
        denied.text()
    );
    // Declared stores replace the implicit `default`.
    let unknown = server.get("/kv/open/?name=default");
    assert!(
        unknown.text().starts_with("NoSuchStore"),
        "{}",
        unknown.text()
    );
    // A hostile name is quoted back, never echoed raw.
    let hostile = server.get("/kv/open/?name=a%0D%0Ainjected:%20yes");
    assert!(
        hostile.text().starts_with("NoSuchStore"),
        "{}",
        hostile.text()
    );
    assert!(!hostile.text().contains("\r\n"), "{:?}", hostile.text());
    assert!(hostile.header("injected").is_none());
}

#[test]
fn store_flags_replace_the_default_store() {
    let server = Server::start_module(Some(TESTKIT), &["--store", "cache=memory"]);
    assert_eq!(server.get("/kv/open/?name=cache").text(), "opened");
    assert!(server
        .get("/kv/open/?name=default")
        .text()
        .starts_with("NoSuchStore"));
    for bad in [
        "cache",
        "=memory",
        "a b=memory",
        "x=postgres://h/db",
        "x=file:",
        "../x=memory",
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_snow"))
            .args([
                "serve",
                TESTKIT,
                "--listen",
                "127.0.0.1:0",
                "--admin",
                "off",
                "--store",
                bad,
            ])
            .output()
            .expect("run snow");
        assert!(!out.status.success(), "{bad:?} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--store"), "{bad:?}: {err}");
    }
}

#[test]
fn operations_per_request_and_sizes_are_limited() {
    let server = Server::start_module(Some(TESTKIT), &["--max-store-ops", "5"]);
    assert_eq!(server.get("/kv/many/?n=5").text(), "5");
    let over = server.get("/kv/many/?n=6");
    assert_eq!(over.status, 500, "{}", over.text());
    assert!(
        over.text().contains("more than 5 store operations"),
        "{}",
        over.text()
    );
    // The server keeps serving, and the request that hit the limit did no
    // more than five.
    assert_eq!(server.get("/kv/many/?n=1").text(), "11");

    let big = vec![b'x'; (1 << 20) + 1];
    let refused = server.request("PUT", "/kv/put/?key=big", &big);
    assert!(refused.text().starts_with("TooLarge"), "{}", refused.text());
    let long_key = "k".repeat(1025);
    let refused = server.request("PUT", &format!("/kv/put/?key={long_key}"), b"v");
    assert!(refused.text().starts_with("TooLarge"), "{}", refused.text());
    let refused = server.request("PUT", "/kv/put/?key=", b"v");
    assert!(refused.text().starts_with("Invalid"), "{}", refused.text());
    assert_eq!(
        server.request("PUT", "/kv/put/?key=ok", b"v").text(),
        "stored"
    );
    let too_large = server.metric(
        "snow_kv_operations_total{store=\"default\",backend=\"memory\",outcome=\"too_large\"}",
    );
    assert_eq!(too_large, 2.0);
}

#[test]
fn check_reads_store_tables_without_touching_them() {
    let dir = scratch("check");
    let manifest = dir.join("snow.toml");
    let db = dir.join("never-created.redb");
    std::fs::write(
        &manifest,
        format!(
            "[[store]]\nname = \"durable\"\nbackend = \"file\"\npath = \"{}\"\n\n\
             [[store]]\nname = \"shared\"\nbackend = \"redis\"\nurl = \"redis://127.0.0.1:1/0\"\n\n\
             [[module]]\nname = \"counter\"\nprefix = \"/\"\nwasm = \"{COUNTER}\"\nstores = [\"durable\", \"shared\"]\n",
            db.display()
        ),
    )
    .expect("manifest");
    let out = Command::new(env!("CARGO_BIN_EXE_snow"))
        .arg("check")
        .arg(&manifest)
        .env("SNOW_CACHE_DIR", dir.join("cache"))
        .output()
        .expect("run snow check");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("ok, 5 routes"), "{stdout}");
    assert!(!db.exists(), "snow check created the store's file");
}

#[test]
fn a_file_store_keeps_acknowledged_writes_through_kill_9() {
    let dir = scratch("file");
    let store = format!("default=file:{}", dir.join("state.redb").display());
    let args = ["--store", store.as_str(), "--workers", "2"];
    let mut server = Server::start_module(Some(COUNTER), &args);
    let acknowledged: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                scope.spawn(|| {
                    (0..40)
                        .filter(|_| server.post("/counter/durable/incr", "").status == 200)
                        .count()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("client")).sum()
    });
    assert_eq!(acknowledged, 320);
    let blob: Vec<u8> = (0..50_000u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(server.request("PUT", "/kv/blob", &blob).status, 201);

    // A second host cannot open the same file: it is refused at start,
    // naming the file, rather than corrupting it.
    let out = Command::new(env!("CARGO_BIN_EXE_snow"))
        .args([
            "serve",
            COUNTER,
            "--listen",
            "127.0.0.1:0",
            "--admin",
            "off",
        ])
        .args(["--store", store.as_str()])
        .output()
        .expect("run snow");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("state.redb"), "{err}");

    server.signal(libc::SIGKILL);
    server.wait_exit();
    let server = Server::start_module(Some(COUNTER), &args);
    assert_eq!(server.get("/counter/durable").text(), "320");
    assert_eq!(server.get("/kv/blob").body, blob);
}

#[test]
fn a_redis_store_reports_an_outage_at_once_and_recovers_without_a_restart() {
    let mut redis = snow_testing::Redis::start().unwrap_or_else(|err| panic!("{err}"));
    let store = format!("default={}", redis.url());
    let server = Server::start_module(
        Some(COUNTER),
        &["--store", store.as_str(), "--health", "127.0.0.1:0"],
    );
    assert_eq!(server.post("/counter/r/incr", "").text(), "1");
    assert_eq!(server.wait_probe("/readyz", 200).status, 200);

    redis.kill().unwrap_or_else(|err| panic!("{err}"));
    let started = std::time::Instant::now();
    let down = server.post("/counter/r/incr", "");
    assert_eq!(down.status, 503, "{}", down.text());
    assert!(down.text().contains("unavailable"), "{}", down.text());
    assert!(
        started.elapsed() < std::time::Duration::from_secs(3),
        "an outage took {:?} to report",
        started.elapsed()
    );
    let not_ready = server.wait_probe("/readyz", 503);
    assert!(
        not_ready.text().contains("store default"),
        "{}",
        not_ready.text()
    );
    // The rest of the module keeps serving.
    assert_eq!(server.get("/kv/anything").status, 503);

    redis.restart().unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(server.wait_probe("/readyz", 200).status, 200);
    // A fresh server: the count starts again, on the same snow process.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let resp = server.post("/counter/r/incr", "");
        if resp.status == 200 {
            assert_eq!(resp.text(), "1");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{}", resp.text());
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let unavailable = server.metric(
        "snow_kv_operations_total{store=\"default\",backend=\"redis\",outcome=\"unavailable\"}",
    );
    assert!(unavailable >= 1.0, "{unavailable}");
}
