//! Limits and hostile clients: beyond a limit a request gets 503, never a
//! crash; slow or greedy clients hurt only themselves.

use crate::common;

use std::io::{BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{read_response, Server};

fn park(server: &Server, path: &str) -> TcpStream {
    let mut stream = server.connect();
    let req = format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).expect("write");
    stream
}

#[test]
fn parked_requests_beyond_the_limit_get_503() {
    let server = Server::testkit(&["--workers", "1", "--max-parked", "2"]);
    let first = park(&server, "/sleep/?ms=1500");
    let second = park(&server, "/sleep/?ms=1500");
    std::thread::sleep(Duration::from_millis(300));
    let refused = server.get("/sleep/?ms=1500");
    assert_eq!(refused.status, 503, "{}", refused.text());
    // Requests that don't park are still served.
    assert_eq!(server.get("/counter/").status, 200);
    for stream in [first, second] {
        let resp = read_response(&mut BufReader::new(stream), false).expect("response");
        assert_eq!((resp.status, resp.text()), (200, "slept".into()));
    }
    // The refused request's task was dropped in the module.
    let stats: serde_json::Value =
        serde_json::from_slice(&server.get("/stats/").body).expect("json");
    assert_eq!(stats["live_tasks"], 0, "{stats}");
    assert_eq!(server.get("/sleep/?ms=10").status, 200);
}

#[test]
fn connections_beyond_the_limit_get_503() {
    let server = Server::start(&["--max-connections", "3"]);
    let held: Vec<TcpStream> = (0..3).map(|_| server.connect()).collect();
    server.wait_metric("snow_open_connections", 3.0);
    let raw = server.raw(b"GET /home/ HTTP/1.1\r\nHost: t\r\n\r\n");
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    drop(held);
    server.wait_metric("snow_open_connections", 0.0);
    assert_eq!(server.get("/home/").text(), "home");
}

#[test]
fn request_isolation_shares_nothing_between_requests() {
    let server = Server::testkit(&["--workers", "1", "--isolation", "request"]);
    for _ in 0..3 {
        assert_eq!(server.get("/counter/").text(), "1");
    }
    // A trap takes down only its own request's instance.
    let parked = park(&server, "/sleep/?ms=800");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(server.get("/panic/").status, 500);
    let resp = read_response(&mut BufReader::new(parked), false).expect("response");
    assert_eq!((resp.status, resp.text()), (200, "slept".into()));
    let joined = server.get("/join/?a=50&b=100");
    assert_eq!(joined.status, 200);
}

#[test]
fn a_body_sent_one_byte_at_a_time_arrives_whole() {
    let server = Server::start(&[]);
    let mut stream = server.connect();
    stream
        .write_all(b"POST /echo/ HTTP/1.1\r\nHost: t\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n")
        .expect("head");
    for byte in b"a\r\n0123456789\r\n0\r\n\r\n" {
        stream.write_all(&[*byte]).expect("byte");
        std::thread::sleep(Duration::from_millis(5));
    }
    let resp = read_response(&mut BufReader::new(stream), false).expect("response");
    assert_eq!((resp.status, resp.text()), (200, "0123456789".into()));
}

/// A client that pipelines without reading fills its own socket; the
/// server stops reading it instead of buffering without end, and serves
/// everyone else.
#[test]
fn a_client_that_never_reads_is_not_buffered_without_end() {
    let server = Server::start(&["--workers", "1"]);
    let rss_before = server.rss_kib();
    let mut greedy = server.connect();
    greedy
        .set_write_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let body = vec![b'x'; 64 * 1024];
    let mut request = format!(
        "POST /echo/ HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(&body);
    let mut sent = 0usize;
    let started = Instant::now();
    // Stops when the server no longer reads (the write times out).
    while sent < 256 << 20 && started.elapsed() < Duration::from_secs(20) {
        match greedy.write(&request) {
            Ok(n) => sent += n,
            Err(_) => break,
        }
    }
    assert!(sent < 256 << 20, "the server kept reading {sent} bytes");
    assert_eq!(server.get("/home/").text(), "home");
    let grown = server.rss_kib().saturating_sub(rss_before);
    assert!(
        grown < 64 * 1024,
        "server grew by {grown} KiB for one greedy client"
    );
    // The greedy client can still read what it was sent, in order.
    let mut reader = BufReader::new(greedy);
    let first = read_response(&mut reader, false).expect("first response");
    assert_eq!(first.body.len(), body.len());
    let mut sink = [0u8; 4096];
    let _ = reader
        .get_mut()
        .set_read_timeout(Some(Duration::from_millis(100)));
    let _ = reader.read(&mut sink);
}

/// Clients that send a large request and never read its answer: each is
/// closed once it has accepted nothing for the send timeout, each costs the
/// server about its answer while stuck and nothing after, and everyone else
/// is served meanwhile. One worker, so that the one instance's memory has
/// its working size before the baseline is taken.
#[test]
fn clients_that_never_read_large_answers_are_closed_after_the_send_timeout() {
    const CLIENTS: usize = 50;
    const BODY: usize = 10 << 20;
    const MIB: u64 = 1024;
    let _ = rlimit::increase_nofile_limit(4096);
    let args = [
        "--workers",
        "1",
        "--send-timeout",
        "2s",
        // One worker copies 500 MiB in and out of the module, which takes
        // a while on a busy machine; the CPU limit and the time a body may
        // take to arrive are not what is tested here.
        "--max-call-time",
        "10s",
        "--header-timeout",
        "5m",
    ];
    let server = Arc::new(Server::start(&args));
    let warm = server.request("POST", "/echo/", &vec![b'w'; BODY]);
    assert_eq!(warm.body.len(), BODY);
    let rss_before = server.rss_kib();
    let peak = Arc::new(AtomicU64::new(rss_before));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (server, peak, sampling) = (server.clone(), peak.clone(), sampling.clone());
        std::thread::spawn(move || {
            while sampling.load(Ordering::Relaxed) {
                peak.fetch_max(server.rss_kib(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let mut request =
        format!("POST /echo/ HTTP/1.1\r\nHost: t\r\nContent-Length: {BODY}\r\n\r\n").into_bytes();
    request.resize(request.len() + BODY, b'x');
    let request = Arc::new(request);
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (server, request) = (server.clone(), request.clone());
            std::thread::spawn(move || {
                let mut stream = server.connect();
                stream.write_all(&request).expect("the request is read");
                stream
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(server.get("/home/").text(), "home");
    let clients: Vec<TcpStream> = clients
        .into_iter()
        .map(|c| c.join().expect("client"))
        .collect();
    assert_eq!(server.get("/home/").text(), "home");
    server.wait_metric("snow_open_connections", 0.0);
    sampling.store(false, Ordering::Relaxed);
    sampler.join().expect("sampler");
    for mut stream in clients {
        let mut got = Vec::new();
        let _ = stream.read_to_end(&mut got);
        assert!(got.len() < BODY, "a whole answer of {} bytes", got.len());
    }
    let grown = peak.load(Ordering::Relaxed) - rss_before;
    let left = server.rss_kib().saturating_sub(rss_before);
    eprintln!("{CLIENTS} stuck clients: peak growth {grown} KiB, {left} KiB left after");
    // Each stuck client holds at most its answer (10 MiB, less what the
    // sockets took); the request being handled holds a few copies more.
    assert!(
        grown < CLIENTS as u64 * 11 * MIB + 64 * MIB,
        "the server grew by {grown} KiB"
    );
    // Closed connections give their answers back to the system.
    assert!(left < 64 * MIB, "{left} KiB still held after every close");
}
