//! Bodies that do not fit one call: the request body read on in chunks as
//! it arrives, and a response body written in chunks, each write finishing
//! when the host has taken the chunk before it, so a slow client slows the
//! handler down instead of filling memory.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use crate::completion::Completion;
use crate::host;
use crate::op::HostOp;

/// Why the request body could not be read to its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// The body is longer than the limit, in bytes (the host's or the
    /// route's).
    TooLarge(u64),
    /// The client broke the framing, went quiet or went away.
    Broken(String),
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BodyError::TooLarge(limit) => write!(f, "the body is longer than {limit} bytes"),
            BodyError::Broken(detail) => write!(f, "the body broke off: {detail}"),
        }
    }
}

impl std::error::Error for BodyError {}

impl From<BodyError> for crate::Error {
    /// 413 for a body past the limit, 400 for a broken one.
    fn from(err: BodyError) -> Self {
        let status = match err {
            BodyError::TooLarge(_) => 413,
            BodyError::Broken(_) => 400,
        };
        crate::Error::new(status, err.to_string())
    }
}

/// A body as it arrives: the request's, from [`Request::body_stream`], or
/// a fetched response's, from [`Response::into_body_stream`].
///
/// [`Request::body_stream`]: crate::Request::body_stream
/// [`Response::into_body_stream`]: crate::Response::into_body_stream
#[derive(Debug)]
pub struct BodyStream {
    /// What is in hand already, handed out first.
    first: Vec<u8>,
    /// Whether the host has more after `first`.
    more: bool,
    source: Source,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Request,
    /// A streamed fetch's body, by its host handle.
    Fetched(u32),
}

impl BodyStream {
    pub(crate) fn new(first: Vec<u8>, complete: bool) -> Self {
        BodyStream {
            first,
            more: !complete,
            source: Source::Request,
        }
    }

    /// The body the host holds for a streamed fetch.
    pub(crate) fn fetched(handle: u32) -> Self {
        BodyStream {
            first: Vec::new(),
            more: true,
            source: Source::Fetched(handle),
        }
    }

    /// The next chunk, `None` at the end of the body. Chunks are at most
    /// 64 KiB.
    pub async fn next(&mut self) -> Option<Result<Vec<u8>, BodyError>> {
        self.next_at_most(0).await
    }

    /// The next chunk of at most `max` bytes (0: the host's chunk size,
    /// 64 KiB; at most 1 MiB), `None` at the end of the body.
    pub async fn next_at_most(&mut self, max: u32) -> Option<Result<Vec<u8>, BodyError>> {
        if !self.first.is_empty() {
            return Some(Ok(std::mem::take(&mut self.first)));
        }
        if !self.more {
            return None;
        }
        let read = match self.source {
            Source::Request => HostOp::new(move || host::start_read_body(max)).await,
            Source::Fetched(body) => HostOp::new(move || host::start_read_fetched(body, max)).await,
        };
        match read {
            Completion::Body(Ok(Some(chunk))) => Some(Ok(chunk)),
            Completion::Body(Ok(None)) => {
                self.more = false;
                None
            }
            Completion::Body(Err(err)) => {
                self.more = false;
                Some(Err(err))
            }
            other => Some(Err(BodyError::Broken(format!(
                "the host answered a body read with {other:?}"
            )))),
        }
    }

    /// The body, when all of it is in hand already.
    pub(crate) fn into_whole(self) -> Result<Vec<u8>, Self> {
        if self.more {
            Err(self)
        } else {
            Ok(self.first)
        }
    }

    /// The whole rest of the body, refusing it past `limit` bytes.
    pub async fn collect(mut self, limit: u64) -> Result<Vec<u8>, BodyError> {
        let mut body = Vec::new();
        while let Some(chunk) = self.next().await {
            let chunk = chunk?;
            if (body.len() + chunk.len()) as u64 > limit {
                return Err(BodyError::TooLarge(limit));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

/// The client is gone or the stream was cut off: nothing more can be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closed;

impl fmt::Display for Closed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the response stream is closed")
    }
}

impl std::error::Error for Closed {}

/// Writes a streamed response's body; given to the closure of
/// [`Response::stream`](crate::Response::stream).
#[derive(Debug)]
pub struct BodyWriter {
    _private: (),
}

impl BodyWriter {
    pub(crate) fn new() -> Self {
        BodyWriter { _private: () }
    }

    /// Sends the rest of `body` on, at the pace the client reads it. A
    /// fetched body goes from the upstream to the client inside the host,
    /// never through the module's memory; if it breaks off, the host cuts
    /// the response off too.
    pub async fn pipe(&mut self, mut body: BodyStream) -> Result<(), Closed> {
        if let (Source::Fetched(handle), true) = (body.source, body.more) {
            if body.first.is_empty() {
                return match HostOp::new(move || host::start_pipe_fetched(handle)).await {
                    Completion::Written(true) => Ok(()),
                    _ => Err(Closed),
                };
            }
        }
        while let Some(chunk) = body.next().await {
            // A request body that broke off leaves the response short; the
            // writer stops, and the host sees the stream end early.
            let Ok(chunk) = chunk else {
                return Err(Closed);
            };
            self.write(chunk).await?;
        }
        Ok(())
    }

    /// Sends `chunk`; finishes when the host has taken it. An empty chunk
    /// is skipped.
    pub async fn write(&mut self, chunk: impl Into<Vec<u8>>) -> Result<(), Closed> {
        let chunk = chunk.into();
        if chunk.is_empty() {
            return Ok(());
        }
        match HostOp::new(move || host::start_write_body(chunk)).await {
            Completion::Written(true) => Ok(()),
            _ => Err(Closed),
        }
    }
}

/// The future a streamed response's closure returns, type-erased.
pub(crate) type WriterFuture = Pin<Box<dyn Future<Output = Result<(), Closed>>>>;

/// The body producer of a streamed response, run once after the head is
/// sent. Clones share it: whichever runs it first takes it.
#[derive(Clone)]
pub(crate) struct Streamer(std::rc::Rc<std::cell::Cell<Option<WriterFuture>>>);

impl Streamer {
    pub(crate) fn new<F, Fut>(write: F) -> Self
    where
        F: FnOnce(BodyWriter) -> Fut + 'static,
        Fut: Future<Output = Result<(), Closed>> + 'static,
    {
        let future: WriterFuture = Box::pin(async move { write(BodyWriter::new()).await });
        Streamer(std::rc::Rc::new(std::cell::Cell::new(Some(future))))
    }

    /// The producer, unless it was taken already.
    pub(crate) fn take(&self) -> Option<WriterFuture> {
        self.0.take()
    }
}

impl fmt::Debug for Streamer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Streamer")
    }
}

impl PartialEq for Streamer {
    fn eq(&self, other: &Self) -> bool {
        std::rc::Rc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Streamer {}
