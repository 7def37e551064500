//! Request-head parsing: request line, header fields and message framing (RFC 9112 §2–§6).

use std::mem::MaybeUninit;

use super::{Limits, ProtocolError};

/// Header slots kept on the stack; larger `max_headers` values fall back to the heap.
const STACK_HEADER_SLOTS: usize = 128;

/// The protocol version of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}

/// How the request body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body: neither Content-Length nor Transfer-Encoding was sent.
    None,
    /// Exactly this many bytes follow the head (possibly zero).
    Length(u64),
    /// The body uses the chunked transfer-coding.
    Chunked,
}

/// A parsed and validated request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    pub method: String,
    /// Path of the request-target (`*` for `OPTIONS *`), still percent-encoded.
    pub path: String,
    /// Query after `?`, without it; empty when absent.
    pub query: String,
    pub version: Version,
    /// The header fields as the contract's block (`http::fields`): names
    /// as sent, values as raw bytes without surrounding whitespace. One
    /// buffer rather than a pair of them per field, as modules receive it.
    pub fields: Vec<u8>,
    pub framing: Framing,
    /// Whether the connection may serve another request after this one.
    pub keep_alive: bool,
    /// Whether the client waits for `100 Continue` before sending the body.
    pub expect_continue: bool,
}

impl RequestHead {
    /// The header fields, in order.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> {
        // The block is the parser's own, so every line reads back.
        super::fields::iter(&self.fields).flatten()
    }

    /// Value of the first header with this name (case-insensitive).
    #[cfg(test)]
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }
}

/// Parses a request head from the start of `buf`.
///
/// - `Ok(None)`: the head is incomplete; read more and call again with the grown buffer.
/// - `Ok(Some((head, consumed_len)))`: a complete, validated head.
/// - `Err(err)`: answer `err.status()` and close the connection.
///
/// `consumed_len` covers leading empty lines and the head's final empty line,
/// so the body (or the next pipelined request) starts at `buf[consumed_len..]`.
pub fn parse_head(
    buf: &[u8],
    limits: &Limits,
) -> Result<Option<(RequestHead, usize)>, ProtocolError> {
    let skip = empty_line_prefix(buf);
    let from_request_line = buf.get(skip..).unwrap_or_default();
    check_request_line_length(from_request_line, limits.max_request_line)?;

    // Parsing only up to `max_head` bytes turns "still incomplete at the
    // limit" into a Partial result that is then reported as 431.
    let window = buf.get(..limits.max_head).unwrap_or(buf);
    let rest = window.get(skip..).unwrap_or_default();

    let parsed = if limits.max_headers <= STACK_HEADER_SLOTS {
        let mut slots = [MaybeUninit::<httparse::Header>::uninit(); STACK_HEADER_SLOTS];
        let slots = slots.get_mut(..limits.max_headers).unwrap_or_default();
        parse_with_slots(rest, slots, from_request_line, limits)?
    } else {
        let mut slots = vec![MaybeUninit::<httparse::Header>::uninit(); limits.max_headers];
        parse_with_slots(rest, &mut slots, from_request_line, limits)?
    };

    match parsed {
        Some((head, len)) => Ok(Some((head, skip + len))),
        None if buf.len() > limits.max_head => Err(ProtocolError::HeadersTooLarge),
        None => Ok(None),
    }
}

/// Length of the empty lines (CRLF or bare LF) that RFC 9112 §2.2 lets a
/// server ignore before the request line.
fn empty_line_prefix(buf: &[u8]) -> usize {
    let mut skip = 0;
    loop {
        match buf.get(skip..) {
            Some([b'\n', ..]) => skip += 1,
            Some([b'\r', b'\n', ..]) => skip += 2,
            _ => return skip,
        }
    }
}

/// Rejects a request line over `max` bytes as soon as that is certain, even
/// before its line ending has arrived.
fn check_request_line_length(rest: &[u8], max: usize) -> Result<(), ProtocolError> {
    // Two extra bytes are enough to see the CRLF of a line of exactly `max` bytes.
    let window = rest.get(..max.saturating_add(2)).unwrap_or(rest);
    let line = match window.iter().position(|&b| b == b'\n') {
        Some(end) => window.get(..end).unwrap_or_default(),
        None => window,
    };
    let content = line.strip_suffix(b"\r").unwrap_or(line);
    if content.len() > max {
        Err(ProtocolError::UriTooLong)
    } else {
        Ok(())
    }
}

fn parse_with_slots<'b>(
    rest: &'b [u8],
    slots: &mut [MaybeUninit<httparse::Header<'b>>],
    request_line: &[u8],
    limits: &Limits,
) -> Result<Option<(RequestHead, usize)>, ProtocolError> {
    let mut req = httparse::Request::new(&mut []);
    match req.parse_with_uninit_headers(rest, slots) {
        Ok(httparse::Status::Complete(len)) => {
            build_head(&req, limits).map(|head| Some((head, len)))
        }
        Ok(httparse::Status::Partial) => Ok(None),
        Err(httparse::Error::TooManyHeaders) => Err(ProtocolError::HeadersTooLarge),
        Err(httparse::Error::Version) => Err(version_error(request_line)),
        Err(httparse::Error::HeaderName) => Err(ProtocolError::BadRequest("invalid header name")),
        Err(httparse::Error::HeaderValue) => Err(ProtocolError::BadRequest("invalid header value")),
        Err(httparse::Error::NewLine) => Err(ProtocolError::BadRequest("invalid line ending")),
        Err(httparse::Error::Token | httparse::Error::Status) => {
            Err(ProtocolError::BadRequest("malformed request line"))
        }
    }
}

/// httparse only knows HTTP/1.0 and HTTP/1.1; a well-formed other version
/// deserves 505 rather than 400 so the client can tell what went wrong.
fn version_error(request_line: &[u8]) -> ProtocolError {
    let line = match request_line.iter().position(|&b| b == b'\r' || b == b'\n') {
        Some(end) => request_line.get(..end).unwrap_or_default(),
        None => request_line,
    };
    let token = line.rsplit(|&b| b == b' ').next().unwrap_or_default();
    let other_version = match token.strip_prefix(b"HTTP/") {
        Some([major]) => major.is_ascii_digit(),
        Some([major, b'.', minor]) => {
            major.is_ascii_digit()
                && minor.is_ascii_digit()
                && token != b"HTTP/1.0"
                && token != b"HTTP/1.1"
        }
        _ => false,
    };
    if other_version {
        ProtocolError::VersionNotSupported
    } else {
        ProtocolError::BadRequest("malformed request line")
    }
}

fn build_head(req: &httparse::Request, limits: &Limits) -> Result<RequestHead, ProtocolError> {
    let bad = ProtocolError::BadRequest;
    let method = req.method.ok_or(bad("malformed request line"))?;
    // httparse already restricts methods to token characters; this keeps the
    // guarantee local instead of relying on its fast paths.
    if !is_token(method.as_bytes()) {
        return Err(bad("method is not a token"));
    }
    let version = match req.version {
        Some(0) => Version::Http10,
        Some(1) => Version::Http11,
        _ => return Err(ProtocolError::VersionNotSupported),
    };
    let target = req.path.ok_or(bad("malformed request line"))?;
    let Target {
        authority,
        path,
        query,
    } = split_target(method, target)?;

    let mut fields = Fields::default();
    for header in req.headers.iter() {
        fields.observe(header.name, header.value)?;
    }
    if version == Version::Http11 && fields.hosts == 0 {
        return Err(bad("missing Host header"));
    }

    let framing = framing(req.headers, version, limits)?;
    let keep_alive = match version {
        Version::Http11 => !fields.close,
        Version::Http10 => fields.keep_alive && !fields.close,
    };

    let block = encode_fields(req.headers, authority);

    Ok(RequestHead {
        method: method.to_owned(),
        path: path.to_owned(),
        query: query.to_owned(),
        version,
        fields: block,
        framing,
        keep_alive,
        expect_continue: version == Version::Http11 && fields.expect_continue,
    })
}

/// Facts gathered from the header fields other than framing.
#[derive(Default)]
struct Fields {
    hosts: usize,
    close: bool,
    keep_alive: bool,
    expect_continue: bool,
}

impl Fields {
    fn observe(&mut self, name: &str, value: &[u8]) -> Result<(), ProtocolError> {
        if name.eq_ignore_ascii_case("host") {
            self.hosts += 1;
            // RFC 9112 §3.2: several Host lines make the target authority ambiguous.
            if self.hosts > 1 {
                return Err(ProtocolError::BadRequest("more than one Host header"));
            }
            if !value.iter().all(|&b| is_host_byte(b)) {
                return Err(ProtocolError::BadRequest("invalid Host header"));
            }
        } else if name.eq_ignore_ascii_case("connection") {
            for option in list_elements(value) {
                self.close |= option.eq_ignore_ascii_case(b"close");
                self.keep_alive |= option.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name.eq_ignore_ascii_case("expect") {
            self.expect_continue |=
                list_elements(value).any(|e| e.eq_ignore_ascii_case(b"100-continue"));
        }
        Ok(())
    }
}

/// The block of `headers`. RFC 9112 §3.2.2: with an absolute-form target
/// the server ignores the Host header and uses the target's `authority`, so
/// the module is told that authority as the request's `host`, whatever the
/// header said.
fn encode_fields(headers: &[httparse::Header], authority: Option<&str>) -> Vec<u8> {
    let host = |name: &str| authority.is_some() && name.eq_ignore_ascii_case("host");
    let pairs = || {
        headers.iter().map(|h| match authority {
            Some(authority) if host(h.name) => (h.name, authority.as_bytes()),
            _ => (h.name, h.value),
        })
    };
    // HTTP/1.0 may leave Host out; the authority still names the host.
    let missing = match authority {
        Some(authority) if !headers.iter().any(|h| host(h.name)) => {
            Some(("host", authority.as_bytes()))
        }
        _ => None,
    };
    let mut block = Vec::with_capacity(super::fields::encoded_len(pairs().chain(missing)));
    super::fields::encode_into(&mut block, pairs().chain(missing));
    block
}

/// The parts of a request-target the server uses.
#[derive(Debug, PartialEq, Eq)]
struct Target<'a> {
    /// `host[:port]` of an absolute-form target.
    authority: Option<&'a str>,
    path: &'a str,
    query: &'a str,
}

impl<'a> Target<'a> {
    fn origin((path, query): (&'a str, &'a str)) -> Self {
        Target {
            authority: None,
            path,
            query,
        }
    }
}

/// Splits the request-target into authority, path and query (RFC 9112 §3.2).
fn split_target<'a>(method: &str, target: &'a str) -> Result<Target<'a>, ProtocolError> {
    let bad = ProtocolError::BadRequest;
    if !target.is_ascii() {
        return Err(bad("request-target is not ASCII"));
    }
    if target.contains('#') {
        return Err(bad("fragment in request-target"));
    }
    if target.starts_with('/') {
        return Ok(Target::origin(split_query(target)));
    }
    if target == "*" {
        return if method == "OPTIONS" {
            Ok(Target::origin(("*", "")))
        } else {
            Err(bad("asterisk-form is only allowed for OPTIONS"))
        };
    }
    let after_scheme = strip_prefix_ignore_case(target, "http://")
        .or_else(|| strip_prefix_ignore_case(target, "https://"))
        .ok_or(bad("unsupported request-target form"))?;
    let authority_end = after_scheme.find(['/', '?']).unwrap_or(after_scheme.len());
    let (authority, rest) = after_scheme.split_at(authority_end);
    if authority.is_empty() {
        return Err(bad("absolute-form target without authority"));
    }
    // The same bytes a Host header may hold: userinfo (`@`) is refused, as
    // it has no place in a request (RFC 9110 §4.2.4).
    if !authority.bytes().all(is_host_byte) {
        return Err(bad("invalid authority in request-target"));
    }
    let (path, query) = match rest.strip_prefix('?') {
        Some(query) => ("/", query),
        None if rest.is_empty() => ("/", ""),
        None => split_query(rest),
    };
    Ok(Target {
        authority: Some(authority),
        path,
        query,
    })
}

fn split_query(target: &str) -> (&str, &str) {
    target.split_once('?').unwrap_or((target, ""))
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) {
        s.get(prefix.len()..)
    } else {
        None
    }
}

/// Decides how the body is delimited (RFC 9112 §6.3), rejecting every
/// combination that two parsers could read differently.
fn framing(
    headers: &[httparse::Header],
    version: Version,
    limits: &Limits,
) -> Result<Framing, ProtocolError> {
    let bad = ProtocolError::BadRequest;
    let named = |name: &'static str| {
        headers
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    };
    let has_te = named("transfer-encoding").next().is_some();
    let has_cl = named("content-length").next().is_some();

    if has_te {
        if has_cl {
            return Err(bad("both Transfer-Encoding and Content-Length"));
        }
        // HTTP/1.0 recipients predate Transfer-Encoding, so an intermediary
        // may have framed this message differently.
        if version == Version::Http10 {
            return Err(bad("Transfer-Encoding in an HTTP/1.0 request"));
        }
        return transfer_coding(named("transfer-encoding"));
    }
    if !has_cl {
        return Ok(Framing::None);
    }
    let length = content_length(named("content-length"))?;
    if length > limits.max_body {
        return Err(ProtocolError::PayloadTooLarge);
    }
    Ok(Framing::Length(length))
}

pub(crate) fn transfer_coding<'v>(
    values: impl Iterator<Item = &'v [u8]>,
) -> Result<Framing, ProtocolError> {
    let bad = ProtocolError::BadRequest;
    let mut codings = 0usize;
    let mut chunked = false;
    for coding in values.flat_map(list_elements) {
        codings += 1;
        if chunked {
            // Anything after chunked leaves the body length undeterminable.
            return Err(if coding.eq_ignore_ascii_case(b"chunked") {
                bad("chunked applied more than once")
            } else {
                bad("chunked is not the final transfer-coding")
            });
        }
        chunked = coding.eq_ignore_ascii_case(b"chunked");
    }
    if codings == 0 {
        return Err(bad("empty Transfer-Encoding"));
    }
    if !chunked || codings > 1 {
        return Err(ProtocolError::NotImplemented("unsupported transfer-coding"));
    }
    Ok(Framing::Chunked)
}

/// Reads Content-Length, accepting repeats only when every value agrees
/// (RFC 9110 §8.6).
pub(crate) fn content_length<'v>(
    values: impl Iterator<Item = &'v [u8]>,
) -> Result<u64, ProtocolError> {
    let bad = ProtocolError::BadRequest;
    let mut length = None;
    for value in values {
        for element in value.split(|&b| b == b',') {
            let n = parse_decimal(trim_ows(element)).ok_or(bad("invalid Content-Length"))?;
            match length {
                Some(seen) if seen != n => return Err(bad("conflicting Content-Length values")),
                _ => length = Some(n),
            }
        }
    }
    length.ok_or(bad("invalid Content-Length"))
}

/// Strict `1*DIGIT`: no sign, no inner whitespace, no overflow.
pub(crate) fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |acc, &b| {
        let digit = b.checked_sub(b'0').filter(|d| *d <= 9)?;
        acc.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

/// Non-empty elements of a comma-separated field value (RFC 9110 §5.6.1).
pub(crate) fn list_elements(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(trim_ows)
        .filter(|e| !e.is_empty())
}

pub(crate) fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', tail @ ..] = s {
        s = tail;
    }
    while let [head @ .., b' ' | b'\t'] = s {
        s = head;
    }
    s
}

/// RFC 9110 §5.6.2 token.
pub(crate) fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_tchar(b))
}

/// Whether `value` may be sent as a field value: CR or LF would let it start
/// a new field or end the head, and any other control but HTAB is outside
/// field-value (RFC 9110 §5.5), which makes strict peers reject the message.
pub(crate) fn is_field_value(value: &[u8]) -> bool {
    value.iter().all(|&b| is_field_value_byte(b))
}

/// A byte [`is_field_value`] lets through.
pub(crate) fn is_field_value_byte(b: u8) -> bool {
    FIELD_VALUE_BYTE[usize::from(b)]
}

/// [`is_field_value`]'s bytes, as a table: a module's header block is
/// checked a byte at a time on every response.
static FIELD_VALUE_BYTE: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = (b >= 0x20 && b != 0x7f) || b == b'\t' as usize;
        b += 1;
    }
    table
};

pub(crate) fn is_tchar(b: u8) -> bool {
    TCHAR[usize::from(b)]
}

/// RFC 9110 §5.6.2's tchar, as a table: names are checked a byte at a time
/// on every request and response.
static TCHAR: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            );
        b += 1;
    }
    table
};

/// Bytes of `uri-host [":" port]`: reg-name, IPv4 and IP-literal characters.
fn is_host_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:[]%".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &[u8]) -> Result<Option<(RequestHead, usize)>, ProtocolError> {
        parse_head(raw, &Limits::default())
    }

    fn head(raw: &[u8]) -> RequestHead {
        let (head, len) = parse(raw).unwrap().expect("complete head");
        assert_eq!(len, raw.len(), "whole input is one head");
        head
    }

    fn status(raw: &[u8]) -> u16 {
        parse(raw).unwrap_err().status()
    }

    #[test]
    fn parses_a_simple_get() {
        let h = head(b"GET /a/b?x=1&y=2 HTTP/1.1\r\nHost: example.com\r\nX-Y:  v  \r\n\r\n");
        assert_eq!(h.method, "GET");
        assert_eq!(h.path, "/a/b");
        assert_eq!(h.query, "x=1&y=2");
        assert_eq!(h.version, Version::Http11);
        assert_eq!(
            h.headers().collect::<Vec<_>>(),
            [("Host", &b"example.com"[..]), ("X-Y", b"v")]
        );
        assert_eq!(h.fields, b"Host: example.com\nX-Y: v\n");
        assert_eq!(h.framing, Framing::None);
        assert!(h.keep_alive);
        assert!(!h.expect_continue);
        assert_eq!(h.header("host"), Some(&b"example.com"[..]));
        assert_eq!(h.header("missing"), None);
    }

    #[test]
    fn empty_query_and_raw_header_bytes() {
        let h = head(b"GET /p? HTTP/1.1\r\nHost: h\r\nX: caf\xc3\xa9\tok\r\n\r\n");
        assert_eq!(h.path, "/p");
        assert_eq!(h.query, "");
        assert_eq!(h.header("x"), Some(&b"caf\xc3\xa9\tok"[..]));
    }

    #[test]
    fn incomplete_heads_need_more_bytes() {
        let raw = b"POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\n";
        for end in 0..raw.len() {
            assert_eq!(parse(&raw[..end]), Ok(None), "prefix of {end} bytes");
        }
        assert!(parse(raw).unwrap().is_some());
    }

    #[test]
    fn leading_empty_lines_are_skipped_and_counted() {
        let raw = b"\r\n\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n";
        let (h, len) = parse(raw).unwrap().unwrap();
        assert_eq!(h.path, "/");
        assert_eq!(len, raw.len());
        assert_eq!(parse(b"\r\n\r\n"), Ok(None));
    }

    #[test]
    fn pipelined_heads_report_their_own_length() {
        let first = b"GET /one HTTP/1.1\r\nHost: h\r\n\r\n";
        let second = b"GET /two HTTP/1.1\r\nHost: h\r\n\r\n";
        let mut buf = first.to_vec();
        buf.extend_from_slice(second);
        buf.extend_from_slice(b"GET /thr");

        let (h1, n1) = parse(&buf).unwrap().unwrap();
        assert_eq!((h1.path.as_str(), n1), ("/one", first.len()));
        let (h2, n2) = parse(&buf[n1..]).unwrap().unwrap();
        assert_eq!((h2.path.as_str(), n2), ("/two", second.len()));
        assert_eq!(parse(&buf[n1 + n2..]), Ok(None));
    }

    #[test]
    fn body_bytes_are_not_consumed() {
        let raw = b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello";
        let (h, len) = parse(raw).unwrap().unwrap();
        assert_eq!(h.framing, Framing::Length(5));
        assert_eq!(&raw[len..], b"hello");
    }

    #[test]
    fn garbage_is_400() {
        assert_eq!(status(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"), 400);
        assert_eq!(status(b"hello world\r\n\r\n"), 400);
        assert_eq!(status(b"GET /\r\n\r\n"), 400);
        assert_eq!(status(b"GET  / HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/1.1 \r\nHost: h\r\n\r\n"), 400);
        assert_eq!(status(b"GET /a b HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
        assert_eq!(status(b"GET / http/1.1\r\nHost: h\r\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/1.1x\r\nHost: h\r\n\r\n"), 400);
        assert_eq!(status(b"\rGET / HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
    }

    #[test]
    fn method_must_be_a_token() {
        assert_eq!(status(b"G(T / HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
        assert_eq!(status(b"G\x01T / HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
        assert_eq!(
            head(b"M-SEARCH / HTTP/1.1\r\nHost: h\r\n\r\n").method,
            "M-SEARCH"
        );
    }

    #[test]
    fn other_http_versions_are_505() {
        for version in ["HTTP/2.0", "HTTP/1.2", "HTTP/3", "HTTP/0.9", "HTTP/2"] {
            let raw = format!("GET / {version}\r\nHost: h\r\n\r\n");
            assert_eq!(status(raw.as_bytes()), 505, "{version}");
        }
        assert_eq!(status(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), 505);
    }

    #[test]
    fn http_1_0_needs_no_host() {
        let h = head(b"GET / HTTP/1.0\r\n\r\n");
        assert_eq!(h.version, Version::Http10);
        assert!(!h.keep_alive);
    }

    #[test]
    fn host_rules() {
        assert_eq!(status(b"GET / HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/1.1\r\nHost: evil.com/x\r\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/1.1\r\nHost: user@h\r\n\r\n"), 400);
        assert_eq!(
            head(b"GET / HTTP/1.1\r\nHost:\r\n\r\n").header("host"),
            Some(&b""[..])
        );
        head(b"GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n");
        head(b"GET / HTTP/1.1\r\nHost: 127.0.0.1:80\r\n\r\n");
    }

    #[test]
    fn request_target_forms() {
        let h = head(b"GET http://example.com/p/q?s=1 HTTP/1.1\r\nHost: example.com\r\n\r\n");
        assert_eq!((h.path.as_str(), h.query.as_str()), ("/p/q", "s=1"));
        let h = head(b"GET HTTPS://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n");
        assert_eq!((h.path.as_str(), h.query.as_str()), ("/", ""));
        let h = head(b"GET http://example.com?a HTTP/1.1\r\nHost: example.com\r\n\r\n");
        assert_eq!((h.path.as_str(), h.query.as_str()), ("/", "a"));
        let h = head(b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!(h.path, "*");

        assert_eq!(status(b"GET * HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
        assert_eq!(
            status(b"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n"),
            400
        );
        assert_eq!(status(b"GET ftp://h/x HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
        assert_eq!(status(b"GET http:///x HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
        assert_eq!(status(b"GET http://u@h/x HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
        assert_eq!(
            status(b"GET http://a\"b/x HTTP/1.1\r\nHost: h\r\n\r\n"),
            400
        );
        assert_eq!(status(b"GET x HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
        assert_eq!(status(b"GET /a#frag HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
        assert_eq!(status(b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
    }

    #[test]
    fn an_absolute_target_names_the_host() {
        let h = head(b"GET http://a.example/x?q=1 HTTP/1.1\r\nHost: b\r\nX: y\r\n\r\n");
        assert_eq!((h.path.as_str(), h.query.as_str()), ("/x", "q=1"));
        assert_eq!(h.header("host"), Some(&b"a.example"[..]));
        assert_eq!(h.headers().filter(|(n, _)| *n == "Host").count(), 1);
        assert_eq!(h.header("x"), Some(&b"y"[..]));
        let h = head(b"GET HTTP://[::1]:8080 HTTP/1.1\r\nhost: b\r\n\r\n");
        assert_eq!(h.header("host"), Some(&b"[::1]:8080"[..]));
        assert_eq!(h.path, "/");
        // HTTP/1.0 may leave Host out; the target still names it.
        let h = head(b"GET http://a.example:81/ HTTP/1.0\r\n\r\n");
        assert_eq!(h.header("host"), Some(&b"a.example:81"[..]));
        // Origin form keeps the header as sent.
        let h = head(b"GET /x HTTP/1.1\r\nHost: b\r\n\r\n");
        assert_eq!(h.header("host"), Some(&b"b"[..]));
        // HTTP/1.1 still requires the header (RFC 9112 §3.2).
        assert_eq!(status(b"GET http://a.example/ HTTP/1.1\r\n\r\n"), 400);
    }

    #[test]
    fn long_request_line_is_414() {
        let limits = Limits::default();
        let long_path = "a".repeat(limits.max_request_line);
        let raw = format!("GET /{long_path} HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!(status(raw.as_bytes()), 414);

        // Not yet complete, but already past the limit without a line end.
        let partial = format!("GET /{long_path}");
        assert_eq!(status(partial.as_bytes()), 414);
    }

    #[test]
    fn request_line_at_the_limit_is_accepted() {
        let limits = Limits {
            max_request_line: 32,
            ..Limits::default()
        };
        let line = format!("GET /{} HTTP/1.1", "a".repeat(32 - 14));
        assert_eq!(line.len(), 32);
        let raw = format!("{line}\r\nHost: h\r\n\r\n");
        assert!(parse_head(raw.as_bytes(), &limits).unwrap().is_some());
        assert_eq!(
            parse_head(format!("{line}\r").as_bytes(), &limits),
            Ok(None)
        );

        let over = format!("GET /{} HTTP/1.1\r\nHost: h\r\n\r\n", "a".repeat(32 - 13));
        assert_eq!(
            parse_head(over.as_bytes(), &limits),
            Err(ProtocolError::UriTooLong)
        );
        assert_eq!(
            parse_head(&over.as_bytes()[..33], &limits),
            Err(ProtocolError::UriTooLong)
        );
    }

    #[test]
    fn large_head_is_431_complete_or_not() {
        let limits = Limits::default();
        let mut raw = b"GET / HTTP/1.1\r\nHost: h\r\n".to_vec();
        while raw.len() <= limits.max_head {
            raw.extend_from_slice(b"X-Filler: ");
            raw.extend_from_slice(&[b'f'; 4000]);
            raw.extend_from_slice(b"\r\n");
        }
        assert_eq!(status(&raw), 431, "incomplete head over the limit");
        raw.extend_from_slice(b"\r\n");
        assert_eq!(status(&raw), 431, "complete head over the limit");
    }

    #[test]
    fn head_exactly_at_the_limit_is_accepted() {
        let raw = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n";
        let limits = Limits {
            max_head: raw.len(),
            ..Limits::default()
        };
        assert!(parse_head(raw, &limits).unwrap().is_some());
        let tight = Limits {
            max_head: raw.len() - 1,
            ..Limits::default()
        };
        assert_eq!(parse_head(raw, &tight), Err(ProtocolError::HeadersTooLarge));
    }

    #[test]
    fn endless_empty_lines_are_431() {
        let raw = b"\r\n".repeat(Limits::default().max_head);
        assert_eq!(parse(&raw[..100]), Ok(None));
        assert_eq!(status(&[raw.as_slice(), b"\r\n"].concat()), 431);
    }

    #[test]
    fn too_many_headers_is_431() {
        let limits = Limits::default();
        let mut raw = b"GET / HTTP/1.1\r\nHost: h\r\n".to_vec();
        for i in 1..limits.max_headers {
            raw.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        raw.extend_from_slice(b"\r\n");
        assert_eq!(head(&raw).headers().count(), limits.max_headers);

        raw.truncate(raw.len() - 2);
        raw.extend_from_slice(b"X-Last: v\r\n\r\n");
        assert_eq!(status(&raw), 431);
    }

    #[test]
    fn many_header_slots_use_the_heap_path() {
        let limits = Limits {
            max_headers: STACK_HEADER_SLOTS + 10,
            ..Limits::default()
        };
        let mut raw = b"GET / HTTP/1.1\r\nHost: h\r\n".to_vec();
        for i in 0..STACK_HEADER_SLOTS + 5 {
            raw.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        raw.extend_from_slice(b"\r\n");
        let (h, _) = parse_head(&raw, &limits).unwrap().unwrap();
        assert_eq!(h.headers().count(), STACK_HEADER_SLOTS + 6);
    }

    #[test]
    fn malformed_header_lines_are_400() {
        // Whitespace between name and colon (RFC 9112 §5.1).
        assert_eq!(status(b"GET / HTTP/1.1\r\nHost : h\r\n\r\n"), 400);
        // Obsolete line folding (RFC 9112 §5.2).
        assert_eq!(
            status(b"GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n"),
            400
        );
        assert_eq!(status(b"GET / HTTP/1.1\r\n Host: h\r\n\r\n"), 400);
        assert_eq!(
            status(b"GET / HTTP/1.1\r\nHost: h\r\nX: a\x00b\r\n\r\n"),
            400
        );
        assert_eq!(status(b"GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n"), 400);
        assert_eq!(
            status(b"GET / HTTP/1.1\r\nHost: h\r\nX\x7f: a\r\n\r\n"),
            400
        );
        assert_eq!(
            status(b"GET / HTTP/1.1\r\nHost: h\r\nNo-Colon\r\n\r\n"),
            400
        );
        assert_eq!(status(b"GET / HTTP/1.1\r\nHost: h\r\n: empty\r\n\r\n"), 400);
    }

    #[test]
    fn content_length_framing() {
        let h = head(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 42\r\n\r\n");
        assert_eq!(h.framing, Framing::Length(42));
        let h = head(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(h.framing, Framing::Length(0));
        let h = head(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 007\r\n\r\n");
        assert_eq!(h.framing, Framing::Length(7));
        // Identical repeats carry no ambiguity.
        let h = head(
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-length: 5, 5\r\n\r\n",
        );
        assert_eq!(h.framing, Framing::Length(5));
    }

    #[test]
    fn bad_content_length_is_400() {
        for value in [
            "-1",
            "+5",
            "1 2",
            "0x10",
            "5,",
            ",5",
            "",
            "1e3",
            "5;",
            "abc",
            "99999999999999999999999",
        ] {
            let raw = format!("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: {value}\r\n\r\n");
            assert_eq!(status(raw.as_bytes()), 400, "Content-Length: {value:?}");
        }
    }

    #[test]
    fn conflicting_content_lengths_are_400() {
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"),
            400
        );
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 6\r\n\r\n"),
            400
        );
    }

    #[test]
    fn oversized_content_length_is_413() {
        let limits = Limits::default();
        let at = format!(
            "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\n\r\n",
            limits.max_body
        );
        assert_eq!(
            head(at.as_bytes()).framing,
            Framing::Length(limits.max_body)
        );
        let over = format!(
            "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\n\r\n",
            limits.max_body + 1
        );
        assert_eq!(status(over.as_bytes()), 413);
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 18446744073709551615\r\n\r\n"),
            413
        );
    }

    #[test]
    fn chunked_framing() {
        for value in ["chunked", "Chunked", "CHUNKED", " chunked , ", ", chunked"] {
            let raw = format!("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: {value}\r\n\r\n");
            assert_eq!(head(raw.as_bytes()).framing, Framing::Chunked, "{value:?}");
        }
    }

    #[test]
    fn transfer_coding_rules() {
        let te = |value: &str| {
            let raw = format!("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: {value}\r\n\r\n");
            parse(raw.as_bytes()).map(|r| r.map(|(h, _)| h.framing))
        };
        assert_eq!(
            te("gzip, chunked"),
            Err(ProtocolError::NotImplemented("unsupported transfer-coding"))
        );
        assert_eq!(te("identity").unwrap_err().status(), 501);
        assert_eq!(te("gzip").unwrap_err().status(), 501);
        assert_eq!(te("chunked, chunked").unwrap_err().status(), 400);
        assert_eq!(te("chunked, gzip").unwrap_err().status(), 400);
        assert_eq!(te("").unwrap_err().status(), 400);
        assert_eq!(te(" , ").unwrap_err().status(), 400);

        // Codings split over several header lines form one list.
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"),
            400
        );
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"),
            501
        );
    }

    #[test]
    fn smuggling_vectors_are_rejected() {
        // CL.TE / TE.CL: both framings present.
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"),
            400
        );
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n"),
            400
        );
        // Transfer-Encoding on HTTP/1.0.
        assert_eq!(
            status(b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
            400
        );
        // Obfuscated names do not count as Transfer-Encoding and cannot hide behind folding.
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding : chunked\r\n\r\n"),
            400
        );
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nHost: h\r\nX: y\r\n Transfer-Encoding: chunked\r\n\r\n"),
            400
        );
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: \x0bchunked\r\n\r\n"),
            400
        );
    }

    #[test]
    fn keep_alive_rules() {
        let ka = |raw: &[u8]| head(raw).keep_alive;
        assert!(ka(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"));
        assert!(!ka(
            b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
        ));
        assert!(!ka(
            b"GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, CLOSE\r\n\r\n"
        ));
        assert!(!ka(
            b"GET / HTTP/1.1\r\nHost: h\r\nConnection: te\r\nconnection: close\r\n\r\n"
        ));
        assert!(ka(
            b"GET / HTTP/1.1\r\nHost: h\r\nConnection: closed\r\n\r\n"
        ));
        assert!(!ka(b"GET / HTTP/1.0\r\n\r\n"));
        assert!(ka(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
        assert!(ka(b"GET / HTTP/1.0\r\nConnection: foo,keep-alive\r\n\r\n"));
        assert!(!ka(
            b"GET / HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n"
        ));
    }

    #[test]
    fn expect_continue_rules() {
        let ec = |raw: &[u8]| head(raw).expect_continue;
        assert!(ec(
            b"POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n"
        ));
        assert!(ec(
            b"POST / HTTP/1.1\r\nHost: h\r\nexpect: 100-Continue\r\n\r\n"
        ));
        assert!(!ec(b"POST / HTTP/1.1\r\nHost: h\r\n\r\n"));
        assert!(!ec(b"POST / HTTP/1.1\r\nHost: h\r\nExpect: 200-ok\r\n\r\n"));
        assert!(!ec(b"POST / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n"));
    }

    #[test]
    fn bare_lf_heads_are_accepted() {
        // RFC 9112 §2.2 lets recipients accept LF as a line terminator in the head.
        let raw = b"GET / HTTP/1.1\nHost: h\n\n";
        let (h, len) = parse(raw).unwrap().unwrap();
        assert_eq!((h.path.as_str(), len), ("/", raw.len()));
    }

    #[test]
    fn decimal_parsing() {
        assert_eq!(parse_decimal(b"0"), Some(0));
        assert_eq!(parse_decimal(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_decimal(b"18446744073709551616"), None);
        assert_eq!(parse_decimal(b""), None);
        assert_eq!(parse_decimal(b"1a"), None);
    }

    #[test]
    fn token_checks() {
        assert!(is_token(b"X-Custom_Header.1~"));
        assert!(!is_token(b""));
        assert!(!is_token(b"a b"));
        assert!(!is_token(b"a:b"));
        assert!(!is_token(b"a\r"));
    }
}
