//! Conversions between the contract's types (`snow:http`, generated in
//! `bindings`) and the host's: requests and responses served, and a
//! module's outbound requests.
//!
//! Header fields cross as one buffer (`http::fields`), and a request's
//! method, paths and query as the first lines of another: each string or
//! list handed to a module is an allocation inside it.

use std::time::Duration;

use super::bindings::{
    BodyError, FetchError, FetchedHead, KeyPage, KvError, KvOutput, OutgoingRequest, Request,
    Response,
};
use crate::http;
use crate::kv;
use crate::outbound;

/// The contract's request for a module mounted at `prefix`: its `path` is
/// relative to the prefix, which the router has matched at a segment
/// boundary. `complete` is false when more of the body is to stream in.
pub fn request(head: &http::RequestHead, body: Vec<u8>, complete: bool, prefix: &str) -> Request {
    let line = Line {
        method: &head.method,
        path: relative(&head.path, prefix),
        full_path: &head.path,
        query: &head.query,
    };
    Request {
        head: line.head_with_block(&head.fields),
        body,
        body_complete: complete,
    }
}

/// The four lines that open a request's head.
pub struct Line<'a> {
    pub method: &'a str,
    /// Relative to the mount prefix.
    pub path: &'a str,
    pub full_path: &'a str,
    pub query: &'a str,
}

impl Line<'_> {
    /// The contract's `request.head`: these lines, then `fields`.
    pub fn head<'f>(&self, fields: impl Iterator<Item = (&'f str, &'f [u8])> + Clone) -> Vec<u8> {
        let mut buf = self.lines(http::fields::encoded_len(fields.clone()));
        http::fields::encode_into(&mut buf, fields);
        buf
    }

    /// [`Self::head`] for fields already in the contract's block.
    pub fn head_with_block(&self, block: &[u8]) -> Vec<u8> {
        let mut buf = self.lines(block.len());
        buf.extend_from_slice(block);
        buf
    }

    /// These lines, in a buffer with room for `more` bytes of fields.
    fn lines(&self, more: usize) -> Vec<u8> {
        let lines = [self.method, self.path, self.full_path, self.query];
        let len = lines.iter().map(|l| l.len() + 1).sum::<usize>() + more;
        let mut buf = Vec::with_capacity(len);
        for line in lines {
            buf.extend_from_slice(line.as_bytes());
            buf.push(b'\n');
        }
        buf
    }

    /// A request of this line with no headers and no body, for tests.
    #[cfg(test)]
    pub fn bare(&self) -> Request {
        Request {
            head: self.head(std::iter::empty()),
            body: Vec::new(),
            body_complete: true,
        }
    }
}

/// The lines of a request's head, read back by the `wasi:http` adapter,
/// which is handed the contract's request like a Snow module's dispatcher.
pub struct HeadView<'a> {
    pub method: &'a str,
    pub full_path: &'a str,
    pub query: &'a str,
    /// The header fields, as `http::fields::iter` reads them.
    pub fields: &'a [u8],
}

/// Reads back a head [`request`] wrote.
pub fn view(req: &Request) -> HeadView<'_> {
    let mut parts = req.head.splitn(5, |&b| b == b'\n');
    let mut next = || {
        let part = parts.next().unwrap_or_default();
        std::str::from_utf8(part).unwrap_or_default()
    };
    let method = next();
    let _path = next();
    let (full_path, query) = (next(), next());
    HeadView {
        method,
        full_path,
        query,
        fields: parts.next().unwrap_or_default(),
    }
}

/// A read of the request body as the module receives it.
pub fn body_read(read: http::Inflow) -> Result<Option<Vec<u8>>, BodyError> {
    read.map_err(|err| match err {
        http::BodyError::TooLarge(limit) => BodyError::TooLarge(limit),
        http::BodyError::Broken(detail) => BodyError::Broken(detail),
    })
}

/// `path` below `prefix`, always starting with `/`.
pub fn relative<'p>(path: &'p str, prefix: &str) -> &'p str {
    let prefix = prefix.strip_suffix('/').unwrap_or(prefix);
    match path.strip_prefix(prefix) {
        Some("") | None => "/",
        Some(rest) => rest,
    }
}

/// A module's response, checked before it may be sent.
pub fn response(resp: Response) -> Result<http::Response, http::ResponseError> {
    http::Response::with_fields(resp.status, resp.headers, resp.body)
}

/// The head and first bytes of a module's streamed response, checked, with
/// the rest to come from `body`.
pub fn streamed_response(
    resp: Response,
    body: http::BodyOut,
) -> Result<http::Response, http::ResponseError> {
    let headers = http::fields::decode(&resp.headers)?;
    http::Response::streamed(resp.status, headers, resp.body, body)
}

/// A module's outbound request as the client takes it; a header block
/// that is not fields fails the fetch as `invalid`.
pub fn fetch_request(req: OutgoingRequest) -> Result<outbound::FetchRequest, FetchError> {
    let headers = http::fields::decode(&req.headers)
        .map_err(|err| FetchError::Invalid(format!("request headers: {err}")))?;
    Ok(outbound::FetchRequest {
        method: req.method,
        url: req.url,
        headers,
        body: req.body,
        timeout: (req.timeout_ms > 0).then(|| Duration::from_millis(u64::from(req.timeout_ms))),
        follow_redirects: req.follow_redirects,
    })
}

/// The head of a streamed fetch, its body under `handle`.
pub fn fetched_head(resp: outbound::FetchResponse, handle: u32) -> FetchedHead {
    FetchedHead {
        status: resp.status,
        headers: http::fields::encode(&resp.headers),
        body: handle,
    }
}

/// An upstream's response as the module reads it.
pub fn fetch_response(resp: outbound::FetchResponse) -> Response {
    Response {
        status: resp.status,
        headers: http::fields::encode(&resp.headers),
        body: resp.body,
    }
}

pub fn fetch_error(err: outbound::FetchError) -> FetchError {
    use outbound::FetchError as E;
    match err {
        E::Dns(m) => FetchError::Dns(m),
        E::Connect(m) => FetchError::Connect(m),
        E::Timeout => FetchError::Timeout,
        E::Tls(m) => FetchError::Tls(m),
        E::Protocol(m) => FetchError::Protocol(m),
        E::TooLarge => FetchError::TooLarge,
        E::Denied => FetchError::Denied,
        E::Invalid(m) => FetchError::Invalid(m),
    }
}

/// A store's answer as the module reads it.
pub fn kv_result(result: Result<kv::Output, kv::KvError>) -> Result<KvOutput, KvError> {
    match result {
        Ok(kv::Output::Value(value)) => Ok(KvOutput::Value(value)),
        Ok(kv::Output::Done) => Ok(KvOutput::Done),
        Ok(kv::Output::Exists(exists)) => Ok(KvOutput::Exists(exists)),
        Ok(kv::Output::Keys { keys, cursor }) => Ok(KvOutput::Keys(KeyPage { keys, cursor })),
        Ok(kv::Output::Number(n)) => Ok(KvOutput::Number(n)),
        Err(err) => Err(kv_error(err)),
    }
}

pub fn kv_error(err: kv::KvError) -> KvError {
    use kv::KvError as E;
    match err {
        E::NoSuchStore(m) => KvError::NoSuchStore(m),
        E::AccessDenied(m) => KvError::AccessDenied(m),
        E::TooLarge(m) => KvError::TooLarge(m),
        E::Unavailable(m) => KvError::Unavailable(m),
        E::Conflict => KvError::Conflict,
        E::Invalid(m) => KvError::Invalid(m),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{Framing, RequestHead, Version};

    #[test]
    fn a_request_keeps_every_field() {
        let head = RequestHead {
            method: "POST".into(),
            path: "/a%20b".into(),
            query: "x=1".into(),
            version: Version::Http11,
            fields: b"Host: h\nX: \xff\n".to_vec(),
            framing: Framing::Length(2),
            keep_alive: true,
            expect_continue: false,
        };
        let request = request(&head, b"hi".to_vec(), true, "/");
        assert!(request.body_complete);
        assert_eq!(
            request.head,
            b"POST\n/a%20b\n/a%20b\nx=1\nHost: h\nX: \xff\n"
        );
        let line = view(&request);
        assert_eq!(
            (line.method, line.full_path, line.query),
            ("POST", "/a%20b", "x=1")
        );
        let fields: Vec<_> = http::fields::iter(line.fields).flatten().collect();
        assert_eq!(fields, [("Host", &b"h"[..]), ("X", &[0xff][..])]);
        assert_eq!(request.body, b"hi");
        // Below a mount, the second line is the path under it.
        let below = super::request(&head, Vec::new(), false, "/a%20b");
        assert!(below.head.starts_with(b"POST\n/\n/a%20b\nx=1\n"));
        assert!(!below.body_complete);
    }

    #[test]
    fn an_outgoing_header_block_that_is_not_fields_fails_the_fetch() {
        let outgoing = |headers: &[u8]| OutgoingRequest {
            method: "GET".into(),
            url: "http://a/".into(),
            headers: headers.to_vec(),
            body: Vec::new(),
            timeout_ms: 0,
            follow_redirects: true,
            stream_response: false,
            forward_body: false,
        };
        let req = fetch_request(outgoing(b"accept: */*\r\nx-a:1")).expect("fields");
        assert_eq!(
            req.headers,
            [
                ("accept".to_owned(), b"*/*".to_vec()),
                ("x-a".to_owned(), b"1".to_vec())
            ]
        );
        let Err(FetchError::Invalid(why)) = fetch_request(outgoing(b"accept\n")) else {
            panic!("a line without a colon must fail the fetch");
        };
        assert!(why.starts_with("request headers: "), "{why}");
    }

    #[test]
    fn paths_are_relative_to_the_mount() {
        for (path, prefix, relative_path) in [
            ("/home/", "/", "/home/"),
            ("/", "/", "/"),
            ("/x/home/", "/x", "/home/"),
            ("/x", "/x", "/"),
            ("/x/", "/x", "/"),
            ("/x/a/b?", "/x/a", "/b?"),
            ("/api//users", "/api", "//users"),
        ] {
            assert_eq!(relative(path, prefix), relative_path, "{path} at {prefix}");
        }
    }

    #[test]
    fn a_response_with_a_hostile_header_is_refused() {
        let resp = |name: &str, value: &[u8]| Response {
            status: 200,
            headers: [name.as_bytes(), b": ", value, b"\n"].concat(),
            body: Vec::new(),
        };
        assert!(response(resp("x-ok", b"fine")).is_ok());
        assert!(response(resp("x-bad", b"a\rb")).is_err());
        assert!(response(resp("x-nul", b"a\0b")).is_err());
        assert!(response(resp("bad name", b"v")).is_err());
        assert!(response(resp("", b"v")).is_err());
        // A line break in a value starts a line that must be a field too.
        assert!(response(resp("x-split", b"a\nno colon")).is_err());
        let err = response(Response {
            status: 200,
            headers: b"\xff\xfe: v\n".to_vec(),
            body: Vec::new(),
        })
        .expect_err("a name that is not UTF-8");
        assert!(err.to_string().contains("not `name: value`"), "{err}");
        let mut informational = resp("x-ok", b"v");
        informational.status = 101;
        assert!(response(informational).is_err());
    }
}
