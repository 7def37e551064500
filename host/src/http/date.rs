//! The `Date` response header value, formatted at most once per second per thread.

use std::cell::Cell;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Length of an IMF-fixdate such as `Sun, 06 Nov 1994 08:49:37 GMT`.
pub const DATE_LEN: usize = 29;

/// Last second httpdate can format (9999-12-31T23:59:59Z); it panics beyond.
const LAST_FORMATTABLE_SECOND: u64 = 253_402_300_799;

/// A formatted date and the Unix second it shows.
#[derive(Clone, Copy)]
struct Cached {
    second: u64,
    text: [u8; DATE_LEN],
}

impl Cached {
    /// Holds the epoch under a second no clock reading can match, so the
    /// first lookup always formats.
    const EMPTY: Cached = Cached {
        second: u64::MAX,
        text: *b"Thu, 01 Jan 1970 00:00:00 GMT",
    };

    /// The cache as of `now`, formatting only when the second changed.
    fn at(self, now: SystemTime) -> Cached {
        let second = now
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
            .min(LAST_FORMATTABLE_SECOND);
        if second == self.second {
            return self;
        }
        let formatted = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(second));
        match <[u8; DATE_LEN]>::try_from(formatted.as_bytes()) {
            Ok(text) => Cached { second, text },
            // Four-digit years always give DATE_LEN bytes; keep the old value otherwise.
            Err(_) => self,
        }
    }
}

thread_local! {
    // A Cell of a Copy value cannot be borrowed twice, so `with_date` may nest.
    static CACHE: Cell<Cached> = const { Cell::new(Cached::EMPTY) };
}

/// Calls `f` with the current time as an IMF-fixdate (RFC 9110 §5.6.7).
pub fn with_date<R>(f: impl FnOnce(&[u8]) -> R) -> R {
    let cached = CACHE.with(|cache| {
        let fresh = cache.get().at(SystemTime::now());
        cache.set(fresh);
        fresh
    });
    f(&cached.text)
}

/// The current time as an IMF-fixdate; allocates, so prefer [`with_date`] on hot paths.
#[cfg(test)]
pub fn now() -> String {
    with_date(|d| String::from_utf8_lossy(d).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_the_current_time() {
        let text = now();
        assert_eq!(text.len(), DATE_LEN);
        assert!(text.ends_with(" GMT"));
        let parsed = httpdate::parse_http_date(&text).unwrap();
        let skew = SystemTime::now().duration_since(parsed).unwrap();
        assert!(skew < Duration::from_secs(5), "{text}");
    }

    #[test]
    fn reformats_only_when_the_second_changes() {
        let t = UNIX_EPOCH + Duration::from_secs(784_111_777);
        let first = Cached::EMPTY.at(t);
        assert_eq!(&first.text, b"Sun, 06 Nov 1994 08:49:37 GMT");

        // A cache with a doctored text shows whether it was reused.
        let marked = Cached {
            text: *b"XXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
            ..first
        };
        let same_second = marked.at(t + Duration::from_millis(999));
        assert_eq!(&same_second.text, &marked.text);
        let next_second = marked.at(t + Duration::from_secs(1));
        assert_eq!(&next_second.text, b"Sun, 06 Nov 1994 08:49:38 GMT");
    }

    #[test]
    fn out_of_range_clocks_are_clamped() {
        let before_epoch = UNIX_EPOCH - Duration::from_secs(10);
        assert_eq!(
            &Cached::EMPTY.at(before_epoch).text,
            b"Thu, 01 Jan 1970 00:00:00 GMT"
        );
        let far_future = UNIX_EPOCH + Duration::from_secs(LAST_FORMATTABLE_SECOND + 1000);
        assert_eq!(
            &Cached::EMPTY.at(far_future).text,
            b"Fri, 31 Dec 9999 23:59:59 GMT"
        );
    }

    #[test]
    fn with_date_can_nest() {
        let (outer, inner) = with_date(|a| (a.to_vec(), with_date(|b| b.to_vec())));
        assert_eq!(outer.len(), DATE_LEN);
        assert_eq!(inner.len(), DATE_LEN);
    }
}
