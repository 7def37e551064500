//! Conversions between the contract's types (`snow:http`, generated in
//! `bindings`) and the host's: requests and responses served, and a
//! module's outbound requests.
//!
//! Header lists move field by field into a list of the same layout, so the
//! conversions reuse the allocations they are given.

use std::time::Duration;

use super::bindings::{
    BodyError, FetchError, FetchedHead, Header, KeyPage, KvError, KvOutput, OutgoingRequest,
    Request, Response,
};
use crate::http;
use crate::kv;
use crate::outbound;

/// The contract's request for a module mounted at `prefix`: its `path` is
/// relative to the prefix, which the router has matched at a segment
/// boundary. The rest of a body still streaming in comes apart.
pub fn request(request: http::Request, prefix: &str) -> (Request, Option<http::BodyIn>) {
    let head = request.head;
    let path = relative(&head.path, prefix).to_owned();
    let body_complete = request.rest.is_none();
    let wit = Request {
        method: head.method,
        path,
        full_path: head.path,
        query: head.query,
        headers: head
            .headers
            .into_iter()
            .map(|(name, value)| Header { name, value })
            .collect(),
        body: request.body,
        body_complete,
    };
    (wit, request.rest)
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
    let headers = resp
        .headers
        .into_iter()
        .map(|h| (h.name, h.value))
        .collect();
    http::Response::new(resp.status, headers, resp.body)
}

/// The head and first bytes of a module's streamed response, checked, with
/// the rest to come from `body`.
pub fn streamed_response(
    resp: Response,
    body: http::BodyOut,
) -> Result<http::Response, http::ResponseError> {
    let headers = resp
        .headers
        .into_iter()
        .map(|h| (h.name, h.value))
        .collect();
    http::Response::streamed(resp.status, headers, resp.body, body)
}

/// A module's outbound request as the client takes it.
pub fn fetch_request(req: OutgoingRequest) -> outbound::FetchRequest {
    outbound::FetchRequest {
        method: req.method,
        url: req.url,
        headers: req.headers.into_iter().map(|h| (h.name, h.value)).collect(),
        body: req.body,
        timeout: (req.timeout_ms > 0).then(|| Duration::from_millis(u64::from(req.timeout_ms))),
        follow_redirects: req.follow_redirects,
    }
}

/// The head of a streamed fetch, its body under `handle`.
pub fn fetched_head(resp: outbound::FetchResponse, handle: u32) -> FetchedHead {
    FetchedHead {
        status: resp.status,
        headers: headers(resp.headers),
        body: handle,
    }
}

/// An upstream's response as the module reads it.
pub fn fetch_response(resp: outbound::FetchResponse) -> Response {
    Response {
        status: resp.status,
        headers: headers(resp.headers),
        body: resp.body,
    }
}

fn headers(fields: Vec<(String, Vec<u8>)>) -> Vec<Header> {
    fields
        .into_iter()
        .map(|(name, value)| Header { name, value })
        .collect()
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
            headers: vec![("Host".into(), b"h".to_vec()), ("X".into(), vec![0xff])],
            framing: Framing::Length(2),
            keep_alive: true,
            expect_continue: false,
        };
        let (request, rest) = request(
            http::Request {
                head,
                body: b"hi".to_vec(),
                rest: None,
                received: std::time::Instant::now(),
            },
            "/",
        );
        assert!(rest.is_none() && request.body_complete);
        assert_eq!(
            (request.method.as_str(), request.path.as_str()),
            ("POST", "/a%20b")
        );
        assert_eq!(request.full_path, "/a%20b");
        assert_eq!(request.query, "x=1");
        assert_eq!(request.headers.len(), 2);
        assert_eq!(request.headers[1].name, "X");
        assert_eq!(request.headers[1].value, [0xff]);
        assert_eq!(request.body, b"hi");
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
            headers: vec![Header {
                name: name.into(),
                value: value.to_vec(),
            }],
            body: Vec::new(),
        };
        assert!(response(resp("x-ok", b"fine")).is_ok());
        assert!(response(resp("x-bad", b"a\r\nb")).is_err());
        assert!(response(resp("bad name", b"v")).is_err());
        let mut informational = resp("x-ok", b"v");
        informational.status = 101;
        assert!(response(informational).is_err());
    }
}
