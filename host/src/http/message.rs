//! A whole request as a connection reads it, and a response checked before
//! it is written, so that writing it cannot fail.

use std::time::Instant;

use super::head::RequestHead;
use super::response::{self, BodyLength, ResponseError, ResponseOptions};
use super::stream::BodyOut;
use super::BodyIn;

/// A request with its body: whole, or the start of it and the rest to
/// read on.
#[derive(Debug)]
pub struct Request {
    pub head: RequestHead,
    /// The whole body, or what had arrived when `rest` is set.
    pub body: Vec<u8>,
    /// The rest of a body that did not come with its head.
    pub rest: Option<BodyIn>,
    /// When its head was complete: where its latency starts.
    pub received: Instant,
}

impl Request {
    /// How an answer to this request is framed, before the server decides
    /// whether the connection stays open.
    pub fn response_options(&self) -> ResponseOptions {
        ResponseOptions {
            // Even an error answering HEAD must come without a body, or the
            // client would read it as the start of the next response.
            head_request: self.head.method == "HEAD",
            keep_alive: self.head.keep_alive,
            version: self.head.version,
        }
    }
}

/// What the content of a response is.
#[derive(Debug, PartialEq, Eq)]
enum Content {
    /// Headers and body as given, already checked.
    Given {
        headers: Vec<(String, Vec<u8>)>,
        body: Vec<u8>,
    },
    /// Headers as a module's block (`fields`), already checked: read in
    /// place when the head is written rather than copied out field by
    /// field.
    Fields {
        fields: Vec<u8>,
        body: Vec<u8>,
        /// Whether the block's lines go into the head as they are.
        sendable: bool,
    },
    /// The server's own plain-text answer: status, reason and this detail.
    Plain {
        detail: &'static str,
        extra: &'static [(&'static str, &'static [u8])],
    },
    /// Headers, the first bytes of the body, and the rest as it comes.
    Stream(Box<Streamed>),
}

/// A response whose body is sent as it is produced.
#[derive(Debug)]
pub struct Streamed {
    pub headers: Vec<(String, Vec<u8>)>,
    pub first: Vec<u8>,
    /// The length the producer announced; the body is held to it.
    pub length: Option<u64>,
    pub body: BodyOut,
}

impl Streamed {
    /// Appends the head of the response, framed for the stream: by its
    /// length, by chunks, or (HTTP/1.0, no length) by the close, which
    /// clears `opts.keep_alive`. Whether the body is to follow it.
    pub fn write_head(&self, status: u16, out: &mut Vec<u8>, opts: &mut ResponseOptions) -> bool {
        let framing = BodyLength::for_stream(self.length, opts);
        opts.keep_alive &= framing != BodyLength::UntilClose;
        let headers = self.headers.iter().map(|(n, v)| (n.as_str(), v.as_slice()));
        response::write_head_checked(out, status, headers, framing, opts)
    }
}

impl PartialEq for Streamed {
    /// Streams are never equal: each is consumed once.
    fn eq(&self, _: &Self) -> bool {
        false
    }
}

impl Eq for Streamed {}

/// A response whose status and headers are valid.
#[derive(Debug, PartialEq, Eq)]
pub struct Response {
    status: u16,
    content: Content,
}

impl Response {
    /// Checks `status` and `headers`; the server sets the framing headers
    /// itself and drops any the caller gives.
    pub fn new(
        status: u16,
        headers: Vec<(String, Vec<u8>)>,
        body: Vec<u8>,
    ) -> Result<Self, ResponseError> {
        response::check(
            status,
            headers.iter().map(|(n, v)| (n.as_str(), v.as_slice())),
        )?;
        Ok(Self {
            status,
            content: Content::Given { headers, body },
        })
    }

    /// Checks `status` and the header block `fields` (see `http::fields`);
    /// the framing headers are the server's, as with [`Response::new`].
    pub fn with_fields(status: u16, fields: Vec<u8>, body: Vec<u8>) -> Result<Self, ResponseError> {
        let sendable = super::fields::is_sendable(&fields);
        if sendable {
            response::check(status, std::iter::empty())?;
        } else {
            for field in super::fields::iter(&fields) {
                field?;
            }
            response::check(status, super::fields::iter(&fields).flatten())?;
        }
        Ok(Self {
            status,
            content: Content::Fields {
                fields,
                body,
                sendable,
            },
        })
    }

    /// A response whose body streams: `first` now, the rest from `body`.
    /// A `content-length` among the headers is kept as the length the body
    /// must have; an unparsable one is refused.
    pub fn streamed(
        status: u16,
        mut headers: Vec<(String, Vec<u8>)>,
        first: Vec<u8>,
        body: BodyOut,
    ) -> Result<Self, ResponseError> {
        response::check(
            status,
            headers.iter().map(|(n, v)| (n.as_str(), v.as_slice())),
        )?;
        let mut length = None;
        for (name, value) in &headers {
            if name.eq_ignore_ascii_case("content-length") {
                let parsed = std::str::from_utf8(value)
                    .ok()
                    .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|v| v.parse::<u64>().ok())
                    .ok_or_else(|| ResponseError::HeaderValue(name.clone()))?;
                if length.is_some_and(|l| l != parsed) {
                    return Err(ResponseError::HeaderValue(name.clone()));
                }
                length = Some(parsed);
            }
        }
        headers.retain(|(name, _)| !name.eq_ignore_ascii_case("content-length"));
        if length.is_some_and(|l| (first.len() as u64) > l) {
            return Err(ResponseError::HeaderValue("content-length".into()));
        }
        Ok(Self {
            status,
            content: Content::Stream(Box::new(Streamed {
                headers,
                first,
                length,
                body,
            })),
        })
    }

    /// The stream of a streamed response, with its status.
    pub fn into_stream(self) -> Result<(u16, Box<Streamed>), Self> {
        match self.content {
            Content::Stream(streamed) => Ok((self.status, streamed)),
            content => Err(Self {
                status: self.status,
                content,
            }),
        }
    }

    /// The server's own answer, `"{status} {reason}: {detail}\n"` as plain
    /// text. A status outside 200..=599 is answered as 500.
    pub fn plain(status: u16, detail: &'static str) -> Self {
        Self::plain_with(status, detail, &[])
    }

    /// Like [`Response::plain`], with `extra` constant headers.
    pub fn plain_with(
        status: u16,
        detail: &'static str,
        extra: &'static [(&'static str, &'static [u8])],
    ) -> Self {
        let status = if (200..=599).contains(&status) {
            status
        } else {
            500
        };
        Self {
            status,
            content: Content::Plain { detail, extra },
        }
    }

    pub fn status(&self) -> u16 {
        self.status
    }

    /// The value of the first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        match &self.content {
            Content::Given { headers, .. } => headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_slice()),
            Content::Stream(streamed) => streamed
                .headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_slice()),
            Content::Fields { fields, .. } => super::fields::iter(fields)
                .flatten()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v),
            Content::Plain { extra, .. } => {
                let plain: &[(&str, &[u8])] = &[("content-type", response::TEXT_PLAIN)];
                plain
                    .iter()
                    .chain(extra.iter())
                    .find(|(n, _)| n.eq_ignore_ascii_case(name))
                    .map(|(_, v)| *v)
            }
        }
    }

    /// Appends the framed head to `out` and gives back the body to send
    /// after it (empty when there is none), so that a large body is sent
    /// from where it is rather than copied.
    pub fn write_head(self, out: &mut Vec<u8>, opts: &ResponseOptions) -> Vec<u8> {
        match self.content {
            Content::Given { headers, body } => {
                let pairs = headers.iter().map(|(n, v)| (n.as_str(), v.as_slice()));
                head_then_body(out, self.status, pairs, body, opts)
            }
            Content::Fields {
                fields,
                body,
                sendable: true,
            } => {
                let length = BodyLength::Known(body.len() as u64);
                if response::write_head_sendable(out, self.status, &fields, length, opts) {
                    body
                } else {
                    Vec::new()
                }
            }
            Content::Fields { fields, body, .. } => {
                let pairs = super::fields::iter(&fields).flatten();
                head_then_body(out, self.status, pairs, body, opts)
            }
            Content::Plain { .. } | Content::Stream(_) => {
                self.write(out, opts);
                Vec::new()
            }
        }
    }

    /// Appends the framed response to `out`.
    pub fn write(&self, out: &mut Vec<u8>, opts: &ResponseOptions) {
        match &self.content {
            Content::Given { headers, body } => {
                let headers = headers.iter().map(|(n, v)| (n.as_str(), v.as_slice()));
                response::write_checked(out, self.status, headers, body, opts);
            }
            Content::Fields { fields, body, .. } => {
                let headers = super::fields::iter(fields).flatten();
                response::write_checked(out, self.status, headers, body, opts);
            }
            Content::Plain { detail, extra } => {
                response::write_plain(out, self.status, detail, extra, opts);
            }
            // Only its head: the connection sends a stream's body itself.
            Content::Stream(streamed) => {
                let mut opts = *opts;
                streamed.write_head(self.status, out, &mut opts);
            }
        }
    }
}

/// Writes the head for a whole `body` and gives the body back when it is
/// to follow (not for HEAD, 204 or 304).
fn head_then_body<'a>(
    out: &mut Vec<u8>,
    status: u16,
    headers: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    body: Vec<u8>,
    opts: &ResponseOptions,
) -> Vec<u8> {
    let length = BodyLength::Known(body.len() as u64);
    if response::write_head_checked(out, status, headers, length, opts) {
        body
    } else {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Version;

    const OPTS: ResponseOptions = ResponseOptions {
        head_request: false,
        keep_alive: true,
        version: Version::Http11,
    };

    fn text(response: &Response) -> String {
        let mut out = Vec::new();
        response.write(&mut out, &OPTS);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn hostile_headers_and_statuses_are_refused() {
        let bad_name = vec![("x y".to_string(), b"v".to_vec())];
        assert!(Response::new(200, bad_name, Vec::new()).is_err());
        let bad_value = vec![("x".to_string(), b"a\r\nset-cookie: 1".to_vec())];
        assert!(Response::new(200, bad_value, Vec::new()).is_err());
        for status in [0, 101, 199, 600, u16::MAX] {
            assert!(Response::new(status, Vec::new(), Vec::new()).is_err());
        }
    }

    #[test]
    fn given_responses_keep_their_headers_and_body() {
        let headers = vec![("x-a".to_string(), b"1".to_vec())];
        let response = Response::new(201, headers, b"made".to_vec()).unwrap();
        assert_eq!(response.status(), 201);
        assert_eq!(response.header("X-A"), Some(&b"1"[..]));
        let text = text(&response);
        assert!(
            text.starts_with("HTTP/1.1 201 Created\r\nx-a: 1\r\n"),
            "{text}"
        );
        assert!(text.ends_with("\r\n\r\nmade"), "{text}");
    }

    #[test]
    fn a_header_block_is_written_as_the_same_fields_would_be() {
        let fields = b"x-a: 1\r\nx-b:\t two \ncontent-length: 99\nconnection: close".to_vec();
        let block = Response::with_fields(201, fields, b"made".to_vec()).unwrap();
        let headers = vec![
            ("x-a".to_string(), b"1".to_vec()),
            ("x-b".to_string(), b"two".to_vec()),
        ];
        let given = Response::new(201, headers, b"made".to_vec()).unwrap();
        assert_eq!(text(&block), text(&given));
        assert_eq!(block.header("X-B"), Some(&b"two"[..]));
        let mut out = Vec::new();
        let body = block.write_head(&mut out, &OPTS);
        out.extend_from_slice(&body);
        assert_eq!(String::from_utf8(out).unwrap(), text(&given));
        for hostile in [
            &b"x-a: 1\nnot a field\n"[..],
            b"x-a: a\rset-cookie: 1\n",
            b"x y: v\n",
            b": v\n",
            b"\xff: v\n",
        ] {
            assert!(
                Response::with_fields(200, hostile.to_vec(), Vec::new()).is_err(),
                "{hostile:?}"
            );
        }
        assert!(Response::with_fields(101, Vec::new(), Vec::new()).is_err());
    }

    #[test]
    fn a_block_in_the_written_form_is_copied_but_still_framed_by_the_server() {
        let fields =
            b"x-a: 1\ncontent-length: 99\nConnection: close\nDATE: then\nx-b: two words\n".to_vec();
        assert!(super::super::fields::is_sendable(&fields));
        let block = Response::with_fields(200, fields, b"made".to_vec()).unwrap();
        let headers = vec![
            ("x-a".to_string(), b"1".to_vec()),
            ("x-b".to_string(), b"two words".to_vec()),
        ];
        let given = Response::new(200, headers, b"made".to_vec()).unwrap();
        for opts in [
            OPTS,
            ResponseOptions {
                head_request: true,
                keep_alive: false,
                version: Version::Http10,
            },
        ] {
            let (mut from_block, mut from_given) = (Vec::new(), Vec::new());
            let body = block_clone(&block).write_head(&mut from_block, &opts);
            from_block.extend_from_slice(&body);
            given.write(&mut from_given, &opts);
            assert_eq!(
                String::from_utf8(from_block).unwrap(),
                String::from_utf8(from_given).unwrap()
            );
        }
        // The written form with a value no peer may be sent is refused.
        for hostile in [&b"x: a\rset-cookie: 1\n"[..], b"x: \x00\n", b"x: \x7f\n"] {
            assert!(Response::with_fields(200, hostile.to_vec(), Vec::new()).is_err());
        }
    }

    fn block_clone(response: &Response) -> Response {
        match &response.content {
            Content::Fields { fields, body, .. } => {
                Response::with_fields(response.status, fields.clone(), body.clone()).unwrap()
            }
            _ => panic!("not a block"),
        }
    }

    #[test]
    fn a_head_and_its_body_are_the_whole_response() {
        let headers = vec![("x-a".to_string(), b"1".to_vec())];
        let response = Response::new(200, headers, b"body".to_vec()).unwrap();
        let whole = text(&response);
        let mut out = Vec::new();
        let body = response.write_head(&mut out, &OPTS);
        out.extend_from_slice(&body);
        assert_eq!(String::from_utf8(out).unwrap(), whole);

        let head_request = ResponseOptions {
            head_request: true,
            ..OPTS
        };
        let response = Response::new(200, Vec::new(), b"body".to_vec()).unwrap();
        let mut out = Vec::new();
        assert!(response.write_head(&mut out, &head_request).is_empty());
        let head = String::from_utf8(out).unwrap();
        assert!(head.contains("content-length: 4\r\n"), "{head}");
        assert!(head.ends_with("\r\n\r\n"), "{head}");

        let plain = Response::plain(503, "busy");
        let whole = text(&plain);
        let mut out = Vec::new();
        assert!(plain.write_head(&mut out, &OPTS).is_empty());
        assert_eq!(String::from_utf8(out).unwrap(), whole);
    }

    #[test]
    fn plain_responses_explain_themselves() {
        let response = Response::plain_with(503, "busy", &[("retry-after", b"1")]);
        assert_eq!(response.header("retry-after"), Some(&b"1"[..]));
        let text = text(&response);
        assert!(text.contains("\r\ncontent-type: text/plain; charset=utf-8\r\n"));
        assert!(
            text.ends_with("\r\n\r\n503 Service Unavailable: busy\n"),
            "{text}"
        );
        assert_eq!(Response::plain(42, "odd").status(), 500);
    }
}
