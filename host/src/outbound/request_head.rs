//! Serialises a request head (RFC 9112 §3), refusing anything that could
//! split or reframe the message.

use super::target::Target;
use super::FetchError;
use crate::http::head::{is_field_value, is_token};

/// Fields the client sets from the message itself. Taking them from a
/// module could desynchronise framing or the connection's reuse (request
/// smuggling), so module values are dropped.
const CLIENT_OWNED: [&str; 8] = [
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
];

/// Methods whose requests carry content by definition, so an empty body is
/// still announced with `content-length: 0` (RFC 9110 §8.6).
const BODY_METHODS: [&str; 3] = ["POST", "PUT", "PATCH"];

/// The request line and header section, ending with the empty line.
pub(super) fn encode(
    method: &str,
    target: &Target,
    headers: &[(String, Vec<u8>)],
    body_len: usize,
) -> Result<Vec<u8>, FetchError> {
    if !is_token(method.as_bytes()) {
        return Err(FetchError::invalid("method is not a token"));
    }
    // A successful CONNECT turns the connection into a tunnel, which
    // neither the response reader nor the pool could handle.
    if method.eq_ignore_ascii_case("CONNECT") {
        return Err(FetchError::invalid("CONNECT is not supported"));
    }
    let mut host: Option<&[u8]> = None;
    for (name, value) in headers {
        if !is_token(name.as_bytes()) {
            return Err(FetchError::invalid(format!(
                "header name {name:?} is not a token"
            )));
        }
        if !is_field_value(value) {
            return Err(FetchError::invalid(format!(
                "header {name} contains a control character"
            )));
        }
        if name.eq_ignore_ascii_case("host") {
            if host.is_some() {
                return Err(FetchError::invalid("more than one Host header"));
            }
            host = Some(value);
        }
    }

    let mut out = Vec::with_capacity(128 + target.path.len());
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    out.extend_from_slice(host.unwrap_or(target.authority.as_bytes()));
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        if name.eq_ignore_ascii_case("host") || is_client_owned(name) {
            continue;
        }
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    if body_len > 0 || BODY_METHODS.contains(&method) {
        out.extend_from_slice(format!("content-length: {body_len}\r\n").as_bytes());
    }
    out.extend_from_slice(b"connection: keep-alive\r\n\r\n");
    Ok(out)
}

fn is_client_owned(name: &str) -> bool {
    CLIENT_OWNED
        .iter()
        .any(|owned| name.eq_ignore_ascii_case(owned))
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
    use super::*;

    fn header(name: &str, value: &[u8]) -> (String, Vec<u8>) {
        (name.to_owned(), value.to_vec())
    }

    fn encode_str(method: &str, url: &str, headers: &[(String, Vec<u8>)], body: usize) -> String {
        let target = Target::parse(url).unwrap();
        String::from_utf8(encode(method, &target, headers, body).unwrap()).unwrap()
    }

    #[test]
    fn get_without_body_has_no_length() {
        let head = encode_str(
            "GET",
            "http://example.com:8080/a?b=c",
            &[header("Accept", b"*/*")],
            0,
        );
        assert_eq!(
            head,
            "GET /a?b=c HTTP/1.1\r\nhost: example.com:8080\r\nAccept: */*\r\n\
             connection: keep-alive\r\n\r\n"
        );
    }

    #[test]
    fn bodies_and_body_methods_get_a_length() {
        let head = encode_str("POST", "http://example.com/", &[], 0);
        assert!(head.contains("content-length: 0\r\n"), "{head}");
        let head = encode_str("DELETE", "http://example.com/", &[], 5);
        assert!(head.contains("content-length: 5\r\n"), "{head}");
    }

    #[test]
    fn a_given_host_replaces_the_urls() {
        let head = encode_str(
            "GET",
            "http://127.0.0.1/",
            &[header("X-A", b"1"), header("Host", b"api.example")],
            0,
        );
        assert!(head.starts_with("GET / HTTP/1.1\r\nhost: api.example\r\nX-A: 1\r\n"));
        assert_eq!(head.matches("host").count(), 1, "{head}");
    }

    #[test]
    fn framing_fields_from_the_caller_are_dropped() {
        let head = encode_str(
            "POST",
            "http://example.com/",
            &[
                header("Content-Length", b"100"),
                header("Transfer-Encoding", b"chunked"),
                header("Connection", b"close, upgrade"),
                header("Upgrade", b"websocket"),
                header("X-Kept", b"yes"),
            ],
            3,
        );
        assert_eq!(
            head,
            "POST / HTTP/1.1\r\nhost: example.com\r\nX-Kept: yes\r\n\
             content-length: 3\r\nconnection: keep-alive\r\n\r\n"
        );
    }

    #[test]
    fn tabs_and_obs_text_are_valid_values() {
        let target = Target::parse("http://example.com/").unwrap();
        let head = encode("GET", &target, &[header("X-A", b"a\tb\xe9")], 0).unwrap();
        let line = b"\r\nX-A: a\tb\xe9\r\n";
        assert!(head.windows(line.len()).any(|w| w == line), "{head:?}");
    }

    #[test]
    fn injection_attempts_are_invalid() {
        let target = Target::parse("http://example.com/").unwrap();
        type Headers = Vec<(String, Vec<u8>)>;
        let cases: Vec<(&str, Headers)> = vec![
            ("GET / HTTP/1.1\r\nX:", vec![]),
            ("", vec![]),
            ("CONNECT", vec![]),
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
                    encode(method, &target, &headers, 0),
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
