//! RFC 3339 UTC timestamps with microseconds, for every log line.
//!
//! humantime formats the date and time; the text is kept per thread for the
//! current second, because with an access line per request formatting it
//! every time is a measurable share of a request's cost (see the README).

use std::cell::RefCell;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;

/// The tracing timer that writes these timestamps.
pub(super) struct CachedTime;

thread_local! {
    /// The second last formatted, and its `YYYY-MM-DDTHH:MM:SS`.
    static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

impl FormatTime for CachedTime {
    fn format_time(&self, w: &mut Writer<'_>) -> std::fmt::Result {
        with_now(|seconds, micros| write!(w, "{seconds}.{micros:06}Z"))
    }
}

/// What [`CachedTime`] writes, appended to a byte buffer.
pub(super) fn write_timestamp(out: &mut Vec<u8>) {
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
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs();
    SECOND.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.0 != secs {
            cached.0 = secs;
            date_time(secs, &mut cached.1);
        }
        f(&cached.1, now.subsec_micros())
    })
}

/// The last second humantime formats: 9999-12-31T23:59:59.
const LAST_SECOND: u64 = 253_402_300_799;

/// Writes `YYYY-MM-DDTHH:MM:SS` for a Unix time into `out`, replacing it.
fn date_time(secs: u64, out: &mut String) {
    out.clear();
    let time = UNIX_EPOCH + Duration::from_secs(secs.min(LAST_SECOND));
    // Within humantime's range, formatting cannot fail.
    let _ = write!(out, "{}", humantime::format_rfc3339_seconds(time));
    // humantime ends with the `Z` that goes after the fraction here.
    out.pop();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> String {
        let mut out = String::new();
        date_time(secs, &mut out);
        out
    }

    #[test]
    fn timestamps_match_known_dates() {
        assert_eq!(at(0), "1970-01-01T00:00:00");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00");
        assert_eq!(at(1_795_867_199), "2026-11-28T11:59:59");
        assert_eq!(at(4_102_444_800), "2100-01-01T00:00:00");
    }

    #[test]
    fn times_past_year_9999_are_clamped_not_a_panic() {
        assert_eq!(at(LAST_SECOND), "9999-12-31T23:59:59");
        assert_eq!(at(LAST_SECOND + 1), "9999-12-31T23:59:59");
        assert_eq!(at(u64::MAX), "9999-12-31T23:59:59");
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
