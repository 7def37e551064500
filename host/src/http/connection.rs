//! One HTTP/1.1 connection: owns the socket and its buffers and drives the
//! pure parsers over them. It reads the next request with its deadlines,
//! queues responses so pipelined answers leave in order and in as few
//! writes as possible, sends `100 Continue`, and answers protocol errors and
//! slow clients itself before closing. A client that stops reading its
//! answers is closed after the send timeout, and is not served further
//! requests while much is queued for it.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{sleep_until, timeout_at, Sleep};

use self::inflow::Pump;
use self::output::{Output, SendError};
use super::message::{Request, Response};
use super::response::{write_error, ResponseOptions};
use super::shutdown::{Shutdown, ShutdownWatch};
use super::{parse_head, BodyReader, Limits, ProtocolError, RequestHead, Version};

mod inflow;
mod outflow;
mod output;
mod read_pool;

/// Read buffer size; grown only while a large head or body arrives.
const READ_CHUNK: usize = 4096;

/// While a request is being answered the connection keeps reading so it
/// notices a client that leaves; pipelined bytes beyond this wait in the
/// socket.
const MAX_READ_AHEAD: usize = 64 * 1024;

/// Answers queued beyond this are sent before another request is read, so
/// a client that pipelines without reading holds at most this much (plus
/// the one answer that crossed it) in the server.
pub const MAX_QUEUED_OUTPUT: usize = 256 * 1024;

/// How long a client may take.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Between requests, for the first byte of the next one.
    pub idle: Duration,
    /// From the first byte of a head to its end, and for the whole body.
    pub header: Duration,
    /// While answers are sent, how long the client may accept no bytes at
    /// all before the connection is closed.
    pub send: Duration,
    /// While a body streams, in either direction, the longest wait for its
    /// next bytes.
    pub stream_idle: Duration,
}

/// The connection ends; nothing here is an error of the server.
struct Closed;

type Step<T> = Result<T, Closed>;

pub struct Connection<S> {
    stream: S,
    buf: BytesMut,
    out: Output,
    limits: Limits,
    timeouts: Timeouts,
    /// Closes the connection when it is between requests.
    shutdown: Option<ShutdownWatch>,
    /// The idle timeout between requests, armed once and moved on only
    /// when it fires: arming a timer for every wait cost more than the
    /// rest of the wait.
    idle_timer: Option<Pin<Box<Sleep>>>,
    /// Bounds every read and write until it is moved.
    deadline: Option<tokio::time::Instant>,
    /// The body of the current request, while it streams in.
    inflow: Option<Pump>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    pub fn new(stream: S, limits: Limits, timeouts: Timeouts) -> Self {
        Self {
            stream,
            buf: BytesMut::new(),
            out: Output::default(),
            limits,
            timeouts,
            shutdown: None,
            idle_timer: None,
            deadline: None,
            inflow: None,
        }
    }

    /// Closes the connection between requests once `shutdown` fires.
    pub fn with_shutdown(mut self, shutdown: &Shutdown) -> Self {
        self.shutdown = Some(shutdown.watch());
        self
    }

    /// Whether the server is shutting down, so no request should follow.
    pub fn shutting_down(&self) -> bool {
        self.shutdown.as_ref().is_some_and(ShutdownWatch::is_fired)
    }

    /// Bounds every wait from now on (reading, writing) by `deadline`, on
    /// top of the timeouts.
    pub fn set_deadline(&mut self, deadline: Instant) {
        self.deadline = Some(tokio::time::Instant::from_std(deadline));
    }

    /// Reads the next request. `None` when the connection is done: the
    /// client left or idled out, the server is shutting down, or the request
    /// was bad or slow and has been answered.
    pub async fn read_request(&mut self) -> Option<Request> {
        let (head, received) = self.next_head().await?;
        let body = self.body_of(&head).await?;
        Some(Request {
            head,
            body,
            rest: None,
            received,
        })
    }

    /// Reads the next request head and when it was complete, leaving its
    /// body unread, so the caller can refuse the request before receiving
    /// it. `None` as for [`Self::read_request`].
    pub async fn next_head(&mut self) -> Option<(RequestHead, Instant)> {
        if self.out.len() > MAX_QUEUED_OUTPUT {
            // Pipelined requests wait until the client reads its answers.
            self.flush().await.ok()?;
        }
        self.shrink_read_buffer();
        match self.read_head().await.ok()? {
            Ok(head) => Some((head, Instant::now())),
            Err(err) => {
                self.reject(&err).await;
                None
            }
        }
    }

    /// Reads the whole body of `head`, the head [`Self::next_head`] returned.
    pub async fn body_of(&mut self, head: &RequestHead) -> Option<Vec<u8>> {
        self.whole_body(head, self.limits.max_body).await
    }

    /// Reads the whole body of `head`, at most `max_body` bytes.
    async fn whole_body(&mut self, head: &RequestHead, max_body: u64) -> Option<Vec<u8>> {
        match self.read_body(head, max_body).await.ok()? {
            Ok(body) => Some(body),
            Err(err) => {
                self.reject(&err).await;
                None
            }
        }
    }

    /// Queues `response`; it is sent before the connection next waits.
    pub fn write(&mut self, response: Response, opts: &ResponseOptions) {
        let body = response.write_head(self.out.tail(), opts);
        self.out.push_body(body);
    }

    /// Runs `answer` while watching the client. When it is not ready at
    /// once, the answers queued before it are sent first, and bytes the
    /// client pipelines meanwhile are kept. `None` when the client closed
    /// its end first: the caller then drops `answer`, which cancels it.
    ///
    /// Pinned by the caller: a future taken by value and pinned here would
    /// be kept twice in this one's state, the parameter's slot and the
    /// pinned copy, in every connection's task (7.6 KiB instead of 3.7).
    pub async fn answer<F: Future>(&mut self, mut answer: Pin<&mut F>) -> Option<F::Output> {
        // Most answers are ready at once; they cost no write and no wait.
        let first = std::future::poll_fn(|cx| Poll::Ready(answer.as_mut().poll(cx))).await;
        if let Poll::Ready(output) = first {
            return Some(output);
        }
        self.flush().await.ok()?;
        tokio::select! {
            biased;
            output = &mut answer => Some(output),
            () = self.watch() => None,
        }
    }

    /// Feeds a streaming request body on, then resolves when the client
    /// closes its end. Cancel-safe: bytes read are kept.
    async fn watch(&mut self) {
        if let Some(pump) = &mut self.inflow {
            pump.run(&mut self.stream, &mut self.buf, self.timeouts.stream_idle)
                .await;
        }
        watch_close(&mut self.stream, &mut self.buf).await
    }

    /// Sends what is queued and closes the connection.
    pub async fn close(mut self) {
        let _ = self.flush().await;
        let _ = self.stream.shutdown().await;
    }

    /// Sends what is queued and closes the connection after an answer given
    /// without reading the request's body. What the client goes on sending
    /// is read and dropped until it pauses for `linger`, closes, or the
    /// deadline passes: closing with unread bytes would send a reset, which
    /// can destroy the answer before the client reads it.
    pub async fn close_lingering(mut self, linger: Duration) {
        if self.flush().await.is_err() {
            return;
        }
        let _ = self.stream.shutdown().await;
        let mut sink = [0u8; READ_CHUNK];
        loop {
            let until = self.capped(Instant::now() + linger);
            match timeout_at(until, self.stream.read(&mut sink)).await {
                Ok(Ok(read)) if read > 0 => {}
                _ => return,
            }
        }
    }

    /// Answers a protocol error and ends the connection.
    async fn reject(&mut self, err: &ProtocolError) {
        tracing::debug!("rejecting request: {err}");
        write_error(self.out.tail(), err.status(), err.detail(), Version::Http11);
        let _ = self.flush().await;
    }

    /// Answers 408 and ends the connection.
    async fn timed_out<T>(&mut self) -> Step<T> {
        write_error(
            self.out.tail(),
            408,
            "the request was not received in time",
            Version::Http11,
        );
        let _ = self.flush().await;
        Err(Closed)
    }

    /// Reads until a whole request head is buffered.
    async fn read_head(&mut self) -> Step<Result<RequestHead, ProtocolError>> {
        let mut first_byte: Option<Instant> = None;
        loop {
            match parse_head(&self.buf, &self.limits) {
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
                if !self.read_within(since + self.timeouts.header).await? {
                    return self.timed_out().await;
                }
            }
        }
    }

    /// Waits for the first byte of the next request, closing on the idle
    /// timeout or at shutdown.
    async fn read_idle(&mut self) -> Step<()> {
        if self.shutting_down() {
            return Err(Closed);
        }
        let deadline = self.capped(Instant::now() + self.timeouts.idle);
        if self.buf.capacity() == 0 {
            self.buf = read_pool::take();
        }
        self.buf.reserve(READ_CHUNK);
        let Self {
            stream,
            buf,
            shutdown,
            idle_timer,
            ..
        } = self;
        let timer = match idle_timer {
            // Idle deadlines only move on, so a timer armed by an earlier
            // wait fires first and is moved on then; a deadline capped
            // earlier moves it back at once.
            Some(timer) => {
                if timer.deadline() > deadline {
                    timer.as_mut().reset(deadline);
                }
                timer
            }
            None => idle_timer.insert(Box::pin(sleep_until(deadline))),
        };
        loop {
            let fired = async {
                match shutdown {
                    Some(watch) => watch.fired().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                read = stream.read_buf(buf) => return match read {
                    Ok(0) | Err(_) => Err(Closed),
                    Ok(_) => Ok(()),
                },
                () = timer.as_mut() => {
                    if tokio::time::Instant::now() >= deadline {
                        return Err(Closed);
                    }
                    timer.as_mut().reset(deadline);
                },
                () = fired => return Err(Closed),
            }
        }
    }

    /// Reads more bytes of a request; `Ok(false)` when `deadline` passed.
    async fn read_within(&mut self, deadline: Instant) -> Step<bool> {
        self.buf.reserve(READ_CHUNK);
        let deadline = self.capped(deadline);
        match timeout_at(deadline, self.stream.read_buf(&mut self.buf)).await {
            Ok(Ok(0) | Err(_)) => Err(Closed),
            Ok(Ok(_)) => Ok(true),
            Err(_) => Ok(false),
        }
    }

    async fn read_body(
        &mut self,
        head: &RequestHead,
        max_body: u64,
    ) -> Step<Result<Vec<u8>, ProtocolError>> {
        let mut reader = BodyReader::new(head, max_body, &self.buf, self.out.tail());
        // Set when the body is not all here: most requests need no clock.
        let mut deadline = None;
        loop {
            match reader.take(&mut self.buf) {
                Ok(Some(body)) => return Ok(Ok(body)),
                Ok(None) => {}
                Err(err) => return Ok(Err(err)),
            }
            let deadline = *deadline.get_or_insert_with(|| Instant::now() + self.timeouts.header);
            self.flush().await?;
            if !self.read_within(deadline).await? {
                return self.timed_out().await;
            }
        }
    }

    /// Sends what is queued. A client that accepts nothing for the send
    /// timeout, or is still being sent to at the deadline, is closed.
    async fn flush(&mut self) -> Step<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        // The send may wait long on a slow reader: hold no large buffer
        // meanwhile.
        self.shrink_read_buffer();
        let sent = self
            .out
            .send(&mut self.stream, self.timeouts.send, self.deadline)
            .await;
        match sent {
            Ok(()) => Ok(()),
            Err(SendError::Stalled) => {
                tracing::debug!(
                    "closing a connection whose client read nothing for {:?}",
                    self.timeouts.send
                );
                Err(Closed)
            }
            Err(SendError::Deadline) => Err(Closed),
            Err(SendError::Io(err)) => {
                tracing::debug!("closing a connection the answer could not be sent on: {err}");
                Err(Closed)
            }
        }
    }

    /// Gives back a read buffer a large request grew, keeping the bytes
    /// that follow it.
    fn shrink_read_buffer(&mut self) {
        if self.buf.capacity() > 4 * READ_CHUNK && self.buf.len() <= READ_CHUNK {
            self.buf = BytesMut::from(&self.buf[..]);
        }
    }

    fn capped(&self, deadline: Instant) -> tokio::time::Instant {
        let deadline = tokio::time::Instant::from_std(deadline);
        match self.deadline {
            Some(cap) => deadline.min(cap),
            None => deadline,
        }
    }
}

/// Resolves when the client closes its end. Bytes it sends meanwhile
/// (pipelined requests) are kept for later.
///
/// Most clients send nothing while they wait for an answer or a stream, so
/// an empty read buffer is given back (to the thread's few kept ones, see
/// `read_pool`) and the wait reads into a few bytes of its own: ten
/// thousand waiting connections then hold no read buffer.
async fn watch_close<S: AsyncRead + Unpin>(stream: &mut S, buf: &mut BytesMut) {
    loop {
        if buf.len() >= MAX_READ_AHEAD {
            return std::future::pending().await;
        }
        if buf.is_empty() {
            read_pool::give(std::mem::take(buf));
            let mut probe = [0u8; 64];
            match stream.read(&mut probe).await {
                Ok(0) | Err(_) => return,
                Ok(read) => buf.extend_from_slice(&probe[..read]),
            }
            continue;
        }
        buf.reserve(READ_CHUNK);
        match stream.read_buf(buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

#[cfg(test)]
mod tests;
