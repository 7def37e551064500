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
