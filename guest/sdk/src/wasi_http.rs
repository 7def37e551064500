//! The SDK on the standard `wasi:http/proxy` world (WASI 0.2), with the
//! `wasi-http` feature: the same `app!` module becomes a component that
//! `wasmtime serve`, Spin or Snow's host serve as they serve any other.
//!
//! One request per call of `incoming-handler.handle`: the route table and
//! the executor run as under Snow's host (the body is read on from the
//! request's input stream, and a streamed response is written to the
//! response's output stream as the handler writes it), and
//! while the handler waits the pending host operations are waited on with
//! `wasi:io/poll` — timers as monotonic-clock pollables, fetches through
//! `wasi:http/outgoing-handler` — each completion resuming the handler
//! until it answers. Stores are Snow's host's and do not exist here: their
//! operations fail with `unavailable`. A `stream_response` fetch completes
//! with its head; its body is read on from the response's input stream as
//! the handler reads or pipes it.

use std::cell::{Cell, RefCell};
use std::io::{Read as _, Write as _};

use wasip2::clocks::monotonic_clock;
use wasip2::http::outgoing_handler;
use wasip2::http::types::IncomingBody;
use wasip2::http::types::{
    ErrorCode, Fields, FutureIncomingResponse, IncomingRequest, IncomingResponse, Method,
    OutgoingBody, OutgoingRequest as WasiRequest, OutgoingResponse, RequestOptions,
    ResponseOutparam, Scheme,
};
use wasip2::io::poll::Pollable;
use wasip2::io::streams::{InputStream, OutputStream, StreamError};

use crate::body::BodyError;
use crate::completion::Completion;
use crate::executor::Step;
use crate::host::OpId;
use crate::kv::{KvError, KvRequest};
use crate::outbound::{FetchError, OutgoingRequest};
use crate::{executor, Header, Request, Response, Router};

/// Redirects a fetch follows before it answers with the last one, as
/// Snow's host does by default.
const MAX_REDIRECTS: u8 = 10;

/// Fields the host frames or that `wasi:http` forbids a component to set.
const FRAMING: &[&str] = &[
    "connection",
    "content-length",
    "host",
    "http2-settings",
    "keep-alive",
    "proxy-connection",
    "te",
    "transfer-encoding",
    "upgrade",
];

enum Op {
    Timer(Pollable),
    Fetch {
        future: FutureIncomingResponse,
        /// Kept to follow redirects.
        request: OutgoingRequest,
        hops: u8,
    },
    Done(Completion),
    /// A write or a pipe started in the call that answered the head,
    /// before the body was opened: it runs once the head is out.
    Write(Vec<u8>),
    Pipe(u32),
}

/// The request body's stream; the stream goes before the body it is of.
struct BodyIn {
    stream: InputStream,
    _body: IncomingBody,
}

/// A streamed response's body stream, then the body it is of.
struct BodyOut {
    stream: OutputStream,
    body: OutgoingBody,
}

thread_local! {
    /// The host operations the current request has started and not yet
    /// seen complete, in the order they were started.
    static PENDING: RefCell<Vec<(OpId, Op)>> = const { RefCell::new(Vec::new()) };
    static BODY_IN: RefCell<Option<BodyIn>> = const { RefCell::new(None) };
    static BODY_OUT: RefCell<Option<BodyOut>> = const { RefCell::new(None) };
    /// Bodies of `stream_response` fetches, by handle, read on as asked.
    static FETCHED: RefCell<Vec<(u32, BodyIn)>> = const { RefCell::new(Vec::new()) };
    static LAST_OP: Cell<OpId> = const { Cell::new(0) };
    static LAST_REQUEST: Cell<u64> = const { Cell::new(0) };
    static LAST_FETCHED: Cell<u32> = const { Cell::new(0) };
}

fn push(op: Op) -> OpId {
    let id = LAST_OP.get() + 1;
    LAST_OP.set(id);
    PENDING.with(|pending| pending.borrow_mut().push((id, op)));
    id
}

pub(crate) fn start_timer(ms: u64) -> OpId {
    push(Op::Timer(monotonic_clock::subscribe_duration(
        ms.saturating_mul(1_000_000),
    )))
}

pub(crate) fn start_fetch(request: OutgoingRequest) -> OpId {
    push(match send(&request) {
        Ok(future) => Op::Fetch {
            future,
            request,
            hops: 0,
        },
        Err(err) => Op::Done(Completion::Fetch(Err(err))),
    })
}

pub(crate) fn forget(op: OpId) {
    // Dropping the op drops its pollable or its response future, which
    // tells the host to stop.
    let _ = PENDING.try_with(|pending| pending.borrow_mut().retain(|(id, _)| *id != op));
}

/// Reads the request body on, blocking: the component serves one request.
pub(crate) fn start_read_body(max: u32) -> OpId {
    push(Op::Done(Completion::Body(read_body_in(read_size(max)))))
}

/// The next bytes of the request's body, blocking; `None` at its end.
fn read_body_in(max: u32) -> Result<Option<Vec<u8>>, BodyError> {
    BODY_IN.with(|body| {
        let body = body.borrow();
        match body.as_ref() {
            Some(body) => read_chunk(&body.stream, max),
            None => Ok(None),
        }
    })
}

/// The next bytes of `stream`, blocking; `None` at its end.
fn read_chunk(stream: &InputStream, max: u32) -> Result<Option<Vec<u8>>, BodyError> {
    match stream.blocking_read(u64::from(max)) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(StreamError::Closed) => Ok(None),
        Err(StreamError::LastOperationFailed(err)) => Err(BodyError::Broken(err.to_debug_string())),
    }
}

/// Writes to the streamed response, blocking until the host took it. The
/// writer starts in the very call that answers the head, before the body
/// is open: those first writes wait for it.
pub(crate) fn start_write_body(chunk: Vec<u8>) -> OpId {
    let open = BODY_OUT.with(|out| out.borrow().is_some());
    if !open {
        return push(Op::Write(chunk));
    }
    push(Op::Done(Completion::Written(write_body_out(&chunk))))
}

fn write_body_out(chunk: &[u8]) -> bool {
    BODY_OUT.with(|out| {
        let mut out = out.borrow_mut();
        let Some(out) = out.as_mut() else {
            return false;
        };
        out.stream
            .write_all(chunk)
            .and_then(|()| std::io::Write::flush(&mut out.stream))
            .is_ok()
    })
}

/// Reads on the body of streamed fetch `body`, blocking: the component
/// serves one request.
pub(crate) fn start_read_fetched(body: u32, max: u32) -> OpId {
    push(Op::Done(Completion::Body(read_fetched(
        body,
        read_size(max),
    ))))
}

/// Sends the rest of streamed fetch `body` as the streamed response, a
/// read and a write at a time; whether all of it was taken.
pub(crate) fn start_pipe_fetched(body: u32) -> OpId {
    if !BODY_OUT.with(|out| out.borrow().is_some()) {
        return push(Op::Pipe(body));
    }
    push(Op::Done(Completion::Written(pipe_fetched(body))))
}

fn pipe_fetched(body: u32) -> bool {
    loop {
        match read_fetched(body, 64 * 1024) {
            Ok(Some(chunk)) if write_body_out(&chunk) => continue,
            Ok(None) => break true,
            Ok(Some(_)) | Err(_) => break false,
        }
    }
}

fn read_fetched(handle: u32, max: u32) -> Result<Option<Vec<u8>>, BodyError> {
    FETCHED.with(|fetched| {
        let mut fetched = fetched.borrow_mut();
        let Some(at) = fetched.iter().position(|(h, _)| *h == handle) else {
            let unknown = format!("no streamed fetch body {handle}");
            return Err(BodyError::Broken(unknown));
        };
        let read = read_chunk(&fetched[at].1.stream, max);
        if !matches!(read, Ok(Some(_))) {
            // Its end or its failure: nothing more will come from it.
            fetched.remove(at);
        }
        read
    })
}

/// A read's size: `0` asks for the default.
fn read_size(max: u32) -> u32 {
    if max == 0 {
        64 * 1024
    } else {
        max.min(1 << 20)
    }
}

pub(crate) fn kv_open(name: &str) -> Result<u32, KvError> {
    Err(KvError::NoSuchStore(format!(
        "{name}: stores are provided by Snow's host, and a wasi:http build has none"
    )))
}

pub(crate) fn start_kv(_store: u32, _request: KvRequest) -> OpId {
    push(Op::Done(Completion::Kv(Err(KvError::Unavailable(
        "stores are provided by Snow's host, and a wasi:http build has none".into(),
    )))))
}

/// `incoming-handler.handle`: the whole exchange.
pub fn serve(router: &'static Router, incoming: IncomingRequest, out: ResponseOutparam) {
    match read_request(incoming) {
        Ok(request) => run(router, request, out),
        Err(response) => write_response(out, response),
    }
}

fn run(router: &'static Router, request: Request, out: ResponseOutparam) {
    let id = LAST_REQUEST.get() + 1;
    LAST_REQUEST.set(id);
    let mut out = Some(out);
    let mut step = executor::handle(router, id, request);
    loop {
        match step {
            Step::Ready(response) => {
                // After a streamed head only the stream's end can follow.
                if let Some(out) = out.take() {
                    write_response(out, response);
                }
                break;
            }
            Step::Finished { whole } => {
                if !whole {
                    // Dropped unfinished, the body ends in an error: the
                    // client sees it cut off, never passed off as whole.
                    BODY_OUT.with(|body| body.borrow_mut().take());
                }
                break;
            }
            Step::Streaming(head) => {
                if let Some(out) = out.take() {
                    let opened = open_response(out, head);
                    BODY_OUT.with(|body| *body.borrow_mut() = opened);
                }
            }
            Step::Pending => {}
            // A wasi:http build relays inside the module (`host::RELAYS`).
            Step::Relayed(_) => {
                if let Some(out) = out.take() {
                    let text = "snow: a relay reached a host without relays";
                    write_response(out, Response::text(text).with_status(500));
                }
                break;
            }
        }
        let Some((op, done)) = wait_any() else {
            executor::cancel(id);
            if let Some(out) = out.take() {
                let stuck = "snow: the handler waits, and no operation of it is pending";
                write_response(out, Response::text(stuck).with_status(500));
            }
            break;
        };
        step = executor::resume(id, op, done);
    }
    // Operations a finished handler left behind go with it.
    PENDING.with(|pending| pending.borrow_mut().clear());
    BODY_IN.with(|body| body.borrow_mut().take());
    FETCHED.with(|fetched| fetched.borrow_mut().clear());
    if let Some(open) = BODY_OUT.with(|body| body.borrow_mut().take()) {
        let BodyOut { stream, body } = open;
        drop(stream);
        let _ = OutgoingBody::finish(body, None);
    }
}

/// Blocks until one pending operation completes and returns it.
fn wait_any() -> Option<(OpId, Completion)> {
    loop {
        let (id, op) = PENDING.with(|pending| {
            let mut pending = pending.borrow_mut();
            if pending.is_empty() {
                return None;
            }
            let done = |op: &Op| matches!(op, Op::Done(_) | Op::Write(_) | Op::Pipe(_));
            let ready = match pending.iter().position(|(_, op)| done(op)) {
                Some(at) => at,
                None => ready_index(&pending),
            };
            Some(pending.remove(ready))
        })?;
        match op {
            Op::Done(done) => return Some((id, done)),
            Op::Write(chunk) => return Some((id, Completion::Written(write_body_out(&chunk)))),
            Op::Pipe(body) => return Some((id, Completion::Written(pipe_fetched(body)))),
            Op::Timer(_) => return Some((id, Completion::Timer)),
            Op::Fetch {
                future,
                request,
                hops,
            } => match fetched(future, request, hops) {
                Fetched::Done(done) => return Some((id, done)),
                // A redirect to follow: the op waits on the next request.
                Fetched::Again(op) => {
                    PENDING.with(|pending| pending.borrow_mut().push((id, op)));
                }
            },
        }
    }
}

/// The index of an op whose pollable is ready, blocking until one is.
fn ready_index(pending: &[(OpId, Op)]) -> usize {
    let subscribed: Vec<Option<Pollable>> = pending
        .iter()
        .map(|(_, op)| match op {
            Op::Fetch { future, .. } => Some(future.subscribe()),
            _ => None,
        })
        .collect();
    let pollables: Vec<&Pollable> = pending
        .iter()
        .zip(&subscribed)
        .filter_map(|((_, op), own)| match (op, own) {
            (Op::Timer(pollable), _) => Some(pollable),
            (_, Some(pollable)) => Some(pollable),
            _ => None,
        })
        .collect();
    let ready = wasip2::io::poll::poll(&pollables);
    ready.first().map_or(0, |&at| at as usize)
}

enum Fetched {
    Done(Completion),
    Again(Op),
}

impl Fetched {
    /// A failure; `fetch` takes it in either completion.
    fn failed(err: FetchError) -> Self {
        Fetched::Done(Completion::Fetch(Err(err)))
    }
}

fn fetched(future: FutureIncomingResponse, request: OutgoingRequest, hops: u8) -> Fetched {
    let response = match future.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(code))) => return Fetched::failed(fetch_error(code)),
        Some(Err(())) | None => return Fetched::failed(FetchError::Protocol("no response".into())),
    };
    let status = response.status();
    let headers = response.headers().entries();
    if request.follow_redirects && hops < MAX_REDIRECTS {
        if let Some(next) = redirect(&request, status, &headers) {
            return Fetched::Again(match send(&next) {
                Ok(future) => Op::Fetch {
                    future,
                    request: next,
                    hops: hops + 1,
                },
                Err(err) => Op::Done(Completion::Fetch(Err(err))),
            });
        }
    }
    if request.stream_response {
        return Fetched::Done(Completion::FetchHead(stream_response(
            response, status, headers,
        )));
    }
    Fetched::Done(Completion::Fetch(read_response(response, status, headers)))
}

/// Keeps the body of `response` to be read on; its head, with the handle.
fn stream_response(
    response: IncomingResponse,
    status: u16,
    headers: Vec<(String, Vec<u8>)>,
) -> Result<(u16, crate::response::Headers, u32), FetchError> {
    let body = response
        .consume()
        .map_err(|()| FetchError::Protocol("the response body was taken".into()))?;
    let stream = body
        .stream()
        .map_err(|()| FetchError::Protocol("no response body stream".into()))?;
    let handle = LAST_FETCHED.get() + 1;
    LAST_FETCHED.set(handle);
    FETCHED.with(|fetched| {
        fetched.borrow_mut().push((
            handle,
            BodyIn {
                stream,
                _body: body,
            },
        ))
    });
    Ok((
        status,
        crate::response::Headers::from_list(to_headers(headers)),
        handle,
    ))
}

fn read_response(
    response: IncomingResponse,
    status: u16,
    headers: Vec<(String, Vec<u8>)>,
) -> Result<Response, FetchError> {
    let mut body = Vec::new();
    let incoming = response
        .consume()
        .map_err(|()| FetchError::Protocol("the response body was taken".into()))?;
    {
        let mut stream = incoming
            .stream()
            .map_err(|()| FetchError::Protocol("no response body stream".into()))?;
        stream
            .read_to_end(&mut body)
            .map_err(|err| FetchError::Protocol(format!("reading the response body: {err}")))?;
    }
    Ok(Response::from_parts(status, to_headers(headers), body))
}

fn to_headers(fields: Vec<(String, Vec<u8>)>) -> Vec<Header> {
    fields
        .into_iter()
        .map(|(name, value)| Header { name, value })
        .collect()
}

/// The request a redirect asks for, as Snow's host follows them: 303 (and
/// 301/302 after a POST) become a GET without a body.
fn redirect(
    request: &OutgoingRequest,
    status: u16,
    headers: &[(String, Vec<u8>)],
) -> Option<OutgoingRequest> {
    if !matches!(status, 301 | 302 | 303 | 307 | 308) {
        return None;
    }
    let location = headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("location"))
        .and_then(|(_, value)| std::str::from_utf8(value).ok())?;
    let url = crate::outbound::resolve(&request.url, location)?;
    let to_get = status == 303 || (matches!(status, 301 | 302) && request.method == "POST");
    let mut next = request.clone();
    next.url = url;
    if to_get {
        next.method = "GET".into();
        next.body.clear();
    }
    Some(next)
}

/// Starts `request` through `wasi:http/outgoing-handler` and writes its body.
fn send(request: &OutgoingRequest) -> Result<FutureIncomingResponse, FetchError> {
    let invalid = |what: &str| FetchError::Invalid(format!("{what}: {}", request.url));
    let (scheme, rest) = match request.url.split_once("://") {
        Some((s, rest)) if s.eq_ignore_ascii_case("http") => (Scheme::Http, rest),
        Some((s, rest)) if s.eq_ignore_ascii_case("https") => (Scheme::Https, rest),
        _ => return Err(invalid("not an http(s) URL")),
    };
    let (authority, path) = match rest.find(['/', '?']) {
        Some(at) if rest[at..].starts_with('?') => (&rest[..at], format!("/{}", &rest[at..])),
        Some(at) => (&rest[..at], rest[at..].to_owned()),
        None => (rest, "/".to_owned()),
    };
    let fields: Vec<(String, Vec<u8>)> = request
        .headers
        .iter()
        .filter(|h| !FRAMING.iter().any(|f| h.name.eq_ignore_ascii_case(f)))
        .map(|h| (h.name.to_ascii_lowercase(), h.value.clone()))
        .collect();
    let fields = Fields::from_list(&fields).map_err(|err| invalid(&format!("{err:?}")))?;
    let outgoing = WasiRequest::new(fields);
    let method = method(&request.method);
    let set = [
        outgoing.set_method(&method),
        outgoing.set_scheme(Some(&scheme)),
        outgoing.set_authority(Some(authority)),
        outgoing.set_path_with_query(Some(&path)),
    ];
    if set.iter().any(Result::is_err) {
        return Err(invalid("not a usable request"));
    }
    let body = outgoing.body().map_err(|()| invalid("no request body"))?;
    let options = (request.timeout_ms > 0).then(|| {
        let options = RequestOptions::new();
        let ns = Some(u64::from(request.timeout_ms) * 1_000_000);
        let _ = options.set_connect_timeout(ns);
        let _ = options.set_first_byte_timeout(ns);
        let _ = options.set_between_bytes_timeout(ns);
        options
    });
    let future = outgoing_handler::handle(outgoing, options).map_err(fetch_error)?;
    // Written after `handle`: the host reads the body while it sends it.
    {
        let mut stream = body
            .write()
            .map_err(|()| invalid("no request body stream"))?;
        let sent = |err: std::io::Error| FetchError::Protocol(format!("sending the body: {err}"));
        stream.write_all(&request.body).map_err(sent)?;
        // The rest of the client's body, relayed a read at a time.
        if request.forward_body {
            while let Some(chunk) = read_body_in(64 * 1024).map_err(|err| match err {
                BodyError::Broken(detail) => invalid(&format!("reading the body: {detail}")),
                other => invalid(&format!("reading the body: {other}")),
            })? {
                stream.write_all(&chunk).map_err(sent)?;
            }
        }
        std::io::Write::flush(&mut stream).map_err(sent)?;
    }
    OutgoingBody::finish(body, None).map_err(fetch_error)?;
    Ok(future)
}

fn method(name: &str) -> Method {
    match name {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        "CONNECT" => Method::Connect,
        "OPTIONS" => Method::Options,
        "TRACE" => Method::Trace,
        "PATCH" => Method::Patch,
        other => Method::Other(other.to_owned()),
    }
}

fn method_name(method: Method) -> String {
    match method {
        Method::Get => "GET".into(),
        Method::Head => "HEAD".into(),
        Method::Post => "POST".into(),
        Method::Put => "PUT".into(),
        Method::Delete => "DELETE".into(),
        Method::Connect => "CONNECT".into(),
        Method::Options => "OPTIONS".into(),
        Method::Trace => "TRACE".into(),
        Method::Patch => "PATCH".into(),
        Method::Other(other) => other,
    }
}

/// The standard's error codes as the SDK's fetch errors, as close as they
/// map: what has no case of its own is a protocol error naming the code.
fn fetch_error(code: ErrorCode) -> FetchError {
    match code {
        ErrorCode::DnsTimeout => FetchError::Timeout,
        ErrorCode::DnsError(payload) => {
            FetchError::Dns(payload.rcode.unwrap_or_else(|| "lookup failed".into()))
        }
        ErrorCode::DestinationNotFound => FetchError::Dns("destination not found".into()),
        ErrorCode::ConnectionRefused => FetchError::Connect("connection refused".into()),
        ErrorCode::DestinationUnavailable
        | ErrorCode::DestinationIpProhibited
        | ErrorCode::DestinationIpUnroutable
        | ErrorCode::ConnectionTerminated
        | ErrorCode::ConnectionLimitReached => FetchError::Connect(format!("{code:?}")),
        ErrorCode::ConnectionTimeout
        | ErrorCode::ConnectionReadTimeout
        | ErrorCode::ConnectionWriteTimeout
        | ErrorCode::HttpResponseTimeout => FetchError::Timeout,
        ErrorCode::TlsProtocolError
        | ErrorCode::TlsCertificateError
        | ErrorCode::TlsAlertReceived(_) => FetchError::Tls(format!("{code:?}")),
        ErrorCode::HttpRequestDenied => FetchError::Denied,
        ErrorCode::HttpResponseBodySize(_) | ErrorCode::HttpResponseHeaderSectionSize(_) => {
            FetchError::TooLarge
        }
        ErrorCode::HttpRequestMethodInvalid | ErrorCode::HttpRequestUriInvalid => {
            FetchError::Invalid(format!("{code:?}"))
        }
        other => FetchError::Protocol(format!("{other:?}")),
    }
}

/// The request as handlers see it; the path is the whole path, since a
/// standard host mounts no prefix the component would know of.
fn read_request(incoming: IncomingRequest) -> Result<Request, Response> {
    let bad = |what: String| Response::text(what).with_status(400);
    let target = incoming.path_with_query().unwrap_or_else(|| "/".into());
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path.to_owned(), query.to_owned()),
        None => (target, String::new()),
    };
    let headers = incoming
        .headers()
        .entries()
        .into_iter()
        .map(|(name, value)| Header { name, value })
        .collect();
    let method = method_name(incoming.method());
    // The body is read on as the handler asks, so an upload streams
    // through and a whole body is held to its route's limit.
    let consumed = incoming
        .consume()
        .map_err(|()| bad("the request body was taken".into()))?;
    let stream = consumed
        .stream()
        .map_err(|()| bad("no request body stream".into()))?;
    BODY_IN.with(|body| {
        *body.borrow_mut() = Some(BodyIn {
            stream,
            _body: consumed,
        })
    });
    Ok(Request::from_parts(method, path, query, headers, Vec::new()).with_body_complete(false))
}

fn write_response(out: ResponseOutparam, response: Response) {
    let (status, headers, body) = response.into_parts();
    let head = Response::from_parts(status, headers, Vec::new());
    let Some(BodyOut {
        mut stream,
        body: handle,
    }) = open_response(out, head)
    else {
        return;
    };
    // The client may be gone; nothing is left to tell then.
    let _ = stream
        .write_all(&body)
        .and_then(|()| std::io::Write::flush(&mut stream));
    drop(stream);
    let _ = OutgoingBody::finish(handle, None);
}

/// Sends the head of `response` (its body is not sent) and opens the body.
fn open_response(out: ResponseOutparam, response: Response) -> Option<BodyOut> {
    let (status, headers, _) = response.into_parts();
    let fields = Fields::new();
    for header in headers {
        if FRAMING.iter().any(|f| header.name.eq_ignore_ascii_case(f)) {
            continue;
        }
        // A field the host refuses is left out rather than failing the
        // whole response; Snow's host drops such fields the same way.
        let _ = fields.append(&header.name.to_ascii_lowercase(), &header.value);
    }
    let outgoing = OutgoingResponse::new(fields);
    let _ = outgoing.set_status_code(status);
    let Ok(body) = outgoing.body() else {
        ResponseOutparam::set(out, Err(ErrorCode::InternalError(Some("no body".into()))));
        return None;
    };
    ResponseOutparam::set(out, Ok(outgoing));
    match body.write() {
        Ok(stream) => Some(BodyOut { stream, body }),
        Err(()) => {
            let _ = OutgoingBody::finish(body, None);
            None
        }
    }
}
