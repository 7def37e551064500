//! The response a handler builds, with constructors for the common bodies.

use std::future::Future;

use serde::Serialize;

use crate::body::{BodyStream, BodyWriter, Closed, Streamer};
use crate::outbound::OutgoingRequest;
use crate::sse::EventWriter;
use crate::{Error, FetchRequest, Header, IntoResponse};

mod headers;
pub(crate) mod relay;

pub(crate) use self::headers::Headers;

/// An outgoing response. The host frames it (length, date, connection), so
/// only the status, the headers that matter and the body live here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    status: u16,
    headers: Headers,
    body: Vec<u8>,
    /// For a streamed response, what writes the rest of the body.
    stream: Option<Streamer>,
    /// For a fetched response whose body streams, its host handle.
    fetched: Option<u32>,
    /// For a relayed response, the request whose answer it is.
    relay: Option<Box<OutgoingRequest>>,
}

impl Response {
    /// An empty response with this status.
    pub fn status(status: u16) -> Self {
        Response {
            status,
            headers: Headers::default(),
            body: Vec::new(),
            stream: None,
            fetched: None,
            relay: None,
        }
    }

    /// 200 whose body `write` produces chunk by chunk after the head is
    /// sent (as `application/octet-stream` unless a content type is set).
    /// Each `write` finishes once the host has taken the chunk before it,
    /// so a slow client slows the writer down; a gone client makes it fail
    /// with [`Closed`], which `?` passes on. The host sends the body
    /// chunked, or to the length a `content-length` header gives.
    ///
    /// ```
    /// use snow_guest::Response;
    ///
    /// let response = Response::stream(|mut body| async move {
    ///     for n in 0..3 {
    ///         body.write(format!("line {n}\n")).await?;
    ///     }
    ///     Ok(())
    /// });
    /// assert!(response.is_streamed());
    /// ```
    pub fn stream<F, Fut>(write: F) -> Self
    where
        F: FnOnce(BodyWriter) -> Fut + 'static,
        Fut: Future<Output = Result<(), Closed>> + 'static,
    {
        let mut response =
            Response::status(200).with_header("content-type", "application/octet-stream");
        response.stream = Some(Streamer::new(write));
        response
    }

    /// A server-sent event stream (`text/event-stream`, not cached): `send`
    /// writes events with [`EventWriter`] for as long as it likes; the
    /// stream ends when it returns, or fails with [`Closed`] once the
    /// client is gone.
    pub fn sse<F, Fut>(send: F) -> Self
    where
        F: FnOnce(EventWriter) -> Fut + 'static,
        Fut: Future<Output = Result<(), Closed>> + 'static,
    {
        Response::stream(move |body| send(EventWriter::new(body)))
            .with_header("content-type", "text/event-stream")
            .with_header("cache-control", "no-cache")
    }

    /// 200 whose body is `body`'s chunks as they come: a request's body
    /// echoed, or a fetched response's body sent on. A fetched body goes
    /// host to host without passing through the module. Status and headers
    /// are set as usual.
    ///
    /// ```no_run
    /// use snow_guest::{fetch, Error, FetchRequest, Request, Response};
    ///
    /// async fn relay(_: Request) -> Result<Response, Error> {
    ///     let req = FetchRequest::get("http://origin.example/big").stream_response(true);
    ///     let upstream = fetch(req).await?;
    ///     let status = upstream.status_code();
    ///     Ok(Response::stream_from(upstream.into_body_stream()).with_status(status))
    /// }
    /// ```
    pub fn stream_from(body: BodyStream) -> Self {
        match body.into_whole() {
            // Already in hand: one whole response, no stream to run.
            Ok(whole) => Response::bytes(whole),
            Err(body) => Response::stream(move |mut out| async move { out.pipe(body).await }),
        }
    }

    /// Answers with `req`'s response, relayed by the host: the upstream's
    /// status, its fields (but those of its connection) with the headers
    /// set on this response over them, and its body, streamed upstream to
    /// client at the client's pace without passing through the module. The
    /// handler is done with the request once it returns this: one call
    /// into the module for the whole exchange, instead of one more when
    /// the upstream answers. A fetch that fails answers 502 (504 when it
    /// timed out) with the reason; so does a request that cannot be sent.
    ///
    /// ```no_run
    /// use snow_guest::{Error, FetchRequest, Request, Response};
    ///
    /// fn proxy(req: Request) -> Result<Response, Error> {
    ///     let path = req.path().to_owned();
    ///     let upstream = FetchRequest::get(format!("http://origin.internal{path}"));
    ///     Ok(Response::relay(upstream).with_header("cache-control", "no-store"))
    /// }
    /// ```
    ///
    /// The status is always the upstream's: `with_status` has no effect
    /// on a relayed response. A host without relays (a `wasi:http` build)
    /// runs the same exchange as a streamed `fetch` inside the module.
    pub fn relay(req: FetchRequest) -> Self {
        match req.into_outgoing() {
            Ok(mut outgoing) => {
                outgoing.stream_response = true;
                let mut response = Response::status(200);
                response.relay = Some(Box::new(outgoing));
                response
            }
            Err(err) => Error::from(err).into_response(),
        }
    }

    /// The request a relayed response answers with, as the host gets it.
    pub fn relayed_request(&self) -> Option<&OutgoingRequest> {
        self.relay.as_deref()
    }

    /// The relayed request and the headers to set over the upstream's.
    pub(crate) fn into_relay(self) -> Result<(OutgoingRequest, Headers), Box<Self>> {
        match self.relay {
            Some(relay) => Ok((*relay, self.headers)),
            None => Err(Box::new(self)),
        }
    }

    /// The body as a stream: a fetched response's as the host receives it
    /// (for a `stream_response` fetch), any other's as one chunk.
    pub fn into_body_stream(self) -> BodyStream {
        match self.fetched {
            Some(handle) => BodyStream::fetched(handle),
            None => BodyStream::new(self.body, true),
        }
    }

    /// Marks the body as held at the host under `handle`.
    pub(crate) fn with_fetched_body(mut self, handle: u32) -> Self {
        self.fetched = Some(handle);
        self
    }

    /// Whether the body is streamed by a writer rather than held whole.
    pub fn is_streamed(&self) -> bool {
        self.stream.is_some()
    }

    /// 200 with `text/plain; charset=utf-8`.
    pub fn text(body: impl Into<String>) -> Self {
        Response::status(200)
            .with_header("content-type", "text/plain; charset=utf-8")
            .with_body(body.into())
    }

    /// 200 with `application/octet-stream`.
    pub fn bytes(body: impl Into<Vec<u8>>) -> Self {
        Response::status(200)
            .with_header("content-type", "application/octet-stream")
            .with_body(body)
    }

    /// 200 with `application/json`; a value that fails to serialize is a
    /// bug in the module, answered with 500 rather than a trap.
    pub fn json<T: Serialize + ?Sized>(value: &T) -> Self {
        match serde_json::to_vec(value) {
            Ok(body) => Response::status(200)
                .with_header("content-type", "application/json")
                .with_body(body),
            Err(err) => {
                Response::text(format!("response serialization failed: {err}")).with_status(500)
            }
        }
    }

    /// A 404 Not Found with a short text body.
    pub fn not_found() -> Self {
        Response::text("not found").with_status(404)
    }

    /// 405 with an `allow` header listing the methods the path accepts.
    pub fn method_not_allowed<I>(allow: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let allow = allow
            .into_iter()
            .map(|method| method.as_ref().to_owned())
            .collect::<Vec<_>>()
            .join(", ");
        Response::text("method not allowed")
            .with_status(405)
            .with_header("allow", allow)
    }

    /// Replaces the status.
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    /// Sets a header, replacing any with the same name (case-insensitive).
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        let name = name.into();
        let headers = self.headers.get_mut();
        headers.retain(|header| !header.name.eq_ignore_ascii_case(&name));
        headers.push(Header::new(name, value));
        self
    }

    /// Adds a header even if one with that name exists (e.g. `set-cookie`).
    pub fn append_header(mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        self.headers.get_mut().push(Header::new(name, value));
        self
    }

    /// Replaces the body.
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// The status code.
    pub fn status_code(&self) -> u16 {
        self.status
    }

    /// The header fields set so far.
    pub fn headers(&self) -> &[Header] {
        self.headers.get()
    }

    /// The first header with this name, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.find(name)
    }

    /// The body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// Takes the body without copying it, e.g. of a fetched response.
    pub fn into_body(self) -> Vec<u8> {
        self.body
    }

    /// A response exactly as given, e.g. one the host fetched; unlike
    /// `with_header`, repeated names are kept.
    // The `wasi:http` boundary's: the snow one keeps headers as blocks.
    #[cfg_attr(not(feature = "wasi-http"), allow(dead_code))]
    pub(crate) fn from_parts(status: u16, headers: Vec<Header>, body: Vec<u8>) -> Self {
        Self::from_headers(status, Headers::from_list(headers), body)
    }

    /// [`Response::from_parts`] for headers kept as they came.
    pub(crate) fn from_headers(status: u16, headers: Headers, body: Vec<u8>) -> Self {
        Response {
            status,
            headers,
            body,
            stream: None,
            fetched: None,
            relay: None,
        }
    }

    #[cfg_attr(not(feature = "wasi-http"), allow(dead_code))]
    pub(crate) fn into_parts(self) -> (u16, Vec<Header>, Vec<u8>) {
        (self.status, self.headers.into_list(), self.body)
    }

    /// [`Response::into_parts`] with the headers as they are kept.
    #[cfg_attr(feature = "wasi-http", allow(dead_code))]
    pub(crate) fn into_head_parts(self) -> (u16, Headers, Vec<u8>) {
        (self.status, self.headers, self.body)
    }

    /// The writer of a streamed response, taken out of it.
    pub(crate) fn take_stream(&mut self) -> Option<Streamer> {
        self.stream.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constructors_set_content_types() {
        let text = Response::text("hi");
        assert_eq!(text.status_code(), 200);
        assert_eq!(
            text.header("Content-Type"),
            Some(&b"text/plain; charset=utf-8"[..])
        );
        assert_eq!(text.body(), b"hi");
        let bytes = Response::bytes(vec![1, 2]);
        assert_eq!(
            bytes.header("content-type"),
            Some(&b"application/octet-stream"[..])
        );
        let json = Response::json(&serde_json::json!({"a": 1}));
        assert_eq!(json.header("content-type"), Some(&b"application/json"[..]));
        assert_eq!(json.body(), br#"{"a":1}"#);
    }

    #[test]
    fn json_failure_is_500() {
        let mut map = std::collections::HashMap::new();
        map.insert(vec![1u8], 1);
        let response = Response::json(&map);
        assert_eq!(response.status_code(), 500);
    }

    #[test]
    fn with_header_replaces_and_append_keeps() {
        let response = Response::text("x")
            .with_header("Content-Type", "a/b")
            .append_header("set-cookie", "a=1")
            .append_header("set-cookie", "b=2");
        assert_eq!(response.header("content-type"), Some(&b"a/b"[..]));
        let cookies = response
            .headers()
            .iter()
            .filter(|h| h.name == "set-cookie")
            .count();
        assert_eq!(cookies, 2);
        assert_eq!(response.headers().len(), 3);
    }

    #[test]
    fn not_allowed_lists_methods() {
        let response = Response::method_not_allowed(["GET", "HEAD"]);
        assert_eq!(response.status_code(), 405);
        assert_eq!(response.header("allow"), Some(&b"GET, HEAD"[..]));
        assert_eq!(Response::not_found().status_code(), 404);
    }
}
