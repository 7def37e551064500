//! Bodies that flow while a request is answered, between a connection and
//! whatever produces or consumes them on the same worker thread. Both
//! directions are bounded channels of one chunk: a producer waits until
//! the consumer has taken the previous chunk, so a slow side slows the
//! other down instead of filling memory.

use std::time::Duration;

use hyper::body::Body as _;
use tokio::sync::mpsc;

use crate::outbound::UpstreamStream;

/// The chunk size a connection reads request bodies in, and the most one
/// read of a request body hands over unless asked for more.
pub const CHUNK: usize = 64 * 1024;

/// The largest read of a request body a consumer may ask for.
pub const MAX_READ: usize = 1024 * 1024;

/// Why a request body could not be read to its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// Longer than the limit, in bytes.
    TooLarge(u64),
    /// The client broke the framing, went quiet or went away.
    Broken(String),
}

/// One step of a request body: bytes, its end (`None`), or why it broke.
pub type Inflow = Result<Option<Vec<u8>>, BodyError>;

/// A body arriving: the rest of a request's, as the connection reads it
/// from the socket, or a fetched response's, as the upstream sends it.
#[derive(Debug)]
pub struct BodyIn {
    source: Source,
    /// Bytes received beyond what the last read asked for.
    leftover: Vec<u8>,
    /// The end or an error was seen; what follows repeats it.
    ended: Option<Inflow>,
}

#[derive(Debug)]
enum Source {
    Connection(mpsc::Receiver<Inflow>),
    /// Quiet past `idle`, the body is broken off. Boxed: every request
    /// carries a `BodyIn`'s room, and few are upstream bodies.
    Upstream {
        body: UpstreamStream,
        idle: Duration,
    },
}

impl BodyIn {
    /// A channel for a body: the sender goes to the connection's pump.
    pub fn channel() -> (mpsc::Sender<Inflow>, Self) {
        let (tx, rx) = mpsc::channel(1);
        (tx, Self::from(Source::Connection(rx)))
    }

    /// An upstream's response body.
    pub fn upstream(body: UpstreamStream, idle: Duration) -> Self {
        Self::from(Source::Upstream { body, idle })
    }

    fn from(source: Source) -> Self {
        Self {
            source,
            leftover: Vec::new(),
            ended: None,
        }
    }

    /// The next bytes of the body, at most `max` (0 or more than
    /// [`MAX_READ`]: the chunk size), `None` at its end.
    pub async fn read(&mut self, max: usize) -> Inflow {
        let max = if max == 0 || max > MAX_READ {
            CHUNK
        } else {
            max
        };
        if self.leftover.is_empty() {
            match self.next().await {
                Ok(Some(bytes)) => self.leftover = bytes,
                end => return end,
            }
        }
        if self.leftover.len() <= max {
            return Ok(Some(std::mem::take(&mut self.leftover)));
        }
        let rest = self.leftover.split_off(max);
        Ok(Some(std::mem::replace(&mut self.leftover, rest)))
    }

    /// [`Self::poll_next`], with an upstream's idle timeout.
    async fn next(&mut self) -> Inflow {
        let idle = match &self.source {
            Source::Upstream { idle, .. } => Some(*idle),
            Source::Connection(_) => None,
        };
        let step = std::future::poll_fn(|cx| self.poll_next(cx));
        let Some(idle) = idle else {
            return step.await;
        };
        match tokio::time::timeout(idle, step).await {
            Ok(step) => step,
            Err(_) => {
                let quiet = Err(BodyError::Broken(format!(
                    "the upstream sent no body bytes for {idle:?}"
                )));
                self.ended = Some(quiet.clone());
                quiet
            }
        }
    }

    /// The next bytes as they came, for a reader that polls; after the end
    /// or an error, that again.
    pub fn poll_next(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Inflow> {
        use std::task::Poll;
        if !self.leftover.is_empty() {
            return Poll::Ready(Ok(Some(std::mem::take(&mut self.leftover))));
        }
        if let Some(ended) = &self.ended {
            return Poll::Ready(ended.clone());
        }
        let Poll::Ready(step) = self.poll_source(cx) else {
            return Poll::Pending;
        };
        if !matches!(step, Ok(Some(_))) {
            self.ended = Some(step.clone());
        }
        Poll::Ready(step)
    }

    fn poll_source(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Inflow> {
        use std::task::{ready, Poll};
        match &mut self.source {
            Source::Connection(rx) => Poll::Ready(match ready!(rx.poll_recv(cx)) {
                Some(step) => step,
                None => Err(BodyError::Broken("the connection closed".into())),
            }),
            Source::Upstream { body, .. } => loop {
                match ready!(std::pin::Pin::new(&mut *body).poll_frame(cx)) {
                    // Trailer fields and empty frames are not body bytes.
                    Some(Ok(frame)) => match frame.into_data() {
                        Ok(data) if !data.is_empty() => return Poll::Ready(Ok(Some(data.into()))),
                        _ => continue,
                    },
                    Some(Err(err)) => {
                        let broken = format!("the upstream's body: {err}");
                        return Poll::Ready(Err(BodyError::Broken(broken)));
                    }
                    None => return Poll::Ready(Ok(None)),
                }
            },
        }
    }
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::TooLarge(limit) => write!(f, "the body is longer than {limit} bytes"),
            BodyError::Broken(detail) => write!(f, "the body broke off: {detail}"),
        }
    }
}

impl std::error::Error for BodyError {}

/// One step of a streamed response body.
#[derive(Debug)]
pub enum Outflow {
    Data(Vec<u8>),
    /// The body is complete. A sender dropped without sending this means the
    /// producer failed: the response is cut off, never passed off as whole.
    End,
}

/// The body of a streamed response, as its producer sends it. Dropping it
/// before its end tells the producer to stop (the client left, the
/// response was for HEAD): its sender's `closed` resolves.
#[derive(Debug)]
pub struct BodyOut {
    rx: mpsc::Receiver<Outflow>,
}

impl BodyOut {
    /// A channel for a body, and the body.
    pub fn channel() -> (mpsc::Sender<Outflow>, Self) {
        let (tx, rx) = mpsc::channel(1);
        (tx, Self { rx })
    }

    /// The next step; `None` when the producer gave up.
    pub async fn next(&mut self) -> Option<Outflow> {
        self.rx.recv().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_split_large_chunks_and_repeat_the_end() {
        let (tx, mut body) = BodyIn::channel();
        tokio::spawn(async move {
            tx.send(Ok(Some(b"abcdef".to_vec()))).await.unwrap();
            tx.send(Ok(None)).await.unwrap();
        });
        assert_eq!(body.read(4).await, Ok(Some(b"abcd".to_vec())));
        assert_eq!(body.read(0).await, Ok(Some(b"ef".to_vec())));
        assert_eq!(body.read(0).await, Ok(None));
        assert_eq!(body.read(0).await, Ok(None));
    }

    #[tokio::test]
    async fn a_vanished_pump_is_a_broken_body() {
        let (tx, mut body) = BodyIn::channel();
        drop(tx);
        assert!(matches!(body.read(0).await, Err(BodyError::Broken(_))));
    }

    #[tokio::test]
    async fn a_producer_waits_until_its_chunk_is_taken() {
        let (tx, mut body) = BodyOut::channel();
        tx.send(Outflow::Data(b"a".to_vec())).await.unwrap();
        assert!(tx.try_send(Outflow::End).is_err(), "one chunk at a time");
        assert!(matches!(body.next().await, Some(Outflow::Data(d)) if d == b"a"));
        tx.try_send(Outflow::End).unwrap();
        drop(tx);
        assert!(matches!(body.next().await, Some(Outflow::End)));
        assert!(body.next().await.is_none());
    }
}

/// A body to send on (to a component, or upstream): bytes in hand, then,
/// when set, the rest of a body still arriving. Its length is announced
/// only when it is all in hand.
#[derive(Debug, Default)]
pub struct StreamedBody {
    first: Option<bytes::Bytes>,
    rest: Option<BodyIn>,
}

impl StreamedBody {
    pub fn new(first: bytes::Bytes, rest: Option<BodyIn>) -> Self {
        Self {
            first: (!first.is_empty()).then_some(first),
            rest,
        }
    }
}

impl hyper::body::Body for StreamedBody {
    type Data = bytes::Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, BodyError>>> {
        use std::task::Poll;
        if let Some(first) = self.first.take() {
            return Poll::Ready(Some(Ok(hyper::body::Frame::data(first))));
        }
        let Some(rest) = self.rest.as_mut() else {
            return Poll::Ready(None);
        };
        match rest.poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(Some(bytes))) => {
                Poll::Ready(Some(Ok(hyper::body::Frame::data(bytes.into()))))
            }
            Poll::Ready(Ok(None)) => {
                self.rest = None;
                Poll::Ready(None)
            }
            Poll::Ready(Err(err)) => {
                self.rest = None;
                Poll::Ready(Some(Err(err)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.first.is_none() && self.rest.is_none()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        match (&self.first, &self.rest) {
            (first, None) => {
                hyper::body::SizeHint::with_exact(first.as_ref().map_or(0, |b| b.len() as u64))
            }
            (_, Some(_)) => hyper::body::SizeHint::default(),
        }
    }
}
