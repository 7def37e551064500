//! The admin routes, called directly and over TCP.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;
use crate::http::Version;
use crate::runtime::TrapReason;

fn state(metrics: Arc<Metrics>) -> AdminState {
    state_with(metrics, None)
}

fn state_with(metrics: Arc<Metrics>, token: Option<&str>) -> AdminState {
    let deployer = Deployer::new(
        crate::runtime::Engines::cranelift(wasmtime::Engine::default()),
        None,
        Arc::new(crate::deploy::Registry::default()),
        Arc::default(),
    );
    let token = token.map(|t| AdminToken::new(t.as_bytes()).unwrap());
    AdminState::new(metrics, deployer, token, serving())
}

/// A health state past start-up, with no checks.
fn serving() -> Arc<Health> {
    let health = Health::new();
    health.set_serving();
    health
}

/// Routes a bodiless request for `method` and `path`, taken as sent.
async fn call(metrics: &Arc<Metrics>, method: &str, path: &str) -> Response {
    call_state(&state(metrics.clone()), method, path).await
}

async fn call_state(state: &AdminState, method: &str, path: &str) -> Response {
    let head = RequestHead {
        method: method.into(),
        path: path.into(),
        query: String::new(),
        version: Version::Http11,
        fields: Vec::new(),
        framing: Framing::None,
        keep_alive: true,
        expect_continue: false,
    };
    let request = Request {
        rest: None,
        head,
        body: Vec::new(),
        received: Instant::now(),
    };
    route(state, request).await
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
async fn readyz_says_ok_when_ready_and_why_not_otherwise() {
    let health = Health::new();
    let state = AdminState::new(
        Metrics::new(),
        state(Metrics::new()).api.unwrap().deployer,
        None,
        health.clone(),
    );
    let reply = call_state(&state, "GET", "/readyz").await;
    assert_eq!((reply.status(), body(&reply)), (503, b"starting".to_vec()));
    health.set_serving();
    let reply = call_state(&state, "GET", "/readyz").await;
    assert_eq!((reply.status(), body(&reply)), (200, b"ok".to_vec()));
    assert_eq!(reply.header("content-type"), Some(TEXT_PLAIN));
    assert_eq!(call_state(&state, "HEAD", "/readyz").await.status(), 200);
    health.add_check("store", || async { Err("unreachable".into()) });
    let reply = call_state(&state, "GET", "/readyz").await;
    assert_eq!(
        (reply.status(), body(&reply)),
        (503, b"store: unreachable".to_vec())
    );
    health.start_draining();
    for method in ["GET", "HEAD"] {
        let reply = call_state(&state, method, "/readyz").await;
        assert_eq!((reply.status(), body(&reply)), (503, b"draining".to_vec()));
    }
    // Alive all the same.
    assert_eq!(call_state(&state, "GET", "/healthz").await.status(), 200);
}

#[tokio::test]
async fn other_methods_are_not_allowed() {
    let metrics = Metrics::new();
    for method in ["POST", "PUT", "DELETE", "HEAD", "OPTIONS", "get"] {
        for path in ["/metrics", "/modules"] {
            let reply = call(&metrics, method, path).await;
            assert_eq!(reply.status(), 405, "{method} {path}");
            assert_eq!(reply.header("allow"), Some(&b"GET"[..]));
        }
        for path in ["/healthz", "/readyz"] {
            let reply = call(&metrics, method, path).await;
            if method == "HEAD" {
                assert_eq!(reply.status(), 200, "{method} {path}");
                continue;
            }
            assert_eq!(reply.status(), 405, "{method} {path}");
            assert_eq!(reply.header("allow"), Some(&b"GET, HEAD"[..]));
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
        "/readyz/",
        "/Readyz",
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
    start_with(timeout, None).await
}

async fn start_with(
    timeout: Duration,
    token: Option<&str>,
) -> (
    std::net::SocketAddr,
    Arc<Metrics>,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    let metrics = Metrics::new();
    let state = state_with(metrics.clone(), token);
    let (addr, stop_tx, server) = start_state(timeout, state).await;
    (addr, metrics, stop_tx, server)
}

async fn start_state(
    timeout: Duration,
    state: AdminState,
) -> (
    std::net::SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let stop = async move {
        let _ = stop_rx.await;
    };
    let server = tokio::spawn(serve_with(listener, state, stop, timeout));
    (addr, stop_tx, server)
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
    assert!(head.contains("\r\nallow: get, head\r\n"));
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

const TOKEN: &str = "s3cret-admin-token-0123456789";

fn head_with(method: &str, path: &str, headers: &[(&str, &[u8])]) -> RequestHead {
    RequestHead {
        method: method.into(),
        path: path.into(),
        query: String::new(),
        version: Version::Http11,
        fields: {
            let mut block = Vec::new();
            crate::http::fields::encode_into(&mut block, headers.iter().copied());
            block
        },
        framing: Framing::None,
        keep_alive: true,
        expect_continue: false,
    }
}

/// What `admit` says to a GET of `/modules` with these headers.
fn admitted(state: &AdminState, headers: &[(&str, &[u8])]) -> Result<(), u16> {
    admit(state, &head_with("GET", "/modules", headers))
        .map(|_| ())
        .map_err(|refusal| refusal.status())
}

#[test]
fn a_configured_token_is_required() {
    let state = state_with(Metrics::new(), Some(TOKEN));
    let right = format!("Bearer {TOKEN}");
    let spaced = format!("Bearer   {TOKEN}");
    let lower = format!("bearer {TOKEN}");
    assert_eq!(
        admitted(&state, &[("Authorization", right.as_bytes())]),
        Ok(())
    );
    assert_eq!(
        admitted(&state, &[("authorization", lower.as_bytes())]),
        Ok(())
    );
    // RFC 6750 allows one or more spaces after the scheme.
    assert_eq!(
        admitted(&state, &[("Authorization", spaced.as_bytes())]),
        Ok(())
    );

    let wrong_scheme = format!("Basic {TOKEN}");
    let wrong_token = format!("Bearer {}X", &TOKEN[..TOKEN.len() - 1]);
    let shorter = format!("Bearer {}", &TOKEN[..TOKEN.len() - 1]);
    let longer = format!("Bearer {TOKEN}0");
    let glued = format!("Bearer{TOKEN}");
    let tabbed = format!("Bearer\t{TOKEN}");
    let huge = format!("Bearer {}", "A".repeat(60 * 1024));
    let mut non_utf8 = b"Bearer ".to_vec();
    non_utf8.extend_from_slice(&[0xff, 0xfe, 0x80]);
    non_utf8.extend_from_slice(TOKEN.as_bytes());
    type Headers<'a> = Vec<(&'a str, &'a [u8])>;
    let cases: Vec<(&str, Headers)> = vec![
        ("missing", vec![]),
        (
            "wrong scheme",
            vec![("Authorization", wrong_scheme.as_bytes())],
        ),
        (
            "wrong token",
            vec![("Authorization", wrong_token.as_bytes())],
        ),
        ("shorter token", vec![("Authorization", shorter.as_bytes())]),
        ("longer token", vec![("Authorization", longer.as_bytes())]),
        ("no space", vec![("Authorization", glued.as_bytes())]),
        ("tab", vec![("Authorization", tabbed.as_bytes())]),
        ("bare scheme", vec![("Authorization", b"Bearer")]),
        ("empty", vec![("Authorization", b"")]),
        ("huge", vec![("Authorization", huge.as_bytes())]),
        ("non-UTF-8", vec![("Authorization", &non_utf8)]),
        ("token elsewhere", vec![("X-Token", TOKEN.as_bytes())]),
        (
            "twice",
            vec![
                ("Authorization", right.as_bytes()),
                ("Authorization", right.as_bytes()),
            ],
        ),
    ];
    for (what, headers) in cases {
        assert_eq!(admitted(&state, &headers), Err(401), "{what}");
    }
    let refusal = admit(&state, &head_with("PUT", "/modules/x", &[])).unwrap_err();
    assert_eq!(refusal.status(), 401);
    assert_eq!(
        refusal.header("www-authenticate"),
        Some(&b"Bearer realm=\"snow-admin\""[..])
    );
    assert!(String::from_utf8(body(&refusal))
        .unwrap()
        .contains("Authorization: Bearer <token>"));
    // Unknown paths need the token too: nothing is said without it.
    let refusal = admit(&state, &head_with("GET", "/nope", &[])).unwrap_err();
    assert_eq!(refusal.status(), 401);
}

#[test]
fn the_probes_need_no_token() {
    let state = state_with(Metrics::new(), Some(TOKEN));
    for method in ["GET", "HEAD", "POST"] {
        for path in ["/healthz", "/readyz"] {
            assert!(admit(&state, &head_with(method, path, &[])).is_ok());
        }
    }
}

#[test]
fn only_uploads_may_carry_a_large_body() {
    let state = state_with(Metrics::new(), Some(TOKEN));
    let auth = format!("Bearer {TOKEN}");
    let with_body = |method: &str, path: &str, framing: Framing, token: bool| {
        let headers: &[(&str, &[u8])] = if token {
            &[("Authorization", auth.as_bytes())]
        } else {
            &[]
        };
        let mut head = head_with(method, path, headers);
        head.framing = framing;
        admit(&state, &head).map(|_| ()).map_err(|r| r.status())
    };
    let big = Framing::Length(MAX_OTHER_BODY + 1);
    let small = Framing::Length(MAX_OTHER_BODY);
    for path in ["/healthz", "/readyz"] {
        // Anyone may probe: no one may make the server buffer a module's
        // worth of bytes for it.
        assert_eq!(with_body("POST", path, big, false), Err(413), "{path}");
        assert_eq!(with_body("POST", path, Framing::Chunked, false), Err(413));
        assert_eq!(with_body("POST", path, small, false), Ok(()));
    }
    assert_eq!(with_body("POST", "/metrics", big, false), Err(401));
    assert_eq!(with_body("POST", "/metrics", big, true), Err(413));
    // An upload to a mounted module is bounded by MAX_MODULE_SIZE instead;
    // this one is not mounted.
    assert_eq!(with_body("PUT", "/modules/x", big, true), Err(404));
}

#[tokio::test]
async fn the_health_listener_serves_the_probes_and_nothing_else() {
    let health = serving();
    let state = AdminState::health_only(health.clone());
    assert_eq!(call_state(&state, "GET", "/healthz").await.status(), 200);
    assert_eq!(call_state(&state, "HEAD", "/healthz").await.status(), 200);
    assert_eq!(call_state(&state, "GET", "/readyz").await.status(), 200);
    assert_eq!(call_state(&state, "POST", "/readyz").await.status(), 405);
    for (method, path) in [
        ("GET", "/metrics"),
        ("GET", "/modules"),
        ("PUT", "/modules/app"),
        ("GET", "/"),
        ("GET", "/healthz/"),
    ] {
        let reply = call_state(&state, method, path).await;
        assert_eq!(reply.status(), 404, "{method} {path}");
        let text = String::from_utf8(body(&reply)).unwrap();
        assert!(text.contains("serves /healthz and /readyz"), "{text}");
        assert!(!text.contains("metrics"), "{text}");
        // Refused from the head, token or not: no body is ever read.
        let refused = admit(&state, &head_with(method, path, &[])).unwrap_err();
        assert_eq!(refused.status(), 404, "{method} {path}");
    }
    health.start_draining();
    let reply = call_state(&state, "GET", "/readyz").await;
    assert_eq!((reply.status(), body(&reply)), (503, b"draining".to_vec()));
}

#[test]
fn without_a_token_every_request_is_admitted() {
    let state = state(Metrics::new());
    assert_eq!(admitted(&state, &[]), Ok(()));
    assert_eq!(
        admitted(&state, &[("Authorization", b"Bearer whatever")]),
        Ok(())
    );
}

#[test]
fn uploads_beyond_the_bound_get_503() {
    use crate::config::Isolation;
    use crate::server::test_support::{hello, mount};

    let state = state(Metrics::new());
    let app = mount("app", "/", hello(Isolation::Instance));
    state
        .api
        .as_ref()
        .unwrap()
        .deployer
        .registry()
        .publish(crate::deploy::MountTable::new(vec![app]));
    let put = head_with("PUT", "/modules/app", &[]);
    let mut held: Vec<_> = (0..MAX_CONCURRENT_UPLOADS)
        .map(|_| admit(&state, &put).unwrap().expect("a permit"))
        .collect();
    let refusal = admit(&state, &put).unwrap_err();
    assert_eq!(refusal.status(), 503);
    assert_eq!(refusal.header("retry-after"), Some(&b"1"[..]));
    // Other requests are not uploads and need no permit.
    assert!(admit(&state, &head_with("GET", "/modules", &[]))
        .unwrap()
        .is_none());
    // An unmounted module is 404 before any permit is looked at.
    let refusal = admit(&state, &head_with("PUT", "/modules/nope", &[])).unwrap_err();
    assert_eq!(refusal.status(), 404);
    // A finished upload gives its permit back.
    held.pop();
    assert!(admit(&state, &put).unwrap().is_some());
}

/// Sends `request` and reads the one answer.
async fn exchange(addr: std::net::SocketAddr, request: &[u8]) -> (u16, String, Vec<u8>) {
    let mut client = TcpStream::connect(addr).await.unwrap();
    client.write_all(request).await.unwrap();
    let mut buf = Vec::new();
    read_response(&mut client, &mut buf).await
}

#[tokio::test]
async fn the_token_is_checked_over_tcp_before_the_body() {
    let (addr, _metrics, _stop, _server) = start_with(REQUEST_TIMEOUT, Some(TOKEN)).await;
    let (status, head, body) = exchange(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(status, 401);
    assert!(head.contains("\r\nwww-authenticate: bearer realm=\"snow-admin\"\r\n"));
    assert!(!body.is_empty());
    let request =
        format!("GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\r\n");
    assert_eq!(exchange(addr, request.as_bytes()).await.0, 200);
    let (status, _, body) = exchange(addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!((status, body.as_slice()), (200, &b"ok"[..]));

    // A refused upload is answered at once, and the connection closed,
    // though its announced body never comes.
    let mut client = TcpStream::connect(addr).await.unwrap();
    client
        .write_all(b"PUT /modules/app HTTP/1.1\r\nHost: x\r\nContent-Length: 60000000\r\n\r\nabc")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let (status, head, _) = read_response(&mut client, &mut buf).await;
    assert_eq!(status, 401);
    assert!(head.contains("connection: close"));

    // Non-UTF-8 bytes in the header are refused, not a crash.
    let mut request =
        b"GET /modules HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xfe\r\n\r\n".to_vec();
    assert_eq!(exchange(addr, &request).await.0, 401);
    request.clear();
    assert_eq!(
        exchange(addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn the_health_listener_over_tcp() {
    let state = AdminState::health_only(serving());
    let (addr, _stop, _server) = start_state(REQUEST_TIMEOUT, state).await;
    let mut client = TcpStream::connect(addr).await.unwrap();
    client
        .write_all(
            b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n\
              HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n\
              GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n\
              GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await
        .unwrap();
    let mut buf = Vec::new();
    let (status, _, body) = read_response(&mut client, &mut buf).await;
    assert_eq!((status, body.as_slice()), (200, &b"ok"[..]));
    let (status, head, _) = read_framed(&mut client, &mut buf, false).await;
    assert_eq!(status, 200);
    assert!(head.contains("content-length: 2"), "{head}");
    let (status, _, _) = read_response(&mut client, &mut buf).await;
    assert_eq!(status, 404);
    let (status, _, body) = read_response(&mut client, &mut buf).await;
    assert_eq!((status, body.as_slice()), (200, &b"ok"[..]));
    assert!(closed(&mut client).await);

    // An upload, with its token, is refused from its head, and its
    // announced body never read.
    let request = format!(
        "PUT /modules/app HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Length: 60000000\r\n\r\nabc"
    );
    let mut client = TcpStream::connect(addr).await.unwrap();
    client.write_all(request.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let (status, head, _) = read_response(&mut client, &mut buf).await;
    assert_eq!(status, 404);
    assert!(head.contains("connection: close"));
    // A probe with a body past the small bound: 413, whatever its path.
    let (status, _, _) = exchange(
        addr,
        b"POST /readyz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
    )
    .await;
    assert_eq!(status, 413);
}
