use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use snow_bench::response::{self, Progress};

/// Far beyond the few hundred bytes expected; stops a misbehaving server from
/// growing the client without bound.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// Opens one connection, sends the request and waits for the whole response.
/// Returns the hold time, from the request being written to the response
/// being complete, or a short label for what went wrong.
pub async fn park(addr: SocketAddr, request: &[u8], expect: &str) -> Result<Duration, String> {
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(|e| label("connect", &e))?;
    stream
        .write_all(request)
        .await
        .map_err(|e| label("write", &e))?;
    let sent = Instant::now();

    // Small on purpose: ten thousand of these are alive at once.
    let mut buf = Vec::with_capacity(256);
    let reply = loop {
        let read = stream
            .read_buf(&mut buf)
            .await
            .map_err(|e| label("read", &e))?;
        let eof = read == 0;
        match response::parse(&buf, eof)? {
            Progress::Complete(reply) => break reply,
            Progress::Incomplete if buf.len() > MAX_RESPONSE_BYTES => {
                return Err("response_too_large".into())
            }
            Progress::Incomplete => {}
        }
        if buf.capacity() == buf.len() {
            buf.reserve(buf.len());
        }
    };
    let hold = sent.elapsed();

    if reply.status != 200 {
        return Err(format!("status_{}", reply.status));
    }
    let expected = match expect.strip_prefix('*') {
        Some(part) => reply
            .body
            .windows(part.len().max(1))
            .any(|w| w == part.as_bytes()),
        None => reply.body == expect.as_bytes(),
    };
    if !expected {
        return Err("unexpected_body".into());
    }
    Ok(hold)
}

fn label(stage: &str, err: &io::Error) -> String {
    format!("{stage}_{:?}", err.kind())
}
