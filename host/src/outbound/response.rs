//! Reads a response from hyper under the size limit, refusing the framing
//! hyper would tolerate but that only a confused or hostile upstream sends.

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use http::response::Parts;
use http::Version;
use http_body_util::combinators::BoxBody;
use http_body_util::BodyExt;
use hyper::body::{Body, Incoming};

use super::error::BoxError;
use super::plain::PlainBody;
use super::{FetchError, FetchResponse};
use crate::http::head::list_elements;

/// Most body capacity reserved before the bytes have arrived, so that a
/// large Content-Length alone costs no memory.
pub(super) const MAX_PREALLOCATION: usize = 1024 * 1024;

/// Largest response head accepted, as HTTP/1.1 text or as an HTTP/2 header
/// list.
pub(super) const MAX_HEAD: usize = 64 * 1024;

/// Most header fields in one HTTP/1.1 response head.
pub(super) const MAX_HEADERS: usize = 128;

/// The head of `response`, checked and within `limit`, with its body left
/// to stream.
pub(super) fn head(
    response: http::Response<Incoming>,
    limit: u64,
) -> Result<(FetchResponse, UpstreamBody), FetchError> {
    let (head, body) = response.into_parts();
    check_head(&head)?;
    let room = room_after_head(&head, limit)?;
    let body = UpstreamBody {
        body: body.map_err(BoxError::from).boxed(),
        room,
    };
    Ok((fetched(&head, Vec::new()), body))
}

/// A response body as it arrives, from hyper or from the plain path.
pub type UpstreamStream = BoxBody<Bytes, BoxError>;

/// The body of a response whose head came first.
pub struct UpstreamBody {
    body: UpstreamStream,
    /// What the size limit leaves for it, should it be read whole.
    room: u64,
}

impl std::fmt::Debug for UpstreamBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamBody")
            .field("room", &self.room)
            .finish()
    }
}

impl UpstreamBody {
    pub(super) fn plain(body: PlainBody, room: u64) -> UpstreamBody {
        UpstreamBody {
            body: body.boxed(),
            room,
        }
    }

    /// The body as it arrives, unbounded.
    pub fn into_stream(self) -> UpstreamStream {
        self.body
    }

    /// The whole body, under the same limit as a whole response's.
    pub async fn read_whole(self) -> Result<Vec<u8>, FetchError> {
        collect(self.body, self.room).await
    }
}

/// What `limit` leaves for the body once the head is counted.
fn room_after_head(head: &Parts, limit: u64) -> Result<u64, FetchError> {
    let head_len = head_size(head);
    // hyper's read buffer bounds an HTTP/1.1 head only roughly: one read may
    // carry a whole head past its nominal size.
    if head_len > MAX_HEAD as u64 {
        return Err(FetchError::TooLarge);
    }
    limit.checked_sub(head_len).ok_or(FetchError::TooLarge)
}

fn fetched(head: &Parts, body: Vec<u8>) -> FetchResponse {
    FetchResponse {
        status: head.status.as_u16(),
        headers: head
            .headers
            .iter()
            // It no longer describes the de-chunked body.
            .filter(|(name, _)| *name != TRANSFER_ENCODING)
            .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec()))
            .collect(),
        body,
    }
}

/// The whole response, at most `limit` bytes of head and body.
pub(super) async fn read(
    response: http::Response<Incoming>,
    limit: u64,
) -> Result<FetchResponse, FetchError> {
    let (head, body) = response.into_parts();
    check_head(&head)?;
    let room = room_after_head(&head, limit)?;
    let body = body.map_err(BoxError::from).boxed();
    Ok(fetched(&head, collect(body, room).await?))
}

/// The body, refused past `room` bytes.
async fn collect(mut body: UpstreamStream, mut room: u64) -> Result<Vec<u8>, FetchError> {
    // Known too large before any of it arrives.
    let declared = body.size_hint().lower();
    if declared > room {
        return Err(FetchError::TooLarge);
    }
    let mut bytes =
        Vec::with_capacity(usize::try_from(declared).map_or(0, |n| n.min(MAX_PREALLOCATION)));
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|err| FetchError::from_body(&*err))?;
        // Trailer fields are not part of the response a module sees.
        let Ok(data) = frame.into_data() else {
            continue;
        };
        room = room
            .checked_sub(data.len() as u64)
            .ok_or(FetchError::TooLarge)?;
        bytes.extend_from_slice(&data);
    }
    Ok(bytes)
}

/// What hyper accepts but RFC 9112 §6.3 lets a client refuse, and what
/// request smuggling relies on: both framings at once, or a coding other
/// than plain `chunked`, which hyper would read until the connection ends.
fn check_head(head: &Parts) -> Result<(), FetchError> {
    if head.status == http::StatusCode::SWITCHING_PROTOCOLS {
        return Err(FetchError::protocol("unrequested protocol switch"));
    }
    if head.version > Version::HTTP_11 || !head.headers.contains_key(TRANSFER_ENCODING) {
        return Ok(());
    }
    if head.headers.contains_key(CONTENT_LENGTH) {
        return Err(FetchError::protocol(
            "both Transfer-Encoding and Content-Length",
        ));
    }
    let codings: Vec<&[u8]> = head
        .headers
        .get_all(TRANSFER_ENCODING)
        .iter()
        .flat_map(|value| list_elements(value.as_bytes()))
        .collect();
    match codings.as_slice() {
        [only] if only.eq_ignore_ascii_case(b"chunked") => Ok(()),
        _ => Err(FetchError::protocol("unsupported transfer-coding")),
    }
}

/// `HTTP/1.1 200 \r\n`: hyper keeps no reason phrase to count.
pub(super) const STATUS_LINE: usize = 15;

/// The head's size as HTTP/1.1 text: status line, fields, empty line.
fn head_size(head: &Parts) -> u64 {
    text_size(
        head.headers
            .iter()
            .map(|(name, value)| (name.as_str().len(), value.len())),
    )
}

/// The size as HTTP/1.1 text of a head whose fields have these name and
/// value lengths, counted as for [`head_size`] on either path.
pub(super) fn text_size(fields: impl Iterator<Item = (usize, usize)>) -> u64 {
    let fields: usize = fields.map(|(name, value)| name + 2 + value + 2).sum();
    (STATUS_LINE + fields + 2) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(version: Version, fields: &[(&str, &str)]) -> Parts {
        let mut builder = http::Response::builder().version(version);
        for (name, value) in fields {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap().into_parts().0
    }

    #[test]
    fn plain_chunked_and_lengths_are_accepted() {
        for fields in [
            &[("transfer-encoding", "chunked")][..],
            &[("transfer-encoding", " Chunked ")],
            &[("content-length", "3")],
            &[],
        ] {
            assert_eq!(
                check_head(&head(Version::HTTP_11, fields)),
                Ok(()),
                "{fields:?}"
            );
        }
    }

    #[test]
    fn ambiguous_or_unsupported_framing_is_a_protocol_error() {
        for fields in [
            &[("transfer-encoding", "chunked"), ("content-length", "3")][..],
            &[("transfer-encoding", "gzip, chunked")],
            &[
                ("transfer-encoding", "chunked"),
                ("transfer-encoding", "chunked"),
            ],
            &[("transfer-encoding", "gzip")],
            &[("transfer-encoding", "")],
        ] {
            assert!(
                matches!(
                    check_head(&head(Version::HTTP_11, fields)),
                    Err(FetchError::Protocol(_))
                ),
                "{fields:?}"
            );
        }
    }

    #[test]
    fn heads_count_as_their_text() {
        let parts = head(Version::HTTP_11, &[("content-length", "3"), ("x-a", "b")]);
        let text = "HTTP/1.1 200 \r\ncontent-length: 3\r\nx-a: b\r\n\r\n";
        assert_eq!(head_size(&parts), text.len() as u64);
    }
}
