//! The access line written for every request.
//!
//! It is the one log line on the hot path, so when the log goes to a file or
//! pipe it is formatted here, by hand, into a reused buffer and appended to
//! the log buffer: going through tracing-subscriber's formatter (field
//! visitors, styles, `fmt::write`) cost about a tenth of a `/home/` request.
//! The line is byte for byte what that formatter writes, and the tracing
//! filter (`SNOW_LOG=warn`, `snow::access=off`) still decides whether it is
//! written. On a terminal, where colours are wanted and speed matters less,
//! it goes through tracing like every other line.

use std::cell::RefCell;
use std::io::Write;
use std::sync::{Arc, OnceLock};

use super::timestamp::write_timestamp;
use super::Shared;

/// Set once the subscriber is installed and writes plain text.
static PLAIN_SINK: OnceLock<Arc<Shared>> = OnceLock::new();

/// A worker keeps its access lines until it is about to sleep (see
/// [`flush_thread`]) or has this many bytes: appending each line to the
/// shared buffer took a lock that both workers contend for on every request.
const LOCAL_FLUSH: usize = 16 * 1024;

thread_local! {
    static PENDING: RefCell<Pending> = const { RefCell::new(Pending(Vec::new())) };
}

/// This thread's access lines not yet in the shared buffer.
struct Pending(Vec<u8>);

impl Pending {
    fn flush(&mut self) {
        if self.0.is_empty() {
            return;
        }
        if let Some(sink) = PLAIN_SINK.get() {
            sink.append(&self.0);
        }
        self.0.clear();
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Moves this thread's access lines to the shared buffer. Workers call it
/// before they sleep; any other line a thread logs calls it first, so each
/// thread's lines keep their order.
pub fn flush_thread() {
    let _ = PENDING.try_with(|pending| {
        if let Ok(mut pending) = pending.try_borrow_mut() {
            pending.flush();
        }
    });
}

pub(super) fn install(shared: Arc<Shared>) {
    let _ = PLAIN_SINK.set(shared);
}

/// Logs one answered request under the `snow::access` target.
pub fn access(method: &str, path: &str, status: u16, micros: u64, module: &str) {
    if !tracing::enabled!(target: "snow::access", tracing::Level::INFO) {
        return;
    }
    let Some(sink) = PLAIN_SINK.get() else {
        tracing::info!(
            target: "snow::access",
            method = %method,
            path = %path,
            status,
            us = micros,
            module,
        );
        return;
    };
    let _ = PENDING.try_with(|pending| {
        let Ok(mut pending) = pending.try_borrow_mut() else {
            return;
        };
        format_line(&mut pending.0, method, path, status, micros, module);
        if pending.0.len() >= LOCAL_FLUSH {
            sink.append(&pending.0);
            pending.0.clear();
        }
    });
}

fn format_line(
    out: &mut Vec<u8>,
    method: &str,
    path: &str,
    status: u16,
    micros: u64,
    module: &str,
) {
    let mut numbers = itoa::Buffer::new();
    write_timestamp(out);
    out.extend_from_slice(b"  INFO snow::access: method=");
    out.extend_from_slice(method.as_bytes());
    out.extend_from_slice(b" path=");
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(b" status=");
    out.extend_from_slice(numbers.format(status).as_bytes());
    out.extend_from_slice(b" us=");
    out.extend_from_slice(numbers.format(micros).as_bytes());
    // tracing records a `&str` field with `Debug`: quoted and escaped. A
    // manifest's names need no escaping, and `Debug` formatting was a
    // tenth of this line's cost.
    if module
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        out.extend_from_slice(b" module=\"");
        out.extend_from_slice(module.as_bytes());
        out.push(b'"');
    } else {
        let _ = write!(out, " module={module:?}");
    }
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_matches_the_tracing_format() {
        let mut line = Vec::new();
        format_line(&mut line, "GET", "/home/", 200, 267, "hello");
        let line = String::from_utf8(line).expect("utf-8");
        let (time, rest) = line.split_once("  ").expect("two spaces after the time");
        assert_eq!(
            rest,
            "INFO snow::access: method=GET path=/home/ status=200 us=267 module=\"hello\"\n"
        );
        // 2026-11-28T11:52:54.840734Z
        assert_eq!(time.len(), 27, "{time}");
        assert!(time.ends_with('Z') && time.as_bytes()[10] == b'T', "{time}");
    }

    #[test]
    fn a_module_name_is_quoted_as_debug_quotes_it() {
        for name in [
            "hello",
            "my-app_2.wasm",
            "with space",
            "q\"uote",
            "new\nline",
            "caf\u{e9}",
            "",
        ] {
            let mut line = Vec::new();
            format_line(&mut line, "GET", "/", 200, 1, name);
            let line = String::from_utf8(line).expect("utf-8");
            assert!(line.ends_with(&format!(" module={name:?}\n")), "{line}");
        }
    }

    #[test]
    fn a_threads_lines_reach_the_shared_buffer_when_it_flushes() {
        // The only test that installs a sink.
        let shared = Arc::new(Shared::default());
        install(shared.clone());
        let buffered = || String::from_utf8(shared.state.lock().expect("lock").bytes.clone());
        PENDING.with(|pending| {
            format_line(&mut pending.borrow_mut().0, "GET", "/", 200, 1, "m");
        });
        assert_eq!(buffered().expect("utf-8"), "");
        flush_thread();
        let once = buffered().expect("utf-8");
        assert!(once.ends_with("us=1 module=\"m\"\n"), "{once}");
        // Flushed lines are not kept: a second flush adds nothing.
        flush_thread();
        assert_eq!(buffered().expect("utf-8"), once);
    }

    #[test]
    fn module_names_are_quoted_like_tracing_quotes_them() {
        let mut line = Vec::new();
        format_line(&mut line, "POST", "/a", 404, 0, "-\"x");
        let line = String::from_utf8(line).expect("utf-8");
        assert!(
            line.ends_with(" status=404 us=0 module=\"-\\\"x\"\n"),
            "{line}"
        );
    }
}
