//! A small HTTP/1.1 client: one request per connection, framed by
//! `content-length`, chunks or the close, enough to check what `snow`
//! answers.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};

use crate::{Error, PATIENCE};

/// A response as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Header lines in order, names as sent.
    pub headers: Vec<(String, String)>,
    /// The body, empty for `HEAD`.
    pub body: Vec<u8>,
}

impl Response {
    /// The first header called `name`, in any case.
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// The body as text, invalid UTF-8 replaced.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// The first of `headers` called `name`, in any case.
pub(crate) fn find_header<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Sends one request to `addr` on a fresh connection (`connection: close`)
/// with extra header lines, values as raw bytes, and reads the response.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &[u8])],
    body: &[u8],
) -> Result<Response, Error> {
    let doing = format!("{method} {path} to {addr}");
    let mut stream = TcpStream::connect(addr).map_err(|e| Error::io(&doing, e))?;
    stream
        .set_read_timeout(Some(PATIENCE))
        .map_err(|e| Error::io(&doing, e))?;
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nhost: test\r\nconnection: close\r\n").into_bytes();
    for (name, value) in headers {
        req.extend_from_slice(name.as_bytes());
        req.extend_from_slice(b": ");
        req.extend_from_slice(value);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
    req.extend_from_slice(body);
    stream.write_all(&req).map_err(|e| Error::io(&doing, e))?;
    let mut reader = BufReader::new(stream);
    read_response(&mut reader, method == "HEAD")
        .ok_or_else(|| Error::new(format!("{doing}: no complete response")))
}

/// Reads one response framed by `content-length`, by chunks, or by the
/// close when neither is given; `None` when the stream ends, is not HTTP,
/// or is cut off before the end of the body.
pub fn read_response(reader: &mut impl BufRead, head_request: bool) -> Option<Response> {
    let mut status_line = String::new();
    if reader.read_line(&mut status_line).ok()? == 0 {
        return None;
    }
    let status: u16 = status_line.split_whitespace().nth(1)?.parse().ok()?;
    let headers = read_header_lines(reader)?;
    let length = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.parse::<usize>().ok())
        .map(|parsed| parsed.ok_or(()));
    let chunked = find_header(&headers, "transfer-encoding")
        .is_some_and(|coding| coding.eq_ignore_ascii_case("chunked"));
    let mut body = Vec::new();
    if chunked && !head_request {
        body = read_chunks(reader)?;
    } else if !head_request {
        match length {
            Some(Ok(n)) => {
                body.resize(n, 0);
                reader.read_exact(&mut body).ok()?;
            }
            Some(Err(())) => return None,
            None => {
                reader.read_to_end(&mut body).ok()?;
            }
        }
    }
    Some(Response {
        status,
        headers,
        body,
    })
}

/// A chunked body, de-chunked; `None` when it is malformed or cut off
/// before its last chunk.
pub fn read_chunks(reader: &mut impl BufRead) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let size = line.trim_end().split(';').next()?;
        let size = usize::from_str_radix(size.trim(), 16).ok()?;
        if size == 0 {
            // Trailer lines, up to the empty line.
            read_header_lines(reader)?;
            return Some(body);
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..]).ok()?;
        let mut end = [0u8; 2];
        reader.read_exact(&mut end).ok()?;
        if &end != b"\r\n" {
            return None;
        }
    }
}

/// Reads `name: value` lines up to the empty line that ends a head.
pub fn read_header_lines(reader: &mut impl BufRead) -> Option<Vec<(String, String)>> {
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            return Some(headers);
        }
        let (name, value) = line.split_once(':')?;
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
}

/// Parses every response in `bytes`: pipelined answers, error answers.
pub fn parse_all(bytes: &[u8]) -> Vec<Response> {
    let mut reader = BufReader::new(bytes);
    let mut all = Vec::new();
    while let Some(resp) = read_response(&mut reader, false) {
        all.push(resp);
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipelined_answers_are_split_and_bad_lengths_refused() {
        let bytes = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nhiHTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
        let all = parse_all(bytes);
        assert_eq!(all.len(), 2);
        assert_eq!((all[0].status, all[0].text()), (200, "hi".to_string()));
        assert_eq!(all[1].header("content-length"), Some("0"));
        assert!(parse_all(b"HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n").is_empty());
        assert!(parse_all(b"not http\r\n\r\n").is_empty());
        assert!(parse_all(b"HTTP/1.1 200 OK\r\nno-colon\r\n\r\n").is_empty());
    }
}
