//! Logs go to stderr through a shared buffer that a background thread writes
//! out every few milliseconds: a worker pays a short append per line, never a
//! system call, even with an access line per request. stdout carries only the
//! start-up banner.

mod access;
mod timestamp;

pub use access::{access, flush_thread};

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

use timestamp::CachedTime;

/// How long a line may wait in the buffer.
const FLUSH_INTERVAL: Duration = Duration::from_millis(25);
/// A fuller buffer is written at once rather than at the next interval.
const EARLY_FLUSH: usize = 256 * 1024;
/// Beyond this, lines are dropped (and counted) rather than buffered: a
/// stalled stderr must not grow the host without bound.
const MAX_BUFFERED: usize = 16 * 1024 * 1024;

#[derive(Default)]
struct Shared {
    state: Mutex<Pending>,
    wake: Condvar,
}

#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    dropped: u64,
    closed: bool,
}

/// Writes what is buffered when dropped; keep it alive until exit.
pub struct LogGuard {
    shared: Arc<Shared>,
    flusher: Option<thread::JoinHandle<()>>,
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        if let Ok(mut pending) = self.shared.state.lock() {
            pending.closed = true;
        }
        self.shared.wake.notify_one();
        if let Some(flusher) = self.flusher.take() {
            let _ = flusher.join();
        }
    }
}

impl Shared {
    fn append(&self, line: &[u8]) {
        if let Ok(mut pending) = self.state.lock() {
            if pending.bytes.len() + line.len() > MAX_BUFFERED {
                pending.dropped += 1;
            } else {
                pending.bytes.extend_from_slice(line);
                if pending.bytes.len() >= EARLY_FLUSH {
                    self.wake.notify_one();
                }
            }
        }
    }
}

#[derive(Clone)]
struct BatchWriter(Arc<Shared>);

impl Write for BatchWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        flush_thread();
        self.0.append(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BatchWriter {
    type Writer = BatchWriter;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

fn flush_loop(shared: Arc<Shared>) {
    let mut out = Vec::new();
    loop {
        let closed = {
            let Ok(pending) = shared.state.lock() else {
                return;
            };
            let Ok((mut pending, _)) = shared.wake.wait_timeout(pending, FLUSH_INTERVAL) else {
                return;
            };
            std::mem::swap(&mut out, &mut pending.bytes);
            if pending.dropped > 0 {
                let note = format!(
                    "snow: {} log lines dropped (stderr too slow)\n",
                    pending.dropped
                );
                out.extend_from_slice(note.as_bytes());
                pending.dropped = 0;
            }
            pending.closed
        };
        if !out.is_empty() {
            let mut stderr = std::io::stderr().lock();
            let _ = stderr.write_all(&out);
            let _ = stderr.flush();
            out.clear();
        }
        if closed {
            return;
        }
    }
}

/// Installs the subscriber, filtered by `SNOW_LOG` (else `RUST_LOG`, else
/// `info`).
pub fn init() -> LogGuard {
    let shared = Arc::new(Shared::default());
    let flusher = {
        let shared = shared.clone();
        thread::Builder::new()
            .name("snow-log".into())
            .spawn(move || flush_loop(shared))
            .ok()
    };
    let filter = EnvFilter::try_from_env("SNOW_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::stderr().is_terminal();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(BatchWriter(shared.clone()))
        .with_timer(CachedTime)
        .with_target(true)
        .with_ansi(ansi)
        .init();
    if !ansi {
        access::install(shared.clone());
    }
    LogGuard { shared, flusher }
}
