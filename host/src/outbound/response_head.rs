//! Response-head parsing: status line, header fields and how the body is
//! delimited (RFC 9112 §4–§6).

use super::FetchError;
use crate::http::head::{list_elements, parse_decimal, trim_ows};

/// Largest response head accepted, status line to the empty line.
pub(super) const MAX_HEAD: usize = 64 * 1024;
/// Most header fields in one response head.
const MAX_HEADERS: usize = 128;

/// How the response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BodyFraming {
    /// No body whatever the fields say: HEAD, 1xx, 204 and 304.
    Empty,
    Length(u64),
    Chunked,
    /// The body ends when the server closes the connection.
    UntilClose,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ResponseHead {
    pub status: u16,
    /// As received, except `transfer-encoding`.
    pub headers: Vec<(String, Vec<u8>)>,
    pub framing: BodyFraming,
    /// Whether the server lets the connection carry another request.
    pub keep_alive: bool,
}

/// Whether `buf` holds a whole head, looking only at bytes from `from - 3`
/// on so that a head arriving a byte at a time is not rescanned each time.
pub(super) fn has_end(buf: &[u8], from: usize) -> bool {
    let start = from.saturating_sub(3);
    let tail = buf.get(start..).unwrap_or_default();
    tail.windows(2).any(|w| w == b"\n\n") || tail.windows(3).any(|w| w == b"\n\r\n")
}

/// Parses the response head at the start of `buf`; `Ok(None)` means more
/// bytes are needed. `method` is the request's, which decides whether a
/// body may follow.
pub(super) fn parse(buf: &[u8], method: &str) -> Result<Option<(ResponseHead, usize)>, FetchError> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut slots);
    let mut config = httparse::ParserConfig::default();
    // RFC 9112 §5.1 has recipients of responses tolerate these rather than fail.
    config
        .allow_spaces_after_header_name_in_responses(true)
        .allow_multiple_spaces_in_response_status_delimiters(true);
    let len = match config.parse_response(&mut response, buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => return Err(FetchError::TooLarge),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(FetchError::TooLarge),
        Err(err) => return Err(FetchError::protocol(format!("bad response head: {err}"))),
    };
    if len > MAX_HEAD {
        return Err(FetchError::TooLarge);
    }
    let status = response
        .code
        .filter(|code| (100..=999).contains(code))
        .ok_or_else(|| FetchError::protocol("bad status code"))?;
    let http11 = response.version == Some(1);
    let headers = &*response.headers;

    let mut close = false;
    let mut keep_alive_token = false;
    for value in values(headers, "connection") {
        for option in list_elements(value) {
            close |= option.eq_ignore_ascii_case(b"close");
            keep_alive_token |= option.eq_ignore_ascii_case(b"keep-alive");
        }
    }
    let framing = framing(headers, method, status, http11)?;
    let keep_alive = !close && (http11 || keep_alive_token) && framing != BodyFraming::UntilClose;

    let head = ResponseHead {
        status,
        headers: headers
            .iter()
            .filter(|h| !h.name.eq_ignore_ascii_case("transfer-encoding"))
            .map(|h| (h.name.to_owned(), h.value.to_vec()))
            .collect(),
        framing,
        keep_alive,
    };
    Ok(Some((head, len)))
}

/// RFC 9112 §6.3, refusing the ambiguous cases a smuggling attempt relies on.
fn framing(
    headers: &[httparse::Header],
    method: &str,
    status: u16,
    http11: bool,
) -> Result<BodyFraming, FetchError> {
    if method == "HEAD" || status < 200 || status == 204 || status == 304 {
        return Ok(BodyFraming::Empty);
    }
    let has_te = values(headers, "transfer-encoding").next().is_some();
    let has_cl = values(headers, "content-length").next().is_some();
    if has_te {
        if has_cl {
            return Err(FetchError::protocol(
                "both Transfer-Encoding and Content-Length",
            ));
        }
        if !http11 {
            return Err(FetchError::protocol(
                "Transfer-Encoding in an HTTP/1.0 response",
            ));
        }
        let codings: Vec<&[u8]> = values(headers, "transfer-encoding")
            .flat_map(list_elements)
            .collect();
        return match codings.as_slice() {
            [only] if only.eq_ignore_ascii_case(b"chunked") => Ok(BodyFraming::Chunked),
            _ => Err(FetchError::protocol("unsupported transfer-coding")),
        };
    }
    if !has_cl {
        return Ok(BodyFraming::UntilClose);
    }
    // Repeats are fine when every value agrees (RFC 9110 §8.6).
    let mut length = None;
    for value in values(headers, "content-length") {
        for element in value.split(|&b| b == b',') {
            let n = parse_decimal(trim_ows(element))
                .ok_or_else(|| FetchError::protocol("invalid Content-Length"))?;
            if length.is_some_and(|seen| seen != n) {
                return Err(FetchError::protocol("conflicting Content-Length values"));
            }
            length = Some(n);
        }
    }
    length
        .map(BodyFraming::Length)
        .ok_or_else(|| FetchError::protocol("invalid Content-Length"))
}

fn values<'h, 'b>(
    headers: &'h [httparse::Header<'b>],
    name: &'static str,
) -> impl Iterator<Item = &'b [u8]> + 'h {
    headers
        .iter()
        .filter(move |h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(raw: &str) -> Result<ResponseHead, FetchError> {
        head_for("GET", raw)
    }

    fn head_for(method: &str, raw: &str) -> Result<ResponseHead, FetchError> {
        let (head, len) = parse(raw.as_bytes(), method)?.expect("complete head");
        assert_eq!(len, raw.len());
        Ok(head)
    }

    #[test]
    fn length_framed_keep_alive() {
        let h = head("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\n").unwrap();
        assert_eq!(h.status, 200);
        assert_eq!(h.framing, BodyFraming::Length(5));
        assert!(h.keep_alive);
        assert_eq!(h.headers.len(), 2);
    }

    #[test]
    fn incomplete_heads_wait_for_more() {
        assert_eq!(parse(b"HTTP/1.1 200 OK\r\nA: b\r\n", "GET"), Ok(None));
        assert!(!has_end(b"HTTP/1.1 200 OK\r\nA: b\r\n", 0));
        assert!(has_end(b"HTTP/1.1 200 OK\r\nA: b\r\n\r\n", 22));
        assert!(has_end(b"HTTP/1.1 200 OK\n\n", 16));
    }

    #[test]
    fn chunked_hides_its_transfer_encoding_field() {
        let h = head("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap();
        assert_eq!(h.framing, BodyFraming::Chunked);
        assert!(h.headers.is_empty());
    }

    #[test]
    fn no_length_means_until_close_and_no_reuse() {
        let h = head("HTTP/1.1 200 OK\r\n\r\n").unwrap();
        assert_eq!(h.framing, BodyFraming::UntilClose);
        assert!(!h.keep_alive);
    }

    #[test]
    fn bodiless_statuses_and_head_ignore_lengths() {
        for raw in [
            "HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n",
            "HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
            "HTTP/1.1 100 Continue\r\n\r\n",
        ] {
            assert_eq!(head(raw).unwrap().framing, BodyFraming::Empty, "{raw}");
        }
        let h = head_for("HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n").unwrap();
        assert_eq!(h.framing, BodyFraming::Empty);
        assert!(h.keep_alive);
    }

    #[test]
    fn connection_options_decide_reuse() {
        let h = head("HTTP/1.1 200 OK\r\nConnection: x, Close\r\nContent-Length: 0\r\n\r\n");
        assert!(!h.unwrap().keep_alive);
        let h = head("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n");
        assert!(!h.unwrap().keep_alive);
        let h = head("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n");
        assert!(h.unwrap().keep_alive);
    }

    #[test]
    fn agreeing_repeated_lengths_are_accepted() {
        let h = head("HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\nContent-Length: 3\r\n\r\n");
        assert_eq!(h.unwrap().framing, BodyFraming::Length(3));
    }

    #[test]
    fn ambiguous_framing_is_a_protocol_error() {
        for raw in [
            "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: +3\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
            "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        ] {
            assert!(matches!(head(raw), Err(FetchError::Protocol(_))), "{raw}");
        }
    }

    #[test]
    fn garbage_is_a_protocol_error() {
        for raw in [
            "SSH-2.0-OpenSSH_9.0\r\n\r\n",
            "HTTP/2 200\r\n\r\n",
            "HTTP/1.1 2000 OK\r\n\r\n",
            "HTTP/1.1 20 OK\r\n\r\n",
            "HTTP/1.1 200 OK\r\nBad Header\r\n\r\n",
        ] {
            assert!(
                matches!(parse(raw.as_bytes(), "GET"), Err(FetchError::Protocol(_))),
                "{raw}"
            );
        }
    }

    #[test]
    fn oversized_heads_are_too_large() {
        let mut raw = b"HTTP/1.1 200 OK\r\n".to_vec();
        while raw.len() <= MAX_HEAD {
            raw.extend_from_slice(b"X-Filler: 0123456789abcdef0123456789abcdef0123456789\r\n");
        }
        assert_eq!(parse(&raw, "GET"), Err(FetchError::TooLarge));
        raw.extend_from_slice(b"\r\n");
        assert_eq!(parse(&raw, "GET"), Err(FetchError::TooLarge));

        let mut raw = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            raw.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        raw.extend_from_slice(b"\r\n");
        assert_eq!(parse(&raw, "GET"), Err(FetchError::TooLarge));
    }
}
