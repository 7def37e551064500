//! Reads a response from the connection under the size limit, and its body
//! by Content-Length, chunked framing or until close.

use tokio::io::AsyncReadExt;

use super::response_head::BodyFraming;
use super::stream::Stream;
use super::FetchError;
use crate::http::{BodyDecoder, Framing, ProtocolError};

/// Most bytes asked of the connection in one read.
const READ_CHUNK: usize = 16 * 1024;
/// Most body capacity reserved before the bytes have arrived, so that a
/// large Content-Length alone costs no memory.
const MAX_PREALLOCATION: usize = 1024 * 1024;

/// Buffered reading that counts every byte and never reads more than one
/// byte past the limit, so an oversized response is noticed at once.
pub(super) struct Reader<'s> {
    stream: &'s mut Stream,
    /// Read but not yet consumed.
    pub buf: Vec<u8>,
    /// Bytes read from the connection so far.
    pub received: u64,
    limit: u64,
}

impl<'s> Reader<'s> {
    pub fn new(stream: &'s mut Stream, limit: u64) -> Reader<'s> {
        Reader {
            stream,
            buf: Vec::new(),
            received: 0,
            limit,
        }
    }

    /// Reads up to `want` more bytes; `Ok(false)` at the end of the stream.
    pub async fn fill(&mut self, want: usize) -> Result<bool, FetchError> {
        let room = self.limit.saturating_add(1).saturating_sub(self.received);
        let n = usize::try_from(room)
            .unwrap_or(usize::MAX)
            .min(want)
            .clamp(1, READ_CHUNK);
        let start = self.buf.len();
        self.buf.resize(start + n, 0);
        let read = match self.buf.get_mut(start..) {
            Some(spare) => self.stream.read(spare).await,
            None => Ok(0),
        };
        let got = read.as_ref().map_or(0, |&got| got);
        self.buf.truncate(start + got);
        let got = read.map_err(|err| FetchError::from_io(&err))?;
        self.received += got as u64;
        if self.received > self.limit {
            return Err(FetchError::TooLarge);
        }
        Ok(got > 0)
    }

    /// Reads the body that follows a head already taken from `buf`.
    pub async fn body(&mut self, framing: BodyFraming) -> Result<Vec<u8>, FetchError> {
        match framing {
            BodyFraming::Empty => Ok(Vec::new()),
            BodyFraming::Length(length) => self.length_body(length).await,
            BodyFraming::Chunked => self.chunked_body().await,
            BodyFraming::UntilClose => {
                while self.fill(READ_CHUNK).await? {}
                Ok(std::mem::take(&mut self.buf))
            }
        }
    }

    /// Bytes of the response before those still in `buf`.
    fn consumed(&self) -> u64 {
        self.received - self.buf.len() as u64
    }

    async fn length_body(&mut self, length: u64) -> Result<Vec<u8>, FetchError> {
        // Known too large before any of it arrives.
        if self.consumed().saturating_add(length) > self.limit {
            return Err(FetchError::TooLarge);
        }
        let length = usize::try_from(length).map_err(|_| FetchError::TooLarge)?;
        let buffered = length.min(self.buf.len());
        let mut body = Vec::with_capacity(length.min(MAX_PREALLOCATION));
        body.extend(self.buf.drain(..buffered));
        while body.len() < length {
            // Asking for no more than the body keeps any bytes after it unread.
            if !self.fill(length - body.len()).await? {
                return Err(FetchError::protocol("connection closed mid-body"));
            }
            body.append(&mut self.buf);
        }
        Ok(body)
    }

    async fn chunked_body(&mut self) -> Result<Vec<u8>, FetchError> {
        let allowance = self.limit.saturating_sub(self.consumed());
        let mut decoder = BodyDecoder::new(&Framing::Chunked, allowance);
        let mut body = Vec::new();
        loop {
            let (used, done) = decoder
                .decode(&self.buf, &mut body)
                .map_err(chunked_error)?;
            self.buf.drain(..used);
            if done {
                return Ok(body);
            }
            if !self.fill(READ_CHUNK).await? {
                return Err(FetchError::protocol("connection closed mid-body"));
            }
        }
    }
}

fn chunked_error(err: ProtocolError) -> FetchError {
    match err {
        ProtocolError::PayloadTooLarge => FetchError::TooLarge,
        ProtocolError::HeadersTooLarge => FetchError::protocol("trailer section too large"),
        other => FetchError::protocol(format!("bad chunked body: {}", other.detail())),
    }
}
