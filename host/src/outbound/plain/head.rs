//! A response head read with httparse, checked as the hyper path checks
//! one: the same size limits, the same refusals of ambiguous framing.

use crate::http::head::{content_length, list_elements, transfer_coding};
use crate::http::ProtocolError;

use super::super::response::{text_size, MAX_HEADERS};
use super::super::FetchError;

/// How the body after a head is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    /// No body: a response to HEAD, or 204 or 304.
    Empty,
    Length(u64),
    Chunked,
    /// Until the server closes the connection.
    Close,
}

#[derive(Debug)]
pub(super) struct Head {
    pub status: u16,
    /// Names in lower case, as hyper gives them.
    pub headers: Vec<(String, Vec<u8>)>,
    pub framing: Framing,
    /// The connection may carry another request after this response.
    pub reusable: bool,
    /// Its size as hyper's path counts it: a status line without reason
    /// phrase, the fields, the empty line.
    pub size: u64,
}

/// What the bytes at the front of a buffer hold.
#[derive(Debug)]
pub(super) enum Parsed {
    /// More bytes are needed.
    Partial,
    /// An interim (1xx) head of this many bytes, to skip.
    Interim(usize),
    /// The final head and its length in bytes.
    Final(Head, usize),
}

/// Parses the head at the front of `buf`, the response to a `method`
/// request. A head longer than `max_head` is too large.
pub(super) fn parse(buf: &[u8], method: &str, max_head: usize) -> Result<Parsed, FetchError> {
    // Left uninitialised: filling 128 slots cost more than parsing a short
    // head.
    let mut slots = [const { std::mem::MaybeUninit::<httparse::Header>::uninit() }; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut []);
    let mut config = httparse::ParserConfig::default();
    // RFC 9112 §5.1 has recipients of responses tolerate this.
    config.allow_spaces_after_header_name_in_responses(true);
    let len = match config.parse_response_with_uninit_headers(&mut response, buf, &mut slots) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() > max_head => return Err(FetchError::TooLarge),
        Ok(httparse::Status::Partial) => return Ok(Parsed::Partial),
        Err(httparse::Error::TooManyHeaders) => return Err(FetchError::TooLarge),
        Err(err) => return Err(FetchError::protocol(format!("bad response head: {err}"))),
    };
    let status = response.code.unwrap_or_default();
    if !(100..=999).contains(&status) {
        return Err(FetchError::protocol(format!("invalid status {status}")));
    }
    if status == 101 {
        return Err(FetchError::protocol("unrequested protocol switch"));
    }
    if status < 200 {
        return Ok(Parsed::Interim(len));
    }
    let fields = response.headers;
    let size = text_size(
        fields
            .iter()
            .map(|field| (field.name.len(), field.value.len())),
    );
    if size > max_head as u64 {
        return Err(FetchError::TooLarge);
    }
    let framing = framing(fields, method, status)?;
    let http11 = response.version == Some(1);
    let reusable = framing != Framing::Close && keeps_alive(fields, http11);
    let headers = fields
        .iter()
        // It no longer describes the de-chunked body.
        .filter(|field| !field.name.eq_ignore_ascii_case("transfer-encoding"))
        .map(|field| (field.name.to_ascii_lowercase(), field.value.to_vec()))
        .collect();
    let head = Head {
        status,
        headers,
        framing,
        reusable,
        size,
    };
    Ok(Parsed::Final(head, len))
}

fn values<'f>(
    fields: &'f [httparse::Header<'f>],
    name: &'static str,
) -> impl Iterator<Item = &'f [u8]> {
    fields
        .iter()
        .filter(move |field| field.name.eq_ignore_ascii_case(name))
        .map(|field| field.value)
}

/// RFC 9112 §6.3, refusing what request smuggling relies on: both framings
/// at once, or a coding other than plain `chunked`.
fn framing(fields: &[httparse::Header], method: &str, status: u16) -> Result<Framing, FetchError> {
    if method.eq_ignore_ascii_case("HEAD") || status == 204 || status == 304 {
        return Ok(Framing::Empty);
    }
    let has_te = values(fields, "transfer-encoding").next().is_some();
    let has_cl = values(fields, "content-length").next().is_some();
    if has_te {
        if has_cl {
            return Err(FetchError::protocol(
                "both Transfer-Encoding and Content-Length",
            ));
        }
        return transfer_coding(values(fields, "transfer-encoding"))
            .map(|_| Framing::Chunked)
            .map_err(|_| FetchError::protocol("unsupported transfer-coding"));
    }
    if !has_cl {
        return Ok(Framing::Close);
    }
    content_length(values(fields, "content-length"))
        .map(Framing::Length)
        .map_err(|err| FetchError::protocol(describe(&err)))
}

/// An HTTP/1.1 connection persists unless it says `close`; an HTTP/1.0 one
/// only when it says `keep-alive`.
fn keeps_alive(fields: &[httparse::Header], http11: bool) -> bool {
    let mut tokens = values(fields, "connection").flat_map(list_elements);
    if http11 {
        !tokens.any(|token| token.eq_ignore_ascii_case(b"close"))
    } else {
        tokens.any(|token| token.eq_ignore_ascii_case(b"keep-alive"))
    }
}

/// A body decoding error as a fetch error.
pub(super) fn body_error(err: &ProtocolError) -> FetchError {
    match err {
        ProtocolError::PayloadTooLarge | ProtocolError::HeadersTooLarge => FetchError::TooLarge,
        other => FetchError::protocol(describe(other)),
    }
}

/// The reason alone, without the server's "bad request" wording.
fn describe(err: &ProtocolError) -> String {
    match err {
        ProtocolError::BadRequest(reason) | ProtocolError::NotImplemented(reason) => {
            (*reason).to_owned()
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str, method: &str) -> Result<Head, FetchError> {
        match parse(text.as_bytes(), method, 64 * 1024)? {
            Parsed::Final(head, len) => {
                assert_eq!(len, text.len());
                Ok(head)
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn framing_follows_the_method_status_and_fields() {
        let cases = [
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n",
                "GET",
                Framing::Length(3),
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\n\r\n",
                "GET",
                Framing::Length(3),
            ),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n",
                "GET",
                Framing::Chunked,
            ),
            ("HTTP/1.1 200 OK\r\n\r\n", "GET", Framing::Close),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n",
                "HEAD",
                Framing::Empty,
            ),
            ("HTTP/1.1 204 No Content\r\n\r\n", "GET", Framing::Empty),
            (
                "HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
                "GET",
                Framing::Empty,
            ),
        ];
        for (text, method, framing) in cases {
            assert_eq!(head(text, method).unwrap().framing, framing, "{text:?}");
        }
    }

    #[test]
    fn ambiguous_framing_is_a_protocol_error() {
        for fields in [
            "Transfer-Encoding: chunked\r\nContent-Length: 3",
            "Transfer-Encoding: gzip, chunked",
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked",
            "Transfer-Encoding: gzip",
            "Transfer-Encoding: ",
            "Content-Length: 3\r\nContent-Length: 4",
            "Content-Length: +3",
            "Content-Length: 3 4",
            "Content-Length: 99999999999999999999999",
        ] {
            let text = format!("HTTP/1.1 200 OK\r\n{fields}\r\n\r\n");
            let err = head(&text, "GET").unwrap_err();
            assert!(
                matches!(err, FetchError::Protocol(_)),
                "{fields:?}: {err:?}"
            );
        }
    }

    #[test]
    fn reuse_follows_the_version_and_connection_field() {
        let cases = [
            ("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", true),
            (
                "HTTP/1.1 200 OK\r\nConnection: x, Close\r\nContent-Length: 0\r\n\r\n",
                false,
            ),
            ("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", false),
            (
                "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n",
                true,
            ),
            ("HTTP/1.1 200 OK\r\n\r\n", false),
        ];
        for (text, reusable) in cases {
            assert_eq!(head(text, "GET").unwrap().reusable, reusable, "{text:?}");
        }
    }

    #[test]
    fn interim_heads_are_skipped_and_switches_refused() {
        let text = b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200";
        assert!(matches!(parse(text, "GET", 1024), Ok(Parsed::Interim(40))));
        let switch = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n";
        assert!(matches!(
            parse(switch, "GET", 1024),
            Err(FetchError::Protocol(_))
        ));
    }

    #[test]
    fn heads_are_bounded_by_size_and_field_count() {
        let partial = format!("HTTP/1.1 200 OK\r\nX: {}", "a".repeat(100));
        assert_eq!(
            parse(partial.as_bytes(), "GET", 64).unwrap_err(),
            FetchError::TooLarge
        );
        let complete = format!("HTTP/1.1 200 OK\r\nX: {}\r\n\r\n", "a".repeat(100));
        assert_eq!(
            parse(complete.as_bytes(), "GET", 64).unwrap_err(),
            FetchError::TooLarge
        );
        let many = format!(
            "HTTP/1.1 200 OK\r\n{}\r\n",
            "X: y\r\n".repeat(MAX_HEADERS + 1)
        );
        assert_eq!(
            parse(many.as_bytes(), "GET", 1 << 20).unwrap_err(),
            FetchError::TooLarge
        );
    }

    #[test]
    fn names_are_lower_cased_and_transfer_encoding_dropped() {
        let text = "HTTP/1.1 200 OK\r\nX-Upper: A\r\nTransfer-Encoding: chunked\r\n\r\n";
        let head = head(text, "GET").unwrap();
        assert_eq!(head.headers, [("x-upper".to_owned(), b"A".to_vec())]);
        assert_eq!(
            head.size,
            "HTTP/1.1 200 \r\nX-Upper: A\r\nTransfer-Encoding: chunked\r\n\r\n".len() as u64
        );
    }
}
