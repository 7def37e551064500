//! Responses queued on a connection, in order. Heads and small bodies are
//! coalesced into one buffer so that pipelined answers leave in few writes;
//! a large body is queued as the `Vec` the handler gave, never copied.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::time::{timeout_at, Instant};

/// Bodies smaller than this are copied behind their head; larger ones are
/// sent from where they are.
const INLINE_BODY: usize = 16 * 1024;

/// Buffer kept between requests; a larger one is given back once sent.
const MAX_KEPT: usize = 64 * 1024;

/// Segments handed to one vectored write.
const MAX_SLICES: usize = 8;

/// Why queued bytes were not all sent.
#[derive(Debug)]
pub(super) enum SendError {
    /// The peer accepted nothing for the whole send timeout.
    Stalled,
    /// The connection's deadline passed.
    Deadline,
    Io(io::Error),
}

#[derive(Default)]
pub(super) struct Output {
    segments: VecDeque<Vec<u8>>,
    /// Bytes of the front segment already sent.
    sent: usize,
    /// Whether the last segment is a body queued whole, which nothing may be
    /// appended to.
    sealed: bool,
}

impl Output {
    /// The buffer to append heads and small bodies to.
    pub fn tail(&mut self) -> &mut Vec<u8> {
        if self.sealed || self.segments.is_empty() {
            self.sealed = false;
            self.segments.push_back(Vec::new());
        }
        let last = self.segments.len() - 1;
        &mut self.segments[last]
    }

    /// Queues `body` after what is queued, without copying a large one.
    pub fn push_body(&mut self, body: Vec<u8>) {
        if body.len() < INLINE_BODY {
            self.tail().extend_from_slice(&body);
        } else {
            self.segments.push_back(body);
            self.sealed = true;
        }
    }

    /// Bytes queued and not yet sent.
    pub fn len(&self) -> usize {
        self.segments.iter().map(Vec::len).sum::<usize>() - self.sent
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sends everything queued. Each write must get some bytes accepted
    /// within `stall`, and all of them must be done by `deadline`. On an
    /// error what is left is dropped: the connection is closing.
    pub async fn send<S: AsyncWrite + Unpin>(
        &mut self,
        stream: &mut S,
        stall: Duration,
        deadline: Option<Instant>,
    ) -> Result<(), SendError> {
        let result = self.send_all(stream, stall, deadline).await;
        self.clear();
        result
    }

    async fn send_all<S: AsyncWrite + Unpin>(
        &mut self,
        stream: &mut S,
        stall: Duration,
        deadline: Option<Instant>,
    ) -> Result<(), SendError> {
        while !self.is_empty() {
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            let count = self.slices(&mut slices);
            // Most writes are taken at once; only one that waits needs the
            // clock and a timer, which cost as much as the write's own code.
            let at_once = std::future::poll_fn(|cx| {
                Poll::Ready(Pin::new(&mut *stream).poll_write_vectored(cx, &slices[..count]))
            })
            .await;
            let written = match at_once {
                Poll::Ready(written) => written,
                Poll::Pending => {
                    let stalled_at = Instant::now() + stall;
                    let (until, late) = match deadline {
                        Some(deadline) if deadline < stalled_at => (deadline, SendError::Deadline),
                        _ => (stalled_at, SendError::Stalled),
                    };
                    match timeout_at(until, stream.write_vectored(&slices[..count])).await {
                        Ok(written) => written,
                        Err(_) => return Err(late),
                    }
                }
            };
            let written = match written {
                Ok(0) => return Err(SendError::Io(io::ErrorKind::WriteZero.into())),
                Ok(n) => n,
                Err(err) => return Err(SendError::Io(err)),
            };
            self.advance(written);
        }
        stream.flush().await.map_err(SendError::Io)
    }

    /// Fills `slices` with the unsent bytes, front first; returns how many.
    fn slices<'a>(&'a self, slices: &mut [IoSlice<'a>; MAX_SLICES]) -> usize {
        let mut count = 0;
        for (index, segment) in self.segments.iter().enumerate() {
            if count == MAX_SLICES {
                break;
            }
            let skip = if index == 0 { self.sent } else { 0 };
            let rest = segment.get(skip..).unwrap_or_default();
            if !rest.is_empty() {
                slices[count] = IoSlice::new(rest);
                count += 1;
            }
        }
        count
    }

    fn advance(&mut self, mut written: usize) {
        while let Some(front) = self.segments.front() {
            let left = front.len() - self.sent;
            if written < left {
                self.sent += written;
                return;
            }
            written -= left;
            self.sent = 0;
            let done = self.segments.pop_front();
            if self.segments.is_empty() {
                self.sealed = false;
                // Keep one modest buffer for the next answers.
                if let Some(mut done) = done.filter(|d| d.capacity() <= MAX_KEPT) {
                    done.clear();
                    self.segments.push_back(done);
                }
                return;
            }
        }
    }

    fn clear(&mut self) {
        self.sent = 0;
        self.sealed = false;
        self.segments.retain(|s| s.capacity() <= MAX_KEPT);
        self.segments.truncate(1);
        if let Some(kept) = self.segments.front_mut() {
            kept.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queued(output: &Output) -> Vec<u8> {
        let mut slices = [IoSlice::new(&[]); MAX_SLICES];
        let count = output.slices(&mut slices);
        slices[..count].iter().flat_map(|s| s.to_vec()).collect()
    }

    #[test]
    fn small_bodies_are_coalesced_and_large_ones_kept_apart() {
        let mut output = Output::default();
        output.tail().extend_from_slice(b"head1|");
        output.push_body(b"small".to_vec());
        output.tail().extend_from_slice(b"|head2|");
        let large = vec![b'x'; INLINE_BODY];
        let at = large.as_ptr();
        output.push_body(large);
        output.tail().extend_from_slice(b"|head3");
        assert_eq!(output.segments.len(), 3);
        assert_eq!(
            output.segments[1].as_ptr(),
            at,
            "the large body is not copied"
        );
        let mut want = b"head1|small|head2|".to_vec();
        want.extend_from_slice(&[b'x'; INLINE_BODY]);
        want.extend_from_slice(b"|head3");
        assert_eq!(queued(&output), want);
        assert_eq!(output.len(), want.len());
    }

    #[test]
    fn partial_writes_resume_where_they_stopped() {
        let mut output = Output::default();
        output.tail().extend_from_slice(b"abc");
        output.push_body(vec![b'x'; INLINE_BODY]);
        output.tail().extend_from_slice(b"def");
        output.advance(2);
        assert_eq!(&queued(&output)[..2], b"cx");
        output.advance(1 + INLINE_BODY);
        assert_eq!(queued(&output), b"def");
        output.advance(3);
        assert!(output.is_empty());
        // The small buffer is kept for the next answer, the body is not.
        assert_eq!(output.segments.len(), 1);
        assert!(output.segments[0].capacity() >= 3);
    }
}
