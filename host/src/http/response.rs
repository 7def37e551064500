//! Response serialization: status line, validated headers and framing chosen by the server, never by the caller.

use super::date;
use super::head::{is_field_value, is_token, Version};

/// Why a response could not be written; the caller should answer 500 instead.
#[derive(Debug, thiserror::Error)]
pub enum ResponseError {
    #[error("invalid response status {0}: must be a final status in 200..=599")]
    Status(u16),
    #[error("invalid response header name {0:?}")]
    HeaderName(String),
    /// Carries the header name; the value is not echoed since it may be hostile.
    #[error("invalid value for response header {0:?}: contains a control character")]
    HeaderValue(String),
    #[error("invalid response headers: {0}")]
    Fields(#[from] super::fields::FieldsError),
}

/// How the response relates to its request and connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseOptions {
    /// The request was HEAD: send the headers a GET would get, but no body.
    pub head_request: bool,
    /// The connection stays open after this response.
    pub keep_alive: bool,
    /// Version of the request, which decides how keep-alive is announced.
    pub version: Version,
}

/// How the end of a response body is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyLength {
    /// `content-length`.
    Known(u64),
    /// `transfer-encoding: chunked` (HTTP/1.1 only).
    Chunked,
    /// Closing the connection (an HTTP/1.0 client of a stream of unknown
    /// length).
    UntilClose,
}

impl BodyLength {
    /// How a streamed body of `length`, if known, is framed for a request
    /// of this version.
    pub fn for_stream(length: Option<u64>, opts: &ResponseOptions) -> Self {
        match length {
            Some(length) => BodyLength::Known(length),
            None if opts.version == Version::Http10 => BodyLength::UntilClose,
            None => BodyLength::Chunked,
        }
    }
}

/// Headers the writer always sets itself; caller copies are dropped so the
/// framing cannot be contradicted.
const SERVER_OWNED: [&str; 4] = ["content-length", "transfer-encoding", "connection", "date"];

/// Fields that describe one connection rather than the message (RFC 9110,
/// 7.6.1), in lower case: an intermediary never passes them on, nor the
/// fields a `connection` field names.
pub const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

pub(crate) const TEXT_PLAIN: &[u8] = b"text/plain; charset=utf-8";

/// Appends a complete, framed response to `out`. On error nothing is appended.
///
/// Bodies of 204 and 304 responses are dropped, as those statuses cannot carry one.
pub fn write_response<'a>(
    out: &mut Vec<u8>,
    status: u16,
    headers: impl IntoIterator<Item = (&'a str, &'a [u8])> + Clone,
    body: &[u8],
    opts: &ResponseOptions,
) -> Result<(), ResponseError> {
    check(status, headers.clone())?;
    write_checked(out, status, headers, body, opts);
    Ok(())
}

/// Whether a response with this status and these headers may be sent.
pub fn check<'a>(
    status: u16,
    headers: impl IntoIterator<Item = (&'a str, &'a [u8])>,
) -> Result<(), ResponseError> {
    if !(200..=599).contains(&status) {
        return Err(ResponseError::Status(status));
    }
    for (name, value) in headers {
        if !is_token(name.as_bytes()) {
            return Err(ResponseError::HeaderName(name.to_owned()));
        }
        if !is_field_value(value) {
            return Err(ResponseError::HeaderValue(name.to_owned()));
        }
    }
    Ok(())
}

/// A plain-text error response (status + reason + ": " + detail), always `connection: close`.
///
/// A status outside 200..=599 is answered as 500.
pub fn write_error(out: &mut Vec<u8>, status: u16, detail: &str, version: Version) {
    let opts = ResponseOptions {
        head_request: false,
        keep_alive: false,
        version,
    };
    write_plain(out, status, detail, &[], &opts);
}

/// A plain-text response the server gives itself: status, reason and
/// `detail`, with `extra` headers (constants the caller vouches for).
///
/// A status outside 200..=599 is answered as 500.
pub fn write_plain(
    out: &mut Vec<u8>,
    status: u16,
    detail: &str,
    extra: &[(&str, &[u8])],
    opts: &ResponseOptions,
) {
    let status = if (200..=599).contains(&status) {
        status
    } else {
        500
    };
    let reason = reason(status);
    let mut body = Vec::with_capacity(8 + reason.len() + detail.len());
    push_status_code(&mut body, status);
    body.push(b' ');
    body.extend_from_slice(reason.as_bytes());
    body.extend_from_slice(b": ");
    body.extend_from_slice(detail.as_bytes());
    body.push(b'\n');
    let headers = [("content-type", TEXT_PLAIN)]
        .into_iter()
        .chain(extra.iter().copied());
    debug_assert!(check(status, headers.clone()).is_ok());
    write_checked(out, status, headers, &body, opts);
}

/// Writes a response whose status and headers passed [`check`].
pub(crate) fn write_checked<'a>(
    out: &mut Vec<u8>,
    status: u16,
    headers: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    body: &[u8],
    opts: &ResponseOptions,
) {
    if write_head_checked(
        out,
        status,
        headers,
        BodyLength::Known(body.len() as u64),
        opts,
    ) {
        out.extend_from_slice(body);
    }
}

/// Writes the head of a response whose status and headers passed
/// [`check`], framed for a body of `length`; whether the body is to follow
/// it. A body delimited by the close needs `opts.keep_alive` false.
pub(crate) fn write_head_checked<'a>(
    out: &mut Vec<u8>,
    status: u16,
    headers: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    length: BodyLength,
    opts: &ResponseOptions,
) -> bool {
    write_status_line(out, status);
    for (name, value) in headers {
        if is_server_owned(name.as_bytes()) {
            continue;
        }
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    finish_head(out, status, length, opts)
}

/// [`write_head_checked`] for a header block that passed
/// [`fields::is_sendable`](super::fields::is_sendable): its lines are
/// copied as they are.
pub(crate) fn write_head_sendable(
    out: &mut Vec<u8>,
    status: u16,
    block: &[u8],
    length: BodyLength,
    opts: &ResponseOptions,
) -> bool {
    debug_assert!(super::fields::is_sendable(block));
    write_status_line(out, status);
    for (name, line) in super::fields::sendable_lines(block) {
        if !is_server_owned(name) {
            out.extend_from_slice(line);
            out.extend_from_slice(b"\r\n");
        }
    }
    finish_head(out, status, length, opts)
}

fn is_server_owned(name: &[u8]) -> bool {
    SERVER_OWNED
        .iter()
        .any(|own| name.eq_ignore_ascii_case(own.as_bytes()))
}

fn write_status_line(out: &mut Vec<u8>, status: u16) {
    // RFC 9110 §6.4.1: a server sends its own highest version, whatever the request used.
    out.extend_from_slice(b"HTTP/1.1 ");
    push_status_code(out, status);
    out.push(b' ');
    out.extend_from_slice(reason(status).as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// The server's own headers and the head's end; whether a body follows.
fn finish_head(out: &mut Vec<u8>, status: u16, length: BodyLength, opts: &ResponseOptions) -> bool {
    debug_assert!(length != BodyLength::UntilClose || !opts.keep_alive);
    out.extend_from_slice(b"date: ");
    date::with_date(|d| out.extend_from_slice(d));
    out.extend_from_slice(b"\r\n");

    // RFC 9110 §8.6 and §15.4.5: 204 and 304 carry no content and no length.
    let bodiless = status == 204 || status == 304;
    if !bodiless {
        match length {
            BodyLength::Known(length) => {
                out.extend_from_slice(b"content-length: ");
                out.extend_from_slice(itoa::Buffer::new().format(length).as_bytes());
                out.extend_from_slice(b"\r\n");
            }
            BodyLength::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
            BodyLength::UntilClose => {}
        }
    }
    if !opts.keep_alive {
        out.extend_from_slice(b"connection: close\r\n");
    } else if opts.version == Version::Http10 {
        // HTTP/1.0 closes by default, so staying open must be announced.
        out.extend_from_slice(b"connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");

    !bodiless && !opts.head_request
}

/// Writes a status in 100..=999 as exactly three digits.
fn push_status_code(out: &mut Vec<u8>, status: u16) {
    let status = status.clamp(100, 999);
    out.extend_from_slice(&[
        b'0' + (status / 100) as u8,
        b'0' + (status / 10 % 10) as u8,
        b'0' + (status % 10) as u8,
    ]);
}

/// The canonical reason phrase for `status` (RFC 9110 §15 and IANA registry), or "".
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        102 => "Processing",
        103 => "Early Hints",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        207 => "Multi-Status",
        208 => "Already Reported",
        226 => "IM Used",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        305 => "Use Proxy",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        423 => "Locked",
        424 => "Failed Dependency",
        425 => "Too Early",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        451 => "Unavailable For Legal Reasons",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        506 => "Variant Also Negotiates",
        507 => "Insufficient Storage",
        508 => "Loop Detected",
        511 => "Network Authentication Required",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEEP_11: ResponseOptions = ResponseOptions {
        head_request: false,
        keep_alive: true,
        version: Version::Http11,
    };

    fn render(
        status: u16,
        headers: &[(&str, &[u8])],
        body: &[u8],
        opts: &ResponseOptions,
    ) -> String {
        let mut out = Vec::new();
        write_response(&mut out, status, headers.iter().copied(), body, opts).unwrap();
        String::from_utf8(out).unwrap()
    }

    /// Splits a rendered response into status line, header lines and body.
    fn split(response: &str) -> (&str, Vec<&str>, &str) {
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        let mut lines = head.split("\r\n");
        let status = lines.next().unwrap();
        (status, lines.collect(), body)
    }

    fn date_line(lines: &[&str]) -> String {
        let date = lines.iter().find(|l| l.starts_with("date: ")).unwrap();
        date.to_string()
    }

    #[test]
    fn frames_a_simple_response() {
        let text = render(200, &[("Content-Type", b"text/plain")], b"hello", &KEEP_11);
        let (status, lines, body) = split(&text);
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert_eq!(lines[0], "Content-Type: text/plain");
        let date = date_line(&lines);
        assert!(
            httpdate::parse_http_date(&date["date: ".len()..]).is_ok(),
            "{date}"
        );
        assert!(lines.contains(&"content-length: 5"));
        assert!(!lines.iter().any(|l| l.starts_with("connection")));
        assert_eq!(lines.len(), 3);
        assert_eq!(body, "hello");
    }

    #[test]
    fn unknown_status_has_empty_reason() {
        let text = render(299, &[], b"", &KEEP_11);
        assert!(text.starts_with("HTTP/1.1 299 \r\n"), "{text}");
        assert!(text.contains("content-length: 0\r\n"));
    }

    #[test]
    fn status_line_is_always_http_1_1() {
        let opts = ResponseOptions {
            version: Version::Http10,
            ..KEEP_11
        };
        let text = render(404, &[], b"", &opts);
        assert!(text.starts_with("HTTP/1.1 404 Not Found\r\n"));
    }

    #[test]
    fn non_final_or_out_of_range_statuses_are_rejected() {
        for status in [0, 99, 100, 101, 199, 600, 999, 1000, u16::MAX] {
            let mut out = b"previous".to_vec();
            let err = write_response(&mut out, status, [], b"x", &KEEP_11).unwrap_err();
            assert!(matches!(err, ResponseError::Status(s) if s == status));
            assert_eq!(out, b"previous");
        }
    }

    #[test]
    fn head_response_has_length_but_no_body() {
        let opts = ResponseOptions {
            head_request: true,
            ..KEEP_11
        };
        let text = render(200, &[], b"hello world", &opts);
        let (_, lines, body) = split(&text);
        assert!(lines.contains(&"content-length: 11"));
        assert_eq!(body, "");
        assert!(text.ends_with("\r\n\r\n"));
    }

    #[test]
    fn no_content_and_not_modified_have_no_length_or_body() {
        for status in [204, 304] {
            let text = render(status, &[("ETag", b"\"x\"")], b"ignored", &KEEP_11);
            let (_, lines, body) = split(&text);
            assert!(
                !lines.iter().any(|l| l.starts_with("content-length")),
                "{text}"
            );
            assert_eq!(body, "");
        }
    }

    #[test]
    fn connection_header_follows_keep_alive_and_version() {
        let cases = [
            (Version::Http11, true, None),
            (Version::Http11, false, Some("connection: close")),
            (Version::Http10, true, Some("connection: keep-alive")),
            (Version::Http10, false, Some("connection: close")),
        ];
        for (version, keep_alive, expected) in cases {
            let opts = ResponseOptions {
                head_request: false,
                keep_alive,
                version,
            };
            let text = render(200, &[], b"", &opts);
            let (_, lines, _) = split(&text);
            let connection: Vec<_> = lines
                .iter()
                .filter(|l| l.starts_with("connection"))
                .collect();
            assert_eq!(
                connection.first().map(|l| **l),
                expected,
                "{version:?} {keep_alive}"
            );
            assert!(connection.len() <= 1);
        }
    }

    #[test]
    fn caller_framing_headers_are_dropped() {
        let headers: &[(&str, &[u8])] = &[
            ("Content-Length", b"999"),
            ("TRANSFER-ENCODING", b"chunked"),
            ("Connection", b"upgrade"),
            ("Date", b"Thu, 01 Jan 1970 00:00:00 GMT"),
            ("X-Kept", b"yes"),
        ];
        let text = render(200, headers, b"abc", &KEEP_11);
        let (_, lines, body) = split(&text);
        let lower: Vec<String> = lines.iter().map(|l| l.to_ascii_lowercase()).collect();
        assert_eq!(
            lower
                .iter()
                .filter(|l| l.starts_with("content-length"))
                .count(),
            1
        );
        assert!(lower.contains(&"content-length: 3".to_owned()));
        assert!(!lower.iter().any(|l| l.starts_with("transfer-encoding")));
        assert!(!lower.iter().any(|l| l.starts_with("connection")));
        assert_eq!(lower.iter().filter(|l| l.starts_with("date")).count(), 1);
        assert!(!text.contains("1970"));
        assert!(lines.contains(&"X-Kept: yes"));
        assert_eq!(body, "abc");
    }

    #[test]
    fn header_injection_is_rejected_without_output() {
        let bad_values: &[&[u8]] = &[b"a\r\nSet-Cookie: x", b"a\nb", b"a\rb", b"a\0b"];
        for value in bad_values {
            let mut out = b"keep".to_vec();
            let err = write_response(
                &mut out,
                200,
                [("X-Ok", &b"v"[..]), ("X-Bad", *value)],
                b"",
                &KEEP_11,
            )
            .unwrap_err();
            assert!(matches!(err, ResponseError::HeaderValue(ref n) if n == "X-Bad"));
            assert_eq!(out, b"keep", "nothing appended");
        }
        // Dropped framing headers are still validated.
        let mut out = Vec::new();
        assert!(write_response(
            &mut out,
            200,
            [("connection", &b"x\r\ny: z"[..])],
            b"",
            &KEEP_11
        )
        .is_err());
        assert!(out.is_empty());

        for name in ["", "X Bad", "X:Bad", "X\r\nY", "Caf\u{e9}", "a\tb"] {
            let mut out = Vec::new();
            let err =
                write_response(&mut out, 200, [(name, &b"v"[..])], b"", &KEEP_11).unwrap_err();
            assert!(matches!(err, ResponseError::HeaderName(ref n) if n == name));
            assert!(out.is_empty());
        }
    }

    #[test]
    fn control_characters_in_values_are_rejected_without_output() {
        for value in [&b"a\x01b"[..], b"\x1b[31m", b"a\x7f", b"\x0b"] {
            let mut out = b"keep".to_vec();
            let err = write_response(&mut out, 200, [("X-Bad", value)], b"", &KEEP_11).unwrap_err();
            assert!(matches!(err, ResponseError::HeaderValue(ref n) if n == "X-Bad"));
            assert_eq!(out, b"keep", "nothing appended for {value:?}");
        }
    }

    #[test]
    fn header_values_may_hold_tabs_and_obs_text() {
        let text = render(200, &[("X", b"a\tb")], b"", &KEEP_11);
        assert!(text.contains("X: a\tb\r\n"));
        let mut out = Vec::new();
        write_response(&mut out, 200, [("X", &b"\xff"[..])], b"", &KEEP_11).unwrap();
        assert!(out.windows(6).any(|w| w == b"X: \xff\r\n"));
    }

    #[test]
    fn appends_after_existing_output() {
        let mut out = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
        let before = out.len();
        write_response(&mut out, 201, [], b"x", &KEEP_11).unwrap();
        assert!(out[before..].starts_with(b"HTTP/1.1 201 Created\r\n"));
    }

    #[test]
    fn error_response_closes_and_explains() {
        let mut out = Vec::new();
        write_error(&mut out, 400, "missing Host header", Version::Http11);
        let text = String::from_utf8(out).unwrap();
        let (status, lines, body) = split(&text);
        assert_eq!(status, "HTTP/1.1 400 Bad Request");
        assert!(lines.contains(&"connection: close"));
        assert!(lines.contains(&"content-type: text/plain; charset=utf-8"));
        assert_eq!(body, "400 Bad Request: missing Host header\n");
        let length = format!("content-length: {}", body.len());
        assert!(lines.contains(&length.as_str()));
    }

    #[test]
    fn error_response_with_invalid_status_is_500() {
        let mut out = Vec::new();
        write_error(&mut out, 42, "oops", Version::Http10);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 500 Internal Server Error\r\n"));
        assert!(text.ends_with("500 Internal Server Error: oops\n"));
        assert!(text.contains("connection: close\r\n"));
    }

    #[test]
    fn reasons() {
        assert_eq!(reason(200), "OK");
        assert_eq!(reason(413), "Content Too Large");
        assert_eq!(reason(431), "Request Header Fields Too Large");
        assert_eq!(reason(505), "HTTP Version Not Supported");
        assert_eq!(reason(599), "");
    }
}
