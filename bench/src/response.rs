/// Just enough HTTP/1.1 response parsing to know when a response has fully
/// arrived and what it said, with Content-Length, chunked or close-delimited
/// bodies, whichever the server under test picks.
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
}

pub enum Progress {
    Incomplete,
    Complete(Reply),
}

const MAX_HEADERS: usize = 64;

/// `eof` says the peer has closed, so whatever is in `buf` is all there is.
pub fn parse(buf: &[u8], eof: bool) -> Result<Progress, String> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut head = httparse::Response::new(&mut headers);
    let head_len = match head.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if eof && buf.is_empty() => {
            return Err("closed_no_response".into())
        }
        Ok(httparse::Status::Partial) if eof => return Err("truncated_head".into()),
        Ok(httparse::Status::Partial) => return Ok(Progress::Incomplete),
        Err(err) => return Err(format!("bad_head_{err:?}")),
    };
    let status = head.code.unwrap_or(0);
    let framing = framing(head.headers)?;
    let rest = &buf[head_len..];
    let body = match framing {
        Framing::Length(len) if rest.len() >= len => Some(rest[..len].to_vec()),
        Framing::Length(_) => None,
        Framing::Chunked => dechunk(rest)?,
        Framing::UntilClose => eof.then(|| rest.to_vec()),
    };
    match body {
        Some(body) => Ok(Progress::Complete(Reply { status, body })),
        None if eof => Err("truncated_body".into()),
        None => Ok(Progress::Incomplete),
    }
}

enum Framing {
    Length(usize),
    Chunked,
    UntilClose,
}

fn framing(headers: &[httparse::Header<'_>]) -> Result<Framing, String> {
    for header in headers {
        if header.name.eq_ignore_ascii_case("transfer-encoding") {
            let chunked = std::str::from_utf8(header.value)
                .map(|v| v.to_ascii_lowercase().contains("chunked"))
                .unwrap_or(false);
            if chunked {
                return Ok(Framing::Chunked);
            }
        }
    }
    for header in headers {
        if header.name.eq_ignore_ascii_case("content-length") {
            return std::str::from_utf8(header.value)
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .map(Framing::Length)
                .ok_or_else(|| "bad_content_length".to_string());
        }
    }
    Ok(Framing::UntilClose)
}

/// The decoded body once the terminating chunk and trailers are in, `None`
/// while more bytes are needed.
fn dechunk(mut rest: &[u8]) -> Result<Option<Vec<u8>>, String> {
    let mut body = Vec::new();
    loop {
        let (size_len, size) = match httparse::parse_chunk_size(rest) {
            Ok(httparse::Status::Complete(found)) => found,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(_) => return Err("bad_chunk_size".into()),
        };
        rest = &rest[size_len..];
        let size = usize::try_from(size).map_err(|_| "bad_chunk_size".to_string())?;
        if size == 0 {
            // Trailers, if any, end with an empty line like the head does.
            let done = rest.starts_with(b"\r\n") || rest.windows(4).any(|w| w == b"\r\n\r\n");
            return Ok(done.then_some(body));
        }
        if rest.len() < size + 2 {
            return Ok(None);
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}
