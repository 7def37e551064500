//! Modules fetching through the host's HTTP client: concurrency, the
//! allow-list, typed failures, keep-alive reuse and TLS with a private CA.

use crate::common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Server;

const FANOUT: &str = snow_test_guests::FANOUT;

/// A loopback upstream: `/slow/N` answers after N ms, `/stall` never
/// answers, `/drop` closes mid-body, `/garbage` is not HTTP, `/big` is 32 MiB;
/// for streaming, `/large` is 100 MiB of [`pattern`], `/cut` and
/// `/cut-chunked` break off after 256 KiB, and `/events` sends two events
/// 800 ms apart, `/count` answers with the length and SHA-256 of the body
/// it received; anything else answers 200 `ok`. Counts the connections it
/// accepts.
struct Upstream {
    addr: SocketAddr,
    accepts: Arc<AtomicUsize>,
}

impl Upstream {
    fn start() -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind upstream");
        let addr = listener.local_addr().expect("addr");
        let accepts = Arc::new(AtomicUsize::new(0));
        let counter = accepts.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                counter.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || serve(stream));
            }
        });
        Upstream { addr, accepts }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn accepts(&self) -> usize {
        self.accepts.load(Ordering::SeqCst)
    }
}

fn serve(stream: TcpStream) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut out = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
        let (mut length, mut chunked) = (0usize, false);
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            if header == "\r\n" {
                break;
            }
            let lower = header.to_ascii_lowercase();
            if let Some(value) = lower.strip_prefix("content-length:") {
                length = value.trim().parse().unwrap_or(0);
            }
            chunked |= lower.starts_with("transfer-encoding:") && lower.contains("chunked");
        }
        let reply: Vec<u8> = if path == "/count" {
            // The body as received: its length and SHA-256.
            let body = if chunked {
                match common::read_chunks(&mut reader) {
                    Some(body) => body,
                    None => return,
                }
            } else {
                let mut body = vec![0u8; length];
                if std::io::Read::read_exact(&mut reader, &mut body).is_err() {
                    return;
                }
                body
            };
            ok(format!("{} {}", body.len(), sha256_hex(&body)).as_bytes())
        } else if let Some(ms) = path.strip_prefix("/slow/") {
            std::thread::sleep(Duration::from_millis(ms.parse().unwrap_or(0)));
            ok(b"slow")
        } else if path == "/stall" {
            std::thread::sleep(Duration::from_secs(30));
            return;
        } else if path == "/drop" {
            let _ = out.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly part");
            return;
        } else if path == "/garbage" {
            let _ = out.write_all(b"this is not http at all\r\n\r\n");
            return;
        } else if path == "/large" {
            let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {LARGE}\r\n\r\n");
            if out.write_all(head.as_bytes()).is_err() {
                return;
            }
            let mut chunk = vec![0u8; 256 * 1024];
            let mut sent = 0u64;
            while sent < LARGE {
                let len = chunk.len().min((LARGE - sent) as usize);
                for (i, byte) in chunk[..len].iter_mut().enumerate() {
                    *byte = pattern(sent + i as u64);
                }
                if out.write_all(&chunk[..len]).is_err() {
                    return;
                }
                sent += len as u64;
            }
            continue;
        } else if path == "/cut" || path == "/cut-chunked" {
            let (head, framed) = if path == "/cut" {
                (
                    "HTTP/1.1 200 OK\r\ncontent-length: 1048576\r\n\r\n",
                    Vec::new(),
                )
            } else {
                (
                    "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
                    b"40000\r\n".to_vec(),
                )
            };
            let _ = out.write_all(head.as_bytes());
            let _ = out.write_all(&framed);
            let _ = out.write_all(&vec![b'c'; 256 * 1024]);
            let _ = out.flush();
            std::thread::sleep(Duration::from_millis(100));
            return;
        } else if path == "/events" {
            let _ = out.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n",
            );
            for (n, pause) in [(1, 800), (2, 0)] {
                let event = format!("data: tick {n}\n\n");
                let _ = write!(out, "{:x}\r\n{event}\r\n", event.len());
                let _ = out.flush();
                std::thread::sleep(Duration::from_millis(pause));
            }
            let _ = out.write_all(b"0\r\n\r\n");
            continue;
        } else if path == "/big" {
            let mut reply = b"HTTP/1.1 200 OK\r\ncontent-length: 33554432\r\n\r\n".to_vec();
            reply.resize(reply.len() + (32 << 20), b'x');
            reply
        } else {
            ok(b"ok")
        };
        if out.write_all(&reply).is_err() {
            return;
        }
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The length of `/large`.
const LARGE: u64 = 100 << 20;

/// The byte at `offset` of `/large`.
fn pattern(offset: u64) -> u8 {
    (offset % 253) as u8
}

fn ok(body: &[u8]) -> Vec<u8> {
    let mut reply =
        format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len()).into_bytes();
    reply.extend_from_slice(body);
    reply
}

fn fanout(upstream: &Upstream, args: &[&str]) -> Server {
    let rule = format!("http://{}", upstream.addr);
    let mut all = vec!["--workers", "1", "--allow-outbound", &rule];
    all.extend_from_slice(args);
    Server::start_module(Some(FANOUT), &all)
}

fn json(server: &Server, path: &str) -> serde_json::Value {
    let resp = server.get(path);
    assert_eq!(resp.status, 200, "{path}: {}", resp.text());
    serde_json::from_slice(&resp.body).expect("json")
}

#[test]
fn a_hundred_concurrent_fetches_take_about_the_slowest() {
    let upstream = Upstream::start();
    let server = fanout(&upstream, &[]);
    let query: Vec<String> = (0..100)
        .map(|i| format!("url={}", upstream.url(&format!("/slow/{}", 100 + i * 3))))
        .collect();
    let started = Instant::now();
    let result = json(&server, &format!("/fanout/?{}", query.join("&")));
    let took = started.elapsed();
    let results = result["results"].as_array().expect("results");
    assert_eq!(results.len(), 100);
    assert!(results.iter().all(|r| r["status"] == 200), "{result}");
    // The slowest takes ~400 ms; one after another would take ~25 s.
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

#[test]
fn a_denied_destination_opens_no_connection() {
    let upstream = Upstream::start();
    let server = Server::start_module(Some(FANOUT), &["--workers", "1"]);
    let result = json(&server, &format!("/fanout/?url={}", upstream.url("/ok")));
    assert_eq!(result["results"][0]["error"], "denied", "{result}");
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(upstream.accepts(), 0);
    server.wait_log("outbound request denied");
}

#[test]
fn failures_reach_the_module_as_typed_errors() {
    let upstream = Upstream::start();
    let server = fanout(&upstream, &[]);
    let cases = [
        ("/garbage", "protocol"),
        ("/drop", "protocol"),
        ("/big", "too-large"),
    ];
    for (path, kind) in cases {
        let result = json(&server, &format!("/fanout/?url={}", upstream.url(path)));
        assert_eq!(result["results"][0]["error"], kind, "{path}: {result}");
    }
    let started = Instant::now();
    let stalled = server.get(&format!(
        "/proxy/?url={}&timeout_ms=300",
        upstream.url("/stall")
    ));
    assert_eq!(stalled.status, 504, "{}", stalled.text());
    assert!(started.elapsed() < Duration::from_secs(5));
    // A port nobody listens on.
    let closed = TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr");
    let server = Server::start_module(
        Some(FANOUT),
        &[
            "--workers",
            "1",
            "--allow-outbound",
            &format!("http://{closed}"),
        ],
    );
    let result = json(&server, &format!("/fanout/?url=http://{closed}/"));
    assert_eq!(result["results"][0]["error"], "connect", "{result}");
    assert_eq!(server.get("/health/").text(), "ok");
}

#[test]
fn keep_alive_connections_are_reused() {
    let upstream = Upstream::start();
    let server = fanout(&upstream, &[]);
    for _ in 0..5 {
        let resp = server.get(&format!("/proxy/?url={}", upstream.url("/ok")));
        assert_eq!((resp.status, resp.text()), (200, "ok".into()));
    }
    assert_eq!(upstream.accepts(), 1);
}

#[test]
fn https_with_a_private_ca() {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("cert");
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("outbound-tls");
    std::fs::create_dir_all(&dir).expect("dir");
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, cert.cert.pem()).expect("write ca");
    let addr = tls_upstream(cert);
    let url = format!("https://localhost:{}/", addr.port());
    let rule = format!("https://localhost:{}", addr.port());
    // `localhost` leads to a loopback address, which a rule must name.
    let address = format!("https://127.0.0.1:{}", addr.port());
    let trusted = Server::start_module(
        Some(FANOUT),
        &[
            "--workers",
            "1",
            "--allow-outbound",
            &rule,
            "--allow-outbound",
            &address,
            "--outbound-ca",
            ca.to_str().expect("utf-8"),
        ],
    );
    let resp = trusted.get(&format!("/proxy/?url={url}"));
    assert_eq!((resp.status, resp.text()), (200, "secure".into()));
    let untrusted = Server::start_module(
        Some(FANOUT),
        &[
            "--workers",
            "1",
            "--allow-outbound",
            &rule,
            "--allow-outbound",
            &address,
        ],
    );
    let result = json(&untrusted, &format!("/fanout/?url={url}"));
    assert_eq!(result["results"][0]["error"], "tls", "{result}");
}

#[test]
fn allowed_names_leading_to_internal_addresses_are_denied() {
    let upstream = Upstream::start();
    let port = upstream.addr.port();
    let by_name = format!("http://localhost:{port}");
    let url = format!("{by_name}/ok");
    let name_only = Server::start_module(
        Some(FANOUT),
        &["--workers", "1", "--allow-outbound", &by_name],
    );
    let result = json(&name_only, &format!("/fanout/?url={url}"));
    assert_eq!(result["results"][0]["error"], "denied", "{result}");
    assert_eq!(upstream.accepts(), 0, "nothing connected");
    name_only.wait_log("internal addresses that no allow rule names");

    let range = format!("http://127.0.0.0/8:{port}");
    let named = Server::start_module(
        Some(FANOUT),
        &[
            "--workers",
            "1",
            "--allow-outbound",
            &by_name,
            "--allow-outbound",
            &range,
        ],
    );
    let resp = named.get(&format!("/proxy/?url={url}"));
    assert_eq!((resp.status, resp.text()), (200, "ok".into()));
}

/// A TLS server answering `secure` to every request, on its own runtime.
fn tls_upstream(cert: rcgen::CertifiedKey<rcgen::KeyPair>) -> SocketAddr {
    use tokio_rustls::rustls;
    let key =
        rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).expect("key");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(vec![cert.cert.der().clone()], key)
    .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    listener.set_nonblocking(true).expect("nonblocking");
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            while let Ok((stream, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                    let Ok(mut tls) = acceptor.accept(stream).await else { return };
                    let mut buf = vec![0u8; 4096];
                    let mut seen = Vec::new();
                    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tls.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => seen.extend_from_slice(&buf[..n]),
                        }
                    }
                    let _ = tls
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\nconnection: close\r\n\r\nsecure")
                        .await;
                    let _ = tls.shutdown().await;
                });
            }
        });
    });
    addr
}

#[test]
fn a_large_body_streams_through_the_proxy_at_the_readers_pace() {
    let upstream = Upstream::start();
    let server = fanout(&upstream, &[]);
    let before = server.rss_kib();
    let mut stream = server.connect();
    stream
        .set_read_timeout(Some(common::PATIENCE))
        .expect("timeout");
    let request = format!(
        "GET /proxy/?url={} HTTP/1.1\r\nHost: t\r\n\r\n",
        upstream.url("/large")
    );
    stream.write_all(request.as_bytes()).expect("request");
    let mut reader = BufReader::new(stream);
    let mut status = String::new();
    reader.read_line(&mut status).expect("status");
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    let head = common::read_header_lines(&mut reader).expect("head");
    let header = |name: &str| {
        head.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    assert_eq!(header("content-length"), Some(LARGE.to_string()));
    assert_eq!(header("transfer-encoding"), None);
    let mut offset = 0u64;
    let mut buf = vec![0u8; 256 * 1024];
    let mut highest = before;
    while offset < LARGE {
        let n = std::io::Read::read(&mut reader, &mut buf).expect("body");
        assert!(n > 0, "the body ended at {offset}");
        for (i, byte) in buf[..n].iter().enumerate() {
            assert_eq!(
                *byte,
                pattern(offset + i as u64),
                "byte {}",
                offset + i as u64
            );
        }
        offset += n as u64;
        if offset == 8 << 20 {
            // A pause: the proxy must hold the upstream back, not buffer it.
            std::thread::sleep(Duration::from_millis(800));
        }
        if offset % (16 << 20) < n as u64 {
            highest = highest.max(server.rss_kib());
        }
    }
    assert_eq!(offset, LARGE);
    highest = highest.max(server.rss_kib());
    assert!(
        highest.saturating_sub(before) < 16 * 1024,
        "RSS grew from {before} KiB to {highest} KiB relaying 100 MiB"
    );
    // Short bodies still come whole, with their length.
    let small = server.get(&format!("/proxy/?url={}", upstream.url("/ok")));
    assert_eq!((small.status, small.text()), (200, "ok".into()));
    assert_eq!(small.header("content-length"), Some("2"));
}

#[test]
fn an_upstream_body_cut_off_cuts_the_proxied_response_off() {
    let upstream = Upstream::start();
    // The Snow module pipes inside the host; its `wasi:http` build reads
    // and writes the body itself through its streams.
    let modules = [
        (FANOUT, "the response is cut off"),
        (
            snow_test_guests::FANOUT_WASI_HTTP,
            "a component's response body broke off",
        ),
    ];
    for (module, logged) in modules {
        let rule = format!("http://{}", upstream.addr);
        let server =
            Server::start_module(Some(module), &["--workers", "1", "--allow-outbound", &rule]);
        for path in ["/cut", "/cut-chunked"] {
            let raw = server.raw(
                format!(
                    "GET /proxy/?url={} HTTP/1.1\r\nHost: t\r\n\r\n",
                    upstream.url(path)
                )
                .as_bytes(),
            );
            let text = String::from_utf8_lossy(&raw);
            assert!(
                text.starts_with("HTTP/1.1 200"),
                "{module} {path}: {}",
                &text[..80.min(text.len())]
            );
            // Cut off: the client can tell, by the length or the missing last chunk.
            let whole = common::parse_all(&raw);
            assert!(
                whole.is_empty(),
                "{module} {path}: a broken body passed off as whole"
            );
        }
        server.wait_log(logged);
        assert_eq!(server.get("/health/").text(), "ok");
    }
}

#[test]
fn proxied_events_arrive_as_the_upstream_sends_them() {
    let upstream = Upstream::start();
    let server = fanout(&upstream, &[]);
    let mut stream = server.connect();
    stream
        .set_read_timeout(Some(common::PATIENCE))
        .expect("timeout");
    let started = Instant::now();
    let request = format!(
        "GET /proxy/?url={} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        upstream.url("/events")
    );
    stream.write_all(request.as_bytes()).expect("request");
    let mut reader = BufReader::new(stream);
    let mut status = String::new();
    reader.read_line(&mut status).expect("status");
    let head = common::read_header_lines(&mut reader).expect("head");
    assert!(
        head.iter()
            .any(|(n, v)| n == "content-type" && v == "text/event-stream"),
        "{head:?}"
    );
    let mut size = String::new();
    reader.read_line(&mut size).expect("chunk size");
    let mut first = String::new();
    reader.read_line(&mut first).expect("first event");
    assert_eq!(first, "data: tick 1\n");
    let first_at = started.elapsed();
    assert!(
        first_at < Duration::from_millis(700),
        "the first event waited for the second: {first_at:?}"
    );
    let rest = common::read_chunks(&mut {
        // What is left of the first chunk, then the rest.
        let mut line = String::new();
        reader.read_line(&mut line).expect("blank line");
        reader.read_line(&mut line).expect("chunk end");
        reader
    })
    .expect("the rest, to the last chunk");
    assert_eq!(String::from_utf8_lossy(&rest), "data: tick 2\n\n");
    assert!(started.elapsed() >= Duration::from_millis(750));
}

#[test]
fn an_upload_is_relayed_upstream_as_it_arrives() {
    let upstream = Upstream::start();
    let server = fanout(&upstream, &["--max-body", "1GiB"]);
    let before = server.rss_kib();
    let mut stream = server.connect();
    stream
        .set_read_timeout(Some(common::PATIENCE))
        .expect("timeout");
    let head = format!(
        "POST /proxy/?url={} HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n",
        upstream.url("/count")
    );
    stream.write_all(head.as_bytes()).expect("head");
    let total = 64u64 << 20;
    let mut chunk = vec![0u8; 256 * 1024];
    let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
    let mut sent = 0u64;
    let mut highest = before;
    while sent < total {
        for (i, byte) in chunk.iter_mut().enumerate() {
            *byte = pattern(sent + i as u64);
        }
        sha2::Digest::update(&mut hasher, &chunk);
        stream
            .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .and_then(|()| stream.write_all(&chunk))
            .and_then(|()| stream.write_all(b"\r\n"))
            .expect("chunk");
        sent += chunk.len() as u64;
        if sent % (16 << 20) == 0 {
            highest = highest.max(server.rss_kib());
        }
    }
    stream.write_all(b"0\r\n\r\n").expect("last chunk");
    let mut reader = BufReader::new(stream);
    let resp = common::read_response(&mut reader, false).expect("response");
    let digest: String = sha2::Digest::finalize(hasher)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        (resp.status, resp.text()),
        (200, format!("{total} {digest}"))
    );
    assert!(
        highest.saturating_sub(before) < 16 * 1024,
        "RSS grew from {before} KiB to {highest} KiB relaying a 64 MiB upload"
    );
    // A short upload with a length goes the same way.
    let small = server.post(&format!("/proxy/?url={}", upstream.url("/count")), b"abc");
    assert_eq!(
        small.text(),
        format!("3 {}", sha256_hex(b"abc")),
        "{}",
        small.text()
    );
}
