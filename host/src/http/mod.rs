//! Server side of HTTP/1.1 (RFC 9112): request heads, request bodies and
//! responses as pure byte-level code, and the connection that drives them
//! over a socket.

pub mod body;
mod body_reader;
mod connection;
pub mod date;
pub mod fields;
pub mod head;
mod message;
pub mod response;
pub mod shutdown;
pub mod stream;

pub use body::BodyDecoder;
pub use body_reader::BodyReader;
pub use connection::{Connection, Timeouts};
pub use head::{parse_head, Framing, RequestHead, Version};
pub use message::{Request, Response, Streamed};
pub use response::{
    write_error, write_response, BodyLength, ResponseError, ResponseOptions, HOP_BY_HOP,
};
pub use stream::{BodyError, BodyIn, BodyOut, Inflow, Outflow, StreamedBody};

/// Default for [`Limits::max_request_line`]: 8 KiB, the size RFC 9112 §3 recommends supporting at least.
pub const DEFAULT_MAX_REQUEST_LINE: usize = 8 * 1024;
/// Default for [`Limits::max_head`]: 64 KiB for the request line and all header lines together.
pub const DEFAULT_MAX_HEAD: usize = 64 * 1024;
/// Default for [`Limits::max_headers`].
pub const DEFAULT_MAX_HEADERS: usize = 100;
/// Default for [`Limits::max_body`]: 10 MiB of decoded body.
pub const DEFAULT_MAX_BODY: u64 = 10 * 1024 * 1024;

/// Every bound the parser enforces on client-controlled input.
///
/// The configurable bounds are fields; the chunked-framing bounds are fixed
/// associated constants because no legitimate client comes near them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest request line in bytes, line ending excluded; longer → 414.
    pub max_request_line: usize,
    /// Largest request head in bytes (leading empty lines, request line, header
    /// lines and the final empty line); larger → 431.
    pub max_head: usize,
    /// Most header lines in one request; more → 431.
    pub max_headers: usize,
    /// Largest request body in bytes after chunked decoding; larger → 413.
    pub max_body: u64,
}

impl Limits {
    /// Longest chunk-size line (size, whitespace and extensions, line ending excluded); longer → 400.
    pub const MAX_CHUNK_LINE: usize = 4 * 1024;
    /// Most hex digits in a chunk size, leading zeros included: 16 digits fill a `u64`; more → 400.
    pub const MAX_CHUNK_SIZE_DIGITS: u8 = 16;
    /// Largest trailer section after the last chunk, line endings included; larger → 431.
    pub const MAX_TRAILER: usize = 16 * 1024;
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_request_line: DEFAULT_MAX_REQUEST_LINE,
            max_head: DEFAULT_MAX_HEAD,
            max_headers: DEFAULT_MAX_HEADERS,
            max_body: DEFAULT_MAX_BODY,
        }
    }
}

/// Why a request cannot be served. Each variant maps to the status the
/// server answers with before closing the connection.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ProtocolError {
    /// 400: malformed or ambiguous request; the reason is safe to send to the client.
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    /// 414: the request line exceeds [`Limits::max_request_line`].
    #[error("request line too long")]
    UriTooLong,
    /// 431: the head exceeds [`Limits::max_head`] or [`Limits::max_headers`],
    /// or the trailer section exceeds [`Limits::MAX_TRAILER`].
    #[error("request header fields too large")]
    HeadersTooLarge,
    /// 413: the body exceeds [`Limits::max_body`].
    #[error("request body too large")]
    PayloadTooLarge,
    /// 501: a feature the request relies on is not supported, such as a transfer-coding.
    #[error("not implemented: {0}")]
    NotImplemented(&'static str),
    /// 505: the request line names an HTTP version other than 1.0 or 1.1.
    #[error("HTTP version not supported")]
    VersionNotSupported,
}

impl ProtocolError {
    /// The response status for this error.
    pub fn status(&self) -> u16 {
        match self {
            ProtocolError::BadRequest(_) => 400,
            ProtocolError::UriTooLong => 414,
            ProtocolError::HeadersTooLarge => 431,
            ProtocolError::PayloadTooLarge => 413,
            ProtocolError::NotImplemented(_) => 501,
            ProtocolError::VersionNotSupported => 505,
        }
    }

    /// A short, static explanation for the error response body, so that
    /// answering a hostile client never allocates.
    pub fn detail(&self) -> &'static str {
        match self {
            ProtocolError::BadRequest(reason) | ProtocolError::NotImplemented(reason) => reason,
            ProtocolError::UriTooLong => "request line too long",
            ProtocolError::HeadersTooLarge => "request header fields too large",
            ProtocolError::PayloadTooLarge => "request body too large",
            ProtocolError::VersionNotSupported => "only HTTP/1.0 and HTTP/1.1 are supported",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_match_rfc_codes() {
        assert_eq!(ProtocolError::BadRequest("x").status(), 400);
        assert_eq!(ProtocolError::UriTooLong.status(), 414);
        assert_eq!(ProtocolError::HeadersTooLarge.status(), 431);
        assert_eq!(ProtocolError::PayloadTooLarge.status(), 413);
        assert_eq!(ProtocolError::NotImplemented("x").status(), 501);
        assert_eq!(ProtocolError::VersionNotSupported.status(), 505);
    }

    #[test]
    fn detail_carries_the_reason() {
        assert_eq!(
            ProtocolError::BadRequest("missing Host").detail(),
            "missing Host"
        );
        assert_eq!(
            ProtocolError::NotImplemented("gzip").to_string(),
            "not implemented: gzip"
        );
    }

    #[test]
    fn default_limits_use_documented_constants() {
        let limits = Limits::default();
        assert_eq!(limits.max_request_line, 8192);
        assert_eq!(limits.max_head, 65536);
        assert_eq!(limits.max_headers, 100);
        assert_eq!(limits.max_body, 10 * 1024 * 1024);
    }
}
