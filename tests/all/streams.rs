//! Bodies that stream, over real sockets: uploads hashed as they arrive,
//! downloads of any size held back by a slow reader, server-sent events,
//! framing for HEAD, HTTP/1.0 and pipelining, and what happens when the
//! client, the module or the clock cuts a stream off.

use crate::common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::{read_response, Server, PATIENCE};
use sha2::{Digest, Sha256};

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;
/// RSS a stream of any length may add to the server.
const MAX_GROWTH_KIB: u64 = 16 * 1024;

fn connect(server: &Server) -> (TcpStream, BufReader<TcpStream>) {
    let stream = server.connect();
    stream.set_read_timeout(Some(PATIENCE)).expect("timeout");
    let reader = BufReader::new(stream.try_clone().expect("clone"));
    (stream, reader)
}

/// Samples the server's RSS until stopped; the highest reading in KiB.
struct RssPeak {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    sampler: Option<thread::JoinHandle<()>>,
}

impl RssPeak {
    fn watch(server: &Server) -> Self {
        let path = format!("/proc/{}/status", server.pid());
        let (stop, peak) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicU64::new(0)),
        );
        let sampler = {
            let (stop, peak) = (stop.clone(), peak.clone());
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Some(kib) = rss_kib(&path) {
                        peak.fetch_max(kib, Ordering::Relaxed);
                    }
                    thread::sleep(Duration::from_millis(20));
                }
            })
        };
        Self {
            stop,
            peak,
            sampler: Some(sampler),
        }
    }

    fn peak(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(sampler) = self.sampler.take() {
            sampler.join().expect("sampler");
        }
        self.peak.load(Ordering::Relaxed)
    }
}

fn rss_kib(path: &str) -> Option<u64> {
    let status = std::fs::read_to_string(path).ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
    line.trim().trim_end_matches("kB").trim().parse().ok()
}

/// The `/bytes/` pattern of the default app.
fn pattern(offset: u64) -> u8 {
    (offset % 251) as u8
}

/// The executor's counters of the testkit's (one) instance.
fn stats(server: &Server) -> serde_json::Value {
    let resp = server.get("/stats/");
    assert_eq!(resp.status, 200, "{}", resp.text());
    serde_json::from_slice(&resp.body).expect("stats json")
}

/// Waits until the module holds no parked task, as after a cancel.
fn settled(server: &Server) -> serde_json::Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let stats = stats(server);
        if stats["live_tasks"] == 0 || Instant::now() > deadline {
            return stats;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_gibibyte_upload_is_hashed_in_constant_memory() {
    let server = Server::start(&["--max-body", "2GiB", "--workers", "1"]);
    assert_eq!(server.get("/home/").status, 200);
    let before = server.rss_kib();
    let peak = RssPeak::watch(&server);
    let (mut stream, mut reader) = connect(&server);
    stream
        .write_all(b"POST /sha256/ HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
        .expect("head");
    let mut hasher = Sha256::new();
    let mut chunk = vec![0u8; 256 * 1024];
    let mut sent = 0u64;
    let mut framed = Vec::with_capacity(chunk.len() + 16);
    while sent < GIB {
        // Byte at offset o is (o / 4093) as u8, filled a run at a time: the
        // test binary is unoptimised, and a byte at a time took seconds.
        let mut at = 0;
        while at < chunk.len() {
            let offset = sent + at as u64;
            let run = (4093 - offset % 4093) as usize;
            let end = (at + run).min(chunk.len());
            chunk[at..end].fill((offset / 4093) as u8);
            at = end;
        }
        hasher.update(&chunk);
        framed.clear();
        framed.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        framed.extend_from_slice(&chunk);
        framed.extend_from_slice(b"\r\n");
        stream.write_all(&framed).expect("chunk");
        sent += chunk.len() as u64;
    }
    stream.write_all(b"0\r\n\r\n").expect("last chunk");
    let resp = read_response(&mut reader, false).expect("response");
    let peak = peak.peak();
    let expected: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!((resp.status, resp.text()), (200, expected + "\n"));
    assert!(
        peak.saturating_sub(before) < MAX_GROWTH_KIB,
        "RSS grew from {before} KiB to {peak} KiB over a 1 GiB upload"
    );
}

#[test]
fn a_slow_reader_holds_a_gibibyte_download_back() {
    let server = Server::start(&["--workers", "1"]);
    assert_eq!(server.get("/home/").status, 200);
    let before = server.rss_kib();
    let (mut stream, mut reader) = connect(&server);
    stream
        .write_all(b"GET /bytes/1073741824 HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("request");
    let head = common::read_header_lines(&mut {
        let mut status = String::new();
        reader.read_line(&mut status).expect("status line");
        assert!(status.starts_with("HTTP/1.1 200"), "{status}");
        &mut reader
    })
    .expect("head");
    let length = head
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.as_str());
    assert_eq!(length, Some("1073741824"));

    let mut offset = 0u64;
    let mut buf = vec![0u8; 256 * 1024];
    // The pattern from every phase on, compared a read at a time: the test
    // binary is unoptimised, and a byte at a time took seconds.
    let expected: Vec<u8> = (0..buf.len() as u64 + 251).map(pattern).collect();
    let mut read_checked = |reader: &mut BufReader<TcpStream>, until: u64, offset: &mut u64| {
        while *offset < until {
            let want = buf.len().min((until - *offset) as usize);
            let n = reader.read(&mut buf[..want]).expect("body");
            assert!(n > 0, "the body ended at {offset}");
            let phase = (*offset % 251) as usize;
            if buf[..n] != expected[phase..phase + n] {
                let wrong = (0..n).find(|&i| buf[i] != expected[phase + i]).unwrap_or(0);
                panic!("byte {} is wrong", *offset + wrong as u64);
            }
            *offset += n as u64;
        }
    };
    read_checked(&mut reader, MIB, &mut offset);
    // The client stops reading: the module must wait, not fill memory.
    let peak = RssPeak::watch(&server);
    thread::sleep(Duration::from_millis(1500));
    let paused = peak.peak();
    assert!(
        paused.saturating_sub(before) < MAX_GROWTH_KIB,
        "RSS grew from {before} KiB to {paused} KiB while the client read nothing"
    );
    let peak = RssPeak::watch(&server);
    read_checked(&mut reader, GIB, &mut offset);
    let peak = peak.peak();
    assert!(
        peak.saturating_sub(before) < MAX_GROWTH_KIB,
        "RSS grew from {before} KiB to {peak} KiB over the download"
    );
    // Nothing follows the announced length; the connection serves on.
    stream
        .write_all(b"GET /home/ HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("next request");
    let next = read_response(&mut reader, false).expect("next response");
    assert_eq!((next.status, next.text()), (200, "home".into()));
}

#[test]
fn a_client_leaving_mid_stream_cancels_the_module() {
    let server = Server::testkit(&["--workers", "1", "--max-body", "1GiB"]);
    let cancelled = |stats: &serde_json::Value| stats["cancelled"].as_u64().unwrap_or(0);
    let start = cancelled(&stats(&server));
    for round in 0..5u64 {
        // Mid-upload: the module waits for bytes that never come.
        let (mut stream, reader) = connect(&server);
        stream
            .write_all(
                b"POST /stream/upload/ HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n",
            )
            .expect("head");
        let chunk = vec![b'u'; 64 * 1024];
        for _ in 0..16 {
            stream
                .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                .and_then(|()| stream.write_all(&chunk))
                .and_then(|()| stream.write_all(b"\r\n"))
                .expect("chunk");
        }
        thread::sleep(Duration::from_millis(100));
        drop((stream, reader));

        // Mid-download: the module waits for the client to read.
        let (mut stream, mut reader) = connect(&server);
        stream
            .write_all(b"GET /stream/bytes/?n=1073741824 HTTP/1.1\r\nHost: t\r\n\r\n")
            .expect("request");
        let mut some = vec![0u8; 64 * 1024];
        reader.read_exact(&mut some).expect("some of the body");
        drop((stream, reader));

        let stats = settled(&server);
        assert_eq!(stats["live_tasks"], 0, "round {round}: {stats}");
        assert_eq!(
            cancelled(&stats),
            start + 2 * (round + 1),
            "round {round}: both requests are cancelled in the module: {stats}"
        );
    }
}

#[test]
fn server_sent_events_parse_as_a_browser_reads_them() {
    let server = Server::start(&[]);
    let resp = server.get("/events/?ms=20&count=3");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some("text/event-stream"));
    assert_eq!(resp.header("cache-control"), Some("no-cache"));
    assert_eq!(resp.header("transfer-encoding"), Some("chunked"));
    let events = parse_event_stream(&resp.body);
    let got: Vec<(String, String, String)> = events
        .iter()
        .map(|e| (e.event.clone(), e.id.clone(), e.data.clone()))
        .collect();
    let want: Vec<(String, String, String)> = (1..=3)
        .map(|n| ("tick".into(), n.to_string(), format!("tick {n}")))
        .collect();
    assert_eq!(got, want);
    // The reconnection delay comes first, on its own: no event of its own.
    assert!(resp.text().starts_with("retry: 20\n\n"), "{}", resp.text());
}

/// The events of an `text/event-stream` body, by `eventsource-stream`, the
/// parser of the HTML standard's algorithm that Rust SSE clients use.
fn parse_event_stream(body: &[u8]) -> Vec<eventsource_stream::Event> {
    use eventsource_stream::Eventsource as _;
    use futures_util::StreamExt as _;
    let chunks = futures_util::stream::iter(
        body.chunks(7)
            .map(|c| Ok::<_, std::convert::Infallible>(c.to_vec()))
            .collect::<Vec<_>>(),
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        chunks
            .eventsource()
            .map(|event| event.expect("a well-formed event stream"))
            .collect()
            .await
    })
}

#[test]
fn head_http10_and_pipelining_frame_streams_right() {
    let server = Server::start(&[]);
    let (mut stream, mut reader) = connect(&server);
    stream
        .write_all(
            b"GET /bytes/100000 HTTP/1.1\r\nHost: t\r\n\r\n\
              HEAD /events/?ms=10&count=2 HTTP/1.1\r\nHost: t\r\n\r\n\
              GET /events/?ms=10&count=2 HTTP/1.1\r\nHost: t\r\n\r\n\
              HEAD /bytes/7 HTTP/1.1\r\nHost: t\r\n\r\n\
              GET /home/ HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        )
        .expect("pipeline");
    let bytes = read_response(&mut reader, false).expect("bytes");
    assert_eq!(bytes.body.len(), 100_000);
    assert!(bytes
        .body
        .iter()
        .enumerate()
        .all(|(i, b)| *b == pattern(i as u64)));
    let head = read_response(&mut reader, true).expect("HEAD of a stream");
    assert_eq!(head.status, 200);
    assert_eq!(head.header("transfer-encoding"), Some("chunked"));
    let events = read_response(&mut reader, false).expect("events");
    assert_eq!(parse_event_stream(&events.body).len(), 2);
    let head = read_response(&mut reader, true).expect("HEAD of a sized stream");
    assert_eq!(head.header("content-length"), Some("7"));
    let home = read_response(&mut reader, false).expect("home");
    assert_eq!((home.status, home.text()), (200, "home".into()));
    let mut rest = Vec::new();
    reader.read_to_end(&mut rest).expect("close");
    assert!(rest.is_empty(), "nothing after the last answer: {rest:?}");

    // HTTP/1.0 has no chunks: a stream of unknown length ends at the close.
    let raw = server.raw(b"GET /events/?ms=10&count=2 HTTP/1.0\r\n\r\n");
    let resp = read_response(&mut BufReader::new(&raw[..]), false).expect("1.0 events");
    assert_eq!(resp.header("transfer-encoding"), None);
    assert_eq!(resp.header("connection"), Some("close"));
    assert_eq!(parse_event_stream(&resp.body).len(), 2);
    let raw = server.raw(b"GET /bytes/3000 HTTP/1.0\r\n\r\n");
    let resp = read_response(&mut BufReader::new(&raw[..]), false).expect("1.0 bytes");
    assert_eq!(resp.header("content-length"), Some("3000"));
    assert_eq!(resp.body.len(), 3000);
}

#[test]
fn streams_cut_off_are_never_passed_off_as_whole() {
    let server = Server::testkit(&["--workers", "1", "--stream-idle-timeout", "300ms"]);
    // A module announcing more than it sends, or sending more than it
    // announced: the client sees the connection end early, and no extra
    // byte ever reaches it.
    for (announce, send) in [(10, 5), (5, 10), (0, 3)] {
        let raw = server.raw(
            format!(
                "GET /stream/lying/?announce={announce}&send={send} HTTP/1.1\r\nHost: t\r\n\r\n"
            )
            .as_bytes(),
        );
        let text = String::from_utf8_lossy(&raw);
        let (head, body) = text.split_once("\r\n\r\n").expect("a head");
        assert!(head.starts_with("HTTP/1.1 200"), "{text}");
        assert!(
            head.lines()
                .any(|l| l == format!("content-length: {announce}")),
            "{text}"
        );
        // `raw` ends at the close: whatever came is all there is.
        assert!(
            body.len() < announce || (announce == 0 && body.is_empty()),
            "{announce}/{send} must be cut off: {text:?}"
        );
    }
    // A trap mid-stream cuts the chunked body off: no last chunk.
    let raw = server.raw(b"GET /stream/trap/ HTTP/1.1\r\nHost: t\r\n\r\n");
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("before the trap"), "{text}");
    assert!(!text.ends_with("0\r\n\r\n"), "{text}");
    // A writer that fails mid-body gets it cut off too, the instance kept.
    let raw = server.raw(b"GET /stream/gives-up/ HTTP/1.1\r\nHost: t\r\n\r\n");
    let text = String::from_utf8_lossy(&raw);
    assert!(text.contains("before giving up"), "{text}");
    assert!(!text.ends_with("0\r\n\r\n"), "{text}");
    server.wait_log("the stream's writer failed before its end");
    // A stream quiet past the idle timeout is cut off the same way, and
    // its module cancelled.
    let started = Instant::now();
    let raw = server.raw(b"GET /stream/bytes/?n=2&chunk=1&pause=5000 HTTP/1.1\r\nHost: t\r\n\r\n");
    let text = String::from_utf8_lossy(&raw);
    assert!(text.ends_with("\r\n\r\n1\r\nx\r\n"), "{text:?}");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(4),
        "cut off after {waited:?}"
    );
    assert_eq!(settled(&server)["live_tasks"], 0);
    // A whole stream ends with its last chunk.
    let raw =
        server.raw(b"GET /stream/bytes/?n=3 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    assert!(String::from_utf8_lossy(&raw).ends_with("\r\n3\r\nxxx\r\n0\r\n\r\n"));
}

#[test]
fn hostile_uploads_get_clear_answers() {
    let server = Server::testkit(&[
        "--workers",
        "1",
        "--max-body",
        "1MiB",
        "--stream-idle-timeout",
        "300ms",
    ]);
    // Each on a connection of its own, closed after the answer, which the
    // test reads to its end.
    let upload = |body: &[u8]| {
        let mut raw = b"POST /stream/upload/ HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\
                        Transfer-Encoding: chunked\r\n\r\n"
            .to_vec();
        raw.extend_from_slice(body);
        server.raw(&raw)
    };
    // Broken framing mid-body: the module reads the error, the client gets 400.
    let mut broken = format!("{:x}\r\n", 70_000).into_bytes();
    broken.extend_from_slice(&[b'a'; 70_000]);
    broken.extend_from_slice(b"\r\nzz\r\n");
    let raw = upload(&broken);
    let resp = read_response(&mut BufReader::new(&raw[..]), false).expect("answer");
    assert_eq!(resp.status, 400, "{}", resp.text());
    // Past the host's limit mid-stream: 413, then the connection closes.
    let mut big = Vec::new();
    for _ in 0..20 {
        big.extend_from_slice(format!("{:x}\r\n", 65536).as_bytes());
        big.extend_from_slice(&[b'b'; 65536]);
        big.extend_from_slice(b"\r\n");
    }
    big.extend_from_slice(b"0\r\n\r\n");
    let raw = upload(&big);
    let resp = read_response(&mut BufReader::new(&raw[..]), false).expect("answer");
    assert_eq!(resp.status, 413, "{}", resp.text());
    assert_eq!(resp.header("connection"), Some("close"));
    // A client that goes quiet mid-body: 400 after the idle timeout.
    let (mut stream, mut reader) = connect(&server);
    stream
        .write_all(b"POST /stream/upload/ HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\nabc")
        .expect("start");
    let started = Instant::now();
    let resp = read_response(&mut reader, false).expect("answer");
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert!(resp.text().contains("no body bytes"), "{}", resp.text());
    assert!(started.elapsed() >= Duration::from_millis(250));
    // A whole, short upload on the same route still counts right.
    let raw = upload(b"5\r\nhello\r\n0\r\n\r\n");
    let resp = read_response(&mut BufReader::new(&raw[..]), false).expect("answer");
    assert_eq!((resp.status, resp.text()), (200, "5".into()));
    assert_eq!(settled(&server)["live_tasks"], 0);
}

#[test]
fn a_module_cannot_make_the_host_hold_its_memory_many_times() {
    // Generous CPU time: a debug build copies each chunk slowly.
    let args = [
        "--workers",
        "1",
        "--max-memory",
        "32MiB",
        "--max-call-time",
        "20s",
    ];
    let server = Server::testkit(&args);
    // 64 writes of 1 MiB in one call: twice the module's own memory limit.
    let flood = server.get("/stream/flood/?n=64&kb=1024");
    assert_eq!(flood.status, 500, "{}", flood.text());
    server.wait_log("carry more than 33554432 bytes");
    // Within the limit the writes are refused (no stream is open), not held.
    let fine = server.get("/stream/flood/?n=8&kb=1024");
    assert_eq!(
        (fine.status, fine.text()),
        (200, "the host took every write".into())
    );
    assert_eq!(server.get("/stats/").status, 200);
}

#[test]
fn a_module_may_take_longer_bodies_than_the_server() {
    let dir = common::scratch("streams", "module_body_limit");
    let path = dir.join("snow.toml");
    let hello = snow_test_guests::HELLO;
    let testkit = common::TESTKIT;
    std::fs::write(
        &path,
        format!(
            "workers = 1\n\n[limits]\nmax_body = \"256KiB\"\n\n\
             [[module]]\nname = \"hello\"\nprefix = \"/\"\nwasm = \"{hello}\"\n\n\
             [[module]]\nname = \"uploads\"\nprefix = \"/uploads\"\nwasm = \"{testkit}\"\n\
             max_body = \"2MiB\"\n"
        ),
    )
    .expect("manifest");
    let server = Server::start_module(path.to_str(), &[]);
    let mib = vec![b'm'; 1 << 20];
    let upload = server.post("/uploads/stream/upload/", &mib);
    assert_eq!((upload.status, upload.text()), (200, "1048576".into()));
    // The server's own limit holds everywhere else, before any byte is read.
    let refused = server.post("/sha256/", &mib);
    assert_eq!(refused.status, 413, "{}", refused.text());
    // And the module's own limit holds for it, streamed or not.
    let three = vec![b't'; 3 << 20];
    let refused = server.post("/uploads/stream/upload/", &three);
    assert_eq!(refused.status, 413, "{}", refused.text());
}
