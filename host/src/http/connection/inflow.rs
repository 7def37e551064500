//! Request bodies that stream in. A body that is complete when its head is
//! read, or short enough to wait for, is handed over whole as before;
//! otherwise the request goes to its handler with what has arrived, and a
//! pump feeds the rest through a channel of one chunk while the answer is
//! awaited, reading the socket only as fast as the handler takes chunks.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::sync::mpsc;
use tokio::time::timeout;

use super::{Connection, READ_CHUNK};
use crate::http::message::Request;
use crate::http::stream::{BodyError, BodyIn, Inflow, CHUNK};
use crate::http::{BodyDecoder, Framing, ProtocolError, RequestHead};

pub(super) struct Pump {
    decoder: BodyDecoder,
    tx: mpsc::Sender<Inflow>,
    /// Decoded and not yet taken (the last bytes and the end at most);
    /// kept here so a cancelled pump loses nothing.
    pending: VecDeque<Inflow>,
    state: State,
    max_body: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Flowing,
    /// The whole body went through; the connection may serve the next
    /// request.
    Done,
    /// The body broke, or its reader left before its end: what follows on
    /// the socket cannot be trusted as the next request.
    Stopped,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    /// Reads the body of `head` as far as it makes sense to wait: all of it
    /// when it is at most one chunk long or has already arrived, otherwise
    /// what is buffered, with the rest streaming in as the request is
    /// answered. At most `max_body` bytes (413 before any are read when the
    /// length says more). `None` as for [`Self::read_request`].
    pub async fn start_body(
        &mut self,
        head: RequestHead,
        received: Instant,
        max_body: u64,
    ) -> Option<Request> {
        self.inflow = None;
        let short = match head.framing {
            Framing::None => true,
            Framing::Length(n) => n <= CHUNK as u64 || n > max_body,
            Framing::Chunked => false,
        };
        if short {
            let body = self.whole_body(&head, max_body).await?;
            return Some(Request {
                head,
                body,
                rest: None,
                received,
            });
        }
        if head.expect_continue && self.buf.is_empty() {
            self.out
                .tail()
                .extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
        }
        let mut decoder = BodyDecoder::new(&head.framing, max_body);
        let mut first = Vec::new();
        let window = self.buf.len().min(CHUNK);
        let (used, done) = match decoder.decode(&self.buf[..window], &mut first) {
            Ok(step) => step,
            Err(err) => {
                self.reject(&err).await;
                return None;
            }
        };
        self.buf.advance(used);
        let rest = (!done).then(|| {
            let (tx, rest) = BodyIn::channel();
            self.inflow = Some(Pump {
                decoder,
                tx,
                pending: VecDeque::new(),
                state: State::Flowing,
                max_body,
            });
            rest
        });
        Some(Request {
            head,
            body: first,
            rest,
            received,
        })
    }

    /// Whether the last request's body was read to its end, so the next
    /// request may follow on this connection.
    pub fn body_finished(&self) -> bool {
        self.inflow
            .as_ref()
            .is_none_or(|pump| pump.state == State::Done)
    }
}

impl Pump {
    /// Moves body bytes from the socket to the reader until the body ends,
    /// breaks, or its reader leaves.
    pub(super) async fn run<S: AsyncRead + Unpin>(
        &mut self,
        stream: &mut S,
        buf: &mut BytesMut,
        idle: Duration,
    ) {
        loop {
            if let Some(step) = self.pending.pop_front() {
                let Ok(permit) = self.tx.reserve().await else {
                    self.pending.clear();
                    if self.state == State::Flowing {
                        self.state = State::Stopped;
                    }
                    return;
                };
                permit.send(step);
                continue;
            }
            if self.state != State::Flowing {
                return;
            }
            if !buf.is_empty() {
                self.decode(buf);
                continue;
            }
            buf.reserve(READ_CHUNK);
            match timeout(idle, stream.read_buf(buf)).await {
                Ok(Ok(read)) if read > 0 => {}
                Ok(_) => self.fail(BodyError::Broken(
                    "the client closed the connection before the body's end".into(),
                )),
                Err(_) => self.fail(BodyError::Broken(format!(
                    "the client sent no body bytes for {idle:?}"
                ))),
            }
        }
    }

    fn decode(&mut self, buf: &mut BytesMut) {
        let mut out = Vec::new();
        let window = buf.len().min(CHUNK);
        match self.decoder.decode(&buf[..window], &mut out) {
            Ok((used, done)) => {
                buf.advance(used);
                if !out.is_empty() {
                    self.pending.push_back(Ok(Some(out)));
                }
                if done {
                    self.state = State::Done;
                    self.pending.push_back(Ok(None));
                }
            }
            Err(ProtocolError::PayloadTooLarge) => self.fail(BodyError::TooLarge(self.max_body)),
            Err(err) => self.fail(BodyError::Broken(err.detail().to_owned())),
        }
    }

    fn fail(&mut self, err: BodyError) {
        self.state = State::Stopped;
        self.pending.push_back(Err(err));
    }
}
