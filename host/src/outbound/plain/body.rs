//! A response body read from a plain connection: whole, under the size
//! limit, or as a stream of frames; either way the connection goes back to
//! its pool, with its read buffer, once the body has ended exactly where
//! its framing said.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use hyper::body::{Body, Frame, SizeHint};
use tokio_util::io::poll_read_buf;

use crate::http::{self, BodyDecoder};

use super::super::error::BoxError;
use super::super::response::MAX_PREALLOCATION;
use super::super::FetchError;
use super::head::{body_error, Framing};
use super::idle::{Conn, IdleSet, Key};

/// Bytes read from the socket at a time, once the head is in.
const READ_SIZE: usize = 64 * 1024;

/// A connection with a response body still to read.
pub(in crate::outbound) struct PlainBody {
    /// `None` once the body has ended or failed.
    conn: Option<Conn>,
    decoding: Decoding,
    /// Where the connection goes once the body has ended.
    home: Option<(Arc<IdleSet>, Key)>,
}

#[derive(Debug)]
enum Decoding {
    Length(u64),
    Chunked(BodyDecoder),
    Close,
    Done,
}

/// What to do with the body bytes in the buffer.
enum Sink<'a> {
    /// Append them here.
    Append(&'a mut Vec<u8>),
    /// Hand them out as one frame.
    Frame(&'a mut Option<Bytes>),
}

impl PlainBody {
    /// `conn.buf` holds what followed the head; `home`, when the connection
    /// may carry another request.
    pub(super) fn new(conn: Conn, framing: Framing, home: Option<(Arc<IdleSet>, Key)>) -> Self {
        let decoding = match framing {
            Framing::Empty | Framing::Length(0) => Decoding::Done,
            Framing::Length(n) => Decoding::Length(n),
            Framing::Chunked => {
                Decoding::Chunked(BodyDecoder::new(&http::Framing::Chunked, u64::MAX))
            }
            Framing::Close => Decoding::Close,
        };
        let mut body = PlainBody {
            conn: Some(conn),
            decoding,
            home,
        };
        body.finish_if_done();
        body
    }

    /// The whole body, refused past `room` bytes.
    pub(super) async fn read_whole(mut self, room: u64) -> Result<Vec<u8>, FetchError> {
        let capacity = match self.decoding {
            Decoding::Length(n) if n > room => return Err(FetchError::TooLarge),
            // A declared length alone, before its bytes, reserves little.
            Decoding::Length(n) => usize::try_from(n).map_or(0, |n| n.min(MAX_PREALLOCATION)),
            _ => 0,
        };
        let mut body = Vec::with_capacity(capacity);
        loop {
            let more = std::future::poll_fn(|cx| self.poll_step(cx, Sink::Append(&mut body)));
            let more = more.await?;
            if body.len() as u64 > room {
                return Err(FetchError::TooLarge);
            }
            if !more {
                return Ok(body);
            }
        }
    }

    /// Moves what the buffer holds of the body into `sink`, reading more
    /// first when it holds none; false once the body has ended.
    fn poll_step(
        &mut self,
        cx: &mut Context<'_>,
        mut sink: Sink<'_>,
    ) -> Poll<Result<bool, FetchError>> {
        loop {
            let Some(conn) = self.conn.as_mut() else {
                return Poll::Ready(Ok(false));
            };
            if !conn.buf.is_empty() {
                let step = decode(&mut self.decoding, &mut conn.buf, &mut sink);
                if let Err(err) = step {
                    self.fail();
                    return Poll::Ready(Err(err));
                }
                self.finish_if_done();
                return Poll::Ready(Ok(true));
            }
            // A short body read whole needs no more room than it has left:
            // the buffer stays small enough to be kept with the connection.
            let want = match (&sink, &self.decoding) {
                (Sink::Append(_), Decoding::Length(left)) => {
                    usize::try_from(*left).map_or(READ_SIZE, |left| left.min(READ_SIZE))
                }
                _ => READ_SIZE,
            };
            conn.buf.reserve(want);
            // Through `AsyncRead`, whose short reads clear the reactor's
            // readiness: the idle check then needs no system call.
            let read = ready!(poll_read_buf(Pin::new(&mut conn.stream), cx, &mut conn.buf));
            match read {
                Ok(0) if matches!(self.decoding, Decoding::Close) => {
                    self.decoding = Decoding::Done;
                    self.fail();
                    return Poll::Ready(Ok(false));
                }
                Ok(0) => {
                    self.fail();
                    return Poll::Ready(Err(FetchError::cut_short()));
                }
                Ok(_) => {}
                Err(err) => {
                    self.fail();
                    return Poll::Ready(Err(FetchError::from_io(&err)));
                }
            }
        }
    }

    /// Puts the connection back in its pool once the body has ended, and
    /// only if nothing followed it: a server that sent more than it framed
    /// cannot be trusted with the next request.
    fn finish_if_done(&mut self) {
        if !matches!(self.decoding, Decoding::Done) {
            return;
        }
        if let (Some(conn), Some((set, key))) = (self.conn.take(), self.home.take()) {
            if conn.buf.is_empty() {
                set.checkin(key, conn);
            }
        }
    }

    fn fail(&mut self) {
        self.conn = None;
        self.home = None;
    }
}

/// Moves the body bytes at the front of `buf` into `sink`.
fn decode(
    decoding: &mut Decoding,
    buf: &mut BytesMut,
    sink: &mut Sink<'_>,
) -> Result<(), FetchError> {
    match decoding {
        Decoding::Length(left) => {
            let take = usize::try_from(*left).map_or(buf.len(), |n| n.min(buf.len()));
            *left -= take as u64;
            if *left == 0 {
                *decoding = Decoding::Done;
            }
            match sink {
                Sink::Append(out) => {
                    out.extend_from_slice(&buf[..take]);
                    buf.advance(take);
                }
                Sink::Frame(frame) => **frame = Some(take_front(buf, take)),
            }
        }
        Decoding::Close => match sink {
            Sink::Append(out) => {
                out.extend_from_slice(buf);
                buf.clear();
            }
            Sink::Frame(frame) => **frame = Some(take_front(buf, buf.len())),
        },
        Decoding::Chunked(decoder) => {
            let mut scratch = Vec::new();
            let out = match sink {
                Sink::Append(out) => &mut **out,
                Sink::Frame(_) => &mut scratch,
            };
            let (used, done) = decoder.decode(buf, out).map_err(|err| body_error(&err))?;
            buf.advance(used);
            if done {
                *decoding = Decoding::Done;
            }
            if let Sink::Frame(frame) = sink {
                **frame = (!scratch.is_empty()).then(|| scratch.into());
            }
        }
        Decoding::Done => {}
    }
    Ok(())
}

/// The first `n` bytes of `buf`. The whole buffer is handed over as it is,
/// so that the frame owns its allocation alone and becomes a `Vec` without
/// a copy; the next read gets a new buffer.
fn take_front(buf: &mut BytesMut, n: usize) -> Bytes {
    if n == buf.len() {
        std::mem::take(buf).freeze()
    } else {
        buf.split_to(n).freeze()
    }
}

impl Body for PlainBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let body = self.get_mut();
        loop {
            let mut frame = None;
            match ready!(body.poll_step(cx, Sink::Frame(&mut frame))) {
                Err(err) => return Poll::Ready(Some(Err(err.into()))),
                Ok(more) => {
                    if let Some(data) = frame.filter(|data| !data.is_empty()) {
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    if !more {
                        return Poll::Ready(None);
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.conn.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        match self.decoding {
            Decoding::Length(n) => SizeHint::with_exact(n),
            Decoding::Done => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}
