//! Builds the `http::Request` hyper sends, refusing anything that could
//! split or reframe the message.

use http::header::{HeaderName, HeaderValue, CONNECTION, CONTENT_LENGTH, HOST};
use http::{Method, Request};
use hyper::body::Body as _;

use crate::http::{StreamedBody, HOP_BY_HOP};

use super::target::Target;
use super::FetchError;

/// Whether the client sets field `name` (lower case) from the message
/// itself: the length and the connection's own fields. Taking them from a
/// module could desynchronise framing or the connection's reuse (request
/// smuggling), so module values are dropped.
fn client_owned(name: &str) -> bool {
    name == "content-length" || HOP_BY_HOP.contains(&name)
}

/// Methods whose requests carry content by definition, so an empty body is
/// still announced with `content-length: 0` (RFC 9110 §8.6).
const BODY_METHODS: [&str; 3] = ["POST", "PUT", "PATCH"];

/// A request's method and the module's fields that go out, checked: what
/// `build` puts in the request hyper sends, and what the plain path writes
/// itself without building one.
pub(super) struct Checked {
    pub method: Method,
    /// In the module's order, without the fields the client sets itself.
    pub fields: Vec<(HeaderName, HeaderValue)>,
    /// Whether the module gave a `host` field (at most one).
    pub has_host: bool,
}

/// Checks `method` and `headers`, so that a bad one is `Invalid` before
/// any connection is made.
pub(super) fn check(method: &str, headers: &[(String, Vec<u8>)]) -> Result<Checked, FetchError> {
    // `Method::from_bytes` takes any token; the request line needs nothing more.
    let method_value = Method::from_bytes(method.as_bytes())
        .map_err(|_| FetchError::invalid("method is not a token"))?;
    // A successful CONNECT turns the connection into a tunnel, which the
    // client does not offer to modules.
    if method.eq_ignore_ascii_case("CONNECT") {
        return Err(FetchError::invalid("CONNECT is not supported"));
    }
    let mut fields = Vec::with_capacity(headers.len());
    let mut hosts = 0;
    for (name, value) in headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| FetchError::invalid(format!("header name {name:?} is not a token")))?;
        // Visible ASCII, obs-text and HTAB only (RFC 9110 §5.5).
        let value = HeaderValue::from_bytes(value).map_err(|_| {
            FetchError::invalid(format!("header {name} contains a control character"))
        })?;
        if name == HOST {
            hosts += 1;
            if hosts > 1 {
                return Err(FetchError::invalid("more than one Host header"));
            }
        }
        if !client_owned(name.as_str()) {
            fields.push((name, value));
        }
    }
    Ok(Checked {
        method: method_value,
        fields,
        has_host: hosts > 0,
    })
}

/// Whether a request of `method` with an empty body says so with
/// `content-length: 0`: methods whose requests carry content by definition
/// (RFC 9110 §8.6).
pub(super) fn announces_empty_body(method: &str) -> bool {
    BODY_METHODS.contains(&method)
}

/// The request for `target`, its method and fields checked by [`check`].
pub(super) fn build(
    method: &str,
    target: &Target,
    headers: &[(String, Vec<u8>)],
    body: StreamedBody,
) -> Result<Request<StreamedBody>, FetchError> {
    let checked = check(method, headers)?;
    let mut request = Request::builder()
        .method(checked.method)
        .uri(target.uri()?)
        .body(StreamedBody::default())
        .map_err(|err| FetchError::invalid(err.to_string()))?;
    let fields = request.headers_mut();
    for (name, value) in checked.fields {
        fields.append(name, value);
    }
    if body.size_hint().exact() == Some(0) && announces_empty_body(method) {
        fields.insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
    }
    // HTTP/1.1 keeps connections by default; the field says so to HTTP/1.0
    // proxies and servers. hyper drops it on HTTP/2, which has no such field.
    fields.insert(CONNECTION, HeaderValue::from_static("keep-alive"));
    *request.body_mut() = body;
    Ok(request)
}

/// Methods that may be sent again when a reused connection turns out dead
/// before answering (RFC 9110 §9.2.2).
pub(super) fn is_idempotent(method: &str) -> bool {
    matches!(
        method,
        "GET" | "HEAD" | "PUT" | "DELETE" | "OPTIONS" | "TRACE"
    )
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn header(name: &str, value: &[u8]) -> (String, Vec<u8>) {
        (name.to_owned(), value.to_vec())
    }

    fn build_ok(
        method: &str,
        url: &str,
        headers: &[(String, Vec<u8>)],
        body: &[u8],
    ) -> Request<StreamedBody> {
        let target = Target::parse(url).unwrap();
        let body = StreamedBody::new(Bytes::copy_from_slice(body), None);
        build(method, &target, headers, body).unwrap()
    }

    fn fields(request: &Request<StreamedBody>) -> Vec<(String, String)> {
        request
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn get_without_body_has_no_length() {
        let request = build_ok(
            "GET",
            "http://example.com:8080/a?b=c#frag",
            &[header("Accept", b"*/*")],
            b"",
        );
        assert_eq!(request.uri().to_string(), "http://example.com:8080/a?b=c");
        assert_eq!(
            fields(&request),
            [
                ("accept".into(), "*/*".into()),
                ("connection".into(), "keep-alive".into())
            ]
        );
    }

    #[test]
    fn body_methods_announce_an_empty_body() {
        let request = build_ok("POST", "http://example.com/", &[], b"");
        assert_eq!(request.headers()[CONTENT_LENGTH], "0");
        // Other lengths are hyper's to write, from the body itself.
        let request = build_ok("DELETE", "http://example.com/", &[], b"12345");
        assert!(request.headers().get(CONTENT_LENGTH).is_none());
    }

    #[test]
    fn a_given_host_is_kept() {
        let request = build_ok(
            "GET",
            "http://127.0.0.1/",
            &[header("X-A", b"1"), header("Host", b"api.example")],
            b"",
        );
        assert_eq!(request.headers()[HOST], "api.example");
        assert_eq!(request.headers().get_all(HOST).iter().count(), 1);
    }

    #[test]
    fn framing_fields_from_the_caller_are_dropped() {
        let request = build_ok(
            "POST",
            "http://example.com/",
            &[
                header("Content-Length", b"100"),
                header("Transfer-Encoding", b"chunked"),
                header("Connection", b"close, upgrade"),
                header("Upgrade", b"websocket"),
                header("TE", b"trailers"),
                header("X-Kept", b"yes"),
            ],
            b"abc",
        );
        assert_eq!(
            fields(&request),
            [
                ("x-kept".into(), "yes".into()),
                ("connection".into(), "keep-alive".into())
            ]
        );
    }

    #[test]
    fn tabs_and_obs_text_are_valid_values() {
        let request = build_ok(
            "GET",
            "http://example.com/",
            &[header("X-A", b"a\tb\xe9")],
            b"",
        );
        assert_eq!(request.headers()["x-a"].as_bytes(), b"a\tb\xe9");
    }

    #[test]
    fn injection_attempts_are_invalid() {
        let target = Target::parse("http://example.com/").unwrap();
        type Headers = Vec<(String, Vec<u8>)>;
        let cases: Vec<(&str, Headers)> = vec![
            ("GET / HTTP/1.1\r\nX:", vec![]),
            ("", vec![]),
            ("CONNECT", vec![]),
            ("connect", vec![]),
            ("GET", vec![header("X-A", b"a\r\nX-B: b")]),
            ("GET", vec![header("X-A", b"a\nb")]),
            ("GET", vec![header("X-A", b"a\0b")]),
            ("GET", vec![header("X-A", b"a\x01b")]),
            ("GET", vec![header("X-A", b"a\x7fb")]),
            ("GET", vec![header("X A", b"a")]),
            ("GET", vec![header("X-A:", b"a")]),
            ("GET", vec![header("", b"a")]),
            ("GET", vec![header("Host", b"a"), header("host", b"b")]),
        ];
        for (method, headers) in cases {
            assert!(
                matches!(
                    build(method, &target, &headers, StreamedBody::default()),
                    Err(FetchError::Invalid(_))
                ),
                "{method:?} {headers:?}"
            );
        }
    }

    #[test]
    fn only_safe_methods_and_put_delete_are_idempotent() {
        assert!(is_idempotent("GET") && is_idempotent("PUT") && is_idempotent("DELETE"));
        assert!(!is_idempotent("POST") && !is_idempotent("PATCH") && !is_idempotent("get"));
    }
}
