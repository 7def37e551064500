//! A guest's stdout and stderr, forwarded line by line to the host log and
//! tagged with the module's name.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// A line longer than this is logged in pieces, so a module that never
/// writes a newline cannot grow host memory.
const MAX_LINE: usize = 4096;

/// How much a guest may write in one call; the stream is always ready again.
const WRITE_BUDGET: usize = 64 * 1024;

/// Lines an instance may log in a burst, and per second after it: a module
/// that floods its output loses lines, not the host's log or its disk.
const BURST_LINES: f64 = 1000.0;
const LINES_PER_SECOND: f64 = 100.0;

/// The log allowance of one instance, shared by its stdout and stderr.
pub struct LogBudget {
    module: Arc<str>,
    state: Mutex<Bucket>,
}

struct Bucket {
    tokens: f64,
    refilled: Instant,
    dropped: u64,
}

impl LogBudget {
    pub fn new(module: Arc<str>) -> Arc<Self> {
        Arc::new(Self {
            module,
            state: Mutex::new(Bucket {
                tokens: BURST_LINES,
                refilled: Instant::now(),
                dropped: 0,
            }),
        })
    }

    /// Whether one more line may be logged; reports what was dropped once
    /// lines flow again.
    fn admit(&self) -> bool {
        let Ok(mut bucket) = self.state.lock() else {
            return false;
        };
        let now = Instant::now();
        let earned = now.duration_since(bucket.refilled).as_secs_f64() * LINES_PER_SECOND;
        bucket.tokens = (bucket.tokens + earned).min(BURST_LINES);
        bucket.refilled = now;
        if bucket.tokens < 1.0 {
            bucket.dropped += 1;
            return false;
        }
        bucket.tokens -= 1.0;
        if bucket.dropped > 0 {
            self.report(std::mem::take(&mut bucket.dropped));
        }
        true
    }

    fn report(&self, dropped: u64) {
        tracing::warn!(
            target: "snow::guest",
            module = %self.module,
            dropped,
            "module output over {LINES_PER_SECOND} lines/s; lines dropped"
        );
    }
}

impl Drop for LogBudget {
    fn drop(&mut self) {
        let dropped = self.state.get_mut().map(|b| b.dropped).unwrap_or(0);
        if dropped > 0 {
            self.report(dropped);
        }
    }
}

#[derive(Clone)]
pub struct GuestLog {
    budget: Arc<LogBudget>,
    stream: &'static str,
}

impl GuestLog {
    pub fn new(budget: Arc<LogBudget>, stream: &'static str) -> Self {
        Self { budget, stream }
    }
}

impl IsTerminal for GuestLog {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestLog {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(LineWriter::new(self.clone()))
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(LineWriter::new(self.clone()))
    }
}

struct LineWriter {
    target: GuestLog,
    line: Vec<u8>,
}

impl LineWriter {
    fn new(target: GuestLog) -> Self {
        Self {
            target,
            line: Vec::new(),
        }
    }

    fn push(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let room = MAX_LINE - self.line.len();
            let take = bytes.len().min(room);
            let chunk = &bytes[..take];
            match chunk.iter().position(|&b| b == b'\n') {
                Some(end) => {
                    self.line.extend_from_slice(&chunk[..end]);
                    self.emit();
                    bytes = &bytes[end + 1..];
                }
                None => {
                    self.line.extend_from_slice(chunk);
                    bytes = &bytes[take..];
                    if self.line.len() >= MAX_LINE {
                        self.emit();
                    }
                }
            }
        }
    }

    fn emit(&mut self) {
        if !self.target.budget.admit() {
            self.line.clear();
            return;
        }
        let text = String::from_utf8_lossy(&self.line);
        let text = text.trim_end_matches('\r');
        tracing::info!(
            target: "snow::guest",
            module = %self.target.budget.module,
            stream = self.target.stream,
            "{text}"
        );
        self.line.clear();
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        if !self.line.is_empty() {
            self.emit();
        }
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for LineWriter {
    async fn ready(&mut self) {}
}

impl OutputStream for LineWriter {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_BUDGET)
    }
}

impl AsyncWrite for LineWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
