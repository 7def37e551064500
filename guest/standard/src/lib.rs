//! A `wasi:http/proxy` component built with nothing but the `wasip2`
//! bindings: no Snow SDK, blocking `wasi:io` calls, one request per call of
//! `incoming-handler.handle`. The routes exercise what such components do
//! (echo a body, wait on a clock, call out) and what a host must survive
//! (panics, loops, runaway allocation, reaching for files).

use std::io::{Read as _, Write as _};
use std::sync::atomic::{AtomicU64, Ordering};

use wasip2::clocks::monotonic_clock;
use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingRequest, OutgoingResponse,
    ResponseOutparam, Scheme,
};

wasip2::http::proxy::export!(Standard);

struct Standard;

/// Requests this instance has served: shows whether instances are reused.
static SERVED: AtomicU64 = AtomicU64::new(0);

impl wasip2::exports::http::incoming_handler::Guest for Standard {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let served = SERVED.fetch_add(1, Ordering::Relaxed) + 1;
        let path_with_query = request.path_with_query().unwrap_or_default();
        let (path, query) = path_with_query
            .split_once('?')
            .unwrap_or((path_with_query.as_str(), ""));
        let (status, headers, body) = match (request.method(), path) {
            (Method::Get, "/home/") => (200, vec![], format!("hello from {path}").into_bytes()),
            (_, "/echo/") => echo(request),
            (Method::Get, "/sleep/") => {
                let ms: u64 = param(query, "ms").and_then(|v| v.parse().ok()).unwrap_or(0);
                monotonic_clock::subscribe_duration(ms * 1_000_000).block();
                (200, vec![], format!("slept {ms} ms").into_bytes())
            }
            (Method::Get, "/fetch/") => fetch(param(query, "url").unwrap_or_default()),
            (Method::Get, "/served/") => (200, vec![], served.to_string().into_bytes()),
            (Method::Get, "/env/") => {
                let name = param(query, "name").unwrap_or_default();
                let value = std::env::var(name).unwrap_or_default();
                (200, vec![], value.into_bytes())
            }
            (Method::Get, "/file/") => match std::fs::read("/etc/passwd") {
                Ok(bytes) => (200, vec![], bytes),
                Err(err) => (403, vec![], format!("no file: {err}").into_bytes()),
            },
            (Method::Get, "/panic/") => panic!("asked to panic"),
            #[allow(clippy::empty_loop)]
            (Method::Get, "/loop/") => loop {},
            (Method::Get, "/alloc/") => {
                let mb: usize = param(query, "mb").and_then(|v| v.parse().ok()).unwrap_or(1);
                let block = vec![7u8; mb << 20];
                (200, vec![], format!("{} bytes", block.len()).into_bytes())
            }
            (Method::Get, "/silent/") => return drop(out),
            (Method::Get, "/hoard/") => {
                // Holds `n` host resources at once.
                let n: usize = param(query, "n").and_then(|v| v.parse().ok()).unwrap_or(1);
                let held: Vec<Fields> = (0..n).map(|_| Fields::new()).collect();
                (200, vec![], format!("held {}", held.len()).into_bytes())
            }
            (Method::Get, "/status/") => {
                let code = param(query, "code")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(200);
                (code, vec![], b"as asked".to_vec())
            }
            (Method::Get, "/huge/") => {
                let mb: usize = param(query, "mb").and_then(|v| v.parse().ok()).unwrap_or(1);
                return stream_zeros(out, mb, param(query, "then"));
            }
            _ => (404, vec![], b"no such route".to_vec()),
        };
        respond(out, status, headers, &body);
    }
}

fn param<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

type Headers = Vec<(String, Vec<u8>)>;

fn echo(request: IncomingRequest) -> (u16, Headers, Vec<u8>) {
    let mut content_type = request.headers().get("content-type");
    let Ok(body) = request.consume() else {
        return (500, vec![], b"the body was taken already".to_vec());
    };
    let mut bytes = Vec::new();
    {
        let Ok(mut stream) = body.stream() else {
            return (500, vec![], b"no body stream".to_vec());
        };
        if let Err(err) = stream.read_to_end(&mut bytes) {
            return (400, vec![], format!("reading the body: {err}").into_bytes());
        }
    }
    let mut headers = vec![(
        "x-body-length".to_string(),
        bytes.len().to_string().into_bytes(),
    )];
    if let Some(value) = content_type.pop() {
        headers.push(("content-type".to_string(), value));
    }
    (200, headers, bytes)
}

/// `GET url` through `wasi:http/outgoing-handler`, answering the upstream's
/// status and body, or 502 with the error code the host gave.
fn fetch(url: &str) -> (u16, Headers, Vec<u8>) {
    let (scheme, rest) = match url.split_once("://") {
        Some(("http", rest)) => (Scheme::Http, rest),
        Some(("https", rest)) => (Scheme::Https, rest),
        _ => {
            return (
                400,
                vec![],
                format!("not an http(s) URL: {url}").into_bytes(),
            )
        }
    };
    let (authority, path) = match rest.find('/') {
        Some(at) => rest.split_at(at),
        None => (rest, "/"),
    };
    let request = OutgoingRequest::new(Fields::new());
    let set = [
        request.set_scheme(Some(&scheme)),
        request.set_authority(Some(authority)),
        request.set_path_with_query(Some(path)),
    ];
    if set.iter().any(Result::is_err) {
        return (400, vec![], format!("unusable URL: {url}").into_bytes());
    }
    let pending = match outgoing_handler::handle(request, None) {
        Ok(pending) => pending,
        Err(code) => return (502, vec![], format!("refused: {code:?}").into_bytes()),
    };
    pending.subscribe().block();
    let response = match pending.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(code))) => return (502, vec![], format!("failed: {code:?}").into_bytes()),
        _ => return (502, vec![], b"no response".to_vec()),
    };
    let status = response.status();
    let mut bytes = Vec::new();
    if let Ok(body) = response.consume() {
        if let Ok(mut stream) = body.stream() {
            if let Err(err) = stream.read_to_end(&mut bytes) {
                return (502, vec![], format!("reading upstream: {err}").into_bytes());
            }
        }
    }
    (
        200,
        vec![(
            "x-upstream-status".to_string(),
            status.to_string().into_bytes(),
        )],
        bytes,
    )
}

fn respond(out: ResponseOutparam, status: u16, headers: Headers, body: &[u8]) {
    let fields = Fields::new();
    for (name, value) in headers {
        let _ = fields.append(&name, &value);
    }
    let response = OutgoingResponse::new(fields);
    let _ = response.set_status_code(status);
    let Ok(outgoing) = response.body() else {
        return;
    };
    ResponseOutparam::set(out, Ok(response));
    if let Ok(mut stream) = outgoing.write() {
        let _ = stream.write_all(body);
        let _ = stream.blocking_flush();
    }
    let _ = OutgoingBody::finish(outgoing, None);
}

/// `mb` MiB of zeros written 64 KiB at a time: a body far larger than the
/// component's own memory. `then=loop` or `then=panic` ends it that way
/// instead of finishing the body.
fn stream_zeros(out: ResponseOutparam, mb: usize, then: Option<&str>) {
    let response = OutgoingResponse::new(Fields::new());
    let Ok(outgoing) = response.body() else {
        return;
    };
    ResponseOutparam::set(out, Ok(response));
    if let Ok(mut stream) = outgoing.write() {
        let chunk = vec![0u8; 64 << 10];
        for _ in 0..mb * 16 {
            if stream.write_all(&chunk).is_err() {
                return;
            }
        }
        let _ = stream.blocking_flush();
        match then {
            #[allow(clippy::empty_loop)]
            Some("loop") => loop {},
            Some("panic") => panic!("asked to panic mid-body"),
            _ => {}
        }
    }
    let _ = OutgoingBody::finish(outgoing, None);
}
