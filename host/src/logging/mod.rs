//! Logs go to stderr through a shared buffer that a background thread writes
//! out every few milliseconds: a worker pays a short append per line, never a
//! system call, even with an access line per request. stdout carries only the
//! start-up banner.

mod access;

pub use access::{access, flush_thread};

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::Duration;

use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

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

/// RFC 3339 UTC timestamps with microseconds. The date-and-time part is
/// formatted once per second per thread: with an access line per request,
/// formatting it every time is a measurable share of a request's cost.
struct CachedTime;

thread_local! {
    static SECOND: std::cell::RefCell<(u64, String)> = const {
        std::cell::RefCell::new((u64::MAX, String::new()))
    };
}

impl FormatTime for CachedTime {
    fn format_time(&self, w: &mut Writer<'_>) -> std::fmt::Result {
        with_now(|seconds, micros| write!(w, "{seconds}.{micros:06}Z"))
    }
}

/// What [`CachedTime`] writes, appended to a byte buffer.
fn write_timestamp(out: &mut Vec<u8>) {
    with_now(|seconds, micros| {
        out.extend_from_slice(seconds.as_bytes());
        // Six digits, zero-padded, as `{:06}` would give.
        let digits = [100_000, 10_000, 1_000, 100, 10, 1].map(|d| b'0' + (micros / d % 10) as u8);
        out.push(b'.');
        out.extend_from_slice(&digits);
        out.push(b'Z');
    });
}

/// Calls `f` with the current UTC time to the second and its microseconds.
fn with_now<R>(f: impl FnOnce(&str, u32) -> R) -> R {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs();
    SECOND.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.0 != secs {
            let text = httpdate_rfc3339(secs);
            *cached = (secs, text);
        }
        f(&cached.1, now.subsec_micros())
    })
}

/// `YYYY-MM-DDTHH:MM:SS` for a Unix time, in UTC.
fn httpdate_rfc3339(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
/// algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
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

#[cfg(test)]
mod tests {
    use super::{httpdate_rfc3339, write_timestamp};

    #[test]
    fn timestamps_match_known_dates() {
        assert_eq!(httpdate_rfc3339(0), "1970-01-01T00:00:00");
        assert_eq!(httpdate_rfc3339(951_782_400), "2000-02-29T00:00:00");
        assert_eq!(httpdate_rfc3339(1_795_867_199), "2026-11-28T11:59:59");
        assert_eq!(httpdate_rfc3339(4_102_444_800), "2100-01-01T00:00:00");
    }

    #[test]
    fn timestamps_pad_the_microseconds() {
        let mut out = Vec::new();
        write_timestamp(&mut out);
        let text = String::from_utf8(out).expect("utf-8");
        let (_, fraction) = text.split_once('.').expect("a fraction");
        assert_eq!(fraction.len(), 7, "{text}");
        assert!(fraction[..6].bytes().all(|b| b.is_ascii_digit()), "{text}");
    }
}
