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

    /// What is in hand, and whether more of the request's body follows.
    pub(crate) fn into_request_parts(self) -> (Vec<u8>, bool) {
        (self.first, self.more && self.source == Source::Request)
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

// They run against the fake host, which exists only off wasm32.
#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use crate::testing::Client;
    use crate::{fetch, streaming, Error, FetchRequest, Request, Response, Route, Router};

    async fn count(mut req: Request) -> Result<String, Error> {
        let mut body = req.body_stream();
        let mut chunks = 0;
        let mut bytes = 0;
        while let Some(chunk) = body.next().await {
            chunks += 1;
            bytes += chunk?.len();
        }
        Ok(format!("{chunks} {bytes}"))
    }

    async fn relay(_: Request) -> Result<Response, Error> {
        let req = FetchRequest::get("http://origin.test/").stream_response(true);
        let upstream = fetch(req).await?;
        Ok(Response::stream_from(upstream.into_body_stream()).with_header("x-relayed", "1"))
    }

    fn router() -> &'static Router {
        Router::new(vec![
            Route::new("^/count/$", streaming(count)).methods("POST"),
            Route::new("^/whole/$", |req: Request| req.into_body()).methods("POST"),
            Route::new("^/small/$", |req: Request| req.into_body())
                .methods("POST")
                .max_body(3),
            Route::new("^/relay/$", relay),
            Route::new("^/broken/$", |_: Request| {
                Response::stream(|mut body| async move {
                    body.write("partial").await?;
                    // As a writer does when a body it relays breaks off.
                    Err(super::Closed)
                })
            }),
            Route::new("^/lines/$", |_: Request| {
                Response::stream(|mut body| async move {
                    for n in 0..3 {
                        body.write(format!("{n}\n")).await?;
                    }
                    Ok(())
                })
            }),
        ])
        .leak()
    }

    #[test]
    fn streamed_bodies_read_on_and_whole_bodies_stay_whole() {
        let client = Client::new(router());
        assert_eq!(client.post("/count/", "abc").body(), b"1 3");
        assert_eq!(client.post("/count/", "").body(), b"0 0");
        assert_eq!(client.post("/whole/", "abcd").body(), b"abcd");
        // Within a route's limit: whole bodies come as they are.
        assert_eq!(client.post("/small/", "abc").body(), b"abc");
    }

    #[test]
    fn a_body_still_coming_is_read_whole_up_to_the_route_limit() {
        let router = router();
        let req = Request::new("POST", "/small/")
            .with_body("ab")
            .with_body_complete(false);
        // The SDK reads on before the handler; the fake host ends the body.
        let response = Client::new(router).send(req);
        assert_eq!(response.body(), b"ab");
        let req = Request::new("POST", "/small/")
            .with_body("abcd")
            .with_body_complete(false);
        assert_eq!(Client::new(router).send(req).status_code(), 413);
    }

    #[test]
    fn writers_and_relays_produce_their_whole_body() {
        let client = Client::new(router())
            .with_upstream(|_| Ok(Response::text("upstream body").with_status(203)));
        let lines = client.get("/lines/");
        assert_eq!(lines.body(), b"0\n1\n2\n");
        let relayed = client.get("/relay/");
        assert_eq!(relayed.body(), b"upstream body");
        assert_eq!(relayed.header("x-relayed"), Some(&b"1"[..]));
    }

    #[test]
    #[should_panic(expected = "broke off after 7 bytes")]
    fn a_writer_that_fails_never_passes_for_a_whole_body() {
        Client::new(router()).get("/broken/");
    }
}
