//! Receiving a whole request body into memory, for connections that read
//! more bytes between calls (the public listener and the admin API).

use bytes::{Buf, BytesMut};

use super::{BodyDecoder, ProtocolError, RequestHead};

pub struct BodyReader {
    decoder: BodyDecoder,
    body: Vec<u8>,
}

impl BodyReader {
    /// Starts on the body `head` announces. A client that asked for
    /// `100 Continue` and has not sent any of the body yet gets one queued
    /// in `out`.
    pub fn new(head: &RequestHead, max_body: u64, buffered: &[u8], out: &mut Vec<u8>) -> Self {
        let decoder = BodyDecoder::new(&head.framing, max_body);
        if !decoder.is_done() && head.expect_continue && buffered.is_empty() {
            out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
        }
        Self {
            decoder,
            body: Vec::new(),
        }
    }

    /// Takes what `buf` holds of the body; `Ok(Some(body))` once it is whole.
    pub fn take(&mut self, buf: &mut BytesMut) -> Result<Option<Vec<u8>>, ProtocolError> {
        if !self.decoder.is_done() {
            let (used, _) = self.decoder.decode(buf, &mut self.body)?;
            buf.advance(used);
        }
        Ok(self
            .decoder
            .is_done()
            .then(|| std::mem::take(&mut self.body)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{parse_head, Limits};

    fn head(text: &str) -> RequestHead {
        let limits = Limits::default();
        let (head, _) = parse_head(text.as_bytes(), &limits)
            .expect("valid head")
            .expect("complete head");
        head
    }

    #[test]
    fn a_body_arriving_in_pieces_comes_out_whole() {
        let head = head("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
        let mut out = Vec::new();
        let mut reader = BodyReader::new(&head, 100, b"", &mut out);
        assert!(out.is_empty());
        let mut buf = BytesMut::from(&b"3\r\nab"[..]);
        assert_eq!(reader.take(&mut buf), Ok(None));
        assert!(buf.is_empty());
        buf.extend_from_slice(b"c\r\n0\r\n\r\nGET /next");
        assert_eq!(reader.take(&mut buf), Ok(Some(b"abc".to_vec())));
        assert_eq!(&buf[..], b"GET /next");
    }

    #[test]
    fn continue_is_sent_only_when_the_client_waits_for_it() {
        let text =
            "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n";
        let mut out = Vec::new();
        BodyReader::new(&head(text), 100, b"", &mut out);
        assert_eq!(out, b"HTTP/1.1 100 Continue\r\n\r\n");
        out.clear();
        BodyReader::new(&head(text), 100, b"hi", &mut out);
        assert!(out.is_empty());
        let empty =
            "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nExpect: 100-continue\r\n\r\n";
        let mut reader = BodyReader::new(&head(empty), 100, b"", &mut out);
        assert!(out.is_empty());
        assert_eq!(reader.take(&mut BytesMut::new()), Ok(Some(Vec::new())));
    }

    #[test]
    fn a_body_over_the_limit_fails() {
        let head = head("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n");
        let mut reader = BodyReader::new(&head, 5, b"", &mut Vec::new());
        let err = reader.take(&mut BytesMut::from(&b"0123456789"[..]));
        assert_eq!(err, Err(ProtocolError::PayloadTooLarge));
    }
}
