//! The admin API on a listener of its own: `GET /metrics` for Prometheus and
//! `GET /healthz` for liveness checks.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio::time::{timeout_at, Instant};

use crate::deploy::Deployer;
use crate::http::response::ResponseOptions;
use crate::http::{self, BodyReader, Limits, ProtocolError, RequestHead, Version};
use crate::metrics::Metrics;

/// Each request, from its first byte to the last byte of the response, must
/// finish within this; a keep-alive connection idle this long is closed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A scraper needs one connection. The cap bounds what a misbehaving local
/// client can hold; at the cap accepting pauses and the backlog queues.
const MAX_CONNECTIONS: usize = 64;

/// Pause after a failed accept (e.g. out of file descriptors) so the loop
/// does not spin while the condition lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(20);

const READ_CHUNK: usize = 4096;

/// Largest module `PUT /modules/NAME` accepts.
const MAX_MODULE_SIZE: u64 = 64 << 20;

const METRICS_CONTENT_TYPE: &[u8] = b"text/plain; version=0.0.4; charset=utf-8";
const TEXT_PLAIN: &[u8] = b"text/plain; charset=utf-8";

/// Serves the admin API on `listener` until `stop` resolves.
///
/// Connections still open then are dropped with the tasks serving them.
pub async fn serve(
    listener: TcpListener,
    state: AdminState,
    stop: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    serve_with(listener, state, stop, REQUEST_TIMEOUT).await
}

/// What the admin endpoints act on.
#[derive(Clone)]
pub struct AdminState {
    pub metrics: Arc<Metrics>,
    pub deployer: Arc<Deployer>,
}

async fn serve_with(
    listener: TcpListener,
    state: AdminState,
    stop: impl Future<Output = ()>,
    request_timeout: Duration,
) -> anyhow::Result<()> {
    tokio::pin!(stop);
    // Dropping the set when this returns aborts the connections it holds.
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            biased;
            () = &mut stop => return Ok(()),
            Some(done) = conns.join_next(), if !conns.is_empty() => {
                if let Err(err) = done {
                    if err.is_panic() {
                        tracing::error!("admin connection panicked: {err}");
                    }
                }
            }
            accepted = listener.accept(), if conns.len() < MAX_CONNECTIONS => match accepted {
                Ok((stream, _)) => {
                    let conn = AdminConn::new(stream, request_timeout);
                    conns.spawn(conn.run(state.clone()));
                }
                Err(err) => {
                    tracing::warn!("admin accept failed: {err}");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
        }
    }
}

/// What the router answers; header values are all constants.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: &'static [(&'static str, &'static [u8])],
    body: Vec<u8>,
}

fn route(method: &str, path: &str, metrics: &Metrics) -> Reply {
    let get = method == "GET";
    match path {
        "/metrics" if get => Reply {
            status: 200,
            headers: &[("content-type", METRICS_CONTENT_TYPE)],
            body: metrics.render().into_bytes(),
        },
        "/healthz" if get => Reply {
            status: 200,
            headers: &[("content-type", TEXT_PLAIN)],
            body: b"ok".to_vec(),
        },
        "/metrics" | "/healthz" => Reply {
            status: 405,
            headers: &[("allow", b"GET"), ("content-type", TEXT_PLAIN)],
            body: b"405 Method Not Allowed: use GET\n".to_vec(),
        },
        _ => Reply {
            status: 404,
            headers: &[("content-type", TEXT_PLAIN)],
            body: b"404 Not Found: the admin API serves /metrics, /healthz and /modules\n".to_vec(),
        },
    }
}

const JSON: &[u8] = b"application/json";

/// `GET /modules` and `PUT /modules/NAME`; `None` for other paths.
async fn modules_route(
    method: &str,
    path: &str,
    body: Vec<u8>,
    state: &AdminState,
) -> Option<Reply> {
    if path == "/modules" {
        if method != "GET" {
            return Some(Reply {
                status: 405,
                headers: &[("allow", b"GET"), ("content-type", TEXT_PLAIN)],
                body: b"405 Method Not Allowed: use GET\n".to_vec(),
            });
        }
        let list = state.deployer.list();
        return Some(json(200, &list));
    }
    let name = path.strip_prefix("/modules/")?;
    if method != "PUT" {
        return Some(Reply {
            status: 405,
            headers: &[("allow", b"PUT"), ("content-type", TEXT_PLAIN)],
            body: b"405 Method Not Allowed: PUT the module's wasm\n".to_vec(),
        });
    }
    if state.deployer.registry().current().find(name).is_none() {
        return Some(json(
            404,
            &serde_json::json!({ "error": format!("no module named {name} is mounted") }),
        ));
    }
    Some(match state.deployer.replace(name, body).await {
        Ok(mount) => json(
            200,
            &serde_json::json!({
                "name": mount.config.name,
                "prefix": mount.config.prefix,
                "hash": mount.module.hash,
                "routes": mount.routes.iter().map(|r| r.pattern.clone()).collect::<Vec<_>>(),
            }),
        ),
        Err(err) => {
            tracing::error!(module = %name, "deployment refused; the running version stays: {err:#}");
            json(422, &serde_json::json!({ "error": format!("{err:#}") }))
        }
    })
}

fn json(status: u16, value: &impl serde::Serialize) -> Reply {
    let mut body = serde_json::to_vec_pretty(value).unwrap_or_default();
    body.push(b'\n');
    Reply {
        status,
        headers: &[("content-type", JSON)],
        body,
    }
}

/// The connection ends; nothing to report.
struct Closed;

type Step<T> = Result<T, Closed>;

struct AdminConn {
    stream: TcpStream,
    buf: BytesMut,
    out: Vec<u8>,
    limits: Limits,
    request_timeout: Duration,
}

impl AdminConn {
    fn new(stream: TcpStream, request_timeout: Duration) -> Self {
        Self {
            stream,
            buf: BytesMut::new(),
            out: Vec::new(),
            limits: Limits {
                // A module's wasm arrives as a body.
                max_body: MAX_MODULE_SIZE,
                ..Limits::default()
            },
            request_timeout,
        }
    }

    async fn run(mut self, state: AdminState) {
        loop {
            let deadline = Instant::now() + self.request_timeout;
            match self.serve_one(&state, deadline).await {
                Ok(true) => {}
                Ok(false) | Err(Closed) => break,
            }
        }
        let _ = self.stream.shutdown().await;
    }

    /// Serves one request; `Ok(true)` when the connection stays open.
    async fn serve_one(&mut self, state: &AdminState, deadline: Instant) -> Step<bool> {
        let head = match self.read_head(deadline).await? {
            Ok(head) => head,
            Err(err) => return self.reject(&err, Version::Http11, deadline).await,
        };
        let body = match self.read_body(&head, deadline).await? {
            Ok(body) => body,
            Err(err) => return self.reject(&err, head.version, deadline).await,
        };
        let reply = match modules_route(&head.method, &head.path, body, state).await {
            Some(reply) => reply,
            None => route(&head.method, &head.path, &state.metrics),
        };
        let opts = ResponseOptions {
            // Even a 405 to HEAD must come without a body, or the client
            // would read it as the start of the next response.
            head_request: head.method == "HEAD",
            keep_alive: head.keep_alive,
            version: head.version,
        };
        let headers = reply.headers.iter().copied();
        if let Err(err) =
            http::write_response(&mut self.out, reply.status, headers, &reply.body, &opts)
        {
            tracing::error!("admin response could not be written: {err}");
            http::write_error(&mut self.out, 500, "invalid admin response", head.version);
            self.flush(deadline).await?;
            return Ok(false);
        }
        self.flush(deadline).await?;
        Ok(head.keep_alive)
    }

    /// Reads until a whole request head is buffered.
    async fn read_head(&mut self, deadline: Instant) -> Step<Result<RequestHead, ProtocolError>> {
        loop {
            match http::parse_head(&self.buf, &self.limits) {
                Ok(Some((head, used))) => {
                    self.buf.advance(used);
                    return Ok(Ok(head));
                }
                Ok(None) => {}
                Err(err) => return Ok(Err(err)),
            }
            if !self.read_more(deadline).await? {
                // Nothing received means an idle keep-alive connection, which
                // is closed without an answer nobody is waiting for.
                if self.buf.is_empty() {
                    return Err(Closed);
                }
                return self.timed_out();
            }
        }
    }

    /// Reads the request body (a module's wasm for `PUT /modules/NAME`).
    async fn read_body(
        &mut self,
        head: &RequestHead,
        deadline: Instant,
    ) -> Step<Result<Vec<u8>, ProtocolError>> {
        let mut reader = BodyReader::new(head, self.limits.max_body, &self.buf, &mut self.out);
        loop {
            match reader.take(&mut self.buf) {
                Ok(Some(body)) => return Ok(Ok(body)),
                Ok(None) => {}
                Err(err) => return Ok(Err(err)),
            }
            self.flush(deadline).await?;
            if !self.read_more(deadline).await? {
                return self.timed_out();
            }
        }
    }

    /// Answers a protocol error and closes.
    async fn reject(
        &mut self,
        err: &ProtocolError,
        version: Version,
        deadline: Instant,
    ) -> Step<bool> {
        tracing::debug!("rejecting admin request: {err}");
        http::write_error(&mut self.out, err.status(), err.detail(), version);
        self.flush(deadline).await?;
        Ok(false)
    }

    /// Answers 408 and closes. The deadline has passed, so the answer is
    /// only what the socket takes at once, which for so short a response is
    /// all of it unless the client stopped reading.
    fn timed_out<T>(&mut self) -> Step<T> {
        http::write_error(
            &mut self.out,
            408,
            "the request was not received in time",
            Version::Http11,
        );
        let _ = self.stream.try_write(&self.out);
        self.out.clear();
        Err(Closed)
    }

    /// Reads more bytes; `Ok(false)` when `deadline` passed first.
    async fn read_more(&mut self, deadline: Instant) -> Step<bool> {
        self.buf.reserve(READ_CHUNK);
        match timeout_at(deadline, self.stream.read_buf(&mut self.buf)).await {
            Ok(Ok(0) | Err(_)) => Err(Closed),
            Ok(Ok(_)) => Ok(true),
            Err(_) => Ok(false),
        }
    }

    async fn flush(&mut self, deadline: Instant) -> Step<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let written = timeout_at(deadline, self.stream.write_all(&self.out)).await;
        self.out.clear();
        match written {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) | Err(_) => Err(Closed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::TrapReason;

    fn header<'r>(reply: &'r Reply, name: &str) -> Option<&'r [u8]> {
        reply
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }

    #[test]
    fn metrics_endpoint_renders_the_registry() {
        let metrics = Metrics::new();
        metrics.module("hello").trap(TrapReason::Panic);
        let reply = route("GET", "/metrics", &metrics);
        assert_eq!(reply.status, 200);
        assert_eq!(
            header(&reply, "content-type"),
            Some(&b"text/plain; version=0.0.4; charset=utf-8"[..])
        );
        assert_eq!(reply.body, metrics.render().into_bytes());
        let body = String::from_utf8(reply.body).unwrap();
        assert!(body.contains("snow_traps_total{module=\"hello\",reason=\"panic\"} 1\n"));
    }

    #[test]
    fn healthz_says_ok() {
        let reply = route("GET", "/healthz", &Metrics::new());
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body, b"ok");
        assert_eq!(header(&reply, "content-type"), Some(TEXT_PLAIN));
    }

    #[test]
    fn other_methods_are_not_allowed() {
        let metrics = Metrics::new();
        for method in ["POST", "PUT", "DELETE", "HEAD", "OPTIONS", "get"] {
            for path in ["/metrics", "/healthz"] {
                let reply = route(method, path, &metrics);
                assert_eq!(reply.status, 405, "{method} {path}");
                assert_eq!(header(&reply, "allow"), Some(&b"GET"[..]));
            }
        }
    }

    #[test]
    fn other_paths_are_not_found() {
        let metrics = Metrics::new();
        for path in ["/", "/metrics/", "/Metrics", "/healthz/x", "*", ""] {
            for method in ["GET", "POST"] {
                let reply = route(method, path, &metrics);
                assert_eq!(reply.status, 404, "{method} {path}");
                assert_eq!(header(&reply, "allow"), None);
            }
        }
    }

    #[test]
    fn replies_are_writable() {
        let metrics = Metrics::new();
        let opts = ResponseOptions {
            head_request: false,
            keep_alive: true,
            version: Version::Http11,
        };
        for (method, path) in [
            ("GET", "/metrics"),
            ("GET", "/healthz"),
            ("PUT", "/healthz"),
            ("GET", "/x"),
        ] {
            let reply = route(method, path, &metrics);
            let mut out = Vec::new();
            let headers = reply.headers.iter().copied();
            http::write_response(&mut out, reply.status, headers, &reply.body, &opts).unwrap();
        }
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
        let state = AdminState {
            metrics: metrics.clone(),
            deployer: Deployer::new(
                wasmtime::Engine::default(),
                None,
                Arc::new(crate::deploy::Registry::default()),
            ),
        };
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
}
