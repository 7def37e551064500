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
/// anything else answers 200 `ok`. Counts the connections it accepts.
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
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            if header == "\r\n" {
                break;
            }
        }
        let reply: Vec<u8> = if let Some(ms) = path.strip_prefix("/slow/") {
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
