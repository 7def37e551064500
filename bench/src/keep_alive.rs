use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::response::{self, Progress, Reply};

/// Far beyond the few bytes the probed routes answer with; stops a
/// misbehaving server from growing the client without bound.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// One keep-alive connection sending a request at a time and reading its
/// response, reconnecting on the next request after a failure. Requests are
/// never pipelined, so a complete response is everything the server sent.
pub struct KeepAlive {
    addr: SocketAddr,
    timeout: Duration,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
}

impl KeepAlive {
    /// `timeout` bounds each exchange, connecting included, so a server that
    /// stops answering shows up as errors instead of a stuck client.
    pub fn new(addr: SocketAddr, timeout: Duration) -> Self {
        Self {
            addr,
            timeout,
            stream: None,
            buf: Vec::with_capacity(512),
        }
    }

    /// Sends `request` and reads the response, or returns a short label for
    /// what went wrong. A failed connection is dropped, since its state is
    /// unknown; the next exchange opens a fresh one.
    pub async fn exchange(&mut self, request: &[u8]) -> Result<Reply, String> {
        let result = match tokio::time::timeout(self.timeout, self.try_exchange(request)).await {
            Ok(result) => result,
            Err(_) => Err("timeout".into()),
        };
        if result.is_err() {
            self.stream = None;
        }
        result
    }

    async fn try_exchange(&mut self, request: &[u8]) -> Result<Reply, String> {
        let stream = match &mut self.stream {
            Some(stream) => stream,
            None => {
                let stream = TcpStream::connect(self.addr)
                    .await
                    .map_err(|e| label("connect", &e))?;
                // Small requests on a busy connection: waiting to batch
                // them would only add latency.
                let _ = stream.set_nodelay(true);
                self.stream.insert(stream)
            }
        };
        stream
            .write_all(request)
            .await
            .map_err(|e| label("write", &e))?;
        self.buf.clear();
        loop {
            let read = stream
                .read_buf(&mut self.buf)
                .await
                .map_err(|e| label("read", &e))?;
            match response::parse(&self.buf, read == 0)? {
                Progress::Complete(reply) => return Ok(reply),
                Progress::Incomplete if self.buf.len() > MAX_RESPONSE_BYTES => {
                    return Err("response_too_large".into())
                }
                Progress::Incomplete => {}
            }
        }
    }
}

fn label(stage: &str, err: &io::Error) -> String {
    format!("{stage}_{:?}", err.kind())
}
