//! Outbound HTTP through the host's client: `fetch` parks the request on a
//! host operation like `sleep` does, so a handler can await many fetches at
//! once (`join_all`) or race one against a timer (`race`).
//!
//! ```no_run
//! use std::time::Duration;
//! use snow_guest::{fetch, race, sleep, Either, Error, FetchRequest, Request};
//!
//! async fn price(_: Request) -> Result<Vec<u8>, Error> {
//!     let req = FetchRequest::get("https://api.example.com/price")
//!         .header("accept", "application/json")
//!         .timeout(Duration::from_secs(2));
//!     match race(fetch(req), sleep(Duration::from_millis(500))).await {
//!         Either::Left(response) => Ok(response?.into_body()),
//!         Either::Right(()) => Err(Error::new(504, "price service is slow")),
//!     }
//! }
//! ```

use std::future::Future;
use std::time::Duration;

use serde::Serialize;

use crate::completion::Completion;
use crate::host;
use crate::op::HostOp;
use crate::outbound::{FetchError, OutgoingRequest};
use crate::time::whole_millis;
use crate::{Header, Response};

/// An outbound request, built up and handed to `fetch`.
///
/// Redirects are followed by default (up to the host's limit), as browsers
/// and most clients do; without a `timeout` the host's own limit applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchRequest {
    method: String,
    url: String,
    headers: Vec<Header>,
    body: Vec<u8>,
    timeout: Option<Duration>,
    follow_redirects: bool,
    stream_response: bool,
    forward_body: bool,
    /// Why the request cannot be sent, found while building it (a `json`
    /// value that does not serialize). `fetch` reports it as `Invalid`, so
    /// the builder never has to panic or return a `Result` mid-chain.
    unusable: Option<String>,
}

impl FetchRequest {
    /// A request with no headers or body. `url` must be an absolute
    /// `http://` or `https://` URL; the host rejects anything else.
    pub fn new(method: impl Into<String>, url: impl Into<String>) -> Self {
        FetchRequest {
            method: method.into(),
            url: url.into(),
            headers: Vec::new(),
            body: Vec::new(),
            timeout: None,
            follow_redirects: true,
            stream_response: false,
            forward_body: false,
            unusable: None,
        }
    }

    /// A `GET` of `url`.
    pub fn get(url: impl Into<String>) -> Self {
        FetchRequest::new("GET", url)
    }

    /// A `POST` of `body` to `url`.
    pub fn post(url: impl Into<String>, body: impl Into<Vec<u8>>) -> Self {
        FetchRequest::new("POST", url).body(body)
    }

    /// Appends a header; repeated names are all sent.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push(Header::new(name, value));
        self
    }

    /// Replaces the request body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Sends `value` as JSON with `content-type: application/json`,
    /// replacing any content type set before. A value that fails to
    /// serialize makes `fetch` fail with `FetchError::Invalid`.
    pub fn json<T: Serialize + ?Sized>(mut self, value: &T) -> Self {
        match serde_json::to_vec(value) {
            Ok(body) => {
                self.headers
                    .retain(|header| !header.name.eq_ignore_ascii_case("content-type"));
                self.headers
                    .push(Header::new("content-type", "application/json"));
                self.body = body;
            }
            Err(err) => self.unusable = Some(format!("JSON body failed to serialize: {err}")),
        }
        self
    }

    /// Limit for the whole exchange, rounded up to whole milliseconds.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Whether the host follows redirects (the default) or returns them.
    pub fn follow_redirects(mut self, follow: bool) -> Self {
        self.follow_redirects = follow;
        self
    }

    /// Whether the response body stays at the host, to be read on with
    /// [`Response::into_body_stream`] or sent on with
    /// [`Response::stream_from`], instead of arriving whole. `fetch` then
    /// completes as soon as the head is in, and no size limit applies to
    /// the body: an upstream's download of any size flows through.
    pub fn stream_response(mut self, stream: bool) -> Self {
        self.stream_response = stream;
        self
    }

    /// Sends `req`'s body as this request's: what is in hand now, then,
    /// for a [`streaming`](crate::streaming) handler's request, the rest as
    /// the client sends it, relayed by the host at the pace the upstream
    /// takes it (an upload of any size, in constant memory). The body is
    /// taken out of `req`. Such a request is sent once: a 307 or 308
    /// redirect comes back as the response.
    pub fn forward_body_of(mut self, req: &mut crate::Request) -> Self {
        let (first, more) = req.body_stream().into_request_parts();
        self.body = first;
        self.forward_body = more;
        self
    }

    /// The request as the host receives it.
    pub(crate) fn into_outgoing(self) -> Result<OutgoingRequest, FetchError> {
        if let Some(reason) = self.unusable {
            return Err(FetchError::Invalid(reason));
        }
        crate::fields::check(&self.headers)
            .map_err(|bad| FetchError::Invalid(format!("request {bad}")))?;
        Ok(OutgoingRequest {
            method: self.method,
            url: self.url,
            headers: self.headers,
            body: self.body,
            timeout_ms: self.timeout.map_or(0, timeout_ms),
            follow_redirects: self.follow_redirects,
            stream_response: self.stream_response,
            forward_body: self.forward_body,
        })
    }
}

/// On the wire 0 means "the host's limit", so a zero timeout becomes the
/// shortest real one rather than silently the longest; past `u32::MAX` ms
/// (49 days) it saturates.
fn timeout_ms(timeout: Duration) -> u32 {
    u32::try_from(whole_millis(timeout).max(1)).unwrap_or(u32::MAX)
}

/// Sends `req` through the host and awaits its response. Nothing is sent
/// until the future is first polled; dropping it before it completes makes
/// the host abandon the exchange.
pub async fn fetch(req: FetchRequest) -> Result<Response, FetchError> {
    fetch_outgoing(req.into_outgoing()?).await
}

/// [`fetch`] of a request already checked.
pub(crate) async fn fetch_outgoing(outgoing: OutgoingRequest) -> Result<Response, FetchError> {
    match HostOp::new(move || host::start_fetch(outgoing)).await {
        Completion::Fetch(result) => result,
        Completion::FetchHead(head) => head.map(|(status, headers, body)| {
            Response::from_headers(status, headers, Vec::new()).with_fetched_body(body)
        }),
        // Only a host bug delivers another kind; failing this one request
        // beats trapping the instance with every request parked in it.
        other => Err(FetchError::Protocol(format!(
            "the host completed the fetch with {other:?}"
        ))),
    }
}

/// `fetch` of a plain GET.
pub fn get(url: impl Into<String>) -> impl Future<Output = Result<Response, FetchError>> {
    fetch(FetchRequest::get(url))
}

/// `fetch` of a POST with `value` as its JSON body. The value is serialized
/// here, so the future does not borrow it.
pub fn post_json<T: Serialize + ?Sized>(
    url: impl Into<String>,
    value: &T,
) -> impl Future<Output = Result<Response, FetchError>> + 'static {
    fetch(FetchRequest::new("POST", url).json(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_fills_the_wire_request() {
        let out = FetchRequest::post("http://a/", "x")
            .header("X-A", "1")
            .header("x-a", "2")
            .timeout(Duration::from_micros(1500))
            .follow_redirects(false)
            .into_outgoing()
            .expect("usable");
        assert_eq!(
            (out.method.as_str(), out.url.as_str()),
            ("POST", "http://a/")
        );
        assert_eq!(out.headers.len(), 2);
        assert_eq!(out.body, b"x");
        assert_eq!((out.timeout_ms, out.follow_redirects), (2, false));
        let plain = FetchRequest::get("http://b/")
            .into_outgoing()
            .expect("usable");
        assert_eq!((plain.timeout_ms, plain.follow_redirects), (0, true));
        assert!(plain.body.is_empty());
    }

    #[test]
    fn timeouts_never_become_the_host_default() {
        assert_eq!(timeout_ms(Duration::ZERO), 1);
        assert_eq!(timeout_ms(Duration::from_millis(250)), 250);
        assert_eq!(timeout_ms(Duration::MAX), u32::MAX);
    }

    #[test]
    fn json_replaces_the_content_type() {
        let out = FetchRequest::new("PUT", "http://a/")
            .header("Content-Type", "text/plain")
            .json(&serde_json::json!({"a": 1}))
            .into_outgoing()
            .expect("usable");
        assert_eq!(out.header("content-type"), Some(&b"application/json"[..]));
        assert_eq!(out.headers.len(), 1);
        assert_eq!(out.body, br#"{"a":1}"#);
    }

    #[test]
    fn unserializable_json_is_invalid() {
        let mut map = std::collections::HashMap::new();
        map.insert(vec![1u8], 1);
        let err = FetchRequest::get("http://a/")
            .json(&map)
            .into_outgoing()
            .expect_err("map keys must be strings");
        assert_eq!(err.kind(), "invalid");
    }

    #[test]
    fn a_header_that_would_split_into_two_is_invalid() {
        let err = FetchRequest::get("http://a/")
            .header("x-forwarded", "a\r\nauthorization: Bearer stolen")
            .into_outgoing()
            .expect_err("a line break in a value");
        assert_eq!(err.kind(), "invalid");
        assert!(err.to_string().contains("x-forwarded"), "{err}");
    }
}
