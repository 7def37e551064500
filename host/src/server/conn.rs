//! One client connection: reads requests, runs them through the dispatcher,
//! and writes the responses in order.

use std::rc::Rc;
use std::time::Instant;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::{sleep_until, timeout_at};

use super::dispatch::{Dispatcher, Reply, Started};
use super::mounts::WorkerMounts;
use crate::config::ServeConfig;
use crate::deploy::Mount;
use crate::http::{self, BodyReader, ProtocolError, RequestHead, Version};
use crate::runtime::bindings::{Header, Request, Response};

/// Read buffer size; grown only while a large head or body arrives.
const READ_CHUNK: usize = 4096;

/// While a request is parked the connection keeps reading so it notices a
/// client that leaves; pipelined bytes beyond this wait in the socket.
const MAX_READ_AHEAD: usize = 64 * 1024;

pub struct Conn {
    stream: TcpStream,
    buf: BytesMut,
    out: Vec<u8>,
    mounts: Rc<WorkerMounts>,
    config: Rc<ServeConfig>,
    shutdown: watch::Receiver<bool>,
}

/// Why the connection ends; nothing here is an error of the server.
enum Stop {
    Closed,
}

type Step<T> = Result<T, Stop>;

impl Conn {
    pub fn new(
        stream: TcpStream,
        mounts: Rc<WorkerMounts>,
        config: Rc<ServeConfig>,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        Self {
            stream,
            buf: BytesMut::new(),
            out: Vec::new(),
            mounts,
            config,
            shutdown,
        }
    }

    pub async fn run(mut self) {
        while let Ok(true) = self.serve_one().await {}
        let _ = self.flush().await;
        let _ = self.stream.shutdown().await;
    }

    /// Serves one request; `Ok(true)` when the connection stays open.
    async fn serve_one(&mut self) -> Step<bool> {
        let head = match self.read_head().await? {
            Ok(head) => head,
            Err(err) => return self.reject(&err).await,
        };
        let started = Instant::now();
        let body = match self.read_body(&head).await? {
            Ok(body) => body,
            Err(err) => return self.reject(&err).await,
        };
        let wants_keep_alive = head.keep_alive;
        let is_head = head.method == "HEAD";
        let version = head.version;
        let request = Request {
            method: head.method,
            path: head.path,
            query: head.query,
            headers: head
                .headers
                .into_iter()
                .map(|(name, value)| Header { name, value })
                .collect(),
            body,
        };
        let routed = self.mounts.route(&request.path);
        let reply = match &routed {
            Some((mount, dispatcher)) => {
                let _in_flight = InFlight::enter(mount);
                Some(self.dispatch(dispatcher, &request).await?)
            }
            None => None,
        };
        // Decided after the handler: a shutdown may have begun meanwhile.
        let keep_alive = wants_keep_alive && !*self.shutdown.borrow();
        let opts = http::response::ResponseOptions {
            head_request: is_head,
            keep_alive,
            version,
        };
        let (status, answered_by) = match (reply, &routed) {
            (Some(reply), Some((_, dispatcher))) => {
                (self.write_reply(dispatcher, reply, &opts), Some(dispatcher))
            }
            _ => {
                let status = self.write_failure(404, "no module is mounted at this path", &opts);
                (status, None)
            }
        };
        let elapsed = started.elapsed();
        let module = match answered_by {
            Some(dispatcher) => {
                dispatcher.stats().request(status, elapsed);
                &**dispatcher.module_name()
            }
            None => "-",
        };
        crate::logging::access(
            &request.method,
            &request.path,
            status,
            elapsed.as_micros() as u64,
            module,
        );
        if self.buf.is_empty() && self.buf.capacity() > 4 * READ_CHUNK {
            // A large request is done: don't keep its buffer while idle.
            self.buf = BytesMut::new();
        }
        Ok(keep_alive)
    }

    async fn dispatch(&mut self, dispatcher: &Rc<Dispatcher>, request: &Request) -> Step<Reply> {
        let mut ticket = match dispatcher.start(request) {
            Started::Done(reply) => return Ok(reply),
            Started::Parked(ticket) => ticket,
        };
        // Responses to earlier pipelined requests go out before we wait.
        self.flush().await?;
        let deadline = tokio::time::Instant::now() + self.config.request_timeout;
        tokio::select! {
            reply = ticket.wait() => Ok(reply),
            () = watch_close(&self.stream, &mut self.buf) => Err(Stop::Closed),
            () = sleep_until(deadline) => Ok(Reply::TimedOut),
        }
    }

    fn write_reply(
        &mut self,
        dispatcher: &Dispatcher,
        reply: Reply,
        opts: &http::response::ResponseOptions,
    ) -> u16 {
        match reply {
            Reply::Response(resp) => match write_response(&mut self.out, &resp, opts) {
                Ok(()) => resp.status,
                Err(err) => {
                    tracing::error!(
                        module = %dispatcher.module_name(),
                        "module returned an invalid response: {err}"
                    );
                    self.write_failure(500, "the module returned an invalid response", opts)
                }
            },
            Reply::TimedOut => self.write_failure(504, "the handler did not answer in time", opts),
            Reply::Refused(limit) => {
                tracing::warn!(module = %dispatcher.module_name(), limit, "request refused");
                self.write_failure(503, "the server is at a limit; retry later", opts)
            }
            Reply::Failed(trap) => {
                tracing::debug!(reason = %trap.reason, "request failed in the module");
                self.write_failure(500, "the module failed", opts)
            }
        }
    }

    fn write_failure(
        &mut self,
        status: u16,
        detail: &str,
        opts: &http::response::ResponseOptions,
    ) -> u16 {
        let body = format!("{status} {}: {detail}\n", http::response::reason(status));
        let headers = [("content-type", &b"text/plain; charset=utf-8"[..])];
        // Only fixed, valid values: this cannot fail.
        let _ = http::write_response(&mut self.out, status, headers, body.as_bytes(), opts);
        status
    }

    /// Answers a protocol error and closes.
    async fn reject(&mut self, err: &ProtocolError) -> Step<bool> {
        tracing::debug!("rejecting request: {err}");
        http::write_error(&mut self.out, err.status(), err.detail(), Version::Http11);
        self.flush().await?;
        Ok(false)
    }

    /// Reads until a whole request head is buffered.
    async fn read_head(&mut self) -> Step<Result<RequestHead, ProtocolError>> {
        let mut first_byte: Option<Instant> = None;
        loop {
            match http::parse_head(&self.buf, &self.config.http) {
                Ok(Some((head, used))) => {
                    self.buf.advance(used);
                    return Ok(Ok(head));
                }
                Ok(None) => {}
                Err(err) => return Ok(Err(err)),
            }
            self.flush().await?;
            if self.buf.is_empty() {
                self.read_idle().await?;
            } else {
                let since = *first_byte.get_or_insert_with(Instant::now);
                if !self.read_within(since + self.config.header_timeout).await? {
                    return self.timed_out().await;
                }
            }
        }
    }

    /// Waits for the first byte of the next request, closing on the idle
    /// timeout or at shutdown.
    async fn read_idle(&mut self) -> Step<()> {
        if *self.shutdown.borrow() {
            return Err(Stop::Closed);
        }
        let deadline = tokio::time::Instant::now() + self.config.idle_timeout;
        self.buf.reserve(READ_CHUNK);
        tokio::select! {
            read = self.stream.read_buf(&mut self.buf) => match read {
                Ok(0) | Err(_) => Err(Stop::Closed),
                Ok(_) => Ok(()),
            },
            () = sleep_until(deadline) => Err(Stop::Closed),
            _ = self.shutdown.changed() => Err(Stop::Closed),
        }
    }

    /// Reads more bytes of a request; `Ok(false)` when `deadline` passed.
    async fn read_within(&mut self, deadline: Instant) -> Step<bool> {
        self.buf.reserve(READ_CHUNK);
        let deadline = tokio::time::Instant::from_std(deadline);
        match timeout_at(deadline, self.stream.read_buf(&mut self.buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => Err(Stop::Closed),
            Ok(Ok(_)) => Ok(true),
            Err(_) => Ok(false),
        }
    }

    async fn timed_out<T>(&mut self) -> Step<T> {
        http::write_error(
            &mut self.out,
            408,
            "the request was not received in time",
            Version::Http11,
        );
        self.flush().await?;
        Err(Stop::Closed)
    }

    async fn read_body(&mut self, head: &RequestHead) -> Step<Result<Vec<u8>, ProtocolError>> {
        let max_body = self.config.http.max_body;
        let mut reader = BodyReader::new(head, max_body, &self.buf, &mut self.out);
        let deadline = Instant::now() + self.config.header_timeout;
        loop {
            match reader.take(&mut self.buf) {
                Ok(Some(body)) => return Ok(Ok(body)),
                Ok(None) => {}
                Err(err) => return Ok(Err(err)),
            }
            self.flush().await?;
            if !self.read_within(deadline).await? {
                return self.timed_out().await;
            }
        }
    }

    async fn flush(&mut self) -> Step<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let result = self.stream.write_all(&self.out).await;
        self.out.clear();
        if self.out.capacity() > 64 * 1024 {
            self.out = Vec::new();
        }
        result.map_err(|_| Stop::Closed)
    }
}

fn write_response(
    out: &mut Vec<u8>,
    resp: &Response,
    opts: &http::response::ResponseOptions,
) -> Result<(), http::ResponseError> {
    let headers = resp
        .headers
        .iter()
        .map(|h| (h.name.as_str(), h.value.as_slice()));
    http::write_response(out, resp.status, headers, &resp.body, opts)
}

/// Resolves when the client closes its end while its request is parked.
/// Bytes it sends meanwhile (pipelined requests) are kept for later.
async fn watch_close(stream: &TcpStream, buf: &mut BytesMut) {
    loop {
        if buf.len() >= MAX_READ_AHEAD {
            return std::future::pending().await;
        }
        if stream.readable().await.is_err() {
            return;
        }
        buf.reserve(READ_CHUNK);
        match stream.try_read_buf(buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => return,
        }
    }
}

/// Counts a request against its module version while it runs, so
/// `GET /modules` shows what an old version still has to finish.
struct InFlight<'a>(&'a Mount);

impl<'a> InFlight<'a> {
    fn enter(mount: &'a Mount) -> Self {
        mount
            .in_flight
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self(mount)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0
            .in_flight
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}
