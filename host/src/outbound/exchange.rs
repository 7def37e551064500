//! One request and its response on one connection, reporting how far a
//! failed exchange got so the caller knows whether sending again is safe.

use tokio::io::AsyncWriteExt;

use super::response_body::Reader;
use super::response_head::{self, MAX_HEAD};
use super::stream::Stream;
use super::{FetchError, FetchResponse};

/// Bodies up to this size go out in the same write as the head.
const COALESCE_BODY: usize = 16 * 1024;
/// Bytes asked for per read while waiting for a head.
const HEAD_READ: usize = 8 * 1024;

/// How far a failed exchange got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Progress {
    /// Not one byte of the request reached the connection.
    NothingSent,
    /// The request was (perhaps partly) sent; no response byte arrived.
    Sent,
    /// Some of a response arrived.
    Answered,
}

#[derive(Debug)]
pub(super) struct Failure {
    pub error: FetchError,
    pub progress: Progress,
}

impl Failure {
    /// Whether the request may go out again on a fresh connection after
    /// failing on a reused one, which the server may have closed just as it
    /// was picked: always when nothing was sent, and for idempotent methods
    /// when nothing came back.
    pub fn may_retry(&self, idempotent: bool) -> bool {
        match self.progress {
            Progress::NothingSent => true,
            Progress::Sent => idempotent,
            Progress::Answered => false,
        }
    }
}

/// The response, and whether the connection may serve another request.
pub(super) struct Completed {
    pub response: FetchResponse,
    pub reusable: bool,
}

/// Sends `head` and `body`, then reads the final response (interim `1xx`
/// responses are skipped), reading at most `limit` bytes of it.
pub(super) async fn exchange(
    stream: &mut Stream,
    method: &str,
    head: &[u8],
    body: &[u8],
    limit: u64,
) -> Result<Completed, Failure> {
    send(stream, head, body).await?;
    let mut reader = Reader::new(stream, limit);
    receive(&mut reader, method).await.map_err(|error| Failure {
        error,
        progress: if reader.received == 0 {
            Progress::Sent
        } else {
            Progress::Answered
        },
    })
}

async fn send(stream: &mut Stream, head: &[u8], body: &[u8]) -> Result<(), Failure> {
    let mut sent_any = false;
    let result = if body.len() <= COALESCE_BODY {
        let message = [head, body].concat();
        write_tracked(stream, &message, &mut sent_any).await
    } else {
        match write_tracked(stream, head, &mut sent_any).await {
            Ok(()) => write_tracked(stream, body, &mut sent_any).await,
            Err(err) => Err(err),
        }
    };
    let result = match result {
        Ok(()) => stream.flush().await,
        Err(err) => Err(err),
    };
    result.map_err(|err| Failure {
        error: FetchError::from_io(&err),
        progress: if sent_any {
            Progress::Sent
        } else {
            Progress::NothingSent
        },
    })
}

/// `write_all` that records whether any write was accepted.
async fn write_tracked(
    stream: &mut Stream,
    mut bytes: &[u8],
    sent_any: &mut bool,
) -> std::io::Result<()> {
    while !bytes.is_empty() {
        let n = stream.write(bytes).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        *sent_any = true;
        bytes = bytes.get(n..).unwrap_or_default();
    }
    Ok(())
}

async fn receive(reader: &mut Reader<'_>, method: &str) -> Result<Completed, FetchError> {
    let mut scanned = 0;
    let head = loop {
        if reader.buf.len() > MAX_HEAD || response_head::has_end(&reader.buf, scanned) {
            if let Some((head, len)) = response_head::parse(&reader.buf, method)? {
                reader.buf.drain(..len);
                scanned = 0;
                match head.status {
                    101 => return Err(FetchError::protocol("unrequested protocol switch")),
                    100..=199 => continue,
                    _ => break head,
                }
            }
        }
        scanned = reader.buf.len();
        let anything = reader.received > 0;
        if !reader.fill(HEAD_READ).await? {
            return Err(FetchError::protocol(if anything {
                "connection closed in the response head"
            } else {
                "connection closed before the response"
            }));
        }
    };
    let body = reader.body(head.framing).await?;
    Ok(Completed {
        response: FetchResponse {
            status: head.status,
            headers: head.headers,
            body,
        },
        // Bytes after the response are not an answer to anything: the
        // connection is out of step and must not be reused.
        reusable: head.keep_alive && reader.buf.is_empty(),
    })
}
