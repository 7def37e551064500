//! The least a reverse proxy on tokio can do, as the floor of the proxy rows:
//! each client connection gets one upstream connection of its own (no pool,
//! no locks, no routing), heads are parsed with httparse and nothing else,
//! and an answer's body is copied through as it comes. Only what the
//! benchmark sends is served: requests without a body, answered with a
//! Content-Length. Anything else gets a 400, 431, 501 or 502 and the
//! connection closes.
//!
//! Snow's proxy does all of this plus a module call, a shared pool,
//! request fields, deadlines and logs, so this proxy's throughput is the
//! most the host could reach on tokio without them.

use std::net::SocketAddr;

use clap::Parser;
use snow_bench::native_server;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Parser)]
#[command(about = "Bare tokio reverse proxy in front of one upstream")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8016")]
    listen: SocketAddr,
    /// The upstream, host:port; every request goes there with its path.
    #[arg(long)]
    upstream: String,
    /// Tokio worker threads.
    #[arg(long, default_value_t = 2)]
    workers: usize,
}

/// Heads larger than this are refused, as the benchmark never sends one.
const HEAD_LIMIT: usize = 8 * 1024;
/// How much of an answer's body goes through at a time.
const COPY_CHUNK: usize = 64 * 1024;
const MAX_HEADERS: usize = 32;

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = native_server::runtime(args.workers)?;
    let upstream: std::sync::Arc<str> = args.upstream.into();
    runtime.block_on(native_server::run(args.listen, move |client| {
        let upstream = upstream.clone();
        async move {
            // A peer hanging up mid-request is routine under load.
            let _ = serve(client, &upstream).await;
        }
    }))
}

/// Why a connection stops: the client is told with `status` when there is one.
struct Refusal {
    status: Option<&'static str>,
}

impl From<std::io::Error> for Refusal {
    fn from(_: std::io::Error) -> Self {
        Refusal { status: None }
    }
}

async fn serve(mut client: TcpStream, upstream: &str) -> std::io::Result<()> {
    let mut conn = Proxied {
        upstream: None,
        head: vec![0; HEAD_LIMIT].into_boxed_slice(),
        held: 0,
        answer: vec![0; COPY_CHUNK].into_boxed_slice(),
        forward: Vec::with_capacity(256),
    };
    loop {
        match conn.exchange(&mut client, upstream).await {
            Ok(true) => {}
            Ok(false) => return Ok(()),
            Err(Refusal { status: Some(line) }) => {
                let answer =
                    format!("HTTP/1.1 {line}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                return client.write_all(answer.as_bytes()).await;
            }
            Err(Refusal { status: None }) => return Ok(()),
        }
    }
}

/// One client connection's state; buffers are allocated once, never
/// cleared, and filled up to a count.
struct Proxied {
    /// Opened at the first request and kept for the connection's life.
    upstream: Option<TcpStream>,
    /// The client's bytes not yet forwarded (`..held`): a head, or the start
    /// of one.
    head: Box<[u8]>,
    held: usize,
    answer: Box<[u8]>,
    forward: Vec<u8>,
}

impl Proxied {
    /// Relays one request and its answer; false once the client has closed.
    async fn exchange(&mut self, client: &mut TcpStream, upstream: &str) -> Result<bool, Refusal> {
        let Some(consumed) = self.read_request(client).await? else {
            return Ok(false);
        };
        self.head.copy_within(consumed..self.held, 0);
        self.held -= consumed;
        let up = match &mut self.upstream {
            Some(up) => up,
            None => {
                let up = TcpStream::connect(upstream).await.map_err(|_| Refusal {
                    status: Some("502 Bad Gateway"),
                })?;
                up.set_nodelay(true)?;
                self.upstream.insert(up)
            }
        };
        up.write_all(&self.forward).await?;
        let (filled, head_len, body_len) = read_answer_head(up, &mut self.answer).await?;
        let in_hand = (filled - head_len).min(body_len);
        client.write_all(&self.answer[..head_len + in_hand]).await?;
        let mut left = body_len - in_hand;
        while left > 0 {
            let want = left.min(COPY_CHUNK);
            let read = up.read(&mut self.answer[..want]).await?;
            if read == 0 {
                return Err(Refusal { status: None });
            }
            client.write_all(&self.answer[..read]).await?;
            left -= read;
        }
        Ok(true)
    }

    /// Reads until `head` holds a whole request head and writes the
    /// upstream's version of it to `forward`; the head's length, or `None`
    /// when the client closed first.
    async fn read_request(&mut self, client: &mut TcpStream) -> Result<Option<usize>, Refusal> {
        loop {
            if self.held > 0 {
                let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
                let mut request = httparse::Request::new(&mut headers);
                let parsed = request
                    .parse(&self.head[..self.held])
                    .map_err(|_| Refusal {
                        status: Some("400 Bad Request"),
                    })?;
                if let httparse::Status::Complete(len) = parsed {
                    let has_body = request.headers.iter().any(|h| {
                        h.name.eq_ignore_ascii_case("transfer-encoding")
                            || (h.name.eq_ignore_ascii_case("content-length") && h.value != b"0")
                    });
                    if has_body {
                        return Err(Refusal {
                            status: Some("501 Not Implemented"),
                        });
                    }
                    self.forward.clear();
                    self.forward
                        .extend_from_slice(request.method.unwrap_or("GET").as_bytes());
                    self.forward.push(b' ');
                    self.forward
                        .extend_from_slice(request.path.unwrap_or("/").as_bytes());
                    self.forward
                        .extend_from_slice(b" HTTP/1.1\r\nhost: upstream\r\n\r\n");
                    return Ok(Some(len));
                }
            }
            if self.held == self.head.len() {
                return Err(Refusal {
                    status: Some("431 Request Header Fields Too Large"),
                });
            }
            let read = client.read(&mut self.head[self.held..]).await?;
            if read == 0 {
                return Ok(None);
            }
            self.held += read;
        }
    }
}

/// Reads the upstream's answer head into `buf`: how much was read, the
/// head's length and the body's Content-Length.
async fn read_answer_head(
    up: &mut TcpStream,
    buf: &mut [u8],
) -> Result<(usize, usize, usize), Refusal> {
    let bad = || Refusal {
        status: Some("502 Bad Gateway"),
    };
    let mut filled = 0;
    loop {
        let read = up.read(&mut buf[filled..]).await?;
        if read == 0 {
            return Err(bad());
        }
        filled += read;
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut headers);
        let parsed = response.parse(&buf[..filled]).map_err(|_| bad())?;
        if let httparse::Status::Complete(len) = parsed {
            let length = response
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse().ok())
                .ok_or_else(bad)?;
            return Ok((filled, len, length));
        }
        if filled == buf.len() {
            return Err(bad());
        }
    }
}

#[cfg(test)]
mod tests;
