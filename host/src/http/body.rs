//! Incremental request-body decoding for Content-Length and chunked framing (RFC 9112 §6–§7).

use super::{Framing, Limits, ProtocolError};

/// Decodes one request body from input that may arrive in arbitrary pieces.
#[derive(Debug, Clone)]
pub struct BodyDecoder {
    state: State,
    max_body: u64,
    /// Body bytes produced so far, including chunks accepted but not yet read.
    decoded: u64,
    /// Bytes of the current chunk-size line, bounded by [`Limits::MAX_CHUNK_LINE`].
    line_len: usize,
    /// Bytes of the trailer section, bounded by [`Limits::MAX_TRAILER`].
    trailer_len: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Content-Length body with this many bytes left.
    Length {
        remaining: u64,
    },
    /// Reading the hex digits of a chunk size.
    Size {
        size: u64,
        digits: u8,
    },
    /// Whitespace after the size, legal only before an extension.
    SizeSpace {
        size: u64,
    },
    /// Inside chunk extensions, which are ignored up to the CR.
    Extension {
        size: u64,
    },
    /// CR of the chunk-size line seen; LF must follow.
    SizeLf {
        size: u64,
    },
    /// Chunk data with this many bytes left.
    Data {
        remaining: u64,
    },
    /// Chunk data complete; CR must follow.
    DataCr,
    /// CR after chunk data seen; LF must follow.
    DataLf,
    /// At the start of a trailer field line or the final empty line.
    TrailerStart,
    /// Inside a trailer field line, which is skipped.
    TrailerLine,
    /// CR of a trailer field line seen; LF must follow.
    TrailerLf,
    /// CR of the final empty line seen; LF must follow.
    EndLf,
    Done,
    /// A previous call failed; the connection must be closed.
    Failed(ProtocolError),
}

impl BodyDecoder {
    /// A decoder for a body framed as `framing`, at most `max_body` decoded bytes.
    ///
    /// `Framing::None` and `Framing::Length(0)` are complete at once.
    pub fn new(framing: &Framing, max_body: u64) -> Self {
        let state = match *framing {
            Framing::None | Framing::Length(0) => State::Done,
            Framing::Length(n) if n > max_body => State::Failed(ProtocolError::PayloadTooLarge),
            Framing::Length(n) => State::Length { remaining: n },
            Framing::Chunked => State::Size { size: 0, digits: 0 },
        };
        BodyDecoder {
            state,
            max_body,
            decoded: 0,
            line_len: 0,
            trailer_len: 0,
        }
    }

    /// Decodes from `input`, appending body bytes to `out`; returns how many
    /// input bytes it consumed and whether the body is complete. Bytes after the
    /// end of the body are NOT consumed (they belong to the next pipelined request).
    ///
    /// After an error every further call returns the same error.
    pub fn decode(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(usize, bool), ProtocolError> {
        if let State::Failed(err) = &self.state {
            return Err(err.clone());
        }
        let mut rest = input;
        while !rest.is_empty() && self.state != State::Done {
            let step = match self.state {
                State::Length { remaining } | State::Data { remaining } => {
                    rest = self.copy_data(rest, remaining, out);
                    Ok(())
                }
                _ => match rest.split_first() {
                    Some((&byte, tail)) => {
                        rest = tail;
                        self.step(byte)
                    }
                    None => Ok(()),
                },
            };
            if let Err(err) = step {
                self.state = State::Failed(err.clone());
                return Err(err);
            }
        }
        Ok((input.len() - rest.len(), self.is_done()))
    }

    /// Whether the whole body, including any trailer section, has been read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Copies up to `remaining` bytes of body data and returns the unread input.
    fn copy_data<'i>(&mut self, input: &'i [u8], remaining: u64, out: &mut Vec<u8>) -> &'i [u8] {
        let take = usize::try_from(remaining).map_or(input.len(), |r| r.min(input.len()));
        let (data, rest) = input.split_at(take);
        out.extend_from_slice(data);
        let left = remaining - data.len() as u64;
        self.state = match self.state {
            State::Length { .. } if left == 0 => State::Done,
            State::Length { .. } => State::Length { remaining: left },
            _ if left == 0 => State::DataCr,
            _ => State::Data { remaining: left },
        };
        rest
    }

    /// Advances the line-oriented part of chunked framing by one byte.
    fn step(&mut self, byte: u8) -> Result<(), ProtocolError> {
        let bad = ProtocolError::BadRequest;
        self.state = match self.state {
            State::Size { size, digits } => {
                if byte != b'\r' {
                    self.count_line_byte()?;
                }
                match hex_value(byte) {
                    Some(value) => {
                        if digits >= Limits::MAX_CHUNK_SIZE_DIGITS {
                            return Err(bad("chunk size too long"));
                        }
                        // At most 16 digits, so this cannot overflow.
                        let size = (size << 4) | u64::from(value);
                        // Refuse as soon as the size is known to be too large,
                        // before any of its data arrives.
                        if self.decoded.saturating_add(size) > self.max_body {
                            return Err(ProtocolError::PayloadTooLarge);
                        }
                        State::Size {
                            size,
                            digits: digits + 1,
                        }
                    }
                    None if digits == 0 => return Err(bad("missing chunk size")),
                    None => match byte {
                        b' ' | b'\t' => State::SizeSpace { size },
                        b';' => State::Extension { size },
                        b'\r' => State::SizeLf { size },
                        _ => return Err(bad("invalid chunk size")),
                    },
                }
            }
            State::SizeSpace { size } => {
                self.count_line_byte()?;
                match byte {
                    b' ' | b'\t' => State::SizeSpace { size },
                    b';' => State::Extension { size },
                    _ => return Err(bad("whitespace after chunk size")),
                }
            }
            State::Extension { size } => match byte {
                b'\r' => State::SizeLf { size },
                b'\t' => {
                    self.count_line_byte()?;
                    State::Extension { size }
                }
                b if b < 0x20 || b == 0x7f => {
                    return Err(bad("control character in chunk extension"))
                }
                _ => {
                    self.count_line_byte()?;
                    State::Extension { size }
                }
            },
            State::SizeLf { size } => {
                if byte != b'\n' {
                    return Err(bad("chunk-size line not ended by CRLF"));
                }
                self.line_len = 0;
                if size == 0 {
                    State::TrailerStart
                } else {
                    self.decoded += size;
                    State::Data { remaining: size }
                }
            }
            State::DataCr => match byte {
                b'\r' => State::DataLf,
                _ => return Err(bad("chunk data not followed by CRLF")),
            },
            State::DataLf => match byte {
                b'\n' => State::Size { size: 0, digits: 0 },
                _ => return Err(bad("chunk data not followed by CRLF")),
            },
            State::TrailerStart => {
                self.count_trailer_byte()?;
                match byte {
                    b'\r' => State::EndLf,
                    b'\n' => return Err(bad("trailer line not ended by CRLF")),
                    0 => return Err(bad("NUL in trailer")),
                    _ => State::TrailerLine,
                }
            }
            State::TrailerLine => {
                self.count_trailer_byte()?;
                match byte {
                    b'\r' => State::TrailerLf,
                    b'\n' => return Err(bad("trailer line not ended by CRLF")),
                    0 => return Err(bad("NUL in trailer")),
                    _ => State::TrailerLine,
                }
            }
            State::TrailerLf => {
                self.count_trailer_byte()?;
                match byte {
                    b'\n' => State::TrailerStart,
                    _ => return Err(bad("trailer line not ended by CRLF")),
                }
            }
            State::EndLf => match byte {
                b'\n' => State::Done,
                _ => return Err(bad("chunked body not ended by CRLF")),
            },
            // Data states are handled in bulk and terminal states consume nothing.
            State::Length { .. } | State::Data { .. } | State::Done | State::Failed(_) => {
                return Ok(());
            }
        };
        Ok(())
    }

    fn count_line_byte(&mut self) -> Result<(), ProtocolError> {
        self.line_len += 1;
        if self.line_len > Limits::MAX_CHUNK_LINE {
            return Err(ProtocolError::BadRequest("chunk-size line too long"));
        }
        Ok(())
    }

    fn count_trailer_byte(&mut self) -> Result<(), ProtocolError> {
        self.trailer_len += 1;
        if self.trailer_len > Limits::MAX_TRAILER {
            return Err(ProtocolError::HeadersTooLarge);
        }
        Ok(())
    }
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: u64 = 1024 * 1024;

    /// Decodes `input` in one call.
    fn decode_all(framing: Framing, input: &[u8]) -> Result<(Vec<u8>, usize, bool), ProtocolError> {
        let mut decoder = BodyDecoder::new(&framing, MAX);
        let mut out = Vec::new();
        let (used, done) = decoder.decode(input, &mut out)?;
        Ok((out, used, done))
    }

    /// Decodes `input` split at every point in `cuts`, checking that consumed
    /// counts are consistent; returns the body and total bytes consumed.
    fn decode_split(
        framing: Framing,
        input: &[u8],
        cuts: &[usize],
    ) -> Result<(Vec<u8>, usize), ProtocolError> {
        let mut decoder = BodyDecoder::new(&framing, MAX);
        let mut out = Vec::new();
        let mut pos = 0;
        let mut bounds = cuts.to_vec();
        bounds.push(input.len());
        for end in bounds {
            // Unconsumed bytes stay in the caller's buffer and are offered again.
            let (used, done) = decoder.decode(&input[pos..end], &mut out)?;
            pos += used;
            assert_eq!(done, decoder.is_done());
            if done {
                break;
            }
            assert_eq!(pos, end, "an unfinished body consumes all its input");
        }
        Ok((out, pos))
    }

    const CHUNKED: &[u8] =
        b"5\r\nhello\r\n1;name=value\r\n \r\nA \t;x\r\n0123456789\r\n0\r\nTrailer: t\r\n\r\n";
    const CHUNKED_BODY: &[u8] = b"hello 0123456789";

    #[test]
    fn no_framing_is_done_immediately() {
        for framing in [Framing::None, Framing::Length(0)] {
            let mut decoder = BodyDecoder::new(&framing, MAX);
            assert!(decoder.is_done());
            let mut out = Vec::new();
            assert_eq!(decoder.decode(b"GET / HTTP/1.1", &mut out), Ok((0, true)));
            assert!(out.is_empty());
        }
    }

    #[test]
    fn length_body_stops_at_its_end() {
        let (out, used, done) = decode_all(Framing::Length(5), b"helloGET / HTTP/1.1").unwrap();
        assert_eq!((out.as_slice(), used, done), (&b"hello"[..], 5, true));
    }

    #[test]
    fn length_body_waits_for_more() {
        let (out, used, done) = decode_all(Framing::Length(10), b"hello").unwrap();
        assert_eq!((out.as_slice(), used, done), (&b"hello"[..], 5, false));
    }

    #[test]
    fn length_body_over_limit_fails() {
        let mut decoder = BodyDecoder::new(&Framing::Length(11), 10);
        let mut out = Vec::new();
        assert_eq!(
            decoder.decode(b"x", &mut out),
            Err(ProtocolError::PayloadTooLarge)
        );
        assert!(out.is_empty());
    }

    #[test]
    fn length_body_at_every_split_point() {
        let input = b"0123456789rest";
        for cut in 0..=input.len() {
            let (out, used) = decode_split(Framing::Length(10), input, &[cut]).unwrap();
            assert_eq!(
                (out.as_slice(), used),
                (&b"0123456789"[..], 10),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn length_body_byte_at_a_time() {
        let input = b"0123456789rest";
        let cuts: Vec<usize> = (1..input.len()).collect();
        let (out, used) = decode_split(Framing::Length(10), input, &cuts).unwrap();
        assert_eq!((out.as_slice(), used), (&b"0123456789"[..], 10));
    }

    #[test]
    fn chunked_body_in_one_piece() {
        let mut input = CHUNKED.to_vec();
        input.extend_from_slice(b"GET /next HTTP/1.1\r\n");
        let (out, used, done) = decode_all(Framing::Chunked, &input).unwrap();
        assert_eq!(out, CHUNKED_BODY);
        assert_eq!(used, CHUNKED.len());
        assert!(done);
    }

    #[test]
    fn chunked_body_at_every_split_point() {
        for cut in 0..=CHUNKED.len() {
            let (out, used) = decode_split(Framing::Chunked, CHUNKED, &[cut]).unwrap();
            assert_eq!(
                (out.as_slice(), used),
                (CHUNKED_BODY, CHUNKED.len()),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn chunked_body_at_every_pair_of_split_points() {
        for a in 0..=CHUNKED.len() {
            for b in a..=CHUNKED.len() {
                let (out, used) = decode_split(Framing::Chunked, CHUNKED, &[a, b]).unwrap();
                assert_eq!(
                    (out.as_slice(), used),
                    (CHUNKED_BODY, CHUNKED.len()),
                    "cuts at {a}, {b}"
                );
            }
        }
    }

    #[test]
    fn chunked_body_byte_at_a_time() {
        let mut input = CHUNKED.to_vec();
        input.extend_from_slice(b"NEXT");
        let cuts: Vec<usize> = (1..input.len()).collect();
        let (out, used) = decode_split(Framing::Chunked, &input, &cuts).unwrap();
        assert_eq!((out.as_slice(), used), (CHUNKED_BODY, CHUNKED.len()));
    }

    #[test]
    fn chunk_sizes_are_case_insensitive_hex_with_leading_zeros() {
        let input = b"0000a\r\n0123456789\r\n0A\r\n0123456789\r\n000\r\n\r\n";
        let (out, used, done) = decode_all(Framing::Chunked, input).unwrap();
        assert_eq!(out.len(), 20);
        assert_eq!((used, done), (input.len(), true));
    }

    #[test]
    fn sixteen_digit_sizes_are_parsed_but_seventeen_are_not() {
        let mut decoder = BodyDecoder::new(&Framing::Chunked, u64::MAX);
        let mut out = Vec::new();
        assert_eq!(
            decoder.decode(b"000000000000000f\r\n", &mut out),
            Ok((18, false))
        );

        let mut decoder = BodyDecoder::new(&Framing::Chunked, u64::MAX);
        assert_eq!(
            decoder.decode(b"ffffffffffffffff\r\n", &mut out),
            Ok((18, false)),
            "u64::MAX fits in 16 digits"
        );

        let mut decoder = BodyDecoder::new(&Framing::Chunked, u64::MAX);
        assert_eq!(
            decoder.decode(b"00000000000000001\r\n", &mut out),
            Err(ProtocolError::BadRequest("chunk size too long"))
        );
        let mut decoder = BodyDecoder::new(&Framing::Chunked, u64::MAX);
        assert_eq!(
            decoder
                .decode(b"10000000000000000\r\n", &mut out)
                .unwrap_err()
                .status(),
            400
        );
    }

    #[test]
    fn bad_chunk_sizes_are_400() {
        let cases: &[&[u8]] = &[
            b"\r\n",                     // empty size
            b";ext\r\n",                 // empty size before an extension
            b" 5\r\nhello\r\n0\r\n\r\n", // leading whitespace
            b"5 \r\nhello\r\n0\r\n\r\n", // trailing whitespace without extension
            b"g\r\n",                    // not hex
            b"0x5\r\nhello\r\n0\r\n\r\n",
            b"-5\r\n",
            b"+5\r\n",
            b"5\nhello\r\n0\r\n\r\n",   // bare LF after size
            b"5\rhello\r\n0\r\n\r\n",   // CR without LF
            b"5;a\nhello\r\n0\r\n\r\n", // bare LF after extension
            b"5;a\x00b\r\nhello\r\n0\r\n\r\n",
            b"5\r\nhelloX\r\n0\r\n\r\n", // data longer than its size
            b"5\r\nhello\n0\r\n\r\n",    // bare LF after data
            b"5\r\nhello\r0\r\n\r\n",
            b"0\r\n\n", // bare LF ends the trailer section
            b"0\r\nX: y\n\r\n",
            b"0\r\nX: y\r\r\n",
            b"0\r\n\rX",
        ];
        for case in cases {
            let result = decode_all(Framing::Chunked, case);
            assert_eq!(
                result.as_ref().map_err(ProtocolError::status),
                Err(400),
                "{:?}",
                String::from_utf8_lossy(case)
            );
        }
    }

    #[test]
    fn errors_are_sticky() {
        let mut decoder = BodyDecoder::new(&Framing::Chunked, MAX);
        let mut out = Vec::new();
        let err = decoder.decode(b"z", &mut out).unwrap_err();
        assert_eq!(decoder.decode(b"0\r\n\r\n", &mut out), Err(err));
        assert!(!decoder.is_done());
    }

    #[test]
    fn long_chunk_extensions_are_400() {
        let mut input = b"1;".to_vec();
        input.resize(Limits::MAX_CHUNK_LINE, b'x');
        input.extend_from_slice(b"\r\na\r\n0\r\n\r\n");
        let (out, _, done) = decode_all(Framing::Chunked, &input).unwrap();
        assert_eq!(
            (out.as_slice(), done),
            (&b"a"[..], true),
            "exactly at the limit"
        );

        let mut input = b"1;".to_vec();
        input.resize(Limits::MAX_CHUNK_LINE + 1, b'x');
        input.extend_from_slice(b"\r\na\r\n0\r\n\r\n");
        assert_eq!(
            decode_all(Framing::Chunked, &input),
            Err(ProtocolError::BadRequest("chunk-size line too long"))
        );
    }

    #[test]
    fn oversized_trailers_are_431() {
        let mut input = b"0\r\n".to_vec();
        while input.len() <= Limits::MAX_TRAILER + 3 {
            input.extend_from_slice(b"X-Trailer: 0123456789abcdef0123456789abcdef\r\n");
        }
        input.extend_from_slice(b"\r\n");
        assert_eq!(
            decode_all(Framing::Chunked, &input),
            Err(ProtocolError::HeadersTooLarge)
        );
    }

    #[test]
    fn chunked_body_over_limit_is_rejected_from_the_size_alone() {
        let mut decoder = BodyDecoder::new(&Framing::Chunked, 10);
        let mut out = Vec::new();
        assert_eq!(
            decoder.decode(b"6\r\nabcdef\r\n", &mut out),
            Ok((11, false))
        );
        // 6 + 5 > 10: refused before the size line is even finished.
        assert_eq!(
            decoder.decode(b"5", &mut out),
            Err(ProtocolError::PayloadTooLarge)
        );
        assert_eq!(out, b"abcdef");

        let mut decoder = BodyDecoder::new(&Framing::Chunked, 10);
        assert_eq!(
            decoder
                .decode(b"6\r\nabcdef\r\n4\r\nabcd\r\n0\r\n\r\n", &mut out)
                .map(|(_, d)| d),
            Ok(true),
            "exactly at the limit"
        );
        let mut decoder = BodyDecoder::new(&Framing::Chunked, 10);
        assert_eq!(
            decoder.decode(b"ffffffffffffffff\r\n", &mut out),
            Err(ProtocolError::PayloadTooLarge)
        );
    }

    #[test]
    fn trailer_fields_are_skipped() {
        let input = b"3\r\nabc\r\n0\r\nA: 1\r\nB: 2\r\n\r\nnext";
        let (out, used, done) = decode_all(Framing::Chunked, input).unwrap();
        assert_eq!(
            (out.as_slice(), used, done),
            (&b"abc"[..], input.len() - 4, true)
        );
    }

    #[test]
    fn decoding_after_done_consumes_nothing() {
        let mut decoder = BodyDecoder::new(&Framing::Chunked, MAX);
        let mut out = Vec::new();
        assert_eq!(decoder.decode(b"0\r\n\r\n", &mut out), Ok((5, true)));
        assert_eq!(decoder.decode(b"0\r\n\r\n", &mut out), Ok((0, true)));
        assert!(out.is_empty());
    }
}
