//! Streamed responses: the head and first bytes at once, then each chunk as
//! its producer sends it, framed by length, by chunks, or by the close. The
//! next chunk is taken only once the previous one is on its way, so a slow
//! client holds back the producer. A producer that gives up, breaks its
//! announced length or goes quiet too long cuts the response off by closing
//! the connection, so the client never takes a partial body for a whole one.

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::timeout;

use super::Connection;
use crate::http::message::Streamed;
use crate::http::response::BodyLength;
use crate::http::stream::Outflow;
use crate::http::ResponseOptions;

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    /// Sends a streamed response to its end. Whether the connection may
    /// serve another request afterwards.
    pub async fn send_stream(
        &mut self,
        status: u16,
        streamed: Box<Streamed>,
        opts: &ResponseOptions,
    ) -> bool {
        let mut opts = *opts;
        if !streamed.write_head(status, self.out.tail(), &mut opts) {
            // HEAD, 204, 304: the head is all; dropping the body stops it.
            return opts.keep_alive;
        }
        let framing = BodyLength::for_stream(streamed.length, &opts);
        let Streamed {
            first,
            length,
            mut body,
            ..
        } = *streamed;
        let mut sent = 0u64;
        let mut chunk = first;
        loop {
            if !chunk.is_empty() {
                sent += chunk.len() as u64;
                if length.is_some_and(|length| sent > length) {
                    tracing::warn!("a streamed body went past its content-length; cut off");
                    return false;
                }
                self.frame(std::mem::take(&mut chunk), framing);
            }
            if self.flush().await.is_err() {
                return false;
            }
            let idle = self.timeouts.stream_idle;
            let next = tokio::select! {
                next = timeout(idle, body.next()) => next,
                () = self.watch() => return false,
            };
            match next {
                Ok(Some(Outflow::Data(data))) => chunk = data,
                Ok(Some(Outflow::End)) => break,
                Ok(None) => {
                    tracing::debug!("a streamed body was given up by its producer; cut off");
                    return false;
                }
                Err(_) => {
                    tracing::debug!(
                        "a streamed body sent nothing for {:?}; cut off",
                        self.timeouts.stream_idle
                    );
                    return false;
                }
            }
        }
        if length.is_some_and(|length| sent != length) {
            tracing::warn!("a streamed body ended short of its content-length; cut off");
            return false;
        }
        if framing == BodyLength::Chunked {
            self.out.tail().extend_from_slice(b"0\r\n\r\n");
        }
        self.flush().await.is_ok() && opts.keep_alive
    }

    fn frame(&mut self, data: Vec<u8>, framing: BodyLength) {
        if framing == BodyLength::Chunked {
            let size = format!("{:x}\r\n", data.len());
            self.out.tail().extend_from_slice(size.as_bytes());
            self.out.push_body(data);
            self.out.tail().extend_from_slice(b"\r\n");
        } else {
            self.out.push_body(data);
        }
    }
}
