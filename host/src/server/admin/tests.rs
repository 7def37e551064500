//! The admin routes, called directly and over TCP.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;
use crate::http::{Framing, RequestHead, ResponseOptions, Version};
use crate::runtime::TrapReason;

fn state(metrics: Arc<Metrics>) -> AdminState {
    AdminState {
        metrics,
        deployer: Deployer::new(
            wasmtime::Engine::default(),
            None,
            Arc::new(crate::deploy::Registry::default()),
        ),
    }
}

/// Routes a bodiless request for `method` and `path`, taken as sent.
async fn call(metrics: &Arc<Metrics>, method: &str, path: &str) -> Response {
    let head = RequestHead {
        method: method.into(),
        path: path.into(),
        query: String::new(),
        version: Version::Http11,
        headers: Vec::new(),
        framing: Framing::None,
        keep_alive: true,
        expect_continue: false,
    };
    let request = Request {
        head,
        body: Vec::new(),
        received: Instant::now(),
    };
    route(&state(metrics.clone()), request).await
}

/// The body of `response` as a client of a GET receives it.
fn body(response: &Response) -> Vec<u8> {
    let opts = ResponseOptions {
        head_request: false,
        keep_alive: true,
        version: Version::Http11,
    };
    let mut out = Vec::new();
    response.write(&mut out, &opts);
    let end = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    out.split_off(end + 4)
}

#[tokio::test]
async fn metrics_endpoint_renders_the_registry() {
    let metrics = Metrics::new();
    metrics.module("hello").trap(TrapReason::Panic);
    let reply = call(&metrics, "GET", "/metrics").await;
    assert_eq!(reply.status(), 200);
    assert_eq!(
        reply.header("content-type"),
        Some(&b"text/plain; version=0.0.4; charset=utf-8"[..])
    );
    let body = body(&reply);
    assert_eq!(body, metrics.render().into_bytes());
    let body = String::from_utf8(body).unwrap();
    assert!(body.contains("snow_traps_total{module=\"hello\",reason=\"panic\"} 1\n"));
}

#[tokio::test]
async fn healthz_says_ok() {
    let reply = call(&Metrics::new(), "GET", "/healthz").await;
    assert_eq!(reply.status(), 200);
    assert_eq!(body(&reply), b"ok");
    assert_eq!(reply.header("content-type"), Some(TEXT_PLAIN));
}

#[tokio::test]
async fn other_methods_are_not_allowed() {
    let metrics = Metrics::new();
    for method in ["POST", "PUT", "DELETE", "HEAD", "OPTIONS", "get"] {
        for path in ["/metrics", "/healthz", "/modules"] {
            let reply = call(&metrics, method, path).await;
            assert_eq!(reply.status(), 405, "{method} {path}");
            assert_eq!(reply.header("allow"), Some(&b"GET"[..]));
        }
        if method != "PUT" {
            let reply = call(&metrics, method, "/modules/hello").await;
            assert_eq!(reply.status(), 405, "{method} /modules/hello");
            assert_eq!(reply.header("allow"), Some(&b"PUT"[..]));
        }
    }
}

#[tokio::test]
async fn other_paths_are_not_found() {
    let metrics = Metrics::new();
    for path in [
        "/",
        "/metrics/",
        "/Metrics",
        "/healthz/x",
        "*",
        "",
        "/modulesx",
    ] {
        for method in ["GET", "POST"] {
            let reply = call(&metrics, method, path).await;
            assert_eq!(reply.status(), 404, "{method} {path}");
            assert_eq!(reply.header("allow"), None);
        }
    }
    // A module that is not mounted, whatever its name.
    for name in ["nope", "", "../x", "a/b"] {
        let reply = call(&metrics, "PUT", &format!("/modules/{name}")).await;
        assert_eq!(reply.status(), 404, "{name}");
        assert_eq!(reply.header("content-type"), Some(JSON));
    }
}

#[tokio::test]
async fn listing_modules_answers_json() {
    let reply = call(&Metrics::new(), "GET", "/modules").await;
    assert_eq!(reply.status(), 200);
    assert_eq!(reply.header("content-type"), Some(JSON));
    assert_eq!(body(&reply), b"[]\n");
}

/// Reads one response: status code, lower-cased head, body.
async fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> (u16, String, Vec<u8>) {
    read_framed(stream, buf, true).await
}

/// Reads one response, with its body only if `has_body` (not for HEAD).
async fn read_framed(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    has_body: bool,
) -> (u16, String, Vec<u8>) {
    let read = async {
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8(buf[..end].to_vec())
                    .unwrap()
                    .to_ascii_lowercase();
                let status = head[9..12].parse().unwrap();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .map_or(0, |v| v.parse().unwrap());
                let length = if has_body { length } else { 0 };
                let body_start = end + 4;
                while buf.len() < body_start + length {
                    assert_ne!(stream.read_buf(buf).await.unwrap(), 0, "early close");
                }
                let body = buf[body_start..body_start + length].to_vec();
                buf.drain(..body_start + length);
                return (status, head, body);
            }
            assert_ne!(stream.read_buf(buf).await.unwrap(), 0, "early close");
        }
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .expect("a response in time")
}

async fn closed(stream: &mut TcpStream) -> bool {
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest));
    matches!(read.await, Ok(Ok(0)))
}

async fn start(
    timeout: Duration,
) -> (
    std::net::SocketAddr,
    Arc<Metrics>,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let metrics = Metrics::new();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let stop = async move {
        let _ = stop_rx.await;
    };
    let state = state(metrics.clone());
    let server = tokio::spawn(serve_with(listener, state, stop, timeout));
    (addr, metrics, stop_tx, server)
}

#[tokio::test]
async fn serves_metrics_over_tcp_with_keep_alive() {
    let (addr, metrics, stop, server) = start(REQUEST_TIMEOUT).await;
    let hello = metrics.module("hello");
    hello.request(200, Duration::from_millis(2));
    metrics.connection_opened();

    let mut client = TcpStream::connect(addr).await.unwrap();
    let mut buf = Vec::new();
    client
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let (status, head, body) = read_response(&mut client, &mut buf).await;
    assert_eq!(status, 200);
    assert!(head.contains("\r\ncontent-type: text/plain; version=0.0.4; charset=utf-8\r\n"));
    assert!(!head.contains("connection: close"));
    let body = String::from_utf8(body).unwrap();
    assert!(body.contains("snow_open_connections 1\n"), "{body}");
    assert!(body.contains("snow_requests_total{module=\"hello\",status=\"200\"} 1\n"));

    // Pipelined on the same connection, with a body that is skipped.
    client
        .write_all(
            b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello\
              GET /healthz?probe=1 HTTP/1.1\r\nHost: x\r\n\r\n\
              HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n\
              GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await
        .unwrap();
    let (status, head, _) = read_response(&mut client, &mut buf).await;
    assert_eq!(status, 405);
    assert!(head.contains("\r\nallow: get\r\n"));
    let (status, _, body) = read_response(&mut client, &mut buf).await;
    assert_eq!((status, body.as_slice()), (200, &b"ok"[..]));
    // The answer to HEAD has a length but no body.
    let (status, head, _) = read_framed(&mut client, &mut buf, false).await;
    assert_eq!(status, 405);
    assert!(head.contains("content-length: "));
    assert!(buf.is_empty() || buf.starts_with(b"HTTP/1.1 404 "));
    let (status, head, _) = read_response(&mut client, &mut buf).await;
    assert_eq!(status, 404);
    assert!(head.contains("connection: close"));
    assert!(buf.is_empty());
    assert!(closed(&mut client).await);

    // An idle connection is dropped when the server stops.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
    assert!(closed(&mut idle).await);
    assert!(TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn protocol_errors_are_answered_and_closed() {
    let (addr, _metrics, _stop, _server) = start(REQUEST_TIMEOUT).await;
    let cases: [(&[u8], u16); 4] = [
        (b"GET /metrics HTTP/1.1\r\n\r\n", 400),
        (b"GET /metrics HTTP/2.0\r\nHost: x\r\n\r\n", 505),
        (b"GARBAGE\x01 / HTTP/1.1\r\n\r\n", 400),
        (
            b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n",
            413,
        ),
    ];
    for (request, expected) in cases {
        let mut client = TcpStream::connect(addr).await.unwrap();
        client.write_all(request).await.unwrap();
        let mut buf = Vec::new();
        let (status, head, _) = read_response(&mut client, &mut buf).await;
        assert_eq!(status, expected, "{}", String::from_utf8_lossy(request));
        assert!(head.contains("connection: close"));
        assert!(closed(&mut client).await);
    }
}

#[tokio::test]
async fn slow_and_idle_clients_time_out() {
    let (addr, _metrics, _stop, _server) = start(Duration::from_millis(100)).await;

    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /metrics HTTP/1.1\r\nHost")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let (status, _, _) = read_response(&mut slow, &mut buf).await;
    assert_eq!(status, 408);
    assert!(closed(&mut slow).await);

    let mut idle = TcpStream::connect(addr).await.unwrap();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), idle.read_to_end(&mut rest));
    assert_eq!(read.await.unwrap().unwrap(), 0, "closed without an answer");
}
